/*
 * arm64 entry: the Linux arm64 Image header, self-relocation, the identity map, caches on, the exception vectors,
 * then fw_main().
 *
 * The loader (our VMM, or QEMU's -kernel) treats the file as a Linux arm64 Image (Documentation/arch/arm64/
 * booting.rst): it places it at a 2 MiB-aligned base + text_offset (0) in RAM and jumps to offset 0 at EL1 with
 * the MMU and caches off, interrupts masked, x0 = physical address of the device tree. The image is linked at
 * LINK_BASE (0x40000000) as a static PIE. All code addresses are PC-relative; the absolute pointers in data (string
 * tables and the like) are R_AARCH64_RELATIVE relocations, applied here for wherever the image really is, so it
 * runs at any 4 KiB-aligned address in RAM (header flags bit 3: "anywhere").
 *
 * Order: check EL1 and the alignment, build the page tables with the MMU off (only PC-relative addressing, no
 * memory but the tables is written), invalidate them from the caches, turn on the MMU and caches, then apply the
 * relocations, clear .bss, install VBAR_EL1, switch to our stacks and call fw_main (C from there on).
 */
#include "layout.h"

#define R_AARCH64_RELATIVE 1027
#define EXIT_BAD_BOOT 2             /* EXIT_BAD_CMDLINE: "bad command line or boot information" */

/* Block descriptors (level 1, 1 GiB): valid block (0b01), AttrIndx, SH, AF, PXN/UXN. */
#define DESC_BLOCK      0x1
#define DESC_TABLE      0x3
#define ATTR_DEVICE     (0 << 2)    /* MAIR attr 0: Device-nGnRE */
#define ATTR_NORMAL     (1 << 2)    /* MAIR attr 1: Normal, inner/outer write-back read/write-allocate */
#define SH_INNER        (3 << 8)
#define AF              (1 << 10)
#define PXN             (1 << 53)
#define UXN             (1 << 54)
#define BLOCK_DEVICE    (DESC_BLOCK | ATTR_DEVICE | AF | PXN | UXN)
#define BLOCK_NORMAL    (DESC_BLOCK | ATTR_NORMAL | SH_INNER | AF | UXN)

#define MAIR_VALUE      0xFF04      /* attr1 = 0xFF, attr0 = 0x04 */
/* TCR_EL1: T0SZ = 24 (40-bit VA: walks start at level 0), IRGN0/ORGN0 = write-back write-allocate, SH0 = inner,
 * TG0 = 4 KiB, EPD1 (no TTBR1 walks). IPS is added from ID_AA64MMFR0_EL1.PARange. */
#define TCR_VALUE       (24 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23))

#define SCTLR_M         (1 << 0)
#define SCTLR_A         (1 << 1)
#define SCTLR_C         (1 << 2)
#define SCTLR_I         (1 << 12)
#define SCTLR_WXN       (1 << 19)
#define SCTLR_E0E       (1 << 24)
#define SCTLR_EE        (1 << 25)

/* ---- the Image header (64 bytes at offset 0) ---- */
    .section .text.head, "ax"
    .globl _text
_text:
    b entry                         /* code0 */
    .long 0                         /* code1 */
    .quad 0                         /* text_offset */
    .long _image_size_lo32          /* image_size: the whole image with .bss, page tables and stacks (linker.ld) */
    .long _image_size_hi32
    .quad 0xA                       /* flags: little-endian, 4 KiB pages, 2 MiB-aligned base anywhere in RAM */
    .quad 0, 0, 0                   /* res2-res4 */
    .ascii "ARM\x64"                /* magic */
    .long 0                         /* res5 (no PE/COFF header) */

entry:
    mov x19, x0                     /* the device tree */
    isb
    mrs x20, cntvct_el0             /* for the TIMING line */
    adr x21, _text                  /* where we run */

    mrs x1, CurrentEL
    cmp x1, #(1 << 2)
    b.eq 1f
    adr x0, msg_not_el1
    b early_fail
1:  tst x21, #0xFFF
    b.eq 2f
    adr x0, msg_unaligned
    b early_fail
