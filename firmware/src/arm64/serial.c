/* The arm64 console and exit: a polled PL011 at UART_BASE and the debug-exit register, with PSCI SYSTEM_OFF as the
 * fallback. The formatting (fw_printf, fw_fail) is ../printf.c. */
#include <stdint.h>

#include "../exit_codes.h"
#include "../io.h"
#include "../serial.h"
#include "layout.h"

#define UART_DR 0x000
#define UART_FR 0x018
#define UART_LCR_H 0x02C
#define UART_CR 0x030
#define UART_IMSC 0x038
#define FR_TXFF (1u << 5)
#define LCR_H_FEN (1u << 4)
#define LCR_H_WLEN8 (3u << 5)
#define CR_UARTEN (1u << 0)
#define CR_TXE (1u << 8)
#define CR_RXE (1u << 9)

/* Bounded wait while the transmit FIFO is full: a stuck UART must not hang the program (output is then lost). */
#define TXFF_SPINS 100000

void serial_init(void)
{
    /* No baud rate: a virtual UART has none. 8N1 with FIFOs, enabled, no interrupts. */
    mmio_write32(UART_BASE + UART_CR, 0);
    mmio_write32(UART_BASE + UART_IMSC, 0);
    mmio_write32(UART_BASE + UART_LCR_H, LCR_H_WLEN8 | LCR_H_FEN);
    mmio_write32(UART_BASE + UART_CR, CR_UARTEN | CR_TXE | CR_RXE);
}

void serial_putc(char c)
{
    for (int i = 0; i < TXFF_SPINS; i++) {
        if (!(mmio_read32(UART_BASE + UART_FR) & FR_TXFF))
            break;
        cpu_relax();
    }
    mmio_write32(UART_BASE + UART_DR, (uint8_t)c);
}

void fw_exit(int code)
{
    /* Our VMM ends the VM with the value written here. QEMU's virt machine has its PL031 RTC at this address, where
     * the write is ignored; then PSCI SYSTEM_OFF powers the machine off (QEMU's status is then 0, whatever the code:
     * the console line tells). */
    full_fence();
    mmio_write32(DEBUG_EXIT_BASE, (uint32_t)code);
    full_fence();
    register uint64_t x0 __asm__("x0") = PSCI_SYSTEM_OFF;
    __asm__ volatile("hvc #0" : "+r"(x0) : : "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
                     "x15", "x16", "x17", "memory");
    for (;;)
        __asm__ volatile("wfi");
}
