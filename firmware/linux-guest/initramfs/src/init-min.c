/* Minimal /init for initramfs-min.cpio: print the marker, mount proc/sys/dev,
 * report the CPU count, end the VM through the debug-exit port (code 0). */
#include "sys.h"

VMM_START(init_main)

static void mnt(const char *src, const char *dir, const char *type)
{
	sys3(SYS_mkdir, (long)dir, 0755, 0);
	if (sys5(SYS_mount, (long)src, (long)dir, (long)type, 0, 0) != 0) {
		puts1("VMM-GUEST: mount failed: ");
		puts1(dir);
		puts1("\n");
	}
}

/* Count CPUs in a cpulist such as "0-1,3\n". */
static int count_cpus(const char *s)
{
	int n = 0;
	while (*s >= '0' && *s <= '9') {
		int a = 0, b;
		while (*s >= '0' && *s <= '9')
			a = a * 10 + (*s++ - '0');
		b = a;
		if (*s == '-') {
			s++;
			b = 0;
			while (*s >= '0' && *s <= '9')
				b = b * 10 + (*s++ - '0');
		}
		n += b - a + 1;
		if (*s == ',')
			s++;
	}
	return n;
}

int init_main(long *sp)
{
	char buf[64], out[32];
	int n = 0, len = 0, fd;
	(void)sp;

	puts1("VMM-GUEST: init reached\n");
	mnt("proc", "/proc", "proc");
	mnt("sysfs", "/sys", "sysfs");
	mnt("devtmpfs", "/dev", "devtmpfs");

	fd = (int)sys3(SYS_open, (long)"/sys/devices/system/cpu/online", 0, 0);
	if (fd >= 0) {
		long r = sys3(SYS_read, fd, (long)buf, sizeof(buf) - 1);
		buf[r > 0 ? r : 0] = 0;
		sys3(SYS_close, fd, 0, 0);
		n = count_cpus(buf);
	}
	{	/* "VMM-GUEST: cpus=N\n" */
		char digits[12];
		int d = 0;
		const char *pre = "VMM-GUEST: cpus=";
		while (*pre)
			out[len++] = *pre++;
		do
			digits[d++] = (char)('0' + n % 10);
		while ((n /= 10) && d < 11);
		while (d)
			out[len++] = digits[--d];
		out[len++] = '\n';
		sys3(SYS_write, 1, (long)out, len);
	}
	vmm_exit(0);
	puts1("VMM-GUEST: debug-exit port 0x501 did not end the VM\n");
	/* LINUX_REBOOT_MAGIC1/2, LINUX_REBOOT_CMD_POWER_OFF */
	sys5(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, 0, 0);
	for (;;)
		__asm__ volatile("pause");
}
