#!/usr/bin/env bash
# Build the virtio-media test initramfs (uncompressed newc cpio).
#
#   build-initramfs.sh [--extra-module FILE.ko]... [--data FILE]... KIT_DIR MODULE.ko OUT.cpio
#
# KIT_DIR    output of firmware/linux-guest/build.sh (initramfs.cpio is used)
# MODULE.ko  a prebuilt virtio-media guest driver for that kit's kernel; it is
#            packed as /lib/modules/virtio_media.ko.  This script never builds
#            or downloads it.
# OUT.cpio   the image: the kit's busybox image followed by a second archive
#            with v4l2-compliance, v4l2-ctl (Debian's v4l-utils, with their
#            shared libraries and the dynamic loader), m2m-decode (src/, built
#            here with gcc -static), the module and the
#            tests/*.sh scripts as /tests/NAME.sh (lib/media.sh, which
#            they source, as /lib/media.sh).
# --extra-module FILE.ko  also pack FILE.ko under /lib/modules/extra/ and
#            insmod it (in the order given) before virtio_media.ko; for trying
#            the scripts against an in-tree driver such as vim2m.
# --data FILE  also pack FILE as /data/NAME (test input, e.g. the coded
#            frames media-decode.sh feeds to a decoder).
# --v4l-utils-root DIR  take the tools and their libraries from an unpacked
#            root (fetch-v4l-utils.sh prints one: a newer Debian suite's
#            v4l-utils, whose v4l2-compliance knows kernel 6.12's format names)
#            instead of this machine's /usr/bin.
#
# The kernel unpacks concatenated cpio archives one after the other, so the
# kit's image is reused byte for byte.  Progress goes to stderr.
set -euo pipefail

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
extras=()
data=()
V4L_ROOT=
while [ $# -gt 0 ]; do
	case "$1" in
	--extra-module) [ $# -ge 2 ] || { usage >&2; exit 2; }; extras+=("$2"); shift 2 ;;
	--data) [ $# -ge 2 ] && [ -f "$2" ] || { echo "build-initramfs.sh: --data needs an existing file" >&2; exit 2; }; data+=("$2"); shift 2 ;;
	--v4l-utils-root) [ $# -ge 2 ] || { usage >&2; exit 2; }; V4L_ROOT=$(cd "$2" && pwd); shift 2 ;;
	-h|--help) usage; exit 0 ;;
	--) shift; break ;;
	-*) echo "build-initramfs.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -eq 3 ] || { usage >&2; exit 2; }
KIT=$1 MODULE=$2 OUT=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BINARIES=(/usr/bin/v4l2-compliance /usr/bin/v4l2-ctl)

