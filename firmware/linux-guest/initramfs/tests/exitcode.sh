# vmmtest=exitcode: end the VM through the debug-exit port with a distinctive code; the VMM must exit with it.
vmm-exit 42
