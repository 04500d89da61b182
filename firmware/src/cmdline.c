#include <stdbool.h>

#include "cmdline.h"
#include "exit_codes.h"
#include "layout.h"
#include "serial.h"
#include "util.h"

#define HVM_START_MAGIC 0x336ec578
#define MAX_CMDLINE 4096

/* Copies a command-line key into `out` (NUL-terminated, truncated) for messages. */
static const char *key_text(const char *key, size_t key_len, char out[32])
{
    size_t n = key_len < 31 ? key_len : 31;
    memcpy(out, key, n);
    out[n] = 0;
    return out;
}

static bool key_is(const char *key, size_t key_len, const char *name)
{
    return strlen(name) == key_len && memcmp(key, name, key_len) == 0;
}

static uint64_t parse_number(const char *key, size_t key_len, const char *v, size_t n, uint64_t min, uint64_t max)
{
    uint64_t value = 0;
    unsigned base = 10;
    size_t i = 0;
    if (n > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (i == n)
        goto bad;
    for (; i < n; i++) {
        char c = v[i];
        unsigned digit;
        if (c >= '0' && c <= '9')
            digit = (unsigned)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            digit = (unsigned)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            digit = (unsigned)(c - 'A' + 10);
        else
            goto bad;
        if (value > (max - digit) / base)
            goto bad;
        value = value * base + digit;
    }
    if (value < min)
        goto bad;
    return value;
bad:;
    char name[32];
    fw_fail(EXIT_BAD_CMDLINE, "parameter %s needs a number in [%lu, %lu]", key_text(key, key_len, name),
            (unsigned long)min, (unsigned long)max);
}

static void set_defaults(struct fw_params *p)
{
    *p = (struct fw_params){
        .mode = MODE_MEDIA,
        .device_id = 0,
        .width = 640,
        .height = 480,
        .format = "YUYV",
        .frames = 300,
        .buffers = 4,
        .print_first = 3,
        .print_every = 100,
        .timeout_ms = 5000,
        .queue_size = 64,
        .rng_bytes = 4096,
        .mmap_rw = 0,
        .checksum_printed_only = 0,
        .attacks = 0,
        .attacks_len = 0,
        .a_sessions = 64,
        .a_buffers = 32,
        .a_events = 4096,
        .storm = 100000,
        .bystander_frames = 3,
        .ecam = 0xE0000000,
    };
}

static void apply(struct fw_params *p, const char *key, size_t kn, const char *v, size_t vn)
{
    if (key_is(key, kn, "mode")) {
        if (vn == 5 && memcmp(v, "media", 5) == 0)
            p->mode = MODE_MEDIA;
        else if (vn == 3 && memcmp(v, "rng", 3) == 0)
            p->mode = MODE_RNG;
        else if (vn == 6 && memcmp(v, "attack", 6) == 0)
            p->mode = MODE_ATTACK;
        else
            fw_fail(EXIT_BAD_CMDLINE, "mode must be media, rng or attack");
    } else if (key_is(key, kn, "device")) {
        p->device_id = (uint16_t)parse_number(key, kn, v, vn, 0x1000, 0x107F);
    } else if (key_is(key, kn, "width")) {
        p->width = (uint32_t)parse_number(key, kn, v, vn, 1, 16384);
    } else if (key_is(key, kn, "height")) {
        p->height = (uint32_t)parse_number(key, kn, v, vn, 1, 16384);
    } else if (key_is(key, kn, "format")) {
        if (vn != 4)
            fw_fail(EXIT_BAD_CMDLINE, "format must be a four-character code such as YUYV or NV12");
        memcpy(p->format, v, 4);
        p->format[4] = 0;
    } else if (key_is(key, kn, "frames")) {
        p->frames = (uint32_t)parse_number(key, kn, v, vn, 1, 100000000);
    } else if (key_is(key, kn, "buffers")) {
        p->buffers = (uint32_t)parse_number(key, kn, v, vn, 1, 32);
    } else if (key_is(key, kn, "print_first")) {
        p->print_first = (uint32_t)parse_number(key, kn, v, vn, 0, 100000000);
    } else if (key_is(key, kn, "print_every")) {
        p->print_every = (uint32_t)parse_number(key, kn, v, vn, 0, 100000000);
    } else if (key_is(key, kn, "timeout_ms")) {
        p->timeout_ms = (uint32_t)parse_number(key, kn, v, vn, 1, 600000);
    } else if (key_is(key, kn, "queue_size")) {
        p->queue_size = (uint32_t)parse_number(key, kn, v, vn, 2, 256);
        if (p->queue_size & (p->queue_size - 1))
            fw_fail(EXIT_BAD_CMDLINE, "queue_size must be a power of two");
    } else if (key_is(key, kn, "rng_bytes")) {
        p->rng_bytes = (uint32_t)parse_number(key, kn, v, vn, 1, 1u << 30);
    } else if (key_is(key, kn, "checksum")) {
        if (vn == 3 && memcmp(v, "all", 3) == 0)
            p->checksum_printed_only = 0;
        else if (vn == 7 && memcmp(v, "printed", 7) == 0)
            p->checksum_printed_only = 1;
        else
            fw_fail(EXIT_BAD_CMDLINE, "checksum must be all or printed");
    } else if (key_is(key, kn, "mmap_rw")) {
        p->mmap_rw = (uint32_t)parse_number(key, kn, v, vn, 0, 1);
    } else if (key_is(key, kn, "attack")) {
        if (vn == 0)
            fw_fail(EXIT_BAD_CMDLINE, "attack needs NAME[+NAME...] or all");
        p->attacks = v;
        p->attacks_len = (uint32_t)vn;
    } else if (key_is(key, kn, "a_sessions")) {
        p->a_sessions = (uint32_t)parse_number(key, kn, v, vn, 1, 4096);
    } else if (key_is(key, kn, "a_buffers")) {
        p->a_buffers = (uint32_t)parse_number(key, kn, v, vn, 1, 32);
    } else if (key_is(key, kn, "a_events")) {
        p->a_events = (uint32_t)parse_number(key, kn, v, vn, 16, 1u << 20);
    } else if (key_is(key, kn, "storm")) {
        p->storm = (uint32_t)parse_number(key, kn, v, vn, 0, 100000000);
    } else if (key_is(key, kn, "bystander_frames")) {
        p->bystander_frames = (uint32_t)parse_number(key, kn, v, vn, 1, 1000);
    } else if (key_is(key, kn, "ecam")) {
        p->ecam = parse_number(key, kn, v, vn, 0, 0xF0000000);
    } else {
        /* Unknown keys are errors: a typo must not silently run the defaults. */
        char name[32];
        fw_fail(EXIT_BAD_CMDLINE, "unknown parameter '%s'", key_text(key, kn, name));
    }
}

/*
 * Parameters the VMM adds to every command line for Linux guests (console, reset and panic policy, host-profile
 * CPU masks, driver options with a dot). They mean nothing here; skipping them lets `vmm run` start this payload
 * like a kernel. Any other unknown word is still an error.
 */
static bool is_kernel_parameter(const char *word, size_t len)
{
    static const char *const names[] = { "console", "reboot", "panic", "quiet", "noxsave", "clearcpuid", "rodata" };
    size_t key_len = 0;
    while (key_len < len && word[key_len] != '=')
        key_len++;
    for (size_t k = 0; k < key_len; k++)
        if (word[k] == '.')
            return true;
    for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++)
        if (key_is(word, key_len, names[n]))
            return true;
    return false;
}

