/* The x86_64 console and exit: polled 16550 on COM1 and the debug-exit port. The formatting (fw_printf, fw_fail) is
 * portable: printf.c. arm64 has its own: arm64/serial.c. */
#include <stdint.h>

#include "exit_codes.h"
#include "io.h"
#include "serial.h"

#define COM1 0x3F8
#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define LSR_THRE 0x20
#define UART_FIFO_SIZE 16
#define DEBUG_EXIT_PORT 0x501

/* Bounded wait for THRE: an absent or stuck UART must not hang the program (output is then lost, not the run). */
#define THRE_SPINS 100000

void serial_init(void)
{
    outb(COM1 + UART_IER, 0x00);    /* polled: no interrupts */
    outb(COM1 + UART_LCR, 0x80);    /* DLAB to set the divisor */
    outb(COM1 + 0, 0x01);           /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + UART_LCR, 0x03);    /* 8N1 */
    outb(COM1 + UART_FCR, 0x07);    /* FIFO on, cleared */
    outb(COM1 + UART_MCR, 0x03);    /* DTR, RTS */
}

/* Bytes that may still be written without looking at LSR: THRE means the whole 16-byte FIFO is empty, so one
 * status read covers 16 characters. Port accesses are VM exits (and trapped instructions where IOPL 3 is not
 * honoured), so this halves the cost of console output. */
static int fifo_room;

void serial_putc(char c)
{
    if (fifo_room == 0) {
        for (int i = 0; i < THRE_SPINS; i++) {
            if (inb(COM1 + UART_LSR) & LSR_THRE)
                break;
            cpu_relax();
        }
        fifo_room = UART_FIFO_SIZE;
    }
    outb(COM1 + UART_THR, (uint8_t)c);
    fifo_room--;
}

void fw_exit(int code)
{
    outb(DEBUG_EXIT_PORT, (uint8_t)code);
    /* Without a debug-exit device nothing stops the VM; spin quietly rather than run on. */
    for (;;)
        cpu_relax();
}
