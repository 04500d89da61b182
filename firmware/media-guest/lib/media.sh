# /lib/media.sh: helpers for the virtio-media guest tests (busybox sh).
# Sourced by /tests/media-*.sh, which /init itself sources: never `exit` here,
# return a status instead.  Settings come from kernel command-line variables
# (parameters without a dot reach init as environment variables):
#   vmmvideo=/dev/videoN   node to test (default /dev/video0)
#   vmmwait=S              seconds to wait for the node after insmod (default 10)
#   vmmmodparams="a=b c=d" parameters for virtio_media.ko (quote on the command line)
export PATH=/bin:/sbin:/usr/bin
# Guest user mode runs natively on this host's CPU and sees its AVX/AVX-512,
# so glibc picks AVX2/EVEX string functions (ymm/zmm registers), but the guest
# kernel runs with `noxsave` and saves only the x87/SSE state on a task switch:
# two such processes (e.g. a pipeline) corrupt each other's registers (seen: a
# segfault in a busybox pipeline).  Make glibc (dynamic and static busybox)
# keep to SSE code in everything the tests start; a value given on the kernel
# command line wins.
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512CD,-AVX512BW,-AVX512DQ,-AVX512VL,-AVX512ER,-AVX512PF,-FMA,-FMA4,-XSAVE,-XSAVEC,-AVX_Fast_Unaligned_Load}
MEDIA_DEV=${vmmvideo:-/dev/video0}

# Guest monotonic time since boot in centiseconds, from /proc/uptime.
media_cs() {
	local up
	read -r up _ < /proc/uptime
	echo $(( ${up%.*} * 100 + 1${up#*.} - 100 ))
}

# "S.ss" seconds between two media_cs values.
media_secs() {
	local d=$(( $2 - $1 ))
	printf '%d.%02d' $((d / 100)) $((d % 100))
}

# Show the kernel's last messages, marked, after something failed.
media_dmesg() {
	dmesg | tail -n "${1:-15}" | sed 's/^/VMM-GUEST: dmesg /'
}

# insmod the extra modules (if any, in build order), then virtio_media.ko.
media_insmod() {
	local m t0
	if [ -f /lib/modules/extra/order ]; then
		while read -r m; do
			insmod "/lib/modules/extra/$m" || {
				echo "VMM-GUEST: insmod $m failed"
				media_dmesg
				return 1
			}
		done < /lib/modules/extra/order
	fi
	t0=$(media_cs)
	# shellcheck disable=SC2086 # vmmmodparams is a list of words
	if ! insmod /lib/modules/virtio_media.ko $vmmmodparams; then
		echo "VMM-GUEST: insmod virtio_media failed"
		media_dmesg
		return 1
	fi
	echo "VMM-GUEST: insmod virtio_media ok seconds=$(media_secs "$t0" "$(media_cs)")"
}

# Wait until $MEDIA_DEV is a character device (devtmpfs creates it when the
# driver registers the node, normally before insmod returns).
media_wait_dev() {
	local t0 limit
	t0=$(media_cs)
	limit=$(( ${vmmwait:-10} * 100 ))
	while [ ! -c "$MEDIA_DEV" ]; do
		if [ $(( $(media_cs) - t0 )) -ge "$limit" ]; then
			echo "VMM-GUEST: $MEDIA_DEV missing after ${vmmwait:-10} s"
			ls /dev | sed -n 's#^\(video\|v4l\|media\).*#VMM-GUEST: dev /dev/&#p'
			media_dmesg
			return 1
		fi
		sleep 0.1
	done
	echo "VMM-GUEST: ${MEDIA_DEV#/dev/} present"
}

# insmod and wait for the node.
media_setup() {
	media_insmod && media_wait_dev
}
