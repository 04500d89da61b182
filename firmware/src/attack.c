/* mode=attack: the hostile guest (see attack.h and firmware/README.md, "Attack mode"). Everything runs in ring 3,
 * polled, one command in flight per device. Device A is attacked; device B carries a bystander session that
 * streams from start to end; a bystander session on A streams through the attacks that leave A running. */
#include <stdbool.h>
#include <stdint.h>

#include "attack.h"
#include "checksum.h"
#include "exit_codes.h"
#include "io.h"
#include "pci.h"
#include "serial.h"
#include "timer.h"
#include "util.h"
#include "virtio_media.h"
#include "virtio_pci.h"

#define VIRTIO_VENDOR_ID 0x1AF4
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_LATENCY_TIMER 0x0D
#define PCI_BAR0 0x10
#define PCI_INTERRUPT_LINE 0x3C
#define PCI_CAP_ID_VENDOR 0x09
#define PCI_CAP_ID_MSIX 0x11
#define VIRTIO_PCI_CAP_PCI_CFG 5
#define CONFIG_ADDRESS 0xCF8
#define CONFIG_DATA 0xCFC

/* Linux errno values the device answers with. */
#define EIO 5
#define E2BIG 7
#define EBUSY 16
#define EINVAL 22
#define EMFILE 24
#define ENOTTY 25
#define ENOBUFS 105

#define BYSTANDER_BUFFERS 4
/* Far beyond guest RAM and every BAR: a guest-physical address nothing answers at. */
#define NOWHERE 0x7FF000000000ull
/* Scratch RAM the firmware image never uses (it ends below 2 MiB); the VM needs at least 64 MiB. */
#define SCRATCH_ADDR 0x800000ull

struct adev {
    char name;
    unsigned nth;       /* which virtio-media function on bus 0 */
    unsigned slot;      /* ring memory slots `slot` and `slot + 1` */
    struct pci_dev pci;
    struct virtio_pci vp;
    struct media_dev md;
};

/* A session that streams and whose every frame is checked: contiguous sequence numbers from 0, no ERROR flag,
 * bytesused equal to the format's sizeimage, and a CRC-32C folded into `combined` (printed in its BYSTANDER line
 * for the host to compare with the test-pattern generator). */
struct bystander {
    struct adev *dev;
    struct media s;
    bool active;
    bool rw;
    uint32_t frames, first_seq, last_seq, combined;
};

static const struct fw_params *P;
static struct adev dev_a = { .name = 'A', .nth = 0, .slot = 0 };
static struct adev dev_b = { .name = 'B', .nth = 1, .slot = 2 };
static struct bystander by_a, by_b;
static struct media_format format;
static char answer[512];
static uint32_t step_frames, total_frames, needs_resets, resets;

static uint8_t raw_cmd[4096] __attribute__((aligned(4096)));
static uint8_t raw_resp[4096] __attribute__((aligned(4096)));
static uint8_t raw_extra[4096] __attribute__((aligned(4096)));
static uint32_t flood_ids[4096];

#define FAIL(...) fw_fail(EXIT_ATTACK_ANSWER, __VA_ARGS__)

static uint64_t deadline(void) { return deadline_after_ms(P->timeout_ms); }

