/*
 * PVH entry, long-mode switch and the drop to ring 3.
 *
 * The loader (our VMM or QEMU) enters pvh_entry in 32-bit flat protected mode with paging off and
 * EBX = physical address of hvm_start_info. Everything here runs at CPL0, which the target host emulates
 * instruction by instruction, so it does the minimum: load our GDT, enable PAE paging with page tables
 * that were generated at build time, enter 64-bit mode, let cpl0_init() install the IDT/TSS, then IRETQ
 * to ring 3 with IOPL 3. The rest of the program never returns to CPL0 except through an exception.
 */
#include "layout.h"

/* ---- Xen PVH ELF note: XEN_ELFNOTE_PHYS32_ENTRY (type 18), name "Xen", 4-byte physical entry ---- */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4            /* namesz: "Xen\0" */
    .long 4            /* descsz */
    .long 18           /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_entry
    .balign 4

/* ---- 32-bit entry ---- */
    .section .text.entry, "ax"
    .code32
    .globl pvh_entry
pvh_entry:
    cli
    cld
    movl %ebx, pvh_start_info_paddr      /* low half of a u64 in .data; high half stays 0 */
    rdtsc                                /* for the boot-time figure in the STATS line */
    movl %eax, tsc_at_entry
    movl %edx, tsc_at_entry + 4
    lgdt gdt_pointer
    movw $SEL_KERNEL_DATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl $kernel_stack_top, %esp

    /* CR4: PAE (5), OSFXSR (9), OSXMMEXCPT (10): SSE state usable should the compiler ever emit it. */
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    movl %eax, %cr4
    movl $pml4, %eax
    movl %eax, %cr3
    /* EFER.LME */
    movl $0xC0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    wrmsr
    /* CR0: PE, MP, PG on; EM, TS off. */
    movl %cr0, %eax
    andl $~((1 << 2) | (1 << 3)), %eax
    orl $((1 << 0) | (1 << 1) | (1 << 31)), %eax
    movl %eax, %cr0
    ljmp $SEL_KERNEL_CODE, $long_mode_entry

/* ---- 64-bit, still CPL0 ---- */
    .code64
long_mode_entry:
    movw $SEL_KERNEL_DATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movabsq $kernel_stack_top, %rsp
    call cpl0_init

    /* Ring-3 data selectors (DPL 3), then IRETQ into user mode with IOPL 3 and IF clear. */
    movw $SEL_USER_DATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    pushq $SEL_USER_DATA
    movabsq $user_stack_top, %rax
    pushq %rax
    pushq $USER_RFLAGS
    pushq $SEL_USER_CODE
    movabsq $user_entry, %rax
    pushq %rax
    iretq

/* ---- ring 3 from here on ---- */
user_entry:
    /* Zero .bss at native speed. Loaders zero p_memsz beyond p_filesz already; this makes the program
     * independent of that. Nothing that CPL0 wrote lives in .bss (see linker.ld). */
    movabsq $__bss_start, %rdi
    movabsq $__bss_end, %rcx
    subq %rdi, %rcx
    xorl %eax, %eax
    rep stosb
    xorl %ebp, %ebp
    call fw_main                  /* returns an exit code */
    movl %eax, %edi
    call fw_exit                  /* does not return */
1:  pause
    jmp 1b

/* ---- exception entry stubs (CPL0 via the IDT) ---- */
/* Vectors that push an error code: 8, 10-14, 17, 21, 29, 30. The others get a dummy 0 so the frame is uniform. */
.macro EXC_STUB vec
    .balign 16
exc_stub_\vec:
    .if (\vec == 8) || (\vec >= 10 && \vec <= 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
    .else
    pushq $0
    .endif
    pushq $\vec
    jmp exception_common
.endm

    .section .text
    .altmacro
    .set vec, 0
    .rept 32
    EXC_STUB %vec
    .set vec, vec + 1
    .endr

exception_common:
    /* Stack: vector, error code, RIP, CS, RFLAGS, RSP, SS. Save every GPR: the handler may resume the
     * interrupted code (emulated port I/O), which must find its registers intact. */
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    movq %rsp, %rbx               /* callee-saved: the frame pointer survives the call */
    andq $~0xF, %rsp              /* SysV alignment for the C call */
    call cpl0_exception           /* returns only when the fault was handled; otherwise reports and exits */
    movq %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp                /* vector and error code */
    iretq

/* Table of stub addresses for cpl0_init(). */
    .section .rodata
    .balign 8
    .globl exception_stub_table
.macro EXC_STUB_ADDR vec
    .quad exc_stub_\vec
.endm
exception_stub_table:
    .set vec, 0
    .rept 32
    EXC_STUB_ADDR %vec
    .set vec, vec + 1
    .endr
    .noaltmacro

/* ---- descriptor tables (in .data: CPL0 writes the TSS descriptor before ring 3 zeroes .bss) ---- */
    .section .data
    .balign 16
    .globl gdt
gdt:
    .quad 0                       /* null */
    .quad 0x00AF9A000000FFFF      /* 0x08 kernel code, 64-bit, DPL 0 */
    .quad 0x00CF92000000FFFF      /* 0x10 kernel data, DPL 0 (also flat 32-bit for the PVH entry) */
    .quad 0x00CFF2000000FFFF      /* 0x18 user data, DPL 3 */
    .quad 0x00AFFA000000FFFF      /* 0x20 user code, 64-bit, DPL 3 */
    .quad 0                       /* 0x28 TSS, low half: filled by cpl0_init() */
    .quad 0                       /*      TSS, high half */
gdt_end:
    .balign 8
    .globl gdt_pointer
gdt_pointer:
    .word gdt_end - gdt - 1
    .quad gdt                     /* lgdt in 32-bit mode reads 6 bytes; the upper half is 0 anyway */

    .balign 8
    .globl pvh_start_info_paddr
pvh_start_info_paddr:
    .quad 0
    .globl tsc_at_entry
tsc_at_entry:
    .quad 0

/* ---- page tables: identity map of [0, MAPPED_LIMIT) with 2 MiB pages, U/S set everywhere ---- */
/* Entry bits: P (0x1), RW (0x2), US (0x4), PWT (0x8), PCD (0x10), PS (0x80). The 3-4 GiB hole (PCI MMIO, ECAM,
 * IOAPIC, LAPIC) is mapped uncached; everything else (RAM and the 64-bit window with the RAM-backed
 * shared-memory BAR) write-back. */
    .section .data.pagetables, "aw"
    .balign 4096
pml4:
    .quad pdpt + 0x7
    .fill 511, 8, 0
    .balign 4096
pdpt:
    .set i, 0
    .rept MAPPED_GIB
    .quad page_directories + i * 4096 + 0x7
    .set i, i + 1
    .endr
    .fill 512 - MAPPED_GIB, 8, 0
    .balign 4096
page_directories:
    .set i, 0
    .rept MAPPED_GIB * 512
    .if (i >= 3 * 512) && (i < 4 * 512)
    .quad (i << 21) | 0x9F
    .else
    .quad (i << 21) | 0x87
    .endif
    .set i, i + 1
    .endr

/* ---- stacks (not zeroed: .noinit lies outside __bss_start..__bss_end) ---- */
    .section .noinit, "aw", @nobits
    .balign 4096
    .skip KERNEL_STACK_SIZE
    .globl kernel_stack_top
kernel_stack_top:
    .skip 4096
    .globl df_stack_top
df_stack_top:
    .balign 4096
    .skip USER_STACK_SIZE
user_stack_top:
