# vmmtest=reboot: reboot the guest at once (reboot(2) without init's shutdown); with reboot=k the kernel pulses the
# reset line through the i8042, which the VMM turns into a clean exit with code 0.
sync
busybox reboot -f
sleep 30
echo "VMM-GUEST: reboot did not end the VM"
false
