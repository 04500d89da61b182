# vmmtest=media-decode: insmod virtio_media, decode /data/frames.vhdr (coded
# frames in v4l2-ctl's --stream-from-hdr framing: per frame the big-endian
# fourcc 'Vhdr', then a big-endian length and the bytes) through the
# memory-to-memory node with m2m-decode (src/m2m-decode.c says why not
# v4l2-ctl), and report what came out.
# Command-line variables:
#   vmmframes=N           frames in the file (and to decode; default 10)
#   vmmwidth=W vmmheight=H  coded size, set on the OUTPUT queue (default 320x240)
#   vmmcoded=F vmmfourcc=F  OUTPUT and CAPTURE pixel formats (default JPEG, NV12)
#   vmmtimeout=S          give m2m-decode at most S seconds (default 120)
# Markers:
#   "VMM-GUEST: decode frames=N bytes=B md5=M": N = frames decoded, B = bytes
#     of decoded CAPTURE buffers written, M = md5sum of those bytes;
#   "VMM-GUEST: decode seconds=S rc=R".
# Status 0 if m2m-decode succeeded and decoded N frames.
. /lib/media.sh
media_decode() {
	local n w h coded fourcc t0 rc bytes md5 got
	n=${vmmframes:-10} w=${vmmwidth:-320} h=${vmmheight:-240}
	coded=${vmmcoded:-JPEG} fourcc=${vmmfourcc:-NV12}
	[ -f /data/frames.vhdr ] || { echo "VMM-GUEST: decode no /data/frames.vhdr"; return 1; }
	media_setup || return 1
	t0=$(media_cs)
	# A decoder that stalls must fail here, with the client's message, not time the VM out.
	timeout "${vmmtimeout:-120}" m2m-decode "$MEDIA_DEV" /data/frames.vhdr /tmp/decoded "$w" "$h" "$coded" "$fourcc" \
		> /tmp/decode.log 2>&1
	rc=$?
	echo "VMM-GUEST: decode seconds=$(media_secs "$t0" "$(media_cs)") rc=$rc"
	[ "$rc" = 0 ] || { sed 's/^/VMM-GUEST: m2m-decode /' /tmp/decode.log | tail -n 20; media_dmesg; return 1; }
	bytes=$(wc -c < /tmp/decoded)
	md5=$(md5sum < /tmp/decoded | cut -d' ' -f1)
	got=$(sed -n 's/^frames=\([0-9]*\) .*/\1/p' /tmp/decode.log)
	echo "VMM-GUEST: decode frames=$got bytes=$bytes md5=$md5"
	[ "$got" = "$n" ]
}
media_decode
