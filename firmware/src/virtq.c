#include "exit_codes.h"
#include "io.h"
#include "serial.h"
#include "timer.h"
#include "util.h"
#include "virtq.h"

/* Ring memory for two queues: descriptor table, avail ring and used ring each on their own page(s).
 * 256 entries: desc 4 KiB, avail 518 B, used 2054 B. Alignment requirements (16/2/4) are met by the pages. */
#define SLOT_PAGES 3
static uint8_t ring_memory[VIRTQ_SLOTS][SLOT_PAGES * 4096] __attribute__((aligned(4096)));

void virtq_init(struct virtq *q, unsigned slot, uint16_t index, uint16_t size)
{
    if (slot >= VIRTQ_SLOTS)
        fw_fail(EXIT_RING_ERROR, "internal: ring memory slot %u of %u", slot, VIRTQ_SLOTS);
    uint8_t *base = ring_memory[slot];
    memset(base, 0, sizeof(ring_memory[slot]));
    memset(q, 0, sizeof(*q));
    q->index = index;
    q->size = size;
    q->desc = (struct virtq_desc *)base;
    q->avail = (volatile uint16_t *)(base + 4096);
    q->used = base + 2 * 4096;
    for (uint16_t i = 0; i < size; i++)
        q->next_shadow[i] = (uint16_t)(i + 1);
    q->free_head = 0;
    q->num_free = size;
}

uint64_t virtq_desc_paddr(const struct virtq *q) { return (uint64_t)(uintptr_t)q->desc; }
uint64_t virtq_avail_paddr(const struct virtq *q) { return (uint64_t)(uintptr_t)q->avail; }
uint64_t virtq_used_paddr(const struct virtq *q) { return (uint64_t)(uintptr_t)q->used; }

/* Books the chain of n descriptors at head (the free list now starts at next_free) and makes it available. */
static uint16_t commit_chain(struct virtq *q, uint16_t head, unsigned n, uint16_t next_free, uint32_t writable,
                             uint32_t cookie)
{
    q->free_head = next_free;
    q->num_free = (uint16_t)(q->num_free - n);
    q->chain_len[head] = (uint16_t)n;
    q->writable_len[head] = writable;
    q->cookie[head] = cookie;
    q->in_flight[head] = true;
    virtq_publish_head(q, head);
    return head;
}

