/* Exit codes written to the debug-exit port (0x501). Our VMM exits with the value itself; QEMU's isa-debug-exit
 * exits with (value << 1) | 1. Keep this list in sync with firmware/README.md. */
#ifndef FW_EXIT_CODES_H
#define FW_EXIT_CODES_H

enum fw_exit_code {
    EXIT_OK = 0,
    EXIT_BAD_CMDLINE = 2,        /* unknown key, malformed number, value out of range, bad start_info */
    EXIT_CPU_EXCEPTION = 3,      /* a CPU exception reached the IDT (message has vector, error code, RIP) */
    EXIT_DEVICE_NOT_FOUND = 4,   /* no PCI function with vendor 0x1AF4 and the wanted device id on bus 0 */
    EXIT_PCI_ERROR = 5,          /* BAR or virtio capability missing/inconsistent, BAR outside the mapped range */
    EXIT_VIRTIO_INIT = 6,        /* reset did not complete, VERSION_1 not offered, FEATURES_OK refused, bad queue */
    EXIT_TIMEOUT = 7,            /* the device did not answer a command / produce an event in time */
    EXIT_RING_ERROR = 8,         /* the device returned a bad used element (id, length) */
    EXIT_MEDIA_STATUS = 9,       /* a virtio-media command answered with a non-zero errno */
    EXIT_MEDIA_REPLY = 10,       /* a virtio-media reply was too short or inconsistent (format, buffers, MMAP) */
    EXIT_MEDIA_EVENT = 11,       /* ERROR event, or a malformed/unexpected event */
    EXIT_FRAME_ERROR = 12,       /* a DQBUF event for a frame flagged ERROR or with bytesused > buffer length */
    EXIT_CHECKSUM_MISMATCH = 13, /* a frame checksum differed from the expected value (when one is known) */
    EXIT_RNG_DATA = 14,          /* the rng device returned no data or only zero bytes */
    EXIT_ATTACK_ANSWER = 15,     /* attack mode: the attacked device answered other than the VMM promises */
    EXIT_BYSTANDER = 16,         /* attack mode: a bystander session lost a frame, got a bad one, or stalled */
};

/* Writes the code to port 0x501 and stops. Callable at any privilege level (IOPL 3). */
__attribute__((noreturn)) void fw_exit(int code);

/* Prints "FAIL <code>: <message>" and exits with the code. */
__attribute__((noreturn, format(printf, 2, 3))) void fw_fail(int code, const char *fmt, ...);

#endif
