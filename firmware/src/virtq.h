/* Split virtqueues (virtio 1.2 §2.7), driver side, polled: no interrupts, the used ring is read in a loop. */
#ifndef FW_VIRTQ_H
#define FW_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTQ_MAX_SIZE 256
/* Static ring memory: one slot per queue, for two devices of two queues each. */
#define VIRTQ_SLOTS 4

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* One buffer of a chain: guest-physical address (= our virtual address, identity map) and length. */
struct virtq_buf {
    const void *addr;
    uint32_t len;
};

struct virtq {
    uint16_t index;
    uint16_t size;
    struct virtq_desc *desc;
    volatile uint16_t *avail;   /* flags, idx, ring[size], used_event */
    volatile uint8_t *used;     /* flags, idx, ring[size] of {u32 id, u32 len}, avail_event */
    uintptr_t notify_addr;
    uint16_t free_head;
    uint16_t num_free;
    uint16_t avail_idx;         /* our shadow of avail->idx */
    uint16_t last_used;
    /* Per-head bookkeeping, kept outside the shared descriptor table so a device cannot corrupt it. */
    uint16_t next_shadow[VIRTQ_MAX_SIZE];
    uint16_t chain_len[VIRTQ_MAX_SIZE];
    uint32_t writable_len[VIRTQ_MAX_SIZE];
    uint32_t cookie[VIRTQ_MAX_SIZE];
    bool in_flight[VIRTQ_MAX_SIZE];
};

/* Byte sizes of the three ring parts for a queue of `size` entries (no EVENT_IDX fields used, still reserved). */
#define VIRTQ_DESC_BYTES(size) (16u * (size))
#define VIRTQ_AVAIL_BYTES(size) (6u + 2u * (size))
#define VIRTQ_USED_BYTES(size) (6u + 8u * (size))

/* Lays out the rings for queue `index` in the static ring memory (slot < VIRTQ_SLOTS) and initialises the free list.
 * `size` must be a power of two <= VIRTQ_MAX_SIZE. */
void virtq_init(struct virtq *q, unsigned slot, uint16_t index, uint16_t size);

/* Physical addresses for the transport. */
uint64_t virtq_desc_paddr(const struct virtq *q);
uint64_t virtq_avail_paddr(const struct virtq *q);
uint64_t virtq_used_paddr(const struct virtq *q);

/* Adds a chain of `n_out` device-readable buffers followed by `n_in` device-writable ones and publishes it.
 * Fails with EXIT_RING_ERROR when the ring has no room (a driver bug: callers bound their in-flight chains). */
uint16_t virtq_add(struct virtq *q, const struct virtq_buf *bufs, unsigned n_out, unsigned n_in, uint32_t cookie);

/* Attack mode only (a hostile driver's raw ring access). Adds a chain of `n` descriptors written as given (address,
 * length, flags) and publishes it. A descriptor's `next` below `n` names another descriptor of this chain and is
 * translated to its table index (so a chain can loop back on itself); any other value is written as is. The
 * bookkeeping is virtq_add's: the chain's writable bytes are the lengths of its WRITE descriptors. */
uint16_t virtq_add_raw(struct virtq *q, const struct virtq_desc *descs, unsigned n, uint32_t cookie);

/* Attack mode only: publishes `head` in the avail ring with no descriptor bookkeeping, or sets avail->idx itself. */
void virtq_publish_head(struct virtq *q, uint16_t head);
void virtq_set_avail_idx(struct virtq *q, uint16_t idx);

/* The device's used index as it is in memory now. */
uint16_t virtq_used_idx(const struct virtq *q);

/* Notifies the device (16-bit write of the queue index to its notify address) unless it asked for no
 * notification (used.flags NO_NOTIFY). */
void virtq_kick(struct virtq *q);
/* Notifies regardless, as a hostile driver may (the attack code). */
void virtq_kick_always(struct virtq *q);

/* Takes one used element if there is one. Validates the id and the length against the chain; a bad element
 * ends the program with EXIT_RING_ERROR. */
bool virtq_poll(struct virtq *q, uint32_t *cookie, uint32_t *len);

/* virtq_poll in a loop until the deadline; ends the program with EXIT_TIMEOUT and `what` in the message. */
void virtq_wait(struct virtq *q, uint32_t *cookie, uint32_t *len, uint32_t timeout_ms, const char *what);

#endif
