/*
 * Host-side harness for the firmware's virtio-media path. It links the firmware's own main.c,
 * virtio_media.c, virtq.c, checksum.c and timer.c, replaces only the hardware edges (PCI scan, virtio-pci
 * registers, serial, exit port, command line), and runs a fake virtio-media device on a second thread that
 * reads and writes the split rings through memory, as a VMM device thread would.
 *
 * This checks the driver logic (command encoding, reply checks, event handling, ring bookkeeping under real
 * concurrency, checksums) and its failure paths. It does NOT check the protocol against an independent
 * implementation: the fake device was written from the same protocol document. The real check is the run
 * against the project's VMM.
 *
 * Usage: media_harness <scenario> [key=value ...]   (exit status = the firmware's exit code, or 100+ on a
 * harness failure)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attack.h"
#include "checksum.h"
#include "cmdline.h"
#include "cpl0.h"
#include "exit_codes.h"
#include "pci.h"
#include "serial.h"
#include "timer.h"
#include "virtio_pci.h"
#include "virtq.h"

int fw_main(void);

/* ---------- stand-ins for the hardware edges ---------- */

uint64_t pvh_start_info_paddr;
uint64_t tsc_at_entry;
volatile uint64_t emulated_port_io_count;
struct clock_probe clock_probe;
volatile struct pvclock_time_info kvmclock_info;

static char output[1 << 20];
static size_t output_len;
static int argc_g;
static char **argv_g;

void fw_vprintf(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(output + output_len, sizeof(output) - output_len, fmt, copy);
    va_end(copy);
    if (n > 0) {
        fwrite(output + output_len, 1, (size_t)n, stdout);
        output_len += (size_t)n < sizeof(output) - output_len ? (size_t)n : 0;
    }
}

void fw_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fw_vprintf(fmt, ap);
    va_end(ap);
}

void serial_init(void) {}

void fw_exit(int code)
{
    fflush(stdout);
    exit(code);
}

void fw_fail(int code, const char *fmt, ...)
{
    fw_printf("FAIL code=%d: ", code);
    va_list ap;
    va_start(ap, fmt);
    fw_vprintf(fmt, ap);
    va_end(ap);
    fw_printf("\n");
    fw_exit(code);
}

/* The harness's "command line": argv[2..] in the guest's key=value syntax, parsed by the real parser. */
static char cmdline_text[4096];
static uint8_t start_info[64];

bool pci_find(uint16_t vendor_id, uint16_t device_id, struct pci_dev *out)
{
    *out = (struct pci_dev){ .vendor_id = vendor_id, .device_id = device_id, .dev = 4 };
    return true;
}

void pci_setup_bars_and_enable(struct pci_dev *d) { (void)d; }

/* Attack mode drives two devices of the real VMM; this harness covers media mode only. */
int attack_main(const struct fw_params *p)
{
    (void)p;
    fw_fail(EXIT_BAD_CMDLINE, "attack mode is not part of the host harness");
}

#define SHM_SIZE (64u << 20)
static uint8_t *shm;
static uint16_t notify_sink;

void virtio_pci_probe(struct virtio_pci *vp, const struct pci_dev *pci)
{
    *vp = (struct virtio_pci){ .pci = *pci, .has_shm = true, .shm_base = (uint64_t)(uintptr_t)shm,
                               .shm_len = SHM_SIZE };
}

void virtio_pci_negotiate(struct virtio_pci *vp, uint32_t timeout_ms)
{
    (void)timeout_ms;
    vp->num_queues = 2;
}

static struct virtq *volatile device_queues[2];

void virtio_pci_setup_queue(struct virtio_pci *vp, struct virtq *q, unsigned slot, uint16_t index, uint16_t max_size)
{
    (void)vp;
    uint16_t size = max_size < 256 ? max_size : 256;
    virtq_init(q, slot, index, size);
    q->notify_addr = (uintptr_t)&notify_sink;
    device_queues[index] = q;
}

