/* Minimal freestanding x86-64 Linux syscall helpers for the test initramfs.
 * Built with: gcc -static -nostdlib -ffreestanding -O2 -march=x86-64 -mno-avx
 * (baseline x86-64: the guest saves only x87/SSE state under noxsave). */
#ifndef VMM_SYS_H
#define VMM_SYS_H

typedef unsigned long size_t;
typedef long ssize_t;

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_iopl 172
#define SYS_ioperm 173
#define SYS_mount 165
#define SYS_mkdir 83
#define SYS_reboot 169
#define SYS_exit 60

static inline long sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "0"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return r;
}

static inline long sys5(long n, long a, long b, long c, long d, long e)
{
	long r;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall" : "=a"(r) : "0"(n), "D"(a), "S"(b), "d"(c),
			 "r"(r10), "r"(r8) : "rcx", "r11", "memory");
	return r;
}

static inline size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static inline void puts1(const char *s)
{
	sys3(SYS_write, 1, (long)s, slen(s));
}

static inline void outb(unsigned char v, unsigned short port)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

#define VMM_EXIT_PORT 0x501

/* Debug-exit port: outb V to 0x501 ends the VM with exit code V.
 * Returns only if the write did not end the VM (no such device). */
static inline void vmm_exit(unsigned char code)
{
	if (sys3(SYS_ioperm, VMM_EXIT_PORT, 1, 1) != 0 &&
	    sys3(SYS_iopl, 3, 0, 0) != 0)
		return;	/* no port access: outb would raise SIGSEGV */
	outb(code, VMM_EXIT_PORT);
}

/* Program entry: pass the initial stack pointer (argc, argv, envp) to main. */
#define VMM_START(mainfn)                                                     \
	__asm__(".text\n.global _start\n_start:\n"                            \
		"  xor %ebp, %ebp\n  mov %rsp, %rdi\n  and $-16, %rsp\n"      \
		"  call " #mainfn "\n  mov %eax, %edi\n  mov $60, %eax\n"     \
		"  syscall\n  hlt\n");

#endif
