/* mode=attack: a hostile guest. It attacks the virtio-pci transport and the virtio-media device A (the first
 * virtio-media function on bus 0) while bystander sessions stream, on device B (the second one) throughout and on
 * device A itself for the attacks that leave it running, and checks after each attack that the device answered as
 * the VMM promises (an errno, an ERROR event, DEVICE_NEEDS_RESET, or ignoring what it must ignore) and that no
 * bystander lost a frame. The attacks and their expected answers are listed in firmware/README.md. */
#ifndef FW_ATTACK_H
#define FW_ATTACK_H

#include "cmdline.h"

/* Runs the attacks the command line names (all by default); returns EXIT_OK or fails the run. */
int attack_main(const struct fw_params *p);

#endif
