/* Console formatting shared by both architectures: a small printf over serial_putc() (serial.c on x86_64,
 * arm64/serial.c on arm64) and fw_fail(). */
#include <stdbool.h>
#include <stdint.h>

#include "exit_codes.h"
#include "serial.h"

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
