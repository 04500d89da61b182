#include <stdbool.h>
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

void serial_write(const char *s)
{
    while (*s) {
        if (*s == '\n')
            serial_putc('\r');
        serial_putc(*s++);
    }
}

/* Where formatted output goes: the UART, or a caller's buffer (fw_snprintf). */
static char *capture;
static size_t capture_room;

static void emit(char c)
{
    if (capture == 0) {
        if (c == '\n')
            serial_putc('\r');
        serial_putc(c);
    } else if (capture_room > 1) {
        *capture++ = c;
        capture_room--;
    }
}

static void put_unsigned(unsigned long long v, unsigned base, bool upper, int width, char pad)
{
    char buf[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        buf[n++] = digits[v % base];
        v /= base;
    } while (v != 0);
    while (n < width && n < (int)sizeof(buf))
        buf[n++] = pad;
    while (n > 0)
        emit(buf[--n]);
}

void fw_vprintf(const char *fmt, va_list ap)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            emit(*p);
            continue;
        }
        p++;
        char pad = ' ';
        int width = 0;
        int longness = 0;
        if (*p == '0') {
            pad = '0';
            p++;
        }
        while (*p >= '0' && *p <= '9')
            width = width * 10 + (*p++ - '0');
        while (*p == 'l') {
            longness++;
            p++;
        }
        switch (*p) {
        case 'c':
            emit((char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            for (s = s ? s : "(null)"; *s; s++)
                emit(*s);
            break;
        }
        case 'd': {
            long long v = longness ? va_arg(ap, long long) : va_arg(ap, int);
            unsigned long long mag = (unsigned long long)v;
            if (v < 0) {
                emit('-');
                mag = 0 - mag;
            }
            put_unsigned(mag, 10, false, width, pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long v = longness ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned int);
            put_unsigned(v, *p == 'u' ? 10 : 16, *p == 'X', width, pad);
            break;
        }
        case '%':
            emit('%');
            break;
        case '\0':
            return;
        default:
            emit('%');
            emit(*p);
            break;
        }
    }
}

void fw_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fw_vprintf(fmt, ap);
    va_end(ap);
}

void fw_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    if (size == 0)
        return;
    capture = buf;
    capture_room = size;
    va_list ap;
    va_start(ap, fmt);
    fw_vprintf(fmt, ap);
    va_end(ap);
    *capture = 0;
    capture = 0;
}

void fw_exit(int code)
{
    outb(DEBUG_EXIT_PORT, (uint8_t)code);
    /* Without a debug-exit device nothing stops the VM; spin quietly rather than run on. */
    for (;;)
        cpu_relax();
}

void fw_fail(int code, const char *fmt, ...)
{
    fw_printf("FAIL code=%d: ", code);
    va_list ap;
    va_start(ap, fmt);
    fw_vprintf(fmt, ap);
    va_end(ap);
    fw_printf("\n");
    fw_exit(code);
}
