/* Polled 16550 output on COM1. Every port access is a VM exit, so callers keep their output short. */
#ifndef FW_SERIAL_H
#define FW_SERIAL_H

#include <stdarg.h>
#include <stddef.h>

void serial_init(void);
void serial_putc(char c);
void serial_write(const char *s);

/* A small printf: %c %s %d %u %x %X with optional 'l'/'ll', zero padding and width ("%016lx"). */
__attribute__((format(printf, 1, 2))) void fw_printf(const char *fmt, ...);
void fw_vprintf(const char *fmt, va_list ap);

/* The same formatting into buf (always NUL-terminated, truncated to size - 1 characters; no \r added). */
__attribute__((format(printf, 3, 4))) void fw_snprintf(char *buf, size_t size, const char *fmt, ...);

#endif
