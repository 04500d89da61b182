# vmmtest=media-stream: insmod virtio_media, stream MMAP frames with v4l2-ctl
# and time them with the guest clock.  Command-line variables:
#   vmmframes=N            frames to capture (default 300; at least 2)
#   vmmwidth=W vmmheight=H vmmfourcc=F   format to set first (each optional;
#                          none given: keep the device's current format)
#   vmmminfps=X            fail if the measured rate is below X (optional)
# Markers:
#   "VMM-GUEST: stream frames=N seconds=S fps=X": N = capture buffers v4l2-ctl
#     dequeued, S = guest time from the first to the last of them, X = (N-1)/S
#     (the streaming rate, without v4l2-ctl's start-up, which costs seconds in
#     an emulated guest kernel);
#   "VMM-GUEST: stream run-seconds=T rc=R": the whole v4l2-ctl run and its status;
#   "VMM-GUEST: stream v4l2-ctl-fps=Y": the last rate v4l2-ctl printed itself
#     (computed from the buffers' timestamps, i.e. the device's clock).
# Guest time is /proc/uptime: 10 ms resolution.
# Status 0 if v4l2-ctl succeeded, dequeued N frames and (if asked) X >= vmmminfps.
. /lib/media.sh
media_stream() {
	local n fmt m2m t0 t1 rc got times fps v4lfps
	n=${vmmframes:-300}
	[ "$n" -ge 2 ] 2>/dev/null || { echo "VMM-GUEST: stream bad vmmframes=$n"; return 1; }
	media_setup || return 1
	fmt=
	[ -z "$vmmwidth" ] || fmt="width=$vmmwidth"
	[ -z "$vmmheight" ] || fmt="${fmt:+$fmt,}height=$vmmheight"
	[ -z "$vmmfourcc" ] || fmt="${fmt:+$fmt,}pixelformat=$vmmfourcc"
	# A mem-to-mem node (e.g. vim2m via --extra-module) also needs an output stream.
	m2m=
	v4l2-ctl -d "$MEDIA_DEV" --info 2>/dev/null | grep -q 'Memory-to-Memory' && m2m=--stream-out-mmap
	echo "VMM-GUEST: stream start frames=$n fmt=${fmt:-current}${m2m:+ m2m}"
	t0=$(media_cs)
	# v4l2-ctl writes one '<' per dequeued capture buffer to stderr, unbuffered:
	# awk takes '<' as its record separator and reads the clock at the first
	# and at the Nth one.
	# shellcheck disable=SC2086 # empty options must vanish
	{
		v4l2-ctl -d "$MEDIA_DEV" ${fmt:+--set-fmt-video=$fmt} --stream-mmap $m2m \
			--stream-count="$n" 2>&1
		echo $? > /tmp/stream.rc
	} | tee /tmp/stream.log | awk -v RS='<' -v n="$n" '
		function now(  u, a) {
			getline u < "/proc/uptime"; close("/proc/uptime")
			split(u, a, " "); return a[1]
		}
		NR == 1 { first = now() }
		NR == n { last = now() }
		END { print first + 0, last + 0 }' > /tmp/stream.times
	t1=$(media_cs)
	read -r rc < /tmp/stream.rc || rc=255
	got=$(tr -cd '<' < /tmp/stream.log | wc -c)
	# Everything except the progress characters, last lines only (an M2M run
	# prints a rate line per queue per second).
	sed -e 's/[<>]//g' -e '/^[[:space:]]*$/d' /tmp/stream.log | tail -n 6 | sed 's/^/VMM-GUEST: v4l2-ctl /'
	read -r times < /tmp/stream.times
	fps=$(echo "$times" | awk -v n="$got" '{
		s = $2 - $1
		if (n >= 2 && $2 > 0 && s > 0) printf "%d %.2f %.2f", n, s, (n - 1) / s
		else printf "%d 0 0", n }')
	set -- $fps
	echo "VMM-GUEST: stream frames=$1 seconds=$2 fps=$3"
	echo "VMM-GUEST: stream run-seconds=$(media_secs "$t0" "$t1") rc=$rc"
	v4lfps=$(sed -n 's/.* \([0-9][0-9]*\.[0-9][0-9]\) fps.*/\1/p' /tmp/stream.log | tail -n 1)
	[ -z "$v4lfps" ] || echo "VMM-GUEST: stream v4l2-ctl-fps=$v4lfps"
	[ "$rc" -eq 0 ] || { echo "VMM-GUEST: stream v4l2-ctl failed rc=$rc"; return 1; }
	[ "$got" -eq "$n" ] || { echo "VMM-GUEST: stream expected $n frames, got $got"; return 1; }
	[ -z "$vmmminfps" ] && return 0
	awk -v f="$3" -v m="$vmmminfps" 'BEGIN { exit !(f + 0 >= m + 0) }' ||
		{ echo "VMM-GUEST: stream fps $3 below $vmmminfps"; return 1; }
}
media_stream
