# vmmtest=cpus: print the CPU count; exit 0 if it equals $vmmcpus (if given).
n=$(cpus)
echo "VMM-GUEST: cpus=$n"
[ -z "$vmmcpus" ] || [ "$n" = "$vmmcpus" ]
