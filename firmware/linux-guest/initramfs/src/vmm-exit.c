/* vmm-exit CODE: end the VM through the Vmm debug-exit port (outb CODE, 0x501).
 * Exits 1 if the port write did not end the VM. */
#include "sys.h"

VMM_START(vmm_exit_main)

int vmm_exit_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	unsigned code = 0;

	if (argc > 1)
		for (const char *p = argv[1]; *p >= '0' && *p <= '9'; p++)
			code = code * 10 + (unsigned)(*p - '0');
	vmm_exit((unsigned char)code);
	puts1("vmm-exit: debug-exit port 0x501 did not end the VM\n");
	return 1;
}