log() { printf 'media-guest: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -f "$KIT/initramfs.cpio" ] || die "$KIT/initramfs.cpio not found (KIT_DIR = output of firmware/linux-guest/build.sh)"
[ -f "$MODULE" ] || die "module $MODULE not found"
for m in "$MODULE" "${extras[@]}"; do
	[ "$(head -c 4 "$m" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || die "$m is not an ELF file"
done
# A module built against another kernel is rejected by insmod in the guest;
# say so here, where it is cheap.  (The kit's vermagic is in its vmlinux.)
if command -v modinfo >/dev/null && [ -f "$KIT/vmlinux" ]; then
	for m in "$MODULE" "${extras[@]}"; do
		vm=$(modinfo -F vermagic "$m" 2>/dev/null || true)
		[ -n "$vm" ] || die "$m has no vermagic (not a kernel module?)"
		grep -qaF -- "$vm" "$KIT/vmlinux" || die "$m vermagic '$vm' does not match the kit's kernel"
	done
fi
# The kit has no MODVERSIONS, so vermagic is all insmod checks.  At least make
# sure every symbol the module imports is exported by the kit's vmlinux (or by
# one of the extra modules); a module built for another config fails here.
if command -v nm >/dev/null && [ -f "$KIT/build/Module.symvers" ]; then
	exported=$(mktemp)
	{
		awk -F "\t" '$3 == "vmlinux" { print $2 }' "$KIT/build/Module.symvers"
		for m in "${extras[@]}"; do nm --defined-only "$m" | awk '{ print $3 }'; done
	} | LC_ALL=C sort -u > "$exported"
	unresolved=$(nm -u "$MODULE" | awk '{ print $2 }' | LC_ALL=C sort -u | LC_ALL=C comm -23 - "$exported")
	rm -f "$exported"
	[ -z "$unresolved" ] || die "$MODULE imports symbols the kit's kernel does not export:" $unresolved
fi

missing=()
for b in "${BINARIES[@]}"; do [ -x "$b" ] || missing+=(v4l-utils); done
command -v cpio >/dev/null || missing+=(cpio)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing: ${missing[*]}"
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update >&2
	$SUDO apt-get install -y --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >&2
fi

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
R=$STAGE/root
mkdir -p "$R/usr/bin" "$R/lib/modules" "$R/tests"

# Binaries plus every shared object ldd names, each copied (symlinks resolved)
# to the path the dynamic loader will look for; the loader itself goes to the
# binaries' PT_INTERP path.
if [ -z "$V4L_ROOT" ]; then
	for b in "${BINARIES[@]}"; do
		cp -L "$b" "$R$b"
		while read -r path; do
			[ -e "$R$path" ] || { mkdir -p "$R${path%/*}"; cp -L "$path" "$R$path"; }
		done < <(ldd "$b" | sed -nE 's#^\s*(\S+ => )?(/\S+) \(0x[0-9a-f]+\)$#\2#p')
	done
	interp=$(readelf -l "${BINARIES[0]}" | sed -nE 's/.*Requesting program interpreter: (\S+)\]/\1/p')
else
	# Resolve libraries with the root's own loader and search path, then copy each to its path inside the root.
	interp=$(readelf -l "$V4L_ROOT${BINARIES[0]}" | sed -nE 's/.*Requesting program interpreter: (\S+)\]/\1/p')
	libpath=$V4L_ROOT/lib/x86_64-linux-gnu:$V4L_ROOT/usr/lib/x86_64-linux-gnu
	# Merged-/usr suites ship the loader under /usr; /lib64 is a link made at install time.
	loader=$V4L_ROOT$interp
	[ -e "$loader" ] || loader=$V4L_ROOT/usr$interp
	[ -e "$loader" ] || die "no dynamic loader $interp in $V4L_ROOT"
	for b in "${BINARIES[@]}"; do
		cp -L "$V4L_ROOT$b" "$R$b"
		while read -r path; do
			guest=${path#"$V4L_ROOT"}
			[ -e "$R$guest" ] || { mkdir -p "$R${guest%/*}"; cp -L "$path" "$R$guest"; }
		done < <("$loader" --library-path "$libpath" --list "$V4L_ROOT$b" |
			sed -nE 's#^\s*(\S+ => )?(/\S+) \(0x[0-9a-f]+\)$#\2#p')
	done
	mkdir -p "$R${interp%/*}"
	cp -L "$loader" "$R$interp"
	log "v4l-utils from $V4L_ROOT ($("$loader" --library-path "$libpath" "$V4L_ROOT/usr/bin/v4l2-compliance" --version 2>/dev/null | head -n 1))"
fi
[ -f "$R$interp" ] || die "dynamic loader $interp was not copied"
# Our own small decoder client (src/m2m-decode.c), built static with the machine's gcc.
gcc -static -O2 -Wall -Werror -o "$R/usr/bin/m2m-decode" "$HERE/src/m2m-decode.c" || die "building m2m-decode failed (gcc and libc6-dev are needed)"

cp "$MODULE" "$R/lib/modules/virtio_media.ko"
if [ ${#extras[@]} -gt 0 ]; then
	mkdir -p "$R/lib/modules/extra"
	for m in "${extras[@]}"; do
		cp "$m" "$R/lib/modules/extra/"
		echo "${m##*/}" >> "$R/lib/modules/extra/order"
	done
fi
cp "$HERE"/tests/*.sh "$R/tests/"
cp "$HERE/lib/media.sh" "$R/lib/media.sh"
if [ ${#data[@]} -gt 0 ]; then
	mkdir -p "$R/data"
	cp "${data[@]}" "$R/data/"
fi
chmod 0644 "$R"/tests/*.sh "$R/lib/media.sh" "$R"/lib/modules/*.ko
chmod -R u+rwX,go+rX,go-w "$R"

# Fixed owner and timestamps: identical inputs give identical images.
find "$R" -exec touch -h -d @0 {} +
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible) > "$STAGE/media.cpio"

mkdir -p "$(dirname "$OUT")"
cat "$KIT/initramfs.cpio" "$STAGE/media.cpio" > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
log "$OUT: $(stat -c %s "$OUT") bytes (kit image $(stat -c %s "$KIT/initramfs.cpio"), media part $(stat -c %s "$STAGE/media.cpio"))"
