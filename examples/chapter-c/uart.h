/* Console output on the ns16550a UART of QEMU virt (0x10000000), polled. */
#pragma once

void uart_putc(char c);
void uart_puts(const char *s);
/* Returns the next received byte, or -1 if none is waiting. */
int uart_getc(void);
/* printf for the kernel: %d %u %ld %lu %x %lx %s %c %%, no widths. */
void uart_printf(const char *fmt, ...);