uint16_t virtq_add(struct virtq *q, const struct virtq_buf *bufs, unsigned n_out, unsigned n_in, uint32_t cookie)
{
    unsigned n = n_out + n_in;
    if (n == 0 || n > q->num_free)
        fw_fail(EXIT_RING_ERROR, "queue %u: no room for a chain of %u (free %u)", q->index, n, q->num_free);
    uint16_t head = q->free_head;
    uint16_t idx = head;
    uint32_t writable = 0;
    for (unsigned i = 0; i < n; i++) {
        struct virtq_desc *d = &q->desc[idx];
        d->addr = (uint64_t)(uintptr_t)bufs[i].addr;
        d->len = bufs[i].len;
        d->flags = (uint16_t)((i >= n_out ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        d->next = i + 1 < n ? q->next_shadow[idx] : 0;
        if (i >= n_out)
            writable += bufs[i].len;
        idx = q->next_shadow[idx];
    }
    return commit_chain(q, head, n, idx, writable, cookie);
}

uint16_t virtq_add_raw(struct virtq *q, const struct virtq_desc *descs, unsigned n, uint32_t cookie)
{
    if (n == 0 || n > q->num_free || n > VIRTQ_MAX_SIZE)
        fw_fail(EXIT_RING_ERROR, "queue %u: no room for a raw chain of %u (free %u)", q->index, n, q->num_free);
    uint16_t slots[VIRTQ_MAX_SIZE];
    uint16_t idx = q->free_head;
    for (unsigned i = 0; i < n; i++) {
        slots[i] = idx;
        idx = q->next_shadow[idx];
    }
    uint32_t writable = 0;
    for (unsigned i = 0; i < n; i++) {
        struct virtq_desc d = descs[i];
        if (d.next < n)
            d.next = slots[d.next];
        if (d.flags & VIRTQ_DESC_F_WRITE)
            writable += d.len;
        q->desc[slots[i]] = d;
    }
    return commit_chain(q, slots[0], n, idx, writable, cookie);
}

void virtq_publish_head(struct virtq *q, uint16_t head)
{
    /* Descriptors before the ring entry, ring entry before the index: the device reads them in reverse order. */
    q->avail[2 + (q->avail_idx & (q->size - 1))] = head;
    barrier();
    q->avail_idx++;
    q->avail[1] = q->avail_idx;
}

void virtq_set_avail_idx(struct virtq *q, uint16_t idx)
{
    barrier();
    q->avail_idx = idx;
    q->avail[1] = idx;
}

uint16_t virtq_used_idx(const struct virtq *q) { return *(volatile const uint16_t *)(q->used + 2); }

void virtq_kick(struct virtq *q)
{
    /* The fence orders the avail idx store before the read of used.flags (a device that just re-enabled kicks
     * must not be missed). Without EVENT_IDX, flags bit 0 (VIRTQ_USED_F_NO_NOTIFY) asks for no kick: the device
     * is draining this queue, or has nothing to do with new buffers yet (the eventq while no event waits). */
    full_fence();
    if (*(volatile const uint16_t *)q->used & 1u)
        return;
    mmio_write16(q->notify_addr, q->index);
}

void virtq_kick_always(struct virtq *q)
{
    full_fence();
    mmio_write16(q->notify_addr, q->index);
}

bool virtq_poll(struct virtq *q, uint32_t *cookie, uint32_t *len)
{
    volatile uint16_t *used_idx = (volatile uint16_t *)(q->used + 2);
    uint16_t device_idx = *used_idx;
    if (device_idx == q->last_used)
        return false;
    barrier(); /* read the element only after seeing the index that covers it */
    if ((uint16_t)(device_idx - q->last_used) > q->size)
        fw_fail(EXIT_RING_ERROR, "queue %u: used idx jumped from %u to %u", q->index, q->last_used, device_idx);
    volatile uint8_t *elem = q->used + 4 + 8u * (q->last_used & (q->size - 1));
    uint32_t id = *(volatile uint32_t *)elem;
    uint32_t used_len = *(volatile uint32_t *)(elem + 4);
    if (id >= q->size || !q->in_flight[id])
        fw_fail(EXIT_RING_ERROR, "queue %u: used element names descriptor %u, which is not in flight", q->index, id);
    if (used_len > q->writable_len[id])
        fw_fail(EXIT_RING_ERROR, "queue %u: used length %u exceeds the chain's writable %u bytes", q->index, used_len,
                q->writable_len[id]);
    q->last_used++;

    /* Return the chain to the free list by walking our shadow links, not the shared table. */
    uint16_t tail = (uint16_t)id;
    for (uint16_t i = 1; i < q->chain_len[id]; i++)
        tail = q->next_shadow[tail];
    q->next_shadow[tail] = q->free_head;
    q->free_head = (uint16_t)id;
    q->num_free = (uint16_t)(q->num_free + q->chain_len[id]);
    q->in_flight[id] = false;

    *cookie = q->cookie[id];
    *len = used_len;
    return true;
}

void virtq_wait(struct virtq *q, uint32_t *cookie, uint32_t *len, uint32_t timeout_ms, const char *what)
{
    uint64_t deadline = deadline_after_ms(timeout_ms);
    for (;;) {
        if (virtq_poll(q, cookie, len))
            return;
        if (deadline_passed(deadline))
            fw_fail(EXIT_TIMEOUT, "no answer on queue %u within %u ms (%s)", q->index, timeout_ms, what);
        cpu_relax();
    }
}
