#!/usr/bin/env bash
# The arm64 L2 test guest: Debian's stock arm64 kernel (the same package as the aarch64 lab's L1 kernel, see
# lab/run-arm64.sh) and a busybox initramfs whose /init (init.sh here) loads the virtio modules, prints
# "ARM64-GUEST-INIT cpus=N", reads 1 MiB from the virtio RNG when the command line says "rngtest", prints
# "ARM64-GUEST-DONE" and powers off through PSCI.
#
#   firmware/arm64-guest/build.sh --print-dir     build (or find) the cached assets, print their directory
#
# The directory (~/.cache/vmm-arm64-guest/<hash of the package versions and these scripts, lab/lib.sh included>) holds:
#   vmlinuz            the kernel as Debian ships it (for 6.12 arm64: the raw Image already, no gzip, no EFI zboot)
#   Image              the raw arm64 Image (the same bytes when vmlinuz is raw; decompressed otherwise)
#   initramfs.cpio.gz  newc cpio, gzip-compressed (the kernel has RD_GZIP); initramfs.cpio is the same uncompressed
#   config             the kernel's config; kernel-format says what vmlinuz is; modules.order what /init loads
# Packages are downloaded with apt-get download (arm64) and unpacked, never installed. Needs root only to add the
# arm64 architecture to dpkg the first time.
#
# Under QEMU (e.g. inside the aarch64 lab, lab/run.sh --arch arm64 --with-qemu):
#   qemu-system-aarch64 -M virt -enable-kvm -cpu host -nographic -nodefaults -serial stdio -kernel DIR/Image \
#     -initrd DIR/initramfs.cpio.gz -append 'console=ttyAMA0 rngtest' -device virtio-rng-pci
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
CACHE=${VMM_ARM64_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-arm64-guest}
log() { printf '[arm64-guest] %s\n' "$*" >&2; }
die() { printf 'arm64-guest: %s\n' "$*" >&2; exit 1; }
# The lab's shared functions (kernel package, module closure, cpio): the L2 guest's kernel is the lab's L1 kernel.
# shellcheck source=lab/lib.sh
. "$HERE/../../lab/lib.sh"

[ "${1:-}" = --print-dir ] || die "usage: firmware/arm64-guest/build.sh --print-dir"

# Modules /init loads, by name, with their dependencies from modules.dep in load order. virtio-pci (and
# virtio itself) are built into Debian's arm64 kernel; virtio_mmio is a module there and is loaded too, for a VMM
# that puts its virtio devices on MMIO.
GUEST_MODULES=(virtio-rng virtio_mmio)

bash "$HERE/../../scripts/ensure-apt-packages.sh" kmod xz-utils cpio gzip
lab_add_arm64_arch

pkg=$(lab_kernel_package arm64)
versions=$(apt-cache policy "$pkg:arm64" busybox-static:arm64 | awk '/^[^ ]/ { n = $0 } /Candidate:/ { print n $2 }' | tr '\n' ' ')
key=$( { echo "$versions ${GUEST_MODULES[*]}"; cat "$HERE/build.sh" "$LAB_LIB" "$HERE/init.sh"; } | sha256sum | cut -c1-16)
dir=$CACHE/$key
if [ -f "$dir/Image" ] && [ -f "$dir/initramfs.cpio.gz" ]; then echo "$dir"; exit 0; fi

log "building the arm64 guest ($versions) into $dir"
t0=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
lab_download "$tmp/deb" "$pkg:arm64" busybox-static:arm64
kver=$(lab_unpack_kernel "$tmp/deb/$pkg"_*_arm64.deb "$tmp/k")
mkdir "$tmp/bb"
dpkg-deb -x "$tmp"/deb/busybox-static_*_arm64.deb "$tmp/bb"

out=$tmp/out
mkdir "$out"
vmlinuz=$tmp/k/boot/vmlinuz-$kver
cp "$vmlinuz" "$out/vmlinuz"
# What Debian ships: a raw Image ("ARMd" at 0x38), a gzip stream, or an EFI zboot image ("zimg" at 4, payload
# offset and size at 8 and 12, compression name at 24).
magic=$(od -An -tx1 -N2 "$vmlinuz" | tr -d ' \n')
if [ "$(dd if="$vmlinuz" bs=1 skip=56 count=4 status=none)" = ARMd ]; then
  ln "$out/vmlinuz" "$out/Image"   # the same bytes: one file, two names
  echo "raw arm64 Image (vmlinuz is the Image itself)" > "$out/kernel-format"
elif [ "$magic" = 1f8b ]; then
  zcat "$vmlinuz" > "$out/Image"
  echo "gzip-compressed arm64 Image" > "$out/kernel-format"
elif [ "$(dd if="$vmlinuz" bs=1 skip=4 count=4 status=none)" = zimg ]; then
  comp=$(dd if="$vmlinuz" bs=1 skip=24 count=8 status=none | tr -d '\0')
  off=$(od -An -tu4 -j8 -N4 "$vmlinuz" | tr -d ' ')
  size=$(od -An -tu4 -j12 -N4 "$vmlinuz" | tr -d ' ')
  [ "$comp" = gzip ] || die "EFI zboot kernel compressed with $comp: not handled"
  tail -c +$((off + 1)) "$vmlinuz" | head -c "$size" | zcat > "$out/Image"
  echo "EFI zboot (gzip payload)" > "$out/kernel-format"
else
  die "unknown kernel format of $vmlinuz (magic $magic)"
fi
[ "$(dd if="$out/Image" bs=1 skip=56 count=4 status=none)" = ARMd ] || die "the Image has no ARMd magic"
cp "$tmp/k/boot/config-$kver" "$out/config"
echo "$pkg $(apt-cache policy "$pkg:arm64" | awk '/Candidate:/ {print $2}')" > "$out/kernel-package"

root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$tmp/bb/bin/busybox" "$root/bin/busybox"
cp "$HERE/init.sh" "$root/init"
chmod 755 "$root/init"
lab_unpack_modules "$tmp/k" "$kver" "$root/lib/modules" "${GUEST_MODULES[@]}"
cp "$root/lib/modules/order" "$out/modules.order"
lab_cpio "$root" -R 0:0 > "$out/initramfs.cpio"
gzip -9n < "$out/initramfs.cpio" > "$out/initramfs.cpio.gz"

mkdir -p "$CACHE"
rm -rf "$dir"
mv "$out" "$dir"
log "built in $((SECONDS - t0)) s: $(cat "$dir/kernel-format"); initramfs $(du -k "$dir/initramfs.cpio.gz" | cut -f1) KiB gzip"
echo "$dir"