static volatile int driver_ok;
void virtio_pci_driver_ok(struct virtio_pci *vp)
{
    (void)vp;
    __atomic_store_n(&driver_ok, 1, __ATOMIC_RELEASE);
}

uint8_t virtio_pci_status(const struct virtio_pci *vp)
{
    (void)vp;
    return VIRTIO_STATUS_DRIVER_OK;
}

/* ---------- the fake virtio-media device ---------- */

enum scenario {
    S_OK,
    S_BAD_USED_ID,
    S_ERROR_EVENT,
    S_BYTESUSED_TOO_BIG,
    S_FMT_MISMATCH,
    S_NO_ANSWER,
    S_WRONG_SESSION_EVENT,
    S_MMAP_OUTSIDE,
    S_ERRNO,
    S_SHORT_DQBUF_EVENT,
    S_DUPLICATE_DQBUF,
};

static const char *scenario_names[] = {
    "ok", "bad_used_id", "error_event", "bytesused_too_big", "fmt_mismatch", "no_answer",
    "wrong_session_event", "mmap_outside", "errno", "short_dqbuf_event", "duplicate_dqbuf",
};

static enum scenario scenario;

#define SESSION_ID 7
#define MAX_BUFS 8
#define SEQ_MAX 100000

struct dev_state {
    uint16_t seen_avail[2];
    uint16_t used_idx[2];
    uint32_t width, height, fourcc, sizeimage;
    uint32_t nbufs;
    uint64_t shm_off[MAX_BUFS];
    int queued[MAX_BUFS];
    int streaming;
    uint32_t sequence;
    int stop;
    /* Events waiting for eventq buffers. */
    uint8_t pending[64][608];
    uint32_t pending_len[64];
    unsigned pending_head, pending_count;
};

static struct dev_state dev;
static uint32_t expected_sum[SEQ_MAX];

static uint32_t crc32c_bitwise(const uint8_t *p, size_t n)
{
    /* Independent of the firmware's implementation on purpose: plain bit-at-a-time CRC-32C. */
    uint32_t c = 0xFFFFFFFF;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (c & 1 ? 0x82F63B78u : 0);
    }
    return c ^ 0xFFFFFFFF;
}

static uint16_t avail_idx(struct virtq *q) { return __atomic_load_n(&q->avail[1], __ATOMIC_ACQUIRE); }

static void push_used(int qi, uint16_t head, uint32_t len)
{
    struct virtq *q = device_queues[qi];
    volatile uint8_t *e = q->used + 4 + 8u * (dev.used_idx[qi] & (q->size - 1));
    *(volatile uint32_t *)e = head;
    *(volatile uint32_t *)(e + 4) = len;
    dev.used_idx[qi]++;
    __atomic_store_n((uint16_t *)(q->used + 2), dev.used_idx[qi], __ATOMIC_RELEASE);
}

/* Splits a chain into its readable bytes (copied) and its writable segments. */
struct chain {
    uint16_t head;
    uint8_t in[4096];
    uint32_t in_len;
    struct { uint8_t *addr; uint32_t len; } out[8];
    unsigned nout;
    uint32_t out_total;
};

static void read_chain(struct virtq *q, uint16_t head, struct chain *c)
{
    memset(c, 0, sizeof(*c));
    c->head = head;
    uint16_t i = head;
    for (int n = 0; n < q->size; n++) {
        struct virtq_desc d = q->desc[i];
        if (d.flags & VIRTQ_DESC_F_WRITE) {
            c->out[c->nout].addr = (uint8_t *)(uintptr_t)d.addr;
            c->out[c->nout].len = d.len;
            c->nout++;
            c->out_total += d.len;
        } else {
            memcpy(c->in + c->in_len, (void *)(uintptr_t)d.addr, d.len);
            c->in_len += d.len;
        }
        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            break;
        i = d.next;
    }
}

