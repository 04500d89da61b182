/* Parameters from the command line (PVH on x86_64, /chosen/bootargs on arm64): space-separated key=value pairs. */
#ifndef FW_CMDLINE_H
#define FW_CMDLINE_H

#include <stdint.h>

enum fw_mode { MODE_MEDIA, MODE_RNG, MODE_ATTACK };

struct fw_params {
    enum fw_mode mode;
    uint16_t device_id;     /* PCI device id to look for (vendor is always 0x1AF4) */
    uint32_t width, height;
    uint32_t fourcc;
    char format[5];
    uint32_t frames;        /* frames to stream before stopping */
    uint32_t buffers;       /* MMAP buffers to request */
    uint32_t print_first;   /* FRAME lines for the first N frames ... */
    uint32_t print_every;   /* ... then every Nth frame (0 = never) */
    uint32_t timeout_ms;    /* per command / per frame */
    uint32_t queue_size;    /* upper bound for both virtqueues */
    uint32_t rng_bytes;     /* mode=rng: how many random bytes to read */
    uint32_t mmap_rw;       /* 1: ask for read-write MMAP mappings */
    uint32_t checksum_printed_only; /* 1: checksum only frames with a FRAME line (large frames at full rate) */
    /* mode=attack (see attack.h) */
    const char *attacks;    /* "NAME+NAME..." from the command line (not NUL-terminated), or 0 for all */
    uint32_t attacks_len;
    uint32_t a_sessions;    /* device A's limits, as given to its --media spec (max-sessions, ...) */
    uint32_t a_buffers;
    uint32_t a_events;
    uint32_t storm;         /* notifies in the notify storm */
    uint32_t bystander_frames; /* frames each bystander must deliver after each attack */
    uint64_t ecam;          /* PCI ECAM base (the VMM's layout), 0 = no ECAM accesses */
};

/* Reads hvm_start_info at `start_info_paddr` and the command line it points to; fails with EXIT_BAD_CMDLINE.
 * (x86_64 PVH; arm64 finds the line in the device tree, arm64/fdt.c.) */
void cmdline_parse(uint64_t start_info_paddr, struct fw_params *out);

/* Parses the NUL-terminated command line `cmd` (at most 4096 bytes are read) into `out`, defaults first; fails
 * with EXIT_BAD_CMDLINE. */
void cmdline_parse_text(const char *cmd, struct fw_params *out);

#endif