void cmdline_parse_text(const char *cmd, struct fw_params *out)
{
    set_defaults(out);
    size_t i = 0;
    while (i < MAX_CMDLINE && cmd[i]) {
        while (i < MAX_CMDLINE && cmd[i] == ' ')
            i++;
        size_t start = i;
        while (i < MAX_CMDLINE && cmd[i] && cmd[i] != ' ')
            i++;
        if (i == start)
            break;
        const char *word = cmd + start;
        size_t len = i - start;
        if (is_kernel_parameter(word, len))
            continue;
        size_t eq = 0;
        while (eq < len && word[eq] != '=')
            eq++;
        if (eq == len || eq == 0)
            fw_fail(EXIT_BAD_CMDLINE, "command-line words must be key=value");
        apply(out, word, eq, word + eq + 1, len - eq - 1);
    }
    if (i == MAX_CMDLINE)
        fw_fail(EXIT_BAD_CMDLINE, "command line longer than %d bytes", MAX_CMDLINE);

    if (out->device_id == 0)
        out->device_id = out->mode == MODE_RNG ? 0x1044 : 0x1070;
    out->fourcc = (uint32_t)(uint8_t)out->format[0] | (uint32_t)(uint8_t)out->format[1] << 8
                  | (uint32_t)(uint8_t)out->format[2] << 16 | (uint32_t)(uint8_t)out->format[3] << 24;
}

void cmdline_parse(uint64_t start_info_paddr, struct fw_params *out)
{
    if (start_info_paddr == 0 || start_info_paddr + 64 > MAPPED_LIMIT)
        fw_fail(EXIT_BAD_CMDLINE, "no hvm_start_info (EBX=0x%lx)", (unsigned long)start_info_paddr);
    const uint8_t *si = (const uint8_t *)(uintptr_t)start_info_paddr;
    if (get_le32(si) != HVM_START_MAGIC)
        fw_fail(EXIT_BAD_CMDLINE, "hvm_start_info magic is 0x%x, expected 0x%x", get_le32(si), HVM_START_MAGIC);
    uint64_t cmdline_paddr = get_le64(si + 24);
    const char *cmd = "";
    if (cmdline_paddr != 0) {
        if (cmdline_paddr + MAX_CMDLINE > MAPPED_LIMIT)
            fw_fail(EXIT_BAD_CMDLINE, "cmdline_paddr 0x%lx outside the mapped range", (unsigned long)cmdline_paddr);
        cmd = (const char *)(uintptr_t)cmdline_paddr;
    }
    cmdline_parse_text(cmd, out);
}