static uint32_t write_chain(struct chain *c, const uint8_t *data, uint32_t len)
{
    uint32_t done = 0;
    for (unsigned s = 0; s < c->nout && done < len; s++) {
        uint32_t n = len - done < c->out[s].len ? len - done : c->out[s].len;
        memcpy(c->out[s].addr, data + done, n);
        done += n;
    }
    return done;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static void queue_event(const uint8_t *ev, uint32_t len)
{
    unsigned slot = (dev.pending_head + dev.pending_count) % 64;
    memcpy(dev.pending[slot], ev, len);
    dev.pending_len[slot] = len;
    dev.pending_count++;
}

static void flush_events(void)
{
    struct virtq *q = device_queues[1];
    while (dev.pending_count && dev.seen_avail[1] != avail_idx(q)) {
        uint16_t head = q->avail[2 + (dev.seen_avail[1] & (q->size - 1))];
        dev.seen_avail[1]++;
        struct chain c;
        read_chain(q, head, &c);
        unsigned slot = dev.pending_head;
        uint32_t n = write_chain(&c, dev.pending[slot], dev.pending_len[slot]);
        dev.pending_head = (dev.pending_head + 1) % 64;
        dev.pending_count--;
        push_used(1, head, n);
    }
}

static void produce_frame(uint32_t index)
{
    uint32_t seq = dev.sequence++;
    uint8_t *frame = shm + dev.shm_off[index];
    for (uint32_t i = 0; i < dev.sizeimage; i++)
        frame[i] = (uint8_t)(seq * 7 + i * 13 + (i >> 11));
    uint32_t bytesused = dev.sizeimage;
    if (seq < SEQ_MAX)
        expected_sum[seq] = crc32c_bitwise(frame, bytesused);
    dev.queued[index] = 0;

    uint8_t ev[608] = { 0 };
    put32(ev, 1); /* DQBUF */
    put32(ev + 4, SESSION_ID);
    uint8_t *vb = ev + 8;
    put32(vb + 0, index);
    put32(vb + 4, 1);
    put32(vb + 8, bytesused);
    put32(vb + 16, 1);
    put32(vb + 56, seq);
    put32(vb + 60, 1);
    put32(vb + 72, dev.sizeimage);
    uint32_t len = 608;
    if (scenario == S_BYTESUSED_TOO_BIG && seq == 5)
        put32(vb + 8, dev.sizeimage + 1);
    if (scenario == S_ERROR_EVENT && seq == 5) {
        memset(ev, 0, sizeof(ev));
        put32(ev, 0);
        put32(ev + 4, SESSION_ID);
        put32(ev + 8, 5); /* EIO */
        len = 16;
    }
    if (scenario == S_WRONG_SESSION_EVENT && seq == 5)
        put32(ev + 4, SESSION_ID + 1);
    if (scenario == S_SHORT_DQBUF_EVENT && seq == 5)
        len = 96;
    queue_event(ev, len);
    if (scenario == S_DUPLICATE_DQBUF && seq == 5)
        queue_event(ev, len);
}

static void handle_command(struct chain *c)
{
    uint8_t r[1024] = { 0 };
    uint32_t rlen = 8;
    uint32_t cmd = get32(c->in);
    const uint8_t *p = c->in + 16;
    switch (cmd) {
    case 1: /* OPEN */
        put32(r + 8, SESSION_ID);
        rlen = 16;
        break;
    case 2: /* CLOSE: no writable part */
        rlen = 0;
        break;
    case 3: { /* IOCTL */
        uint32_t code = get32(c->in + 12);
        if (get32(c->in + 8) != SESSION_ID) {
            put32(r, 22);
            break;
        }
        switch (code) {
        case 5: /* S_FMT */
            dev.width = get32(p + 8);
            dev.height = get32(p + 12);
            dev.fourcc = get32(p + 16);
            dev.sizeimage = dev.width * dev.height * 2;
            memcpy(r + 8, p, 208);
            put32(r + 8 + 24, dev.width * 2);
            put32(r + 8 + 28, dev.sizeimage);
            if (scenario == S_FMT_MISMATCH)
                put32(r + 8 + 8, dev.width / 2);
            rlen = 8 + 208;
            break;
        case 8: { /* REQBUFS */
            uint32_t count = get32(p);
            dev.nbufs = count > MAX_BUFS ? MAX_BUFS : count;
            memcpy(r + 8, p, 20);
            put32(r + 8, dev.nbufs);
            put32(r + 8 + 12, 0x11);
            rlen = 8 + 20;
            if (count == 0)
                dev.streaming = 0;
            break;
        }
        case 9: { /* QUERYBUF */
            uint32_t i = get32(p);
            memcpy(r + 8, p, 88);
            put32(r + 8 + 64, i * 0x1000);
            put32(r + 8 + 72, dev.sizeimage);
            rlen = 8 + 88;
            break;
        }
        case 15: { /* QBUF */
            uint32_t i = get32(p);
            if (i >= dev.nbufs || dev.queued[i]) {
                put32(r, 22);
                break;
            }
            dev.queued[i] = 1;
            memcpy(r + 8, p, 88);
            rlen = 8 + 88;
            if (dev.streaming)
                produce_frame(i); /* event before the answer, like the reference simple device */
            break;
        }
        case 18: /* STREAMON */
            dev.streaming = 1;
            for (uint32_t i = 0; i < dev.nbufs; i++)
                if (dev.queued[i])
                    produce_frame(i);
            break;
        case 19: /* STREAMOFF */
            dev.streaming = 0;
            memset(dev.queued, 0, sizeof(dev.queued));
            break;
        default:
            put32(r, 25);
            break;
        }
        if (scenario == S_ERRNO && code == 8 && get32(p) != 0)
            put32(r, 16), rlen = 8; /* EBUSY */
        break;
    }
    case 4: { /* MMAP */
        uint32_t off = get32(c->in + 16);
        uint32_t i = off / 0x1000;
        uint64_t page_len = (dev.sizeimage + 0xFFFu) & ~0xFFFull;
        dev.shm_off[i] = 0x10000 + i * page_len;
        put64(r + 8, scenario == S_MMAP_OUTSIDE ? SHM_SIZE - 0x1000 : dev.shm_off[i]);
        put64(r + 16, dev.sizeimage);
        rlen = 24;
        break;
    }
    case 5: /* MUNMAP */
        break;
    default:
        put32(r, 25);
        break;
    }
    uint32_t n = rlen ? write_chain(c, r, rlen) : 0;
    if (scenario == S_NO_ANSWER && cmd == 3 && get32(c->in + 12) == 15 && dev.sequence >= 10)
        return; /* swallow a QBUF */
    uint16_t head = c->head;
    if (scenario == S_BAD_USED_ID && dev.sequence >= 10)
        head = (uint16_t)(head + 1);
    push_used(0, head, n);
}

static void *device_thread(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&dev.stop, __ATOMIC_ACQUIRE)) {
        struct virtq *q = device_queues[0];
        if (q && __atomic_load_n(&driver_ok, __ATOMIC_ACQUIRE)) {
            while (dev.seen_avail[0] != avail_idx(q)) {
                uint16_t head = q->avail[2 + (dev.seen_avail[0] & (q->size - 1))];
                dev.seen_avail[0]++;
                static struct chain c;
                read_chain(q, head, &c);
                handle_command(&c);
            }
            if (device_queues[1])
                flush_events();
        }
        sched_yield();
    }
    return NULL;
}