2:  msr daifset, #0xF
    /* MMU, caches and alignment checks off, should the loader have left them on; little-endian. */
    mrs x1, sctlr_el1
    bic x1, x1, #(SCTLR_M | SCTLR_A | SCTLR_C)
    bic x1, x1, #SCTLR_I
    bic x1, x1, #SCTLR_WXN
    bic x1, x1, #(SCTLR_EE | SCTLR_E0E)
    msr sctlr_el1, x1
    isb

    /* ---- page tables, written with the MMU off (non-cacheable) ---- */
    /* Drop any cache lines over the tables first: a dirty line evicted later would overwrite what we write. */
    adrp x0, page_tables
    mov x1, #(3 * 4096)
    bl dcache_invalidate

    adrp x2, pt_l0
    adrp x3, pt_l1_low
    adrp x4, pt_l1_high
    /* Level 0: entry 0 = [0, 512 GiB), entry 1 = [512 GiB, 1 TiB), the rest invalid. */
    orr x5, x3, #DESC_TABLE
    str x5, [x2]
    orr x5, x4, #DESC_TABLE
    str x5, [x2, #8]
    mov x6, #2
3:  str xzr, [x2, x6, lsl #3]
    add x6, x6, #1
    cmp x6, #512
    b.lo 3b
    /* Level 1, low: [0, 1 GiB) Device (MMIO, ECAM, UART, debug exit), then RAM as Normal write-back. */
    ldr x5, =BLOCK_DEVICE
    str x5, [x3]
    ldr x5, =BLOCK_NORMAL
    mov x6, #1
4:  orr x7, x5, x6, lsl #30
    str x7, [x3, x6, lsl #3]
    add x6, x6, #1
    cmp x6, #512
    b.lo 4b
    /* Level 1, high: [512 GiB, 1 TiB), the 64-bit PCI window with the RAM-backed shared memory: Normal write-back. */
    mov x6, #0
5:  add x8, x6, #512
    orr x7, x5, x8, lsl #30
    str x7, [x4, x6, lsl #3]
    add x6, x6, #1
    cmp x6, #512
    b.lo 5b
    dsb sy
    /* And again: lines the CPU may have fetched speculatively meanwhile would hide our non-cacheable writes
     * from the cacheable table walks. */
    adrp x0, page_tables
    mov x1, #(3 * 4096)
    bl dcache_invalidate

    /* ---- MMU on ---- */
    ldr x1, =MAIR_VALUE
    msr mair_el1, x1
    mrs x1, id_aa64mmfr0_el1
    and x1, x1, #0xF                /* PARange */
    cmp x1, #5
    mov x3, #5
    csel x1, x1, x3, ls             /* at most 48 bits (52 would need FEAT_LPA) */
    ldr x2, =TCR_VALUE
    orr x2, x2, x1, lsl #32         /* IPS */
    msr tcr_el1, x2
    adrp x1, pt_l0
    msr ttbr0_el1, x1
    isb
    tlbi vmalle1
    dsb nsh
    ic iallu
    dsb nsh
    isb
    mrs x1, sctlr_el1
    orr x1, x1, #SCTLR_M
    orr x1, x1, #SCTLR_C
    orr x1, x1, #SCTLR_I
    msr sctlr_el1, x1
    isb

    /* ---- relocations: *(P + delta) = addend + delta for each R_AARCH64_RELATIVE ---- */
    ldr x22, =LINK_BASE             /* a constant, not a relocated word */
    sub x22, x21, x22               /* delta = runtime base - link base */
    adrp x2, __rela_start
    add x2, x2, :lo12:__rela_start
    adrp x3, __rela_end
    add x3, x3, :lo12:__rela_end
6:  cmp x2, x3
    b.hs 7f
    ldp x4, x5, [x2], #16           /* r_offset, r_info */
    ldr x6, [x2], #8                /* r_addend */
    cmp w5, #R_AARCH64_RELATIVE
    b.ne bad_reloc
    add x6, x6, x22
    str x6, [x4, x22]
    b 6b
7:
    /* ---- .bss ---- */
    adrp x2, __bss_start
    add x2, x2, :lo12:__bss_start
    adrp x3, __bss_end
    add x3, x3, :lo12:__bss_end
8:  cmp x2, x3
    b.hs 9f
    stp xzr, xzr, [x2], #16         /* linker.ld aligns both ends to 16 */
    b 8b
9:  adrp x2, arm64_dtb_paddr
    str x19, [x2, :lo12:arm64_dtb_paddr]
    adrp x2, arm64_entry_ticks
    str x20, [x2, :lo12:arm64_entry_ticks]
    adrp x2, arm64_image_base
    str x21, [x2, :lo12:arm64_image_base]

    /* ---- vectors, stacks, FP/SIMD ---- */
    adrp x1, vectors
    add x1, x1, :lo12:vectors
    msr vbar_el1, x1
    mrs x1, cpacr_el1
    orr x1, x1, #(3 << 20)          /* FPEN: no traps (the code is built -mgeneral-regs-only anyway) */
    msr cpacr_el1, x1
    isb
    /* Exceptions run on SP_EL1 (its own stack); the program on SP_EL0 (EL1t), so a stack overflow in the
     * program still gets reported. */
    adrp x1, exception_stack_top
    add x1, x1, :lo12:exception_stack_top
    mov sp, x1
    msr spsel, #0
    adrp x1, main_stack_top
    add x1, x1, :lo12:main_stack_top
    mov sp, x1
    mov x29, #0
    mov x30, #0
    bl fw_main                      /* returns an exit code */
    bl fw_exit                      /* does not return */
10: wfi
    b 10b

bad_reloc:
    adr x0, msg_bad_reloc
    /* fall through */

/* Prints the NUL-terminated message at x0 on the PL011 (works with the MMU on or off: the UART is Device memory
 * either way), then ends the VM like fw_exit. No stack, no memory but the message. */
early_fail:
    mov x1, #UART_BASE
1:  ldrb w2, [x0], #1
    cbz w2, 3f
2:  ldr w3, [x1, #0x18]             /* FR */
    tbnz w3, #5, 2b                 /* TXFF */
    str w2, [x1]
    b 1b
3:  mov x1, #DEBUG_EXIT_BASE
    mov w2, #EXIT_BAD_BOOT
    dsb sy
    str w2, [x1]
    dsb sy
    ldr x0, =PSCI_SYSTEM_OFF
    hvc #0
4:  wfi
    b 4b

/* dcache_invalidate(x0 = start, x1 = length): DC IVAC by line (CTR_EL0.DminLine). Clobbers x0-x3. */
dcache_invalidate:
    mrs x3, ctr_el0
    ubfx x3, x3, #16, #4
    mov x2, #4
    lsl x2, x2, x3                  /* line size in bytes */
    add x1, x0, x1
    sub x3, x2, #1
    bic x0, x0, x3
1:  dc ivac, x0
    add x0, x0, x2
    cmp x0, x1
    b.lo 1b
    dsb sy
    ret

    .ltorg

msg_not_el1:
    .asciz "\r\nmedia-stream firmware: FAIL code=2: entered outside EL1 (the arm64 boot contract is EL1)\r\n"
msg_unaligned:
    .asciz "\r\nmedia-stream firmware: FAIL code=2: image not loaded at a 4 KiB-aligned address\r\n"
msg_bad_reloc:
    .asciz "\r\nmedia-stream firmware: FAIL code=2: relocation other than R_AARCH64_RELATIVE\r\n"
    .balign 4

/* ---- exception vectors: 16 entries of 0x80 bytes, 2 KiB aligned ---- */
/* Frame (struct arm64_frame in exception.c): x0-x30, sp_el0, sp_el1 (at the exception), elr, spsr, esr, far, pad:
 * 38 words = 304 bytes. */
#define FRAME_SIZE 304

.macro VECTOR index
    .balign 0x80
    sub sp, sp, #FRAME_SIZE
    stp x0, x1, [sp, #0]
    mov x1, #\index
    b exception_common
.endm

    .section .text.vectors, "ax"
    .balign 2048
vectors:
    VECTOR 0
    VECTOR 1
    VECTOR 2
    VECTOR 3
    VECTOR 4
    VECTOR 5
    VECTOR 6
    VECTOR 7
    VECTOR 8
    VECTOR 9
    VECTOR 10
    VECTOR 11
    VECTOR 12
    VECTOR 13
    VECTOR 14
    VECTOR 15

exception_common:
    stp x2, x3, [sp, #16]
    stp x4, x5, [sp, #32]
    stp x6, x7, [sp, #48]
    stp x8, x9, [sp, #64]
    stp x10, x11, [sp, #80]
    stp x12, x13, [sp, #96]
    stp x14, x15, [sp, #112]
    stp x16, x17, [sp, #128]
    stp x18, x19, [sp, #144]
    stp x20, x21, [sp, #160]
    stp x22, x23, [sp, #176]
    stp x24, x25, [sp, #192]
    stp x26, x27, [sp, #208]
    stp x28, x29, [sp, #224]
    mrs x2, sp_el0
    stp x30, x2, [sp, #240]
    add x2, sp, #FRAME_SIZE
    mrs x3, elr_el1
    stp x2, x3, [sp, #256]
    mrs x2, spsr_el1
    mrs x3, esr_el1
    stp x2, x3, [sp, #272]
    mrs x2, far_el1
    stp x2, xzr, [sp, #288]
    mov x0, sp
    mov x29, #0
    bl arm64_exception              /* reports and exits */
1:  wfi
    b 1b

/* ---- page tables and stacks: not in the file, inside image_size, not cleared with .bss ---- */
    .section .noinit, "aw", %nobits
    .balign 4096
page_tables:
pt_l0:
    .skip 4096
pt_l1_low:
    .skip 4096
pt_l1_high:
    .skip 4096
    .balign 16
    .skip EXCEPTION_STACK_SIZE
exception_stack_top:
    .skip MAIN_STACK_SIZE
main_stack_top:
