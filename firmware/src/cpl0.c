#include <stdbool.h>
#include <stdint.h>

#include "cpl0.h"
#include "exit_codes.h"
#include "io.h"
#include "layout.h"
#include "serial.h"

/* 64-bit TSS (Intel SDM vol. 3, 8.7). RSP0 is where the CPU switches to on an exception from ring 3;
 * IST1 is a separate stack for #DF. The I/O bitmap offset points past the limit: no bitmap, IOPL 3 decides. */
struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

struct idt_gate {
    uint16_t offset_lo;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_hi;
    uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct tss64) == 104, "TSS layout");
_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout");
_Static_assert(sizeof(struct pvclock_time_info) == 32, "pvclock layout");

/* Initialised (non-zero) or forced into .data so that ring 3's .bss clearing cannot wipe what CPL0 set up. */
static struct tss64 tss __attribute__((aligned(16))) = { .iomap_base = sizeof(struct tss64) };
static struct idt_gate idt[32] __attribute__((aligned(16), section(".data")));
struct clock_probe clock_probe __attribute__((section(".data")));
volatile struct pvclock_time_info kvmclock_info __attribute__((aligned(64), section(".data")));
volatile uint64_t emulated_port_io_count __attribute__((section(".data")));

extern uint64_t gdt[];
extern const uint64_t exception_stub_table[32];
extern uint8_t kernel_stack_top[];
extern uint8_t df_stack_top[];

struct __attribute__((packed)) table_pointer {
    uint16_t limit;
    uint64_t base;
};

#define GATE_INTERRUPT_DPL0 0x8E
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static inline void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)));
}

static void probe_clock(void)
{
    uint32_t a, b, c, d;
    cpuid(0x40000000, &a, &b, &c, &d);
    /* "KVMKVMKVM\0\0\0" */
    if (b == 0x4b4d564b && c == 0x564b4d56 && d == 0x0000004d) {
        uint32_t max_leaf = a;
        if (max_leaf >= 0x40000010) {
            cpuid(0x40000010, &a, &b, &c, &d);
            clock_probe.cpuid_tsc_hz = (uint64_t)a * 1000;
        }
        cpuid(0x40000001, &a, &b, &c, &d);
        if (a & KVM_FEATURE_CLOCKSOURCE2) {
            wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (uint64_t)(uintptr_t)&kvmclock_info | 1);
            clock_probe.kvmclock_enabled = 1;
        }
    }
    if (clock_probe.cpuid_tsc_hz == 0) {
        cpuid(0, &a, &b, &c, &d);
        if (a >= 0x15) {
            cpuid(0x15, &a, &b, &c, &d);
            if (a != 0 && b != 0 && c != 0)
                clock_probe.cpuid_tsc_hz = (uint64_t)c * b / a;
        }
    }
}

void cpl0_init(void)
{
    for (int v = 0; v < 32; v++) {
        uint64_t handler = exception_stub_table[v];
        idt[v] = (struct idt_gate){
            .offset_lo = (uint16_t)handler,
            .selector = SEL_KERNEL_CODE,
            .ist = v == 8 ? 1 : 0,
            .type_attr = GATE_INTERRUPT_DPL0,
            .offset_mid = (uint16_t)(handler >> 16),
            .offset_hi = (uint32_t)(handler >> 32),
        };
    }
    struct table_pointer idtr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
    __asm__ volatile("lidt %0" : : "m"(idtr));

    tss.rsp[0] = (uint64_t)(uintptr_t)kernel_stack_top;
    tss.ist[0] = (uint64_t)(uintptr_t)df_stack_top;
    uint64_t base = (uint64_t)(uintptr_t)&tss;
    uint64_t limit = sizeof(tss) - 1;
    /* Available 64-bit TSS (type 9), present, DPL 0; base split across the 16-byte descriptor. */
    gdt[SEL_TSS / 8] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) | ((limit >> 16 & 0xF) << 48)
                       | ((base >> 24 & 0xFF) << 56);
    gdt[SEL_TSS / 8 + 1] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"(SEL_TSS));

    probe_clock();
}

/* Layout pushed by boot.S exception_common (lowest address first). */
struct exception_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};

#define VECTOR_GP 13

/*
 * Ring 3 runs with IOPL 3, so IN/OUT execute natively on hardware that honours it (VMX/SVM KVM, TCG). The
 * software-virtualised KVM of the target host (PVM) does not: the instruction raises #GP in ring 3. Emulate it
 * here, as Xen does for its PV guests: decode the few IN/OUT forms the program uses, perform the access at
 * CPL0 and resume after the instruction. Port I/O only happens during setup, for console output and for the
 * exit port; the streaming loop uses none, so this costs nothing where it matters.
 * Returns 1 when the instruction was emulated.
 */
static int emulate_port_io(struct exception_frame *f)
{
    const uint8_t *ip = (const uint8_t *)(uintptr_t)f->rip;
    unsigned len = 0;
    unsigned width = 4;
    if (ip[0] == 0x66) {
        width = 2;
        len = 1;
    }
    uint8_t op = ip[len++];
    uint16_t port;
    switch (op) {
    case 0xE4: case 0xE5: case 0xE6: case 0xE7: /* IN/OUT with imm8 port */
        port = ip[len++];
        break;
    case 0xEC: case 0xED: case 0xEE: case 0xEF: /* IN/OUT with DX port */
        port = (uint16_t)f->rdx;
        break;
    default:
        return 0;
    }
    if ((op & 1) == 0) {
        if (width == 2)
            return 0; /* 66 prefix on a byte form: not something our code emits */
        width = 1;
    }
    bool is_in = (op & 2) == 0;
    if (is_in) {
        if (width == 1)
            f->rax = (f->rax & ~0xFFull) | inb(port);
        else if (width == 2)
            f->rax = (f->rax & ~0xFFFFull) | inw(port);
        else
            f->rax = inl(port); /* a 32-bit register write zero-extends */
    } else {
        if (width == 1)
            outb(port, (uint8_t)f->rax);
        else if (width == 2)
            outw(port, (uint16_t)f->rax);
        else
            outl(port, (uint32_t)f->rax);
    }
    f->rip += len;
    emulated_port_io_count++;
    return 1;
}

void cpl0_exception(struct exception_frame *f);

void cpl0_exception(struct exception_frame *f)
{
    if (f->vector == VECTOR_GP && (f->cs & 3) == 3 && f->error_code == 0 && emulate_port_io(f))
        return;
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    fw_printf("\nEXCEPTION vector=%lu error=0x%lx rip=0x%lx cs=0x%lx rflags=0x%lx rsp=0x%lx cr2=0x%lx\n", f->vector,
              f->error_code, f->rip, f->cs, f->rflags, f->rsp, cr2);
    fw_printf("  rax=0x%lx rbx=0x%lx rcx=0x%lx rdx=0x%lx rsi=0x%lx rdi=0x%lx rbp=0x%lx\n", f->rax, f->rbx, f->rcx,
              f->rdx, f->rsi, f->rdi, f->rbp);
    fw_exit(EXIT_CPU_EXCEPTION);
}