/* The firmware's combined value, recomputed from the device's own expected sums. */
static uint32_t expected_combined(uint32_t first, uint32_t frames)
{
    uint32_t combined = 0;
    for (uint32_t s = first; s < first + frames; s++) {
        uint32_t rec[2] = { s, expected_sum[s] };
        combined = crc32c_bitwise((const uint8_t *)rec, 8) ^ (combined * 0x9E3779B1u);
    }
    return combined;
}

/* cmdline_parse is the firmware's own; point the fake hvm_start_info at our text. */
static void build_start_info(void)
{
    size_t len = 0;
    for (int i = 2; i < argc_g; i++)
        len += (size_t)snprintf(cmdline_text + len, sizeof(cmdline_text) - len, "%s%s", i > 2 ? " " : "", argv_g[i]);
    uint32_t magic = 0x336ec578;
    memcpy(start_info, &magic, 4);
    uint64_t paddr = (uint64_t)(uintptr_t)cmdline_text;
    memcpy(start_info + 24, &paddr, 8);
    pvh_start_info_paddr = (uint64_t)(uintptr_t)start_info;
}

static uint64_t measure_tsc_hz(void)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint64_t t0 = rdtsc();
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 50000000L);
    uint64_t t1 = rdtsc();
    long ns = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
    return (t1 - t0) * 1000000000ull / (uint64_t)ns;
}

