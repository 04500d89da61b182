#!/usr/bin/env bash
# Build the Vmm test guest kernel kit: vmlinux (with PVH note), bzImage,
# uncompressed initramfs images and a kernel tree for out-of-tree modules.
#
#   build.sh [--print-dir]
#
# Outputs go to ${VMM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-guest}/<hash>/
# where <hash> covers every input (this script, patches/, guest.config,
# initramfs/, the linux-source-6.12, busybox-static and gcc versions).
# A complete cache dir is reused as is.  Progress goes to stderr; the last
# line of stdout is always the output directory.  No network use except apt,
# and apt only when a needed command or file is missing.
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
for arg in "$@"; do
	case "$arg" in
	--print-dir) ;;		# the dir is always the last stdout line
	-h|--help) usage; exit 0 ;;
	*) echo "build.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
	esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KSRC_TARBALL=/usr/src/linux-source-6.12.tar.xz
JOBS=$(nproc 2>/dev/null || echo 2)
T0=$(date +%s)

exec 3>&1 1>&2		# keep stdout (fd 3) for the final path only
log() { printf '[vmm-guest %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- packages
# need <package> <test...>: install <package> if the test fails.
missing_pkgs=()
need() { local pkg=$1; shift; "$@" >/dev/null 2>&1 || missing_pkgs+=("$pkg"); }
have() { command -v "$1"; }
static_busybox() { [ -x /bin/busybox ] && ! readelf -l /bin/busybox | grep -q 'program interpreter'; }

need linux-source-6.12 test -f "$KSRC_TARBALL"
need gcc have gcc
need make have make
need binutils have readelf
need flex have flex
need bison have bison
need bc have bc
need perl have perl
need xz-utils have xz
need zstd have zstd
need lz4 have lz4
need cpio have cpio
need dwarves have pahole
need libelf-dev test -f /usr/include/gelf.h
need libssl-dev test -f /usr/include/openssl/opensslv.h
need busybox-static static_busybox
if [ ${#missing_pkgs[@]} -gt 0 ]; then
	log "installing missing packages: ${missing_pkgs[*]}"
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update >&2
	$SUDO apt-get install -y --no-install-recommends "${missing_pkgs[@]}" >&2
fi
static_busybox || die "/bin/busybox is not a static binary (need busybox-static)"

# ------------------------------------------------------------------- hash
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
inputs_manifest() {
	echo "linux-source-6.12 $(pkgver linux-source-6.12)"
	echo "busybox-static $(pkgver busybox-static)"
	echo "gcc $(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)"
	(cd "$HERE" && find build.sh guest.config patches initramfs -type f \
		! -name '*~' -print0 | LC_ALL=C sort -z |
		xargs -0 sh -c 'for f; do printf "%s %s %s\n" "$(stat -c %a "$f")" \
			"$(sha256sum < "$f" | cut -c1-64)" "$f"; done' sh)
}
HASH=$(inputs_manifest | sha256sum | cut -c1-16)

CACHE_ROOT=${VMM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-guest}
OUT=$CACHE_ROOT/$HASH
OUTPUTS=(vmlinux bzImage initramfs.cpio initramfs-min.cpio System.map .config
	build/Makefile build/Module.symvers build/.config inputs.txt)

complete() {
	local f
	for f in "${OUTPUTS[@]}"; do [ -e "$OUT/$f" ] || return 1; done
}
finish() { echo "$OUT" >&3; exit 0; }

if complete; then
	log "cached: $OUT"
	finish
fi

mkdir -p "$CACHE_ROOT"
# One builder per hash; a second caller waits, then finds the result.
exec 9>"$CACHE_ROOT/.lock-$HASH"
if command -v flock >/dev/null; then
	flock 9
	if complete; then log "built by another process: $OUT"; finish; fi
fi
[ ! -e "$OUT" ] || { log "removing incomplete $OUT"; rm -rf "$OUT"; }

TMP=$(mktemp -d "$CACHE_ROOT/.tmp-$HASH.XXXXXX")
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
STAGE=$TMP/out
mkdir -p "$STAGE"
inputs_manifest > "$STAGE/inputs.txt"
log "building $HASH in $TMP ($JOBS jobs)"

# ---------------------------------------------------------------- sources
log "unpacking $KSRC_TARBALL"
tar -xf "$KSRC_TARBALL" -C "$TMP"
SRC=$TMP/linux-source-6.12
[ -f "$SRC/Makefile" ] || die "unexpected tarball layout"
for p in "$HERE"/patches/*.patch; do
	[ -e "$p" ] || continue
	log "applying patches/${p##*/}"
	patch -p1 -N -s -d "$SRC" < "$p" || die "patch ${p##*/} failed"
done

# ----------------------------------------------------------------- config
cd "$SRC"
export KBUILD_BUILD_USER=vmm KBUILD_BUILD_HOST=vmm-guest
export KBUILD_BUILD_TIMESTAMP="$(date -u -d @0 2>/dev/null || echo 'Thu Jan  1 00:00:00 UTC 1970')"
log "config: tinyconfig + guest.config"
make -s tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config "$HERE/guest.config" >"$TMP/config.log" 2>&1 ||
	{ cat "$TMP/config.log" >&2; die "merge_config.sh failed"; }
make -s olddefconfig >&2
bad=0
while IFS= read -r line; do
	grep -qxF -- "$line" .config && continue
	name=${line%%=*}
	log "config: wanted '$line', got '$(grep -E "^(# )?$name[= ]" .config || echo "(absent)")'"
	bad=1
done < <(grep -E '^CONFIG_[A-Za-z0-9_]+=' "$HERE/guest.config")
[ $bad = 0 ] || die "guest.config lines did not survive olddefconfig"
while read -r _ name _; do
	if grep -q "^$name=" .config; then
		log "config: note: $name wanted off, kconfig set it: $(grep "^$name=" .config)"
	fi
done < <(grep -E '^# CONFIG_[A-Za-z0-9_]+ is not set' "$HERE/guest.config")

# ------------------------------------------------------------------ build
log "make -j$JOBS vmlinux bzImage modules"
tb=$(date +%s)
make -j"$JOBS" vmlinux bzImage modules >"$TMP/make.log" 2>&1 || {
	tail -n 60 "$TMP/make.log" >&2
	die "kernel build failed (log above)"
}
log "kernel built in $(( $(date +%s) - tb ))s"

cp vmlinux System.map .config "$STAGE/"
cp arch/x86/boot/bzImage "$STAGE/bzImage"
cp "$TMP/config.log" "$TMP/make.log" "$STAGE/"
# Modules built in-tree (e.g. vim2m), for tests that want to insmod them.
mkdir -p "$STAGE/modules"
find . -name '*.ko' -not -path './build/*' -exec cp {} "$STAGE/modules/" \;

log "installing out-of-tree module build tree"
srctree=. objtree=. SRCARCH=x86 CC=gcc HOSTCC=gcc MAKE=make \
	sh scripts/package/install-extmod-build "$STAGE/build" >&2
cp .config "$STAGE/build/.config"
cp System.map "$STAGE/build/System.map"

# -------------------------------------------------------------- initramfs
log "building initramfs images"
IR=$TMP/initramfs
mkdir -p "$IR"
gcc -O2 -o "$IR/gen_init_cpio" usr/gen_init_cpio.c
GUEST_CFLAGS=(-static -nostdlib -ffreestanding -fno-stack-protector -fno-pie
	-no-pie -O2 -march=x86-64 -mtune=generic -mno-avx -Wall -Wextra
	-Wl,--build-id=none -s)
for prog in init-min vmm-exit; do
	gcc "${GUEST_CFLAGS[@]}" -o "$IR/$prog" "$HERE/initramfs/src/$prog.c"
done

common_spec() {
	cat <<-EOF
	dir /dev 0755 0 0
	nod /dev/console 0600 0 0 c 5 1
	dir /proc 0755 0 0
	dir /sys 0755 0 0
	dir /tmp 01777 0 0
	dir /bin 0755 0 0
	EOF
}
{
	common_spec
	echo "file /init $IR/init-min 0755 0 0"
	echo "file /bin/vmm-exit $IR/vmm-exit 0755 0 0"
} > "$IR/min.list"
{
	common_spec
	echo "dir /sbin 0755 0 0"
	echo "dir /tests 0755 0 0"
	echo "file /init $HERE/initramfs/init 0755 0 0"
	echo "file /bin/busybox /bin/busybox 0755 0 0"
	echo "file /bin/vmm-exit $IR/vmm-exit 0755 0 0"
	# A few applets as links; anything else is reachable as "busybox NAME".
	for a in sh ash mount umount cat ls mkdir mknod rm cp mv ln echo printf \
		test [ true false grep sed awk head tail cut tr wc sort uniq od \
		hexdump xxd dd sleep dmesg uname nproc ps kill env stat readlink \
		find sync seq time timeout date insmod rmmod lsmod modprobe; do
		echo "slink /bin/$a busybox 0777 0 0"
	done
	for t in "$HERE"/initramfs/tests/*.sh; do
		[ -e "$t" ] || continue
		echo "file /tests/${t##*/} $t 0644 0 0"
	done
} > "$IR/busybox.list"
# Fixed timestamp: identical inputs give identical images.
"$IR/gen_init_cpio" -t 0 "$IR/min.list" > "$STAGE/initramfs-min.cpio"
"$IR/gen_init_cpio" -t 0 "$IR/busybox.list" > "$STAGE/initramfs.cpio"
mkdir -p "$STAGE/initramfs"
cp "$IR/init-min" "$IR/vmm-exit" "$IR/min.list" "$IR/busybox.list" "$STAGE/initramfs/"

# ---------------------------------------------------------------- publish
cd "$CACHE_ROOT"
mv "$STAGE" "$OUT"
complete || die "output incomplete after build"
log "done in $(( $(date +%s) - T0 ))s: $OUT"
for f in vmlinux bzImage initramfs.cpio initramfs-min.cpio; do
	log "  $(du -h "$OUT/$f" | cut -f1)	$f"
done
finish
