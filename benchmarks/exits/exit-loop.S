/* The exit-cost guest: a PVH ELF whose 32-bit entry writes COUNT bytes to port 0x80 (one VM exit each, handled by
 * nothing), then writes 0 to the debug-exit port 0x501 to end the run. Built by the performance lab with
 * -DCOUNT=N and linked with firmware/linker.ld (loaded at 1 MiB, PVH note in a PT_NOTE). The same file runs under
 * vmm and under kvm-loop.c. */
#ifndef COUNT
#error "build with -DCOUNT=N"
#endif

    .section .note.Xen, "a", @note
    .align 4
    .long 4                 /* namesz: "Xen\0" */
    .long 4                 /* descsz: a 32-bit physical address */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .align 4
    .long pvh_entry

    .section .text.entry, "ax"
    .code32
    .globl pvh_entry
pvh_entry:
    cli
    mov $COUNT, %ecx
    mov $0x80, %dx
    xor %eax, %eax
1:  test %ecx, %ecx
    jz 2f
    out %al, %dx
    dec %ecx
    jmp 1b
2:  mov $0x501, %dx
    out %al, %dx            /* al = 0: exit status 0 */
3:  hlt
    jmp 3b
