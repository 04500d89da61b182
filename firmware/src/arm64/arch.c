/* arm64 start-up facts (written by boot.S after it clears .bss) and the attack-mode stub. */
#include <stdint.h>

#include "../attack.h"
#include "../exit_codes.h"
#include "arch.h"

uint64_t arm64_entry_ticks;
uint64_t arm64_dtb_paddr;
uint64_t arm64_image_base;

/* Attack mode drives x86-specific paths (port I/O config accesses, the x86 ECAM and BAR layout) and is built for
 * x86_64 only. */
int attack_main(const struct fw_params *p)
{
    (void)p;
    fw_fail(EXIT_BAD_CMDLINE, "mode=attack is built for x86_64 only");
}