static struct virtq_desc desc_at(uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    return (struct virtq_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

static uint64_t addr_of(const void *p) { return (uint64_t)(uintptr_t)p; }

static void expect_errno(const char *what, uint32_t got, uint32_t want)
{
    if (got != want)
        FAIL("%s: device answered %s (%u), expected %s (%u)", what, media_errno_name(got), got,
             media_errno_name(want), want);
}

/* ---------- devices ---------- */

static uint8_t dev_status(const struct adev *d) { return virtio_pci_read_status(&d->vp); }

static void dev_probe(struct adev *d)
{
    if (!pci_find_nth(VIRTIO_VENDOR_ID, P->device_id, d->nth, &d->pci))
        fw_fail(EXIT_DEVICE_NOT_FOUND, "attack mode needs two virtio-media devices: no function %u of %04x:%04x",
                d->nth, VIRTIO_VENDOR_ID, P->device_id);
    pci_setup_bars_and_enable(&d->pci);
    virtio_pci_probe(&d->vp, &d->pci);
    d->vp.quiet = true;
    d->md.quiet = true;
    fw_printf("DEVICE %c pci 00:%02x.%x bar0=0x%lx shm=0x%lx+0x%lx\n", d->name, d->pci.dev, d->pci.fn,
              d->pci.bars[0].base, d->vp.shm_base, d->vp.shm_len);
}

static void dev_init(struct adev *d, bool hold_events)
{
    virtio_pci_negotiate(&d->vp, P->timeout_ms);
    media_dev_start(&d->md, &d->vp, d->slot, (uint16_t)P->queue_size, P->timeout_ms, hold_events);
}

static void bystander_end(struct bystander *by, bool device_alive);

/* Driver reset of a live device: every session on it is gone. */
static void dev_reset(struct adev *d)
{
    mmio_write8(d->vp.common + COMMON_STATUS, 0);
    uint64_t end = deadline();
    while (dev_status(d) != 0)
        if (deadline_passed(end))
            FAIL("device %c: status did not read 0 after a reset", d->name);
    resets++;
    if (by_a.active && by_a.dev == d)
        bystander_end(&by_a, false);
    if (by_b.active && by_b.dev == d)
        bystander_end(&by_b, false);
}

/* ---------- bystanders ---------- */

static void bystander_start(struct bystander *by, struct adev *d, bool rw)
{
    *by = (struct bystander){ .dev = d, .rw = rw };
    media_open(&by->s, &d->md);
    struct media_format f;
    media_set_format(&by->s, P->width, P->height, P->fourcc, &f);
    if (f.width != P->width || f.height != P->height || f.fourcc != P->fourcc || f.sizeimage == 0)
        fw_fail(EXIT_MEDIA_REPLY, "device %c: S_FMT answered %ux%u sizeimage %u", d->name, f.width, f.height,
                f.sizeimage);
    format = f;
    media_request_buffers(&by->s, BYSTANDER_BUFFERS);
    media_map_buffers(&by->s, f.sizeimage, rw);
    if (rw)
        /* Zeroed, so that a fill can be seen before its DQBUF event is (wait_filled). */
        for (uint32_t i = 0; i < by->s.nbufs; i++)
            memset((void *)(uintptr_t)by->s.bufs[i].data, 0, by->s.bufs[i].length);
    for (uint32_t i = 0; i < by->s.nbufs; i++)
        media_queue_buffer(&by->s, i);
    media_stream(&by->s, true);
    by->active = true;
}

static void bystander_take(struct bystander *by, const struct media_frame *f)
{
    char dev = by->dev->name;
    if (f->flags & V4L2_BUF_FLAG_ERROR)
        fw_fail(EXIT_BYSTANDER, "bystander on %c: frame seq=%u flagged V4L2_BUF_FLAG_ERROR", dev, f->sequence);
    if (f->bytesused != format.sizeimage)
        fw_fail(EXIT_BYSTANDER, "bystander on %c: frame seq=%u has bytesused %u, expected %u", dev, f->sequence,
                f->bytesused, format.sizeimage);
    uint32_t want = by->frames == 0 ? 0 : by->last_seq + 1;
    if (f->sequence != want)
        fw_fail(EXIT_BYSTANDER, "bystander on %c: frame seq=%u after %u frames, expected seq=%u (frames lost)", dev,
                f->sequence, by->frames, want);
    uint32_t sum = frame_checksum(by->s.bufs[f->index].data, f->bytesused);
    uint32_t record[2] = { f->sequence, sum };
    by->combined = frame_checksum(record, sizeof(record)) ^ (by->combined * 0x9E3779B1u);
    if (by->frames == 0)
        by->first_seq = f->sequence;
    by->last_seq = f->sequence;
    by->frames++;
    step_frames++;
    total_frames++;
    media_queue_buffer(&by->s, f->index);
}

/* Takes the frames a bystander has ready, without waiting. */
static void bystander_poll(struct bystander *by)
{
    struct media_frame f;
    while (media_next_event(&by->s, &f, 0) == MEDIA_FRAME)
        bystander_take(by, &f);
    if (by->s.failed)
        fw_fail(EXIT_BYSTANDER, "bystander on %c: ERROR event %s (%u)", by->dev->name, media_errno_name(by->s.error),
                by->s.error);
}

static void service(void)
{
    if (by_a.active)
        bystander_poll(&by_a);
    if (by_b.active)
        bystander_poll(&by_b);
}

/* Waits for `n` more frames of the bystander. */
static void bystander_wait(struct bystander *by, uint32_t n)
{
    for (uint32_t got = 0; got < n; got++) {
        struct media_frame f;
        switch (media_next_event(&by->s, &f, deadline())) {
        case MEDIA_FRAME:
            bystander_take(by, &f);
            break;
        case MEDIA_ERROR:
            fw_fail(EXIT_BYSTANDER, "bystander on %c: ERROR event %s (%u)", by->dev->name,
                    media_errno_name(by->s.error), by->s.error);
        case MEDIA_TIMEOUT:
            fw_fail(EXIT_BYSTANDER, "bystander on %c: no frame within %u ms after %u frames (lost or stalled)",
                    by->dev->name, P->timeout_ms, by->frames);
        }
    }
}

/* Prints the session's record; closes it when its device still knows it. */
static void bystander_end(struct bystander *by, bool device_alive)
{
    fw_printf("BYSTANDER dev=%c session=%u frames=%u seq_first=%u seq_last=%u combined=%08x\n", by->dev->name,
              by->s.session_id, by->frames, by->first_seq, by->last_seq, by->combined);
    by->active = false;
    if (!device_alive)
        return;
    media_stream(&by->s, false);
    media_request_buffers(&by->s, 0);
    media_unmap_buffers(&by->s);
    media_close(&by->s);
}

static void collect(void)
{
    if (by_a.active)
        bystander_wait(&by_a, P->bystander_frames);
    if (by_b.active)
        bystander_wait(&by_b, P->bystander_frames);
}

/* Waits until `n` of the session's zeroed buffers hold a frame (their first bytes are no longer zero): the device
 * produced them, whether or not it could send their DQBUF events. */
static void wait_filled(const struct media *s, uint32_t n)
{
    uint64_t end = deadline_after_ms(P->timeout_ms * 4);
    for (;;) {
        uint32_t filled = 0;
        for (uint32_t i = 0; i < s->nbufs; i++) {
            const volatile uint8_t *p = s->bufs[i].data;
            for (int k = 0; k < 64; k++)
                if (p[k] != 0) {
                    filled++;
                    break;
                }
        }
        if (filled >= n)
            return;
        if (deadline_passed(end))
            FAIL("device %c: only %u of %u buffers were filled within %u ms", dev_a.name, filled, n,
                 P->timeout_ms * 4);
        service();
        cpu_relax();
    }
}

/* A reset, a fresh initialisation and a new bystander session on A: the recovery the next collect() proves. */
static void recover_a(void)
{
    dev_reset(&dev_a);
    dev_init(&dev_a, false);
    bystander_start(&by_a, &dev_a, false);
}

/* ---------- ring attacks (device A's command queue unless said otherwise) ---------- */

static void wait_needs_reset(struct adev *d, const struct virtq *q, uint16_t used_before, const char *what)
{
    uint64_t end = deadline();
    for (;;) {
        uint8_t status = dev_status(d);
        if (status & VIRTIO_STATUS_NEEDS_RESET) {
            needs_resets++;
            return;
        }
        if (virtq_used_idx(q) != used_before)
            FAIL("%s: the device returned the chain (used idx %u -> %u) instead of DEVICE_NEEDS_RESET", what,
                 used_before, virtq_used_idx(q));
        if (deadline_passed(end))
            FAIL("%s: no DEVICE_NEEDS_RESET within %u ms (status 0x%x)", what, P->timeout_ms, status);
        service();
        cpu_relax();
    }
}

/* Publishes a raw chain on A's command queue and expects DEVICE_NEEDS_RESET with no used entry, then recovers. */
static void ring_expect_reset(const struct virtq_desc *d, unsigned n, const char *what)
{
    struct virtq *q = &dev_a.md.cmdq;
    uint16_t used = virtq_used_idx(q);
    virtq_add_raw(q, d, n, 0);
    virtq_kick_always(q);
    wait_needs_reset(&dev_a, q, used, what);
    recover_a();
}

static void open_request(void)
{
    memset(raw_cmd, 0, 64);
    put_le32(raw_cmd, MEDIA_CMD_OPEN);
}

static void attack_desc_loop(void)
{
    open_request();
    struct virtq_desc d[2] = {
        desc_at(addr_of(raw_cmd), 4, VIRTQ_DESC_F_NEXT, 1),
        desc_at(addr_of(raw_cmd + 4), 4, VIRTQ_DESC_F_NEXT, 0),
    };
    ring_expect_reset(d, 2, "descriptor loop");
    fw_snprintf(answer, sizeof(answer), "an OPEN chain whose second descriptor links back to the first: "
                "DEVICE_NEEDS_RESET, no used entry; A reset and re-initialised");
}

static void attack_desc_next(void)
{
    open_request();
    struct virtq_desc d = desc_at(addr_of(raw_cmd), 8, VIRTQ_DESC_F_NEXT, 0x4000);
    ring_expect_reset(&d, 1, "next out of range");
    fw_snprintf(answer, sizeof(answer), "a descriptor whose next is 0x4000 (queue size %u): DEVICE_NEEDS_RESET, "
                "no used entry; A reset and re-initialised", dev_a.md.cmdq.size);
}

static void attack_indirect(void)
{
    open_request();
    /* The table: two readable descriptors that link to each other (indices inside the table). */
    struct virtq_desc *table = (struct virtq_desc *)raw_extra;
    table[0] = desc_at(addr_of(raw_cmd), 4, VIRTQ_DESC_F_NEXT, 1);
    table[1] = desc_at(addr_of(raw_cmd + 4), 4, VIRTQ_DESC_F_NEXT, 0);
    struct virtq_desc d = desc_at(addr_of(table), 2 * sizeof(struct virtq_desc), VIRTQ_DESC_F_INDIRECT, 0);
    bool offered = (dev_a.vp.device_features >> VIRTIO_F_INDIRECT_DESC) & 1;
    if (offered) {
        dev_reset(&dev_a);
        virtio_pci_negotiate_features(&dev_a.vp, P->timeout_ms, 1ull << VIRTIO_F_INDIRECT_DESC);
        media_dev_start(&dev_a.md, &dev_a.vp, dev_a.slot, (uint16_t)P->queue_size, P->timeout_ms, false);
    }
    ring_expect_reset(&d, 1, offered ? "looping indirect table" : "indirect descriptor not negotiated");
    fw_snprintf(answer, sizeof(answer), "%s: DEVICE_NEEDS_RESET, no used entry; A reset and re-initialised",
                offered ? "INDIRECT_DESC negotiated, an indirect table whose two entries link to each other"
                        : "INDIRECT_DESC not offered, an indirect descriptor (to a looping table) anyway");
}

static void attack_buf_range(void)
{
    open_request();
    struct virtq_desc d[2] = {
        desc_at(addr_of(raw_cmd), 8, VIRTQ_DESC_F_NEXT, 1),
        desc_at(NOWHERE, 16, VIRTQ_DESC_F_WRITE, 0),
    };
    ring_expect_reset(d, 2, "buffer outside RAM");
    fw_snprintf(answer, sizeof(answer), "an OPEN response buffer at 0x%lx, outside guest RAM: DEVICE_NEEDS_RESET, "
                "no used entry; A reset and re-initialised", (uint64_t)NOWHERE);
}

static void attack_buf_mmio(void)
{
    open_request();
    struct virtq_desc d[2] = {
        desc_at(addr_of(raw_cmd), 8, VIRTQ_DESC_F_NEXT, 1),
        desc_at(dev_a.vp.common, 64, VIRTQ_DESC_F_WRITE, 0),
    };
    ring_expect_reset(d, 2, "buffer over the device's registers");
    fw_snprintf(answer, sizeof(answer), "an OPEN response buffer over A's own common configuration (BAR0 0x%lx): "
                "DEVICE_NEEDS_RESET, no used entry; A reset and re-initialised", (uint64_t)dev_a.vp.common);
}

static void attack_huge_len(void)
{
    struct virtq *q = &dev_a.md.cmdq;
    if (q->size < 64)
        fw_fail(EXIT_BAD_CMDLINE, "huge_len needs queue_size >= 64 (it chains 64 descriptors)");
    /* 1 MiB of request (more than max-command): refused unread. */
    uint8_t *big = (uint8_t *)(uintptr_t)SCRATCH_ADDR;
    memset(big, 0, 64);
    put_le32(big, MEDIA_CMD_OPEN);
    memset(raw_resp, 0, 64);
    struct virtq_desc d[2] = {
        desc_at(SCRATCH_ADDR, 1u << 20, VIRTQ_DESC_F_NEXT, 1),
        desc_at(addr_of(raw_resp), 16, VIRTQ_DESC_F_WRITE, 0),
    };
    virtq_add_raw(q, d, 2, 0);
    virtq_kick_always(q);
    uint32_t cookie, used;
    virtq_wait(q, &cookie, &used, P->timeout_ms, "1 MiB OPEN");
    if (used != 8)
        FAIL("1 MiB OPEN: used length %u, expected the 8-byte header", used);
    expect_errno("1 MiB OPEN", get_le32(raw_resp), E2BIG);
    /* 64 readable descriptors of 64 MiB each: 2^32 bytes, one more than a chain may carry. */
    struct virtq_desc chain[64];
    for (unsigned i = 0; i < 64; i++)
        chain[i] = desc_at(0, 64u << 20, i + 1 < 64 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    ring_expect_reset(chain, 64, "chain of 4 GiB");
    fw_snprintf(answer, sizeof(answer), "a 1 MiB OPEN request: E2BIG, unread; 64 descriptors of 64 MiB (4 GiB in "
                "all): DEVICE_NEEDS_RESET, no used entry; A reset and re-initialised");
}

static void attack_buf_overlap(void)
{
    struct media x;
    media_open(&x, &dev_a.md);
    uint8_t *f = raw_cmd + 16;
    memset(raw_cmd, 0, 16 + V4L2_FORMAT_SIZE);
    put_le32(raw_cmd, MEDIA_CMD_IOCTL);
    put_le32(raw_cmd + 8, x.session_id);
    put_le32(raw_cmd + 12, MEDIA_IOC_S_FMT);
    put_le32(f + 0, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(f + 8, P->width);
    put_le32(f + 12, P->height);
    put_le32(f + 16, P->fourcc);
    put_le32(f + 20, V4L2_FIELD_NONE);
    /* Two readable descriptors and a writable one over both: the answer overwrites its own request. */
    struct virtq_desc d[3] = {
        desc_at(addr_of(raw_cmd), 16, VIRTQ_DESC_F_NEXT, 1),
        desc_at(addr_of(raw_cmd + 16), V4L2_FORMAT_SIZE, VIRTQ_DESC_F_NEXT, 2),
        desc_at(addr_of(raw_cmd), 8 + V4L2_FORMAT_SIZE, VIRTQ_DESC_F_WRITE, 0),
    };
    struct virtq *q = &dev_a.md.cmdq;
    virtq_add_raw(q, d, 3, 0);
    virtq_kick_always(q);
    uint32_t cookie, used;
    virtq_wait(q, &cookie, &used, P->timeout_ms, "overlapping S_FMT");
    const uint8_t *r = raw_cmd + 8;
    if (used != 8 + V4L2_FORMAT_SIZE || get_le32(raw_cmd) != 0 || get_le32(r) != V4L2_BUF_TYPE_VIDEO_CAPTURE
        || get_le32(r + 8) != P->width || get_le32(r + 12) != P->height || get_le32(r + 16) != P->fourcc)
        FAIL("overlapping S_FMT: used %u status %u type %u %ux%u", used, get_le32(raw_cmd), get_le32(r),
             get_le32(r + 8), get_le32(r + 12));
    media_close(&x);
    if (dev_status(&dev_a) & VIRTIO_STATUS_NEEDS_RESET)
        FAIL("overlapping S_FMT: DEVICE_NEEDS_RESET");
    recover_a();
    fw_snprintf(answer, sizeof(answer), "an S_FMT whose response buffer overlaps both request buffers: answered "
                "normally (%u bytes, %ux%u), no DEVICE_NEEDS_RESET; A reset and re-initialised", used, P->width,
                P->height);
}

static void attack_readonly_resp(void)
{
    struct virtq *q = &dev_a.md.cmdq;
    struct media x;
    media_open(&x, &dev_a.md);
    uint32_t first = x.session_id;
    media_close(&x);
    /* OPEN whose response area is device-readable: the device must write nothing and open nothing. */
    open_request();
    memset(raw_resp, 0xA5, 64);
    struct virtq_desc d[2] = {
        desc_at(addr_of(raw_cmd), 8, VIRTQ_DESC_F_NEXT, 1),
        desc_at(addr_of(raw_resp), 16, 0, 0),
    };
    virtq_add_raw(q, d, 2, 0);
    virtq_kick_always(q);
    uint32_t cookie, used;
    virtq_wait(q, &cookie, &used, P->timeout_ms, "read-only OPEN");
    if (used != 0)
        FAIL("OPEN with a device-readable response: used length %u", used);
    for (int i = 0; i < 64; i++)
        if (raw_resp[i] != 0xA5)
            FAIL("OPEN with a device-readable response: byte %d of it changed to 0x%x", i, raw_resp[i]);
    /* OPEN with an 8-byte response: too short for its answer. */
    memset(raw_resp, 0, 64);
    struct virtq_desc e[2] = {
        desc_at(addr_of(raw_cmd), 8, VIRTQ_DESC_F_NEXT, 1),
        desc_at(addr_of(raw_resp), 8, VIRTQ_DESC_F_WRITE, 0),
    };
    virtq_add_raw(q, e, 2, 0);
    virtq_kick_always(q);
    virtq_wait(q, &cookie, &used, P->timeout_ms, "short OPEN");
    if (used != 8)
        FAIL("OPEN with an 8-byte response: used length %u", used);
    expect_errno("OPEN with an 8-byte response", get_le32(raw_resp), EINVAL);
    media_open(&x, &dev_a.md);
    if (x.session_id != first + 1)
        FAIL("after the refused OPENs the next session is %u, expected %u (a session was opened)", x.session_id,
             first + 1);
    media_close(&x);
    if (dev_status(&dev_a) & VIRTIO_STATUS_NEEDS_RESET)
        FAIL("read-only response: DEVICE_NEEDS_RESET");
    recover_a();
    fw_snprintf(answer, sizeof(answer), "an OPEN whose response buffer is device-readable: used length 0, nothing "
                "written, no session opened; an 8-byte response buffer: EINVAL; A reset and re-initialised");
}

static void attack_readable_after_writable(void)
{
    open_request();
    struct virtq_desc d[2] = {
        desc_at(addr_of(raw_resp), 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1),
        desc_at(addr_of(raw_cmd), 8, 0, 0),
    };
    ring_expect_reset(d, 2, "readable after writable");
    fw_snprintf(answer, sizeof(answer), "a device-writable descriptor followed by a device-readable one: "
                "DEVICE_NEEDS_RESET, no used entry; A reset and re-initialised");
}

static void attack_avail_jump(void)
{
    struct virtq *q = &dev_a.md.cmdq;
    uint16_t used = virtq_used_idx(q);
    uint16_t idx = (uint16_t)(q->avail_idx + 1000);
    virtq_set_avail_idx(q, idx);
    virtq_kick_always(q);
    wait_needs_reset(&dev_a, q, used, "avail index jump");
    recover_a();
    fw_snprintf(answer, sizeof(answer), "avail.idx moved 1000 entries ahead (queue size %u): DEVICE_NEEDS_RESET, "
                "no used entry; A reset and re-initialised", q->size);
}

static void attack_head_range(void)
{
    struct virtq *q = &dev_a.md.cmdq;
    uint16_t used = virtq_used_idx(q);
    virtq_publish_head(q, 0x7FFF);
    virtq_kick_always(q);
    wait_needs_reset(&dev_a, q, used, "head out of range");
    recover_a();
    fw_snprintf(answer, sizeof(answer), "an avail entry naming descriptor 0x7fff: DEVICE_NEEDS_RESET, no used "
                "entry; A reset and re-initialised");
}

/* Waits for `n` used eventq chains that the attack posted itself (cookies >= MEDIA_EVENT_BUFFERS). */
static void wait_foreign(struct media_dev *md, unsigned n, const char *what)
{
    uint64_t end = deadline();
    while (md->foreign_count < n) {
        media_poll_events(md);
        if (deadline_passed(end))
            FAIL("%s: %u of %u event buffers came back within %u ms", what, md->foreign_count, n, P->timeout_ms);
        service();
        cpu_relax();
    }
}

static void attack_event_small(void)
{
    dev_reset(&dev_a);
    dev_init(&dev_a, true);
    bystander_start(&by_a, &dev_a, true);
    wait_filled(&by_a.s, BYSTANDER_BUFFERS);
    /* The device holds 4 DQBUF events; it gets an 8-byte buffer and a device-readable 608-byte one first. */
    struct virtq *q = &dev_a.md.eventq;
    struct virtq_desc small = desc_at(addr_of(raw_resp), 8, VIRTQ_DESC_F_WRITE, 0);
    struct virtq_desc readonly = desc_at(addr_of(raw_extra), MEDIA_EVENT_SIZE, 0, 0);
    memset(raw_resp, 0xA5, 64);
    memset(raw_extra, 0xA5, MEDIA_EVENT_SIZE);
    virtq_add_raw(q, &small, 1, MEDIA_EVENT_BUFFERS + 0);
    virtq_add_raw(q, &readonly, 1, MEDIA_EVENT_BUFFERS + 1);
    virtq_kick_always(q);
    wait_foreign(&dev_a.md, 2, "small event buffers");
    for (unsigned i = 0; i < 2; i++)
        if (dev_a.md.foreign_len[i] != 0)
            FAIL("%s event buffer came back with used length %u",
                 dev_a.md.foreign_cookie[i] == MEDIA_EVENT_BUFFERS ? "an 8-byte" : "a device-readable",
                 dev_a.md.foreign_len[i]);
    if (raw_resp[0] != 0xA5 || raw_extra[0] != 0xA5)
        FAIL("the device wrote into an event buffer too small for its event, or device-readable");
    media_post_events(&dev_a.md);
    fw_snprintf(answer, sizeof(answer), "with 4 DQBUF events held, an 8-byte and a device-readable event buffer: "
                "both returned with used length 0, nothing written; the held events then arrived in order");
}

static void attack_event_ring(void)
{
    dev_reset(&dev_a);
    dev_init(&dev_a, true);
    bystander_start(&by_a, &dev_a, false);
    struct virtq *q = &dev_a.md.eventq;
    struct virtq_desc d = desc_at(NOWHERE, MEDIA_EVENT_SIZE, VIRTQ_DESC_F_WRITE, 0);
    uint16_t used = virtq_used_idx(q);
    virtq_add_raw(q, &d, 1, MEDIA_EVENT_BUFFERS + 2);
    virtq_kick_always(q);
    wait_needs_reset(&dev_a, q, used, "event buffer outside RAM");
    recover_a();
    fw_snprintf(answer, sizeof(answer), "the only event buffer outside guest RAM while frames stream: "
                "DEVICE_NEEDS_RESET at the first event, no used entry; A reset and re-initialised");
}

/* ---------- transport ---------- */

struct qcfg {
    uint16_t size, msix, enable, notify_off;
    uint32_t addr[6];
};

static void read_qcfg(uint16_t index, struct qcfg *c)
{
    uintptr_t b = dev_a.vp.common;
    mmio_write16(b + COMMON_Q_SELECT, index);
    c->size = mmio_read16(b + COMMON_Q_SIZE);
    c->msix = mmio_read16(b + COMMON_Q_MSIX);
    c->enable = mmio_read16(b + COMMON_Q_ENABLE);
    c->notify_off = mmio_read16(b + COMMON_Q_NOFF);
    for (int i = 0; i < 6; i++)
        c->addr[i] = mmio_read32(b + COMMON_Q_DESCLO + 4 * (uintptr_t)i);
}

static void scribble_qcfg(uint16_t index)
{
    uintptr_t b = dev_a.vp.common;
    mmio_write16(b + COMMON_Q_SELECT, index);
    mmio_write16(b + COMMON_Q_SIZE, 7);
    mmio_write16(b + COMMON_Q_ENABLE, 0);
    mmio_write16(b + COMMON_Q_MSIX, 0x1234);
    for (int i = 0; i < 6; i++)
        mmio_write32(b + COMMON_Q_DESCLO + 4 * (uintptr_t)i, 0xDEAD0000u + (uint32_t)i);
}

static void attack_queue_reconfig(void)
{
    struct qcfg before[2], after[2];
    for (uint16_t i = 0; i < 2; i++)
        read_qcfg(i, &before[i]);
    for (uint16_t i = 0; i < 2; i++)
        scribble_qcfg(i);
    scribble_qcfg(9);
    struct qcfg none;
    read_qcfg(9, &none);
    for (uint16_t i = 0; i < 2; i++) {
        read_qcfg(i, &after[i]);
        if (memcmp(&before[i], &after[i], sizeof(before[i])) != 0)
            FAIL("queue %u: after rewriting its configuration while live, size %u->%u enable %u->%u desc 0x%x->0x%x",
                 i, before[i].size, after[i].size, before[i].enable, after[i].enable, before[i].addr[0],
                 after[i].addr[0]);
    }
    if (none.size != 0 || none.enable != 0 || none.addr[0] != 0)
        FAIL("queue_select 9 reads size %u enable %u desc 0x%x", none.size, none.enable, none.addr[0]);
    mmio_write16(dev_a.vp.common + COMMON_Q_SELECT, 0);
    if (dev_status(&dev_a) & VIRTIO_STATUS_NEEDS_RESET)
        FAIL("queue reconfiguration: DEVICE_NEEDS_RESET");
    fw_snprintf(answer, sizeof(answer), "queue_size 7, queue_enable 0, garbage ring addresses and queue_msix_vector "
                "0x1234 written to both live queues: ignored (every field read back unchanged); queue_select 9 "
                "reads as absent; no DEVICE_NEEDS_RESET");
}

/* Sets both queues up, then changes one thing before DRIVER_OK; the device must refuse to start. */
static void bad_config(int what)
{
    dev_reset(&dev_a);
    virtio_pci_negotiate(&dev_a.vp, P->timeout_ms);
    virtio_pci_setup_queue(&dev_a.vp, &dev_a.md.cmdq, dev_a.slot, 0, (uint16_t)P->queue_size);
    virtio_pci_setup_queue(&dev_a.vp, &dev_a.md.eventq, dev_a.slot + 1, 1, (uint16_t)P->queue_size);
    uintptr_t b = dev_a.vp.common;
    mmio_write16(b + COMMON_Q_SELECT, 0);
    switch (what) {
    case 0: /* descriptor table outside RAM */
        mmio_write32(b + COMMON_Q_DESCLO, (uint32_t)NOWHERE);
        mmio_write32(b + COMMON_Q_DESCHI, (uint32_t)(NOWHERE >> 32));
        break;
    case 1: /* descriptor table misaligned */
        mmio_write32(b + COMMON_Q_DESCLO, (uint32_t)virtq_desc_paddr(&dev_a.md.cmdq) + 8);
        break;
    case 2: /* not a power of two */
        mmio_write16(b + COMMON_Q_SIZE, 3);
        break;
    default: /* used ring over the device's own registers */
        mmio_write32(b + COMMON_Q_USEDLO, (uint32_t)dev_a.vp.common);
        mmio_write32(b + COMMON_Q_USEDHI, (uint32_t)((uint64_t)dev_a.vp.common >> 32));
        break;
    }
    uint8_t status = dev_status(&dev_a);
    mmio_write8(b + COMMON_STATUS, (uint8_t)(status | VIRTIO_STATUS_DRIVER_OK));
    status = dev_status(&dev_a);
    if (!(status & VIRTIO_STATUS_NEEDS_RESET))
        FAIL("bad queue configuration %d: DRIVER_OK answered status 0x%x without DEVICE_NEEDS_RESET", what, status);
    needs_resets++;
}

static void attack_queue_config_bad(void)
{
    for (int i = 0; i < 4; i++)
        bad_config(i);
    recover_a();
    fw_snprintf(answer, sizeof(answer), "DRIVER_OK with a descriptor table outside RAM, a misaligned one, queue "
                "size 3, a used ring over the device's registers: DEVICE_NEEDS_RESET at DRIVER_OK each time; "
                "A reset and re-initialised");
}

static void attack_reset_streaming(void)
{
    uint32_t old = by_a.s.session_id;
    mmio_write8(dev_a.vp.common + COMMON_STATUS, 0);
    uint8_t status = dev_status(&dev_a);
    if (status != 0)
        FAIL("status 0 written while streaming: status reads 0x%x", status);
    resets++;
    bystander_end(&by_a, false);
    dev_init(&dev_a, false);
    uint8_t *p = media_ioctl_header(old, MEDIA_IOC_STREAMOFF);
    put_le32(p, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    expect_errno("STREAMOFF on the session from before the reset",
                 media_command_status(&dev_a.md, 20, 8, "STREAMOFF (old session)"), EINVAL);
    bystander_start(&by_a, &dev_a, false);
    fw_snprintf(answer, sizeof(answer), "status 0 written with %u buffers queued and frames due: status read 0 at "
                "once; re-initialised, the old session answered EINVAL and a new one streamed", BYSTANDER_BUFFERS);
}

static void attack_notify_storm(void)
{
    uintptr_t n0 = dev_a.md.cmdq.notify_addr, n1 = dev_a.md.eventq.notify_addr;
    uintptr_t slot5 = dev_a.vp.notify_base + 5 * (uintptr_t)dev_a.vp.notify_off_multiplier;
    uintptr_t last = dev_a.vp.notify_base + (uintptr_t)dev_a.vp.notify_base_len - 2;
    uint64_t t0 = rdtsc();
    for (uint32_t i = 0; i < P->storm; i++) {
        mmio_write16(i & 1 ? n1 : n0, (uint16_t)(i & 1));
        if ((i & 4095) == 4095)
            service();
    }
    /* Widths and places no ioeventfd matches (each one reaches the VMM's notify handler): 1% of the storm each. */
    uint32_t odd = P->storm / 100;
    for (uint32_t i = 0; i < odd; i++) {
        mmio_write8(n0, 0);
        mmio_write32(n1, 1);
        mmio_write16(slot5, 5);
        mmio_write16(last, 0xFFFF);
        if ((i & 255) == 255)
            service();
    }
    uint64_t storm_ticks = rdtsc() - t0;
    uint64_t t1 = rdtsc();
    media_ioctl_header(by_a.s.session_id, 255);
    expect_errno("unknown ioctl after the storm", media_command_status(&dev_a.md, 16, 8, "ioctl 255"), ENOTTY);
    uint64_t answer_ticks = rdtsc() - t1;
    if (dev_status(&dev_a) & VIRTIO_STATUS_NEEDS_RESET)
        FAIL("notify storm: DEVICE_NEEDS_RESET");
    uint64_t hz = timer_tsc_hz() ? timer_tsc_hz() : 1;
    fw_snprintf(answer, sizeof(answer), "%u 16-bit notifies on both queues, then %u each of 8- and 32-bit ones and "
                "of 16-bit ones on queue slots 5 and 1023: absorbed in %lu ms; the next command was answered in "
                "%lu us; no DEVICE_NEEDS_RESET", P->storm, odd, storm_ticks * 1000 / hz, answer_ticks * 1000000 / hz);
}

static void attack_msix(void)
{
    const struct pci_dev *pd = &dev_a.pci;
    uint8_t cap = pci_find_capability(pd, PCI_CAP_ID_MSIX, 0);
    if (cap == 0)
        FAIL("device A has no MSI-X capability");
    uint16_t control = pci_read16(pd, (uint8_t)(cap + 2));
    unsigned n = (control & 0x7FFu) + 1;
    uint32_t t = pci_read32(pd, (uint8_t)(cap + 4)), pb = pci_read32(pd, (uint8_t)(cap + 8));
    if ((t & 7) != 0 || (pb & 7) != 0)
        FAIL("MSI-X table or PBA outside BAR0 (table 0x%x, PBA 0x%x)", t, pb);
    uintptr_t table = (uintptr_t)pd->bars[0].base + (t & ~7u), pba = (uintptr_t)pd->bars[0].base + (pb & ~7u);
    /* 1. Hostile values (NMI delivery included) while every entry is masked: stored, never routed or fired. */
    for (unsigned e = 0; e < n; e++) {
        uintptr_t en = table + 16 * e;
        if ((mmio_read32(en + 12) & 1) == 0)
            FAIL("MSI-X entry %u is not masked at start", e);
        mmio_write32(en, 0xDEADBEE0u ^ (e * 0x111u));
        mmio_write32(en + 4, 0xFEEDF00Du);
        mmio_write32(en + 8, 0x4400u | e);
        mmio_write32(en + 12, 0xFFFFFFFFu);
        if (mmio_read32(en) != (0xDEADBEE0u ^ (e * 0x111u)) || mmio_read32(en + 4) != 0xFEEDF00Du
            || mmio_read32(en + 8) != (0x4400u | e) || mmio_read32(en + 12) != 1)
            FAIL("MSI-X entry %u reads 0x%x 0x%x 0x%x 0x%x after writing garbage", e, mmio_read32(en),
                 mmio_read32(en + 4), mmio_read32(en + 8), mmio_read32(en + 12));
    }
    /* 2. Odd widths inside an entry: bytes, and one 64-bit access. */
    for (unsigned i = 0; i < 4; i++)
        mmio_write8(table + i, (uint8_t)(0x10 + i));
    if (mmio_read32(table) != 0x13121110u)
        FAIL("MSI-X entry 0 after byte writes reads 0x%x", mmio_read32(table));
    *(volatile uint64_t *)table = 0x0123456789ABCDE0ull;
    if (mmio_read32(table) != 0x89ABCDE0u || mmio_read32(table + 4) != 0x01234567u)
        FAIL("MSI-X entry 0 after a 64-bit write reads 0x%x 0x%x", mmio_read32(table), mmio_read32(table + 4));
    /* 3. Past the table end and into the PBA (read-only): ignored. */
    uint32_t pba_before = mmio_read32(pba);
    for (uintptr_t off = 16 * n; off < (uintptr_t)(pba - table) && off < 16 * n + 256; off += 4)
        mmio_write32(table + off, 0xFFFFFFFFu);
    mmio_write32(pba - 4, 0xFFFFFFFFu);
    mmio_write32(pba, 0xFFFFFFFFu);
    mmio_write32(pba + 4, 0xFFFFFFFFu);
    if (mmio_read32(table + 16 * n) != 0 || mmio_read32(pba - 4) != 0 || mmio_read32(pba) != pba_before
        || mmio_read32(pba + 4) != 0)
        FAIL("MSI-X: past the table reads 0x%x, PBA reads 0x%x (was 0x%x)", mmio_read32(table + 16 * n),
             mmio_read32(pba), pba_before);
    /* 4. Enabled with the function masked, vectors assigned, entries unmasked with a garbage address but a fixed
     * delivery mode (vector 0xEE): interrupts this ring-3 program never takes (IF = 0). */
    for (unsigned e = 0; e < n; e++) {
        uintptr_t en = table + 16 * e;
        mmio_write32(en, 0xBADC0DE0u);
        mmio_write32(en + 4, 0x0000BAD0u);
        mmio_write32(en + 8, 0xEEu);
    }
    pci_write16(pd, (uint8_t)(cap + 2), 0xC000);
    uint16_t ctl = pci_read16(pd, (uint8_t)(cap + 2));
    if (ctl != (uint16_t)(0xC000 | (n - 1)))
        FAIL("MSI-X message control reads 0x%x after writing 0xC000 (table size %u)", ctl, n);
    uintptr_t c = dev_a.vp.common;
    mmio_write16(c + COMMON_MSIX, 0x7FFF);
    if (mmio_read16(c + COMMON_MSIX) != VIRTIO_MSI_NO_VECTOR)
        FAIL("config_msix_vector 0x7fff reads 0x%x", mmio_read16(c + COMMON_MSIX));
    for (uint16_t q = 0; q < 2; q++) {
        mmio_write16(c + COMMON_Q_SELECT, q);
        mmio_write16(c + COMMON_Q_MSIX, q);
    }
    mmio_write16(c + COMMON_Q_SELECT, 0);
    for (unsigned e = 0; e < n; e++)
        mmio_write32(table + 16 * e + 12, 0);
    /* A command completes while the function is masked: its vector goes pending. */
    media_ioctl_header(by_a.s.session_id, 255);
    expect_errno("unknown ioctl with MSI-X masked", media_command_status(&dev_a.md, 16, 8, "ioctl 255"), ENOTTY);
    /* The used entry is published before the device signals the queue: wait for the bit. */
    uint64_t end = deadline();
    while ((mmio_read32(pba) & 1) == 0)
        if (deadline_passed(end))
            FAIL("MSI-X: no pending bit for the command queue's vector while the function is masked (PBA 0x%x)",
                 mmio_read32(pba));
    pci_write16(pd, (uint8_t)(cap + 2), 0x8000);
    if ((mmio_read32(pba) & 1) != 0)
        FAIL("MSI-X: the pending bit stayed set after the function was unmasked (PBA 0x%x)", mmio_read32(pba));
    /* 5. Mask flips while the stream runs. */
    for (unsigned i = 0; i < 1000; i++) {
        mmio_write32(table + 12, 1);
        mmio_write32(table + 16 + 12, i & 1);
        mmio_write32(table + 12, 0);
        if ((i & 7) == 7)
            pci_write16(pd, (uint8_t)(cap + 2), (i & 8) ? 0xC000 : 0x8000);
        if ((i & 63) == 63)
            service();
    }
    /* 6. Back to polled operation. */
    for (uint16_t q = 0; q < 2; q++) {
        mmio_write16(c + COMMON_Q_SELECT, q);
        mmio_write16(c + COMMON_Q_MSIX, VIRTIO_MSI_NO_VECTOR);
    }
    mmio_write16(c + COMMON_Q_SELECT, 0);
    for (unsigned e = 0; e < n; e++)
        mmio_write32(table + 16 * e + 12, 1);
    pci_write16(pd, (uint8_t)(cap + 2), 0);
    if (dev_status(&dev_a) & VIRTIO_STATUS_NEEDS_RESET)
        FAIL("MSI-X abuse: DEVICE_NEEDS_RESET");
    fw_snprintf(answer, sizeof(answer), "%u entries: garbage (NMI data included) stored while masked, vector "
                "control keeps the mask bit only, byte and 64-bit writes honoured; writes past the table and to the "
                "PBA ignored; enabled: the queue vector went pending while the function was masked and was "
                "delivered on unmask; 1000 mask flips; no DEVICE_NEEDS_RESET", n);
}

/* Configuration accesses of any width at any offset, through 0xCF8/0xCFC. */
static void cfg_address(const struct pci_dev *d, uint8_t off)
{
    outl(CONFIG_ADDRESS, 0x80000000u | (uint32_t)d->bus << 16 | (uint32_t)d->dev << 11 | (uint32_t)d->fn << 8
                             | (off & 0xFCu));
}

static void cfg_write16_odd(const struct pci_dev *d, uint8_t off, uint16_t v)
{
    cfg_address(d, off);
    outw((uint16_t)(CONFIG_DATA + (off & 3)), v);
}

static void cfg_read_all(const struct pci_dev *d, uint8_t out[256])
{
    for (unsigned i = 0; i < 256; i += 4)
        put_le32(out + i, pci_read32(d, (uint8_t)i));
}

static uint8_t cfg_before[256], cfg_after[256], cfg_writable[256];

static void attack_pci_config(void)
{
    const struct pci_dev *pd = &dev_a.pci;
    cfg_read_all(pd, cfg_before);
    /* What the VMM lets a guest change: command, cache line and latency, BARs, interrupt line, MSI-X message
     * control, and the PCI_CFG window's bar/offset/length/data. */
    memset(cfg_writable, 0, sizeof(cfg_writable));
    cfg_writable[0x04] = cfg_writable[0x05] = cfg_writable[0x0C] = cfg_writable[PCI_LATENCY_TIMER] = 1;
    memset(cfg_writable + PCI_BAR0, 1, 24);
    cfg_writable[PCI_INTERRUPT_LINE] = 1;
    uint8_t msix = pci_find_capability(pd, PCI_CAP_ID_MSIX, 0);
    if (msix)
        cfg_writable[msix + 2] = cfg_writable[msix + 3] = 1;
    uint8_t window = 0;
    for (uint8_t cap = pci_find_capability(pd, PCI_CAP_ID_VENDOR, 0); cap != 0;
         cap = pci_find_capability(pd, PCI_CAP_ID_VENDOR, cap))
        if (cfg_before[cap + 3] == VIRTIO_PCI_CAP_PCI_CFG)
            window = cap;
    if (window == 0)
        FAIL("device A has no VIRTIO_PCI_CAP_PCI_CFG capability");
    cfg_writable[window + 4] = 1;
    memset(cfg_writable + window + 8, 1, 12);

    /* 1. Every read-only byte: a byte write of its complement, then 16-bit writes at odd offsets, then (through
     * ECAM) unaligned 32-bit and aligned 64-bit writes, each only over read-only bytes. */
    unsigned ro = 0;
    for (unsigned off = 0; off < 256; off++)
        if (!cfg_writable[off]) {
            pci_write8(pd, (uint8_t)off, (uint8_t)~cfg_before[off]);
            ro++;
        }
    for (unsigned off = 1; off < 255; off += 2)
        if (!cfg_writable[off] && !cfg_writable[off + 1])
            cfg_write16_odd(pd, (uint8_t)off, 0x5AA5);
    uintptr_t ecam = 0;
    if (P->ecam) {
        ecam = (uintptr_t)P->ecam + ((uintptr_t)pd->bus << 20 | (uintptr_t)pd->dev << 15 | (uintptr_t)pd->fn << 12);
        for (unsigned off = 1; off + 4 <= 256; off += 3) {
            bool ok = true;
            for (unsigned k = 0; k < 4; k++)
                ok &= !cfg_writable[off + k];
            if (ok && off % 4 != 0)
                mmio_write32(ecam + off, 0xA5A5A5A5u);
        }
        for (unsigned off = 0; off + 8 <= 256; off += 8) {
            bool ok = true;
            for (unsigned k = 0; k < 8; k++)
                ok &= !cfg_writable[off + k];
            if (ok)
                *(volatile uint64_t *)(ecam + off) = 0xA5A5A5A5A5A5A5A5ull;
        }
        /* Beyond the 256 bytes of the function (its extended space): nothing there, nothing kept. */
        mmio_write32(ecam + 0x101, 0xFFFFFFFFu);
        *(volatile uint64_t *)(ecam + 0xFF8) = ~0ull;
        if (mmio_read32(ecam + 0x100) != 0 || *(volatile uint64_t *)(ecam + 0xFF8) != 0)
            FAIL("ECAM: extended config space reads 0x%x at 0x100, 0x%lx at 0xff8", mmio_read32(ecam + 0x100),
                 *(volatile uint64_t *)(ecam + 0xFF8));
    }
    cfg_read_all(pd, cfg_after);
    for (unsigned off = 0; off < 256; off++)
        if (!cfg_writable[off] && cfg_after[off] != cfg_before[off])
            FAIL("config byte 0x%x is read-only but changed from 0x%x to 0x%x", off, cfg_before[off], cfg_after[off]);

    /* 2. Writable registers keep to their writable bits: the command register's high byte (SERR#, INTx
     * disable), the latency timer. */
    pci_write8(pd, 0x05, 0xFF);
    if (pci_read8(pd, 0x05) != 0x05)
        FAIL("command high byte reads 0x%x after writing 0xff (writable: 0x05)", pci_read8(pd, 0x05));
    pci_write8(pd, 0x05, cfg_before[0x05]);
    pci_write8(pd, PCI_LATENCY_TIMER, 0x5A);
    if (pci_read8(pd, PCI_LATENCY_TIMER) != 0x5A)
        FAIL("latency timer reads 0x%x after writing 0x5a", pci_read8(pd, PCI_LATENCY_TIMER));
    pci_write8(pd, PCI_LATENCY_TIMER, cfg_before[PCI_LATENCY_TIMER]);

    /* 3. BAR sizing with decoding off (the device keeps streaming meanwhile), then restored. */
    uint16_t command = get_le16(cfg_before + PCI_COMMAND);
    pci_write16(pd, PCI_COMMAND, (uint16_t)(command & ~PCI_COMMAND_MEMORY));
    for (unsigned i = 0; i < 6; i++)
        pci_write32(pd, (uint8_t)(PCI_BAR0 + 4 * i), 0xFFFFFFFFu);
    if (ecam)
        mmio_write32(ecam + PCI_BAR0 + 1, 0xFFFFFFFFu);
    for (unsigned i = 0; i < 6; i++) {
        uint32_t got = pci_read32(pd, (uint8_t)(PCI_BAR0 + 4 * i));
        uint32_t flags = get_le32(cfg_before + PCI_BAR0 + 4 * i) & 0xF;
        uint32_t want = 0;
        const struct pci_bar *bar = &pd->bars[i];
        if (bar->size != 0)
            want = ((uint32_t)~(bar->size - 1) & 0xFFFFFFF0u) | flags;
        else if (i > 0 && pd->bars[i - 1].is_64bit)
            want = (uint32_t)(~(pd->bars[i - 1].size - 1) >> 32);
        if (got != want)
            FAIL("BAR%u reads 0x%x after writing all ones, expected 0x%x", i, got, want);
    }
    for (unsigned i = 0; i < 6; i++)
        pci_write32(pd, (uint8_t)(PCI_BAR0 + 4 * i), get_le32(cfg_before + PCI_BAR0 + 4 * i));
    pci_write16(pd, PCI_COMMAND, command);
    if (mmio_read16(dev_a.vp.common + COMMON_NUMQ) != 2)
        FAIL("BAR0 not decoded again after its restore");

    /* 4. With decoding on: BAR2 (shared memory) moved to 16 TiB and BAR0 onto device B's BAR0, then back. Device A
     * is not touched meanwhile; device B must not notice. */
    uint8_t upper = PCI_BAR0 + 4 * 3;
    pci_write32(pd, upper, 0x00001000u);
    pci_write32(pd, upper, get_le32(cfg_before + upper));
    pci_write32(pd, PCI_BAR0, (uint32_t)dev_b.pci.bars[0].base);
    if (mmio_read16(dev_b.vp.common + COMMON_NUMQ) != 2 || (dev_status(&dev_b) & VIRTIO_STATUS_NEEDS_RESET))
        FAIL("device B's registers changed while A's BAR0 was placed over them");
    bystander_poll(&by_b);
    pci_write32(pd, PCI_BAR0, get_le32(cfg_before + PCI_BAR0));
    if (mmio_read16(dev_a.vp.common + COMMON_NUMQ) != 2)
        FAIL("BAR0 not decoded again after being moved back");

    /* 5. The PCI_CFG window: widths 1, 2 and 4 inside BAR0 work; anything else is ignored. */
    uint8_t w_bar = (uint8_t)(window + 4), w_off = (uint8_t)(window + 8), w_len = (uint8_t)(window + 12);
    uint8_t w_data = (uint8_t)(window + 16);
    uintptr_t c = dev_a.vp.common;
    pci_write8(pd, w_bar, 0);
    pci_write32(pd, w_off, COMMON_STATUS);
    pci_write32(pd, w_len, 1);
    if (pci_read8(pd, w_data) != mmio_read8(c + COMMON_STATUS))
        FAIL("PCI_CFG window: status reads 0x%x through it, 0x%x directly", pci_read8(pd, w_data),
             mmio_read8(c + COMMON_STATUS));
    pci_write32(pd, w_off, COMMON_Q_SELECT);
    pci_write32(pd, w_len, 2);
    pci_write16(pd, w_data, 1);
    if (mmio_read16(c + COMMON_Q_SELECT) != 1)
        FAIL("PCI_CFG window: a 2-byte write of queue_select did not arrive");
    pci_write16(pd, w_data, 0);
    static const struct { uint8_t bar; uint32_t off, len; } bad[] = {
        { 0, COMMON_Q_SELECT, 3 }, { 0, COMMON_Q_SELECT + 1, 2 }, { 5, COMMON_Q_SELECT, 2 }, { 0, 0x8000, 4 },
    };
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
        pci_write8(pd, w_bar, bad[i].bar);
        pci_write32(pd, w_off, bad[i].off);
        pci_write32(pd, w_len, bad[i].len);
        pci_write32(pd, w_data, 0x01010101u);
        if (pci_read32(pd, w_data) != 0 || mmio_read16(c + COMMON_Q_SELECT) != 0)
            FAIL("PCI_CFG window bar %u offset 0x%x length %u: reads 0x%x, queue_select %u", bad[i].bar, bad[i].off,
                 bad[i].len, pci_read32(pd, w_data), mmio_read16(c + COMMON_Q_SELECT));
    }
    pci_write8(pd, w_bar, cfg_before[w_bar]);
    pci_write32(pd, w_off, get_le32(cfg_before + w_off));
    pci_write32(pd, w_len, get_le32(cfg_before + w_len));

    cfg_read_all(pd, cfg_after);
    for (unsigned off = 0; off < 256; off++)
        if (cfg_after[off] != cfg_before[off])
            FAIL("config byte 0x%x reads 0x%x after the restore, was 0x%x", off, cfg_after[off], cfg_before[off]);
    if (dev_status(&dev_a) & VIRTIO_STATUS_NEEDS_RESET)
        FAIL("config abuse: DEVICE_NEEDS_RESET");
    fw_snprintf(answer, sizeof(answer), "%u read-only bytes kept under byte, odd-offset word%s writes, extended "
                "space ignored; command and latency masked; BARs sized with decoding off and restored; BAR2 moved to "
                "16 TiB, BAR0 onto B's, and back; PCI_CFG window: widths 1 and 2 honoured, width 3, misaligned, BAR 5 "
                "and offset 0x8000 ignored; config space equal to the snapshot after", ro,
                ecam ? ", unaligned dword and qword (ECAM)" : "");
}

/* ---------- media ---------- */

/* Sends the IOCTL prepared with media_ioctl_header (payload of in_len bytes, out_len bytes of answer room). */
static uint32_t ioctl_status(uint32_t in_len, uint32_t out_len, const char *what)
{
    return media_command_status(&dev_a.md, 16 + in_len, 8 + out_len, what);
}

static uint32_t mmap_status(uint32_t session, uint32_t flags, uint32_t offset)
{
    uint8_t *c = media_cmd_buffer();
    memset(c, 0, 64);
    put_le32(c, MEDIA_CMD_MMAP);
    put_le32(c + 8, session);
    put_le32(c + 12, flags);
    put_le32(c + 16, offset);
    return media_command_status(&dev_a.md, 20, 24, "MMAP");
}

static uint32_t munmap_status(uint64_t driver_addr)
{
    uint8_t *c = media_cmd_buffer();
    memset(c, 0, 64);
    put_le32(c, MEDIA_CMD_MUNMAP);
    put_le64(c + 8, driver_addr);
    return media_command_status(&dev_a.md, 16, 8, "MUNMAP");
}

static void attack_bad_ioctl(void)
{
    struct media x;
    media_open(&x, &dev_a.md);
    static const uint32_t codes[] = { 0, 17, 89, 104, 200, 255, 0xFFFFFFFFu };
    for (unsigned i = 0; i < ARRAY_SIZE(codes); i++) {
        media_ioctl_header(x.session_id, codes[i]);
        expect_errno("unknown ioctl", ioctl_status(64, 64, "unknown ioctl"), ENOTTY);
    }
    static const uint32_t commands[] = { 0, 6, 0x7FFFFFFFu };
    for (unsigned i = 0; i < ARRAY_SIZE(commands); i++) {
        uint8_t *c = media_cmd_buffer();
        memset(c, 0, 64);
        put_le32(c, commands[i]);
        put_le32(c + 8, x.session_id);
        expect_errno("unknown command", media_command_status(&dev_a.md, 16, 16, "unknown command"), ENOTTY);
    }
    uint8_t *c = media_cmd_buffer();
    memset(c, 0, 64);
    put_le32(c, MEDIA_CMD_OPEN);
    expect_errno("4-byte command", media_command_status(&dev_a.md, 4, 16, "4-byte command"), EINVAL);
    uint8_t *f = media_ioctl_header(x.session_id, MEDIA_IOC_S_FMT);
    put_le32(f, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    expect_errno("S_FMT with 16 payload bytes", ioctl_status(16, V4L2_FORMAT_SIZE,
                                                             "short S_FMT"), EINVAL);
    media_close(&x);
    fw_snprintf(answer, sizeof(answer), "ioctl codes 0, 17, 89, 104, 200, 255, 0xffffffff: ENOTTY; commands 0, 6, "
                "0x7fffffff: ENOTTY; a 4-byte command: EINVAL; S_FMT with 16 of its 208 bytes: EINVAL");
}

static void attack_bad_session(void)
{
    struct media x, y;
    media_open(&x, &dev_a.md);
    media_open(&y, &dev_a.md);
    uint32_t closed = y.session_id;
    media_close(&y);
    uint32_t ids[] = { x.session_id + 1000, 0xFFFFFFFFu, closed };
    for (unsigned i = 0; i < ARRAY_SIZE(ids); i++) {
        uint8_t *p = media_ioctl_header(ids[i], MEDIA_IOC_STREAMOFF);
        put_le32(p, V4L2_BUF_TYPE_VIDEO_CAPTURE);
        expect_errno("STREAMOFF on a foreign session id", ioctl_status(4, 0, "STREAMOFF"),
                     EINVAL);
        expect_errno("MMAP on a foreign session id", mmap_status(ids[i], 0, by_a.s.bufs[0].mem_offset), EINVAL);
        uint8_t *c = media_cmd_buffer();
        memset(c, 0, 64);
        put_le32(c, MEDIA_CMD_CLOSE);
        put_le32(c + 8, ids[i]);
        uint32_t used = media_transact(&dev_a.md, 16, 0, "CLOSE of a foreign session id");
        if (used != 0)
            FAIL("CLOSE of session %u: used length %u", ids[i], used);
    }
    uint8_t *p = media_ioctl_header(x.session_id, MEDIA_IOC_STREAMOFF);
    put_le32(p, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    expect_errno("STREAMOFF on the attacker's own session",
                 ioctl_status(4, 0, "STREAMOFF"), 0);
    media_close(&x);
    fw_snprintf(answer, sizeof(answer), "IOCTL and MMAP naming sessions %u, 0xffffffff and the closed %u: EINVAL; "
                "CLOSE of them: ignored (used length 0); the attacker's own session still answered",
                x.session_id + 1000, closed);
}

static void attack_mmap_foreign(void)
{
    struct media x;
    media_open(&x, &dev_a.md);
    for (uint32_t i = 0; i < by_a.s.nbufs; i++)
        expect_errno("MMAP of another session's buffer", mmap_status(x.session_id, 0, by_a.s.bufs[i].mem_offset),
                     EINVAL);
    expect_errno("MMAP of offset 0xfffff000", mmap_status(x.session_id, 0, 0xFFFFF000u), EINVAL);
    expect_errno("MMAP of offset 0x123", mmap_status(x.session_id, 0, 0x123u), EINVAL);
    expect_errno("MMAP with flags 0x2", mmap_status(by_a.s.session_id, 2, by_a.s.bufs[0].mem_offset), EINVAL);
    expect_errno("MMAP with the other RW flag", mmap_status(by_a.s.session_id, by_a.rw ? 0 : MEDIA_MMAP_FLAG_RW,
                                                            by_a.s.bufs[0].mem_offset), EINVAL);
    media_close(&x);
    fw_snprintf(answer, sizeof(answer), "MMAP of the bystander's %u buffer offsets from another session: EINVAL; "
                "offsets 0xfffff000 and 0x123: EINVAL; flags 0x2: EINVAL; a mapped buffer with the other RW flag: "
                "EINVAL", by_a.s.nbufs);
}

static void attack_munmap_unmapped(void)
{
    uint64_t inside = by_a.s.bufs[0].driver_addr + 0x1000;
    for (uint32_t i = 0; i < by_a.s.nbufs; i++)
        if (by_a.s.bufs[i].driver_addr == inside)
            inside += 0x1000;
    const uint64_t addrs[] = { dev_a.vp.shm_len, 0xFFFFFFFFFFFFF000ull, inside, 1 };
    for (unsigned i = 0; i < ARRAY_SIZE(addrs); i++)
        expect_errno("MUNMAP of an address never mapped", munmap_status(addrs[i]), EINVAL);
    fw_snprintf(answer, sizeof(answer), "MUNMAP of the region's end, 0xfffffffffffff000, a page inside a mapping "
                "(0x%lx) and 0x1: EINVAL", inside);
}

static void attack_busy(void)
{
    struct media x;
    media_open(&x, &dev_a.md);
    uint8_t *p = media_ioctl_header(x.session_id, MEDIA_IOC_REQBUFS);
    put_le32(p, 4);
    put_le32(p + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(p + 8, V4L2_MEMORY_MMAP);
    expect_errno("REQBUFS(4) while another session owns the buffers",
                 ioctl_status(V4L2_REQBUFS_SIZE, V4L2_REQBUFS_SIZE, "REQBUFS"), EBUSY);
    p = media_ioctl_header(x.session_id, MEDIA_IOC_REQBUFS);
    put_le32(p + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(p + 8, V4L2_MEMORY_MMAP);
    expect_errno("REQBUFS(0) of another session's buffers",
                 ioctl_status(V4L2_REQBUFS_SIZE, V4L2_REQBUFS_SIZE, "REQBUFS"), EBUSY);
    p = media_ioctl_header(x.session_id, MEDIA_IOC_CREATE_BUFS);
    put_le32(p + 4, 1);
    put_le32(p + 8, V4L2_MEMORY_MMAP);
    put_le32(p + 16, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(p + 16 + 8 + 20, format.sizeimage);
    expect_errno("CREATE_BUFS while another session owns the buffers",
                 ioctl_status(V4L2_CREATE_BUFS_SIZE, V4L2_CREATE_BUFS_SIZE, "CREATE_BUFS"), EBUSY);
    p = media_ioctl_header(x.session_id, MEDIA_IOC_S_FMT);
    put_le32(p, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(p + 8, P->width);
    put_le32(p + 12, P->height);
    put_le32(p + 16, P->fourcc);
    expect_errno("S_FMT while buffers exist", ioctl_status(V4L2_FORMAT_SIZE, V4L2_FORMAT_SIZE,
                                                           "S_FMT"), EBUSY);
    p = media_ioctl_header(x.session_id, MEDIA_IOC_QBUF);
    put_le32(p + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(p + 60, V4L2_MEMORY_MMAP);
    expect_errno("QBUF with no buffers", ioctl_status(V4L2_BUFFER_SIZE, V4L2_BUFFER_SIZE, "QBUF"),
                 EINVAL);
    p = media_ioctl_header(x.session_id, MEDIA_IOC_STREAMON);
    put_le32(p, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    expect_errno("STREAMON with no buffers", ioctl_status(4, 0, "STREAMON"), EINVAL);
    media_close(&x);
    fw_snprintf(answer, sizeof(answer), "a second session's REQBUFS(4), REQBUFS(0), CREATE_BUFS and S_FMT while "
                "the bystander owns the buffers: EBUSY; its QBUF and STREAMON without buffers: EINVAL");
}

static void attack_open_flood(void)
{
    uint32_t opened = 0, status = 0;
    while (opened <= P->a_sessions) {
        uint8_t *c = media_cmd_buffer();
        memset(c, 0, 16);
        put_le32(c, MEDIA_CMD_OPEN);
        status = media_command_status(&dev_a.md, 8, 16, "OPEN (flood)");
        if (status != 0)
            break;
        flood_ids[opened++] = get_le32(media_resp_buffer() + 8);
    }
    expect_errno("OPEN past max-sessions", status, EMFILE);
    uint32_t open_before = by_a.active ? 1 : 0;
    if (opened + open_before != P->a_sessions)
        FAIL("OPEN answered EMFILE after %u sessions with %u open before; max-sessions is %u", opened, open_before,
             P->a_sessions);
    for (uint32_t i = 0; i < opened; i++) {
        uint8_t *c = media_cmd_buffer();
        memset(c, 0, 16);
        put_le32(c, MEDIA_CMD_CLOSE);
        put_le32(c + 8, flood_ids[i]);
        media_transact(&dev_a.md, 16, 0, "CLOSE (flood)");
    }
    struct media x;
    media_open(&x, &dev_a.md);
    media_close(&x);
    fw_snprintf(answer, sizeof(answer), "%u OPENs with %u session open: the next one EMFILE (max-sessions %u); all "
                "closed, then OPEN worked again", opened, open_before, P->a_sessions);
}

static uint32_t reqbufs_raw(uint32_t session, uint32_t count, uint32_t *granted)
{
    uint8_t *p = media_ioctl_header(session, MEDIA_IOC_REQBUFS);
    put_le32(p, count);
    put_le32(p + 4, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(p + 8, V4L2_MEMORY_MMAP);
    uint32_t status = ioctl_status(V4L2_REQBUFS_SIZE, V4L2_REQBUFS_SIZE, "REQBUFS");
    *granted = get_le32(media_resp_buffer() + 8);
    return status;
}

static uint32_t create_bufs_raw(uint32_t session, uint32_t count, uint32_t *created, uint32_t *index)
{
    uint8_t *p = media_ioctl_header(session, MEDIA_IOC_CREATE_BUFS);
    put_le32(p + 4, count);
    put_le32(p + 8, V4L2_MEMORY_MMAP);
    put_le32(p + 16, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    put_le32(p + 16 + 8 + 20, format.sizeimage);
    uint32_t status = ioctl_status(V4L2_CREATE_BUFS_SIZE, V4L2_CREATE_BUFS_SIZE, "CREATE_BUFS");
    *index = get_le32(media_resp_buffer() + 8);
    *created = get_le32(media_resp_buffer() + 8 + 4);
    return status;
}

static void attack_buffer_flood(void)
{
    struct media x;
    media_open(&x, &dev_a.md);
    struct media_format f;
    media_set_format(&x, P->width, P->height, P->fourcc, &f);
    uint32_t granted, created, index;
    expect_errno("REQBUFS(0xffffffff)", reqbufs_raw(x.session_id, 0xFFFFFFFFu, &granted), 0);
    if (granted != P->a_buffers)
        FAIL("REQBUFS(0xffffffff) granted %u buffers, max-buffers is %u", granted, P->a_buffers);
    expect_errno("CREATE_BUFS on a full queue", create_bufs_raw(x.session_id, 1, &created, &index), ENOBUFS);
    expect_errno("REQBUFS(0)", reqbufs_raw(x.session_id, 0, &granted), 0);
    expect_errno("CREATE_BUFS(0xffffffff)", create_bufs_raw(x.session_id, 0xFFFFFFFFu, &created, &index), 0);
    if (created != P->a_buffers || index != 0)
        FAIL("CREATE_BUFS(0xffffffff) on an empty queue created %u from index %u, max-buffers is %u", created, index,
             P->a_buffers);
    expect_errno("CREATE_BUFS on a full queue", create_bufs_raw(x.session_id, 1, &created, &index), ENOBUFS);
    expect_errno("REQBUFS(0)", reqbufs_raw(x.session_id, 0, &granted), 0);
    media_close(&x);
    fw_snprintf(answer, sizeof(answer), "REQBUFS(0xffffffff): %u granted (max-buffers); CREATE_BUFS on the full "
                "queue: ENOBUFS; freed, CREATE_BUFS(0xffffffff): %u created, then ENOBUFS; freed", P->a_buffers,
                P->a_buffers);
}

static void attack_event_starve(void)
{
    /* 1. Frames produced while no eventq buffer is posted are held, then delivered in order. */
    dev_reset(&dev_a);
    dev_init(&dev_a, true);
    bystander_start(&by_a, &dev_a, true);
    wait_filled(&by_a.s, BYSTANDER_BUFFERS);
    media_post_events(&dev_a.md);
    bystander_wait(&by_a, BYSTANDER_BUFFERS);
    if (P->a_events + 1 > P->a_buffers) {
        fw_snprintf(answer, sizeof(answer), "%u frames produced with no eventq buffer posted: their DQBUF events "
                    "were held and delivered in order once buffers came (max-events %u is above max-buffers: no "
                    "overflow possible)", BYSTANDER_BUFFERS, P->a_events);
        return;
    }
    /* 2. More DQBUF events than max-events while starved: the session fails with an ERROR event. */
    bystander_end(&by_a, true);
    dev_reset(&dev_a);
    dev_init(&dev_a, true);
    static struct media x;
    media_open(&x, &dev_a.md);
    struct media_format f;
    media_set_format(&x, P->width, P->height, P->fourcc, &f);
    uint32_t n = media_request_buffers(&x, P->a_buffers);
    media_map_buffers(&x, f.sizeimage, true);
    for (uint32_t i = 0; i < n; i++) {
        memset((void *)(uintptr_t)x.bufs[i].data, 0, x.bufs[i].length);
        media_queue_buffer(&x, i);
    }
    media_stream(&x, true);
    /* The frame past max-events fails the session; from then on its commands answer EIO (it stops producing). */
    uint64_t end = deadline_after_ms(P->timeout_ms * 4);
    uint32_t status;
    do {
        if (deadline_passed(end))
            FAIL("max-events overflow: the session still answers after %u ms (%u buffers queued, no eventq buffer)",
                 P->timeout_ms * 4, n);
        service();
        media_ioctl_header(x.session_id, 255);
        status = ioctl_status(0, 0, "ioctl 255");
    } while (status == ENOTTY);
    expect_errno("an ioctl once the session overflowed max-events", status, EIO);
    media_post_events(&dev_a.md);
    uint32_t before = 0;
    for (;;) {
        struct media_frame fr;
        enum media_wait w = media_next_event(&x, &fr, deadline());
        if (w == MEDIA_TIMEOUT)
            FAIL("max-events overflow: no ERROR event within %u ms (%u DQBUF events)", P->timeout_ms, before);
        if (w == MEDIA_ERROR)
            break;
        if (fr.sequence != before)
            FAIL("max-events overflow: DQBUF seq=%u, expected %u", fr.sequence, before);
        before++;
    }
    expect_errno("the ERROR event", x.error, EIO);
    if (before > P->a_events)
        FAIL("max-events overflow: %u DQBUF events before the ERROR, more than max-events %u", before, P->a_events);
    uint8_t *p = media_ioctl_header(x.session_id, MEDIA_IOC_STREAMOFF);
    put_le32(p, V4L2_BUF_TYPE_VIDEO_CAPTURE);
    expect_errno("STREAMOFF after the ERROR event", ioctl_status(4, 0, "STREAMOFF"), EIO);
    uint32_t filled = 0;
    for (uint32_t i = 0; i < n; i++)
        filled += x.bufs[i].data[0] != 0;
    media_close(&x);
    bystander_start(&by_a, &dev_a, false);
    fw_snprintf(answer, sizeof(answer), "%u frames produced with no eventq buffer posted: their DQBUF events were "
                "held and delivered in order once buffers came; %u buffers streaming with max-events %u and no eventq "
                "buffer: %u frames produced, the last found no room: the session's commands answered EIO and its "
                "ERROR event (EIO) came once buffers were posted, after %u DQBUF events; a new session streamed",
                BYSTANDER_BUFFERS, n, P->a_events, filled, before);
}

/* ---------- the list ---------- */

enum need { A_STREAMING, A_FREE };

struct attack {
    const char *name;
    void (*run)(void);
    enum need need;
};

static const struct attack attacks[] = {
    { "desc_loop", attack_desc_loop, A_FREE },
    { "desc_next", attack_desc_next, A_FREE },
    { "indirect", attack_indirect, A_FREE },
    { "buf_range", attack_buf_range, A_FREE },
    { "buf_mmio", attack_buf_mmio, A_FREE },
    { "huge_len", attack_huge_len, A_FREE },
    { "buf_overlap", attack_buf_overlap, A_FREE },
    { "readonly_resp", attack_readonly_resp, A_FREE },
    { "readable_after_writable", attack_readable_after_writable, A_FREE },
    { "avail_jump", attack_avail_jump, A_FREE },
    { "head_range", attack_head_range, A_FREE },
    { "event_small", attack_event_small, A_FREE },
    { "event_ring", attack_event_ring, A_FREE },
    { "queue_reconfig", attack_queue_reconfig, A_STREAMING },
    { "queue_config_bad", attack_queue_config_bad, A_FREE },
    { "reset_streaming", attack_reset_streaming, A_STREAMING },
    { "notify_storm", attack_notify_storm, A_STREAMING },
    { "msix", attack_msix, A_STREAMING },
    { "pci_config", attack_pci_config, A_STREAMING },
    { "bad_ioctl", attack_bad_ioctl, A_STREAMING },
    { "bad_session", attack_bad_session, A_STREAMING },
    { "mmap_foreign", attack_mmap_foreign, A_STREAMING },
    { "munmap_unmapped", attack_munmap_unmapped, A_STREAMING },
    { "busy", attack_busy, A_STREAMING },
    { "open_flood", attack_open_flood, A_STREAMING },
    { "buffer_flood", attack_buffer_flood, A_FREE },
    { "event_starve", attack_event_starve, A_FREE },
};

/* Marks the attacks the command line names; fails on an unknown name. */
static void select_attacks(bool selected[ARRAY_SIZE(attacks)])
{
    const char *s = P->attacks;
    uint32_t len = P->attacks_len;
    if (s == 0 || (len == 3 && memcmp(s, "all", 3) == 0)) {
        for (unsigned i = 0; i < ARRAY_SIZE(attacks); i++)
            selected[i] = true;
        return;
    }
    uint32_t i = 0;
    while (i < len) {
        uint32_t start = i;
        while (i < len && s[i] != '+')
            i++;
        bool found = false;
        for (unsigned k = 0; k < ARRAY_SIZE(attacks); k++)
            if (strlen(attacks[k].name) == i - start && memcmp(attacks[k].name, s + start, i - start) == 0) {
                selected[k] = found = true;
                break;
            }
        if (!found) {
            char name[32];
            uint32_t n = i - start < 31 ? i - start : 31;
            memcpy(name, s + start, n);
            name[n] = 0;
            fw_fail(EXIT_BAD_CMDLINE, "unknown attack '%s'", name);
        }
        i++;
    }
}

int attack_main(const struct fw_params *p)
{
    P = p;
    bool selected[ARRAY_SIZE(attacks)] = { false };
    select_attacks(selected);
    dev_probe(&dev_a);
    dev_probe(&dev_b);
    dev_init(&dev_a, false);
    dev_init(&dev_b, false);
    bystander_start(&by_b, &dev_b, false);
    unsigned run = 0;
    uint64_t ticks[ARRAY_SIZE(attacks)] = { 0 };
    uint64_t t_all = rdtsc();
    for (unsigned i = 0; i < ARRAY_SIZE(attacks); i++) {
        if (!selected[i])
            continue;
        const struct attack *a = &attacks[i];
        uint64_t t0 = rdtsc();
        if (a->need == A_STREAMING && !by_a.active)
            bystander_start(&by_a, &dev_a, false);
        if (a->need == A_FREE && by_a.active)
            bystander_end(&by_a, true);
        step_frames = 0;
        answer[0] = 0;
        a->run();
        if (dev_status(&dev_a) & VIRTIO_STATUS_NEEDS_RESET)
            FAIL("%s: device A still reports DEVICE_NEEDS_RESET after the attack", a->name);
        if (dev_status(&dev_b) & VIRTIO_STATUS_NEEDS_RESET)
            FAIL("%s: device B (not attacked) reports DEVICE_NEEDS_RESET", a->name);
        collect();
        fw_printf("ATTACK %s: %s; bystander %u frames, 0 lost\n", a->name, answer, step_frames);
        ticks[i] = rdtsc() - t0;
        run++;
    }
    /* Where the time went, per attack (ms), for budgeting runs on slow hosts. */
    uint64_t hz = timer_tsc_hz() ? timer_tsc_hz() : 1;
    fw_printf("TIMING total_ms=%lu", (rdtsc() - t_all) * 1000 / hz);
    for (unsigned i = 0; i < ARRAY_SIZE(attacks); i++)
        if (selected[i])
            fw_printf(" %s=%lu", attacks[i].name, ticks[i] * 1000 / hz);
    fw_printf("\n");
    if (by_a.active)
        bystander_end(&by_a, true);
    bystander_end(&by_b, true);
    fw_printf("RESULT mode=attack attacks=%u needs_reset=%u resets=%u bystander_frames=%u lost=0\n", run,
              needs_resets, resets, total_frames);
    return EXIT_OK;
}
