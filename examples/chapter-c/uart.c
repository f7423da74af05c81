/* Polled ns16550a UART output and the kernel's printf. */
#include <stdarg.h>
#include "types.h"
#include "uart.h"

#define UART_BASE 0x10000000UL
#define UART_THR 0 /* transmit holding register (write) */
#define UART_RBR 0 /* receive buffer register (read) */
#define UART_LSR 5 /* line status register */
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY 0x20

static volatile uint8_t *const uart = (volatile uint8_t *)UART_BASE;

void uart_putc(char c) {
    if (c == '\n')
        uart_putc('\r');
    while (!(uart[UART_LSR] & LSR_THR_EMPTY))
        ;
    uart[UART_THR] = (uint8_t)c;
}

void uart_puts(const char *s) {
    while (*s)
        uart_putc(*s++);
}

int uart_getc(void) {
    if (!(uart[UART_LSR] & LSR_DATA_READY))
        return -1;
    return uart[UART_RBR];
}

static void put_unsigned(uint64_t v, unsigned base) {
    char buf[20];
    int i = 0;
    do {
        buf[i++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (i > 0)
        uart_putc(buf[--i]);
}

static void put_signed(int64_t v) {
    if (v < 0) {
        uart_putc('-');
        put_unsigned((uint64_t)0 - (uint64_t)v, 10);
    } else {
        put_unsigned((uint64_t)v, 10);
    }
}

void uart_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            uart_putc(*fmt);
            continue;
        }
        int is_long = 0;
        if (fmt[1] == 'l') {
            is_long = 1;
            fmt++;
        }
        switch (*++fmt) {
        case 'd':
            put_signed(is_long ? va_arg(ap, long) : va_arg(ap, int));
            break;
        case 'u':
            put_unsigned(is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10);
            break;
        case 'x':
            put_unsigned(is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            uart_puts(s ? s : "(null)");
            break;
        }
        case 'c':
            uart_putc((char)va_arg(ap, int));
            break;
        case '%':
            uart_putc('%');
            break;
        case '\0':
            fmt--; /* a lone '%' at the end: stop at the terminator */
            break;
        default:
            uart_putc('%');
            uart_putc(*fmt);
        }
    }
    va_end(ap);
}