int main(int argc, char **argv)
{
    argc_g = argc;
    argv_g = argv;
    if (argc < 2) {
        fprintf(stderr, "usage: %s <scenario> [key=value ...]\n", argv[0]);
        return 100;
    }
    scenario = (enum scenario)-1;
    for (unsigned i = 0; i < sizeof(scenario_names) / sizeof(scenario_names[0]); i++)
        if (strcmp(argv[1], scenario_names[i]) == 0)
            scenario = (enum scenario)i;
    if ((int)scenario < 0) {
        fprintf(stderr, "unknown scenario %s\n", argv[1]);
        return 100;
    }
    /* The mapping is in a region ending in a guard page, like a BAR: reads past it would fault. */
    shm = aligned_alloc(4096, SHM_SIZE);
    if (!shm)
        return 101;
    tsc_at_entry = rdtsc();
    clock_probe.cpuid_tsc_hz = measure_tsc_hz();
    build_start_info();

    pthread_t t;
    pthread_create(&t, NULL, device_thread, NULL);
    int code = fw_main();
    __atomic_store_n(&dev.stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
    if (code != 0)
        return code;

    /* Success path: every printed FRAME sum must be the device's CRC of what it wrote, and the combined
     * value must cover exactly the frames the device produced in order. */
    unsigned checked = 0;
    uint32_t first = 0, frames = 0, combined = 0;
    int have_first = 0, have_combined = 0;
    for (char *line = strtok(output, "\r\n"); line; line = strtok(NULL, "\r\n")) {
        unsigned seq, bytes;
        unsigned long long sum;
        if (sscanf(line, "FRAME seq=%u bytes=%u sum=%16llx", &seq, &bytes, &sum) == 3) {
            if (seq >= SEQ_MAX || sum != expected_sum[seq]) {
                fprintf(stderr, "harness: frame %u sum %016llx, device wrote %08x\n", seq, sum,
                        seq < SEQ_MAX ? expected_sum[seq] : 0);
                return 102;
            }
            checked++;
        }
        if (sscanf(line, "STATS seq_first=%u", &first) == 1)
            have_first = 1;
        char *c = strstr(line, "combined=");
        if (c && sscanf(c, "combined=%x", &combined) == 1)
            have_combined = 1;
        sscanf(line, "RESULT frames=%u", &frames);
    }
    if (checked == 0 || !have_first || !have_combined || frames == 0) {
        fprintf(stderr, "harness: missing FRAME/STATS/RESULT lines\n");
        return 103;
    }
    if (combined != expected_combined(first, frames)) {
        fprintf(stderr, "harness: combined %08x, expected %08x\n", combined, expected_combined(first, frames));
        return 104;
    }
    fprintf(stderr, "harness: %u FRAME sums and the combined value over %u frames match the device\n", checked,
            frames);
    return 0;
}
