/* arm64 exceptions: boot.S's VBAR_EL1 table saves the registers and calls arm64_exception(), which reports and
 * ends the run with EXIT_CPU_EXCEPTION, as the x86_64 IDT handlers do. Nothing is resumed. */
#include <stdint.h>

#include "../exit_codes.h"
#include "../serial.h"
#include "arch.h"

/* Layout written by boot.S (exception_common). */
struct arm64_frame {
    uint64_t x[31];
    uint64_t sp_el0;
    uint64_t sp_el1;    /* SP_EL1 at the exception (the frame's top) */
    uint64_t elr, spsr, esr, far;
    uint64_t pad;
};
_Static_assert(sizeof(struct arm64_frame) == 304, "frame layout shared with boot.S");

void arm64_exception(const struct arm64_frame *f, uint64_t vector) __attribute__((noreturn));

void arm64_exception(const struct arm64_frame *f, uint64_t vector)
{
    static int nested;
    if (nested++)
        fw_exit(EXIT_CPU_EXCEPTION); /* faulted while reporting: no second report */
    static const char *const kinds[4] = { "sync", "irq", "fiq", "serror" };
    static const char *const sources[4] = { "el1t", "el1h", "el0_64", "el0_32" };
    uint32_t ec = (uint32_t)(f->esr >> 26) & 0x3F;
    fw_printf("EXCEPTION vector=%lu (%s_%s) esr=0x%lx ec=0x%x elr=0x%lx far=0x%lx spsr=0x%lx sp_el0=0x%lx "
              "sp_el1=0x%lx\n",
              vector, kinds[vector & 3], sources[(vector >> 2) & 3], f->esr, ec, f->elr, f->far, f->spsr, f->sp_el0,
              f->sp_el1);
    for (int i = 0; i < 31; i += 4) {
        for (int j = i; j < i + 4 && j < 31; j++)
            fw_printf("%sx%d=%016lx", j == i ? "" : " ", j, f->x[j]);
        fw_printf("\n");
    }
    fw_printf("image=0x%lx (elr - image = 0x%lx)\n", arm64_image_base, f->elr - arm64_image_base);
    fw_exit(EXIT_CPU_EXCEPTION);
}
