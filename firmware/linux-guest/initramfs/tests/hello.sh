# vmmtest=hello: minimal test script example; exit status = VM exit code.
echo "VMM-GUEST: hello from /tests/hello.sh"
echo "VMM-GUEST: cmdline: $(cat /proc/cmdline)"
echo "VMM-GUEST: cpus=$(cpus)"
true
