/* media-stream: the end-to-end test payload. Everything here runs in ring 3 on x86_64 (see boot.S), at EL1 on arm64
 * (arm64/boot.S); arch.h has the few differences. */
#include "arch.h"
#include "attack.h"
#include "checksum.h"
#include "cmdline.h"
#include "exit_codes.h"
#include "pci.h"
#include "serial.h"
#include "timer.h"
#include "util.h"
#include "virtio_media.h"
#include "virtio_pci.h"

#define VIRTIO_VENDOR_ID 0x1AF4
#define RNG_CHUNK 1024

int fw_main(void);

static struct virtio_pci vp;
static struct media_dev media_dev;
static struct media media;
static struct virtq rngq;
static uint8_t rng_buf[RNG_CHUNK] __attribute__((aligned(64)));

/* Elapsed time in microseconds, 0 when the TSC is not calibrated. */
static uint64_t elapsed_us(uint64_t ticks)
{
    uint64_t hz = timer_tsc_hz();
    if (hz == 0)
        return 0;
    return ticks / hz * 1000000 + ticks % hz * 1000000 / hz;
}

static uint64_t tsc_at_main;

/* One line with where the time went: CPL0 setup (emulated on PVM hosts), then everything in ring 3. */
static void print_timing(void)
{
    uint64_t now = rdtsc();
    fw_printf("TIMING entry_to_ring3_us=%lu ring3_us=%lu port_io_traps=%lu\n",
              elapsed_us(tsc_at_main - arch_entry_ticks()), elapsed_us(now - tsc_at_main), arch_port_io_traps());
}

static void fourcc_text(uint32_t fourcc, char out[5])
{
    for (int i = 0; i < 4; i++) {
        char c = (char)(fourcc >> (8 * i));
        out[i] = c >= 0x20 && c < 0x7F ? c : '?';
    }
    out[4] = 0;
}

static int run_rng(const struct fw_params *p)
{
    virtio_pci_setup_queue(&vp, &rngq, 0, 0, (uint16_t)p->queue_size);
    virtio_pci_driver_ok(&vp);

    uint32_t total = 0, requests = 0;
    uint32_t seen[8] = { 0 }; /* bitmap of byte values seen */
    uint32_t crc_of_crcs = 0;
    uint64_t t0 = rdtsc();
    while (total < p->rng_bytes) {
        uint32_t want = p->rng_bytes - total < RNG_CHUNK ? p->rng_bytes - total : RNG_CHUNK;
        memset(rng_buf, 0, want);
        struct virtq_buf b = { rng_buf, want };
        virtq_add(&rngq, &b, 0, 1, requests);
        virtq_kick(&rngq);
        uint32_t cookie, len;
        virtq_wait(&rngq, &cookie, &len, p->timeout_ms, "virtio-rng request");
        if (cookie != requests)
            fw_fail(EXIT_RING_ERROR, "rng: completion for request %u, expected %u", cookie, requests);
        if (len == 0)
            fw_fail(EXIT_RNG_DATA, "rng: request %u returned no bytes", requests);
        for (uint32_t i = 0; i < len; i++)
            seen[rng_buf[i] >> 5] |= 1u << (rng_buf[i] & 31);
        uint32_t crc = frame_checksum(rng_buf, len);
        crc_of_crcs = frame_checksum(&crc, sizeof(crc)) ^ crc_of_crcs * 31;
        total += len;
        requests++;
    }
    uint64_t dt = rdtsc() - t0;
    uint32_t distinct = 0;
    for (int i = 0; i < 256; i++)
        distinct += (seen[i >> 5] >> (i & 31)) & 1; /* no popcnt: baseline x86-64 */
    fw_printf("RNG bytes=%u requests=%u distinct_values=%u time_us=%lu\n", total, requests, distinct, elapsed_us(dt));
    /* Random data of >= 1 KiB covers far more than 16 byte values; zeros or a constant fill would not. */
    uint32_t need = total >= 1024 ? 128 : 2;
    if (distinct < need)
        fw_fail(EXIT_RNG_DATA, "rng: only %u distinct byte values in %u bytes", distinct, total);
    print_timing();
    fw_printf("RESULT mode=rng bytes=%u requests=%u\n", total, requests);
    return EXIT_OK;
}

static int run_media(const struct fw_params *p)
{
    struct media *m = &media;
    media_dev_start(&media_dev, &vp, 0, (uint16_t)p->queue_size, p->timeout_ms, false);
    media_open(m, &media_dev);

    struct media_format fmt;
    media_set_format(m, p->width, p->height, p->fourcc, &fmt);
    char got[5];
    fourcc_text(fmt.fourcc, got);
    fw_printf("FORMAT %ux%u %s bytesperline=%u sizeimage=%u\n", fmt.width, fmt.height, got, fmt.bytesperline,
              fmt.sizeimage);
    if (fmt.width != p->width || fmt.height != p->height || fmt.fourcc != p->fourcc)
        fw_fail(EXIT_MEDIA_REPLY, "S_FMT answered %ux%u %s, asked for %ux%u %s", fmt.width, fmt.height, got, p->width,
                p->height, p->format);
    if (fmt.sizeimage == 0)
        fw_fail(EXIT_MEDIA_REPLY, "S_FMT answered sizeimage 0");

    uint32_t n = media_request_buffers(m, p->buffers);
    media_map_buffers(m, fmt.sizeimage, p->mmap_rw != 0);
    for (uint32_t i = 0; i < n; i++)
        media_queue_buffer(m, i);
    media_stream(m, true);

    uint64_t t_start = rdtsc();
    uint64_t checksum_ticks = 0;
    uint64_t checksum_bytes = 0;
    uint32_t combined = 0;
    uint32_t first_seq = 0, last_seq = 0, gaps = 0;
    uint64_t t_stream = 0, t_first = 0;
    for (uint32_t count = 0; count < p->frames; count++) {
        struct media_frame f;
        media_wait_frame(m, &f);
        /* The rate runs from the first frame's arrival to the last one's (STREAMON latency and checking the last
         * frame are not part of it); a single frame is timed from STREAMON. */
        if (count == 0)
            t_first = rdtsc();
        if (count + 1 == p->frames)
            t_stream = rdtsc() - (p->frames > 1 ? t_first : t_start);
        const struct media_buffer *b = &m->bufs[f.index];
        bool printed = count < p->print_first || (p->print_every != 0 && count % p->print_every == 0) || count + 1 == p->frames;
        uint32_t sum = 0;
        if (printed || !p->checksum_printed_only) {
            uint64_t c0 = rdtsc();
            sum = frame_checksum(b->data, f.bytesused);
            checksum_ticks += rdtsc() - c0;
            checksum_bytes += f.bytesused;
            /* One value over every (sequence, sum) pair, so the host can verify all frames from one line. */
            uint32_t record[2] = { f.sequence, sum };
            combined = frame_checksum(record, sizeof(record)) ^ (combined * 0x9E3779B1u);
        }
        if (count == 0)
            first_seq = f.sequence;
        else if (f.sequence <= last_seq)
            /* Gaps are dropped frames (allowed); a repeat or a step back is a duplicated or stale event. */
            fw_fail(EXIT_MEDIA_EVENT, "frame sequence went from %u to %u (buffer %u)", last_seq, f.sequence, f.index);
        else if (f.sequence != last_seq + 1)
            gaps++;
        last_seq = f.sequence;
        if (printed)
            fw_printf("FRAME seq=%u bytes=%u sum=%016lx\n", f.sequence, f.bytesused, (uint64_t)sum);
        if (count + 1 < p->frames)
            media_queue_buffer(m, f.index);
    }

    media_stream(m, false);
    unsigned late = media_drain_events(m);
    media_request_buffers(m, 0);
    media_unmap_buffers(m);
    media_close(m);

    uint64_t us = elapsed_us(t_stream);
    uint64_t intervals = p->frames > 1 ? p->frames - 1 : 1;
    uint64_t fps_x100 = us ? intervals * 100000000ull / us : 0;
    uint64_t cs_us = elapsed_us(checksum_ticks);
    fw_printf("STATS seq_first=%u seq_last=%u seq_gaps=%u late_events=%u other_events=%u stream_us=%lu "
              "checksum_us=%lu checksum_MBps=%lu combined=%08x\n",
              first_seq, last_seq, gaps, late, media_dev.events_ignored, us, cs_us, cs_us ? checksum_bytes / cs_us : 0,
              combined);
    print_timing();
    fw_printf("RESULT frames=%u width=%u height=%u format=%s fps=%lu.%02lu checksum_mismatch=0\n", p->frames,
              fmt.width, fmt.height, got, fps_x100 / 100, fps_x100 % 100);
    return EXIT_OK;
}

int fw_main(void)
{
    tsc_at_main = rdtsc();
    serial_init();
    fw_printf("\nmedia-stream firmware: " ARCH_BANNER "\n");
    struct fw_params p;
    arch_parse_cmdline(&p);
    uint64_t hz = timer_init();
    const char *crc = checksum_init();
    static const char kat[] = "123456789";
    if (frame_checksum(kat, 9) != 0xE3069283u)
        fw_fail(EXIT_CHECKSUM_MISMATCH, "CRC-32C self-test failed (%s)", crc);
    fw_printf("CONFIG mode=%s device=0x%x tsc_hz=%lu (%s) checksum=%s\n",
              p.mode == MODE_RNG ? "rng" : p.mode == MODE_ATTACK ? "attack" : "media", p.device_id, hz,
              timer_source(), crc);
    if (p.mode == MODE_ATTACK)
        return attack_main(&p);

    struct pci_dev dev;
    if (!pci_find(VIRTIO_VENDOR_ID, p.device_id, &dev))
        fw_fail(EXIT_DEVICE_NOT_FOUND, "no PCI function %04x:%04x on bus 0", VIRTIO_VENDOR_ID, p.device_id);
    pci_setup_bars_and_enable(&dev);
    fw_printf("PCI %02x:%02x.%x %04x:%04x rev %u", dev.bus, dev.dev, dev.fn, dev.vendor_id, dev.device_id,
              dev.revision);
    for (int i = 0; i < 6; i++)
        if (dev.bars[i].size)
            fw_printf(" bar%d=0x%lx/0x%lx%s", i, dev.bars[i].base, dev.bars[i].size,
                      dev.bars[i].is_io ? "io" : dev.bars[i].is_64bit ? "m64" : "m32");
    fw_printf("\n");

    virtio_pci_probe(&vp, &dev);
    virtio_pci_negotiate(&vp, p.timeout_ms);
    return p.mode == MODE_RNG ? run_rng(&p) : run_media(&p);
}
