#!/usr/bin/env bash
# The aarch64 lab: a real arm64 KVM host (VHE, GICv3 vgic) on this x86 machine. Boots Debian's stock arm64 6.12
# kernel under qemu-system-aarch64 TCG (-M virt,virtualization=on,gic-version=3 -cpu max), whose /init is an arm64
# userland built from Debian arm64 packages (unpacked, never installed): busybox, glibc and the C++ runtime a
# self-contained .NET app needs, bash. This machine's / is shared over 9p at /host, and the command's directory
# tree, $HOME and /tmp are bind-mounted from there at their usual paths; CMD (an arm64 program or script) runs at
# this directory with this environment (PATH aside) and /dev/kvm. Its output comes back on stdout and its exit code
# is this script's.
#
#   lab/run.sh --arch arm64 [--mem MiB] [--cpus N] [--timeout SECONDS] [--bind DIR]... [--with-qemu] -- CMD [ARG...]
#   lab/run.sh --arch arm64 [--with-qemu] --print-image      build (or find) the cached image, print its directory
#
# --with-qemu adds qemu-system-aarch64 (arm64) and its shared libraries to the L1 root, for baselines with QEMU
# as the L2 VMM (a bigger image: see lab/README.md). --bind DIR shares one more directory of this machine at the
# same path. run.sh hands --arch arm64 over to this script; it can also be run directly.
#
# Exit codes: CMD's own; 124 when the lab ran out of time; 125 when the lab itself failed (the L1 kernel's console
# is then printed from its log). Inside, VMM_LAB=1, VMM_LAB_ARCH=arm64 and DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
# are set, PATH is the arm64 root's. See lab/README.md ("arm64 mode") for what the lab is and costs.
set -euo pipefail
LAB_DIR=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
CACHE=${VMM_LAB_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-lab-arm64}

log() { printf '[lab-arm64] %s\n' "$*" >&2; }
die() { printf 'lab: %s\n' "$*" >&2; exit 125; }
# shellcheck source=lab/lib.sh
. "$LAB_DIR/lib.sh"

# Options: --mem, --cpus, --timeout and --print-image are lab_common_option's (lib.sh), with its defaults: one CPU,
# as in the x86 lab (there, two made nested guests stall); TCG is multi-threaded here, so --cpus 2 uses two cores.
WITH_QEMU=0
BINDS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ "$2" = arm64 ] || [ "$2" = aarch64 ] || die "run-arm64.sh is the arm64 lab, not --arch $2"; shift 2 ;;
    --bind) BINDS+=("$2"); shift 2 ;;
    --with-qemu) WITH_QEMU=1; shift ;;
    --vivid-params) die "--vivid-params: the arm64 lab has no vivid" ;;
    --) shift; break ;;
    -*)
      lab_common_option "$@" \
        || die "unknown option $1 (usage: lab/run.sh --arch arm64 [--mem MiB] [--cpus N] [--timeout S] [--bind DIR] [--with-qemu] -- CMD...)"
      shift "$LAB_SHIFT" ;;
    *) break ;;
  esac
done
lab_check_run "$PRINT_IMAGE" $# "lab/run.sh --arch arm64 [options] -- CMD..." "$MEM" "$CPUS" "$TIMEOUT"

# Host packages: QEMU for arm64 guests and the tools that build the image. The arm64 packages are only downloaded.
ensure_packages() {
  bash "$LAB_DIR/../scripts/ensure-apt-packages.sh" qemu-system-arm kmod xz-utils cpio binutils
  lab_add_arm64_arch
}

# "name=version" of each arm64 package named, in one apt-cache call (each call costs about a second).
candidates() {
  local a=() p
  for p in "$@"; do a+=("$p:arm64"); done
  apt-cache policy "${a[@]}" | awk '/^[^ ]/ { sub(/:arm64:$/, ""); name = $0 } /Candidate:/ { print name "=" $2 }'
}

# Modules the L1 loads, by name (KVM, virtio-pci and the PL011 are built into Debian's arm64 kernel); their
# dependencies come from the kernel's own modules.dep, in load order.
LAB_MODULES=(9p 9pnet_virtio virtio-rng)
# The arm64 userland: busybox for the shell and tools, glibc + libgcc + libstdc++ + zlib for a self-contained .NET
# app, libssl3 for .NET's cryptography (RandomNumberGenerator, which virtio-rng reads, is OpenSSL on Linux), bash
# for commands that are bash scripts.
ROOT_PACKAGES=(busybox-static libc6 libgcc-s1 libstdc++6 zlib1g libssl3 bash libtinfo6)

# Adds to the root in $1 (deb downloads in $2) the arm64 packages that provide the shared libraries the ELF files
# named after it need, transitively, until nothing is missing. A soname is mapped to its package through this
# machine's own dpkg database (the amd64 package of the same name), so it works for libraries this machine has.
find_lib() {
  local d
  for d in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib; do
    [ -e "$1/$d/$2" ] && { echo "$1/$d/$2"; return 0; }
  done
  return 1
}
add_library_closure() {
  local root=$1 debs=$2 round so pkg f
  shift 2
  local todo=("$@") done=" "
  for round in 1 2 3 4 5 6 7 8 9 10; do
    local missing=()
    while [ ${#todo[@]} -gt 0 ]; do
      f=${todo[0]}; todo=("${todo[@]:1}")
      case "$done" in *" $f "*) continue ;; esac
      done="$done$f "
      while read -r so; do
        if f=$(find_lib "$root" "$so"); then todo+=("$(readlink -f "$f")"); else missing+=("$so"); fi
      done < <(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    local pkgs=()
    for so in "${missing[@]}"; do
      pkg=$(dpkg -S "*/x86_64-linux-gnu/$so" 2>/dev/null | head -n 1 | cut -d: -f1)
      [ -n "$pkg" ] || die "no package found for $so (needed in the arm64 root; is its amd64 package installed here?)"
      pkgs+=("$pkg:arm64")
    done
    mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    log "library closure, round $round: ${pkgs[*]}"
    (cd "$debs" && apt-get download "${pkgs[@]}" >&2)
    for pkg in "${pkgs[@]}"; do
      for f in "$debs/${pkg%:arm64}"_*_arm64.deb; do dpkg-deb -x "$f" "$root"; done
    done
    # The files that needed a missing library are scanned again.
    read -r -a todo <<<"$done"; done=" "
  done
  die "the library closure did not close after 10 rounds"
}

# Builds the kernel + initramfs into $CACHE/<hash> (hash of the package versions, the modules and these scripts,
# lib.sh included)
# and prints that directory.
build_image() {
  local pkg version key dir p versions
  pkg=$(lab_kernel_package arm64)
  local names=("$pkg" "${ROOT_PACKAGES[@]}")
  [ "$WITH_QEMU" = 0 ] || names+=(qemu-system-arm)
  versions=" $(candidates "${names[@]}" | tr '\n' ' ')"
  [ "$WITH_QEMU" = 0 ] || versions="$versions ipxe-qemu=$(apt-cache policy ipxe-qemu | awk '/Candidate:/ {print $2}')"
  version=$(sed -n "s/^ $pkg=\([^ ]*\) .*/\1/p" <<<"$versions")
  [ -n "$version" ] || die "no candidate version of $pkg:arm64"
  key=$( { echo "$pkg $version$versions ${LAB_MODULES[*]}"; cat "$LAB_DIR/run-arm64.sh" "$LAB_LIB" "$LAB_DIR/init-arm64.sh"; } \
         | sha256sum | cut -c1-16)
  dir=$CACHE/$key
  if [ -f "$dir/initramfs.cpio" ] && [ -f "$dir/Image" ]; then echo "$dir"; return; fi

  log "building the arm64 lab image ($pkg $version$([ "$WITH_QEMU" = 0 ] || echo ', with QEMU')) into $dir"
  local t0=$SECONDS tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  local dl=("$pkg:arm64")
  for p in "${ROOT_PACKAGES[@]}"; do dl+=("$p:arm64"); done
  # ipxe-qemu (architecture all): the option ROMs (efi-virtio.rom) QEMU loads for its default NIC, virtio-net-pci,
  # from /usr/lib/ipxe/qemu; without them QEMU stops with 'failed to find romfile' unless given -nic none.
  [ "$WITH_QEMU" = 0 ] || dl+=(qemu-system-arm:arm64 ipxe-qemu)
  lab_download "$tmp/deb" "${dl[@]}"
  local kver
  kver=$(lab_unpack_kernel "$tmp/deb/${pkg}"_*_arm64.deb "$tmp/k")

  local root=$tmp/root
  mkdir -p "$root"
  for p in "${ROOT_PACKAGES[@]}"; do dpkg-deb -x "$tmp/deb/$p"_*_arm64.deb "$root"; done
  if [ "$WITH_QEMU" = 1 ]; then
    dpkg-deb -x "$tmp/deb"/qemu-system-arm_*_arm64.deb "$root"
    dpkg-deb -x "$tmp/deb"/ipxe-qemu_*_all.deb "$root"
    # Only the aarch64 system emulator: the 32-bit arm one and the docs are not needed.
    rm -rf "$root/usr/bin/qemu-system-arm" "$root/usr/share/doc" "$root/usr/share/man"
    add_library_closure "$root" "$tmp/deb" "$root/usr/bin/qemu-system-aarch64"
  fi
  rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" "$root/usr/share/lintian" \
         "$root/usr/share/info" "$root/usr/lib/aarch64-linux-gnu/gconv" "$root/etc/bash_completion.d"
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,host,run,tmp,root,etc,lib/modules/lab}
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
  printf 'root:x:0:\n' > "$root/etc/group"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "$root/etc/hosts"
  ln -sf /bin/busybox "$root/bin/sh"
  cp "$LAB_DIR/init-arm64.sh" "$root/init"
  chmod 755 "$root/init"
  lab_unpack_modules "$tmp/k" "$kver" "$root/lib/modules/lab" "${LAB_MODULES[@]}"
  lab_cpio "$root" > "$tmp/initramfs.cpio"
  mkdir -p "$CACHE"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  # Debian's arm64 vmlinuz is the raw arm64 Image (not gzip, not EFI zboot); QEMU's -kernel takes either.
  cp "$tmp/k/boot/vmlinuz-$kver" "$dir.tmp/Image"
  cp "$tmp/k/boot/config-$kver" "$dir.tmp/config"
  mv "$tmp/initramfs.cpio" "$dir.tmp/"
  cp "$root/lib/modules/lab/order" "$dir.tmp/modules.order"
  echo "$pkg $version" > "$dir.tmp/kernel-package"
  echo "${versions# }" | tr ' ' '\n' > "$dir.tmp/root-packages"
  rm -rf "$tmp" "$dir" && mv "$dir.tmp" "$dir"
  log "arm64 lab image built in $((SECONDS - t0)) s ($(du -m "$dir/initramfs.cpio" | cut -f1) MiB initramfs)"
  echo "$dir"
}

ensure_packages
IMAGE=$(build_image)
if [ "$PRINT_IMAGE" = 1 ]; then echo "$IMAGE"; exit 0; fi

lab_make_work

# Directories of this machine bind-mounted at the same paths inside: the top of this directory's tree (/work for
# /work/main; this directory itself when its top is part of the arm64 root, such as /usr), $HOME, /tmp, the work
# directory's parent and any --bind. Parents first; a directory under one already bound is left out.
top=/$(cut -d/ -f2 <<<"$PWD")
case "$top" in
  / | /bin | /sbin | /lib | /lib64 | /usr | /etc | /dev | /proc | /sys | /run | /host) top=$PWD ;;
esac
shared=()
for p in "$top" "$HOME" /tmp "$(dirname "$WORK")" "${BINDS[@]}"; do
  p=$(readlink -f "$p")
  case "$p" in
    / | /bin | /sbin | /lib | /lib64 | /usr | /etc | /dev | /proc | /sys | /run | /host) continue ;;
    *[[:space:]]*) die "cannot share a path with white space: $p" ;;
  esac
  [ -d "$p" ] && shared+=("$p")
done
printf '%s\n' "${shared[@]}" | LC_ALL=C sort -u \
  | awk '{ for (i = 1; i <= n; i++) if (index($0 "/", kept[i] "/") == 1) next; kept[++n] = $0; print }' \
  > "$WORK/binds"

sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }   # single-quoted for busybox sh
{
  echo '#!/bin/sh'
  # This environment, except what belongs to this machine's userland (PATH, the dynamic loader's and dotnet's
  # x86 install) and to this shell.
  while IFS= read -r -d '' kv; do
    name=${kv%%=*}
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    case "$name" in PATH | OLDPWD | PWD | SHLVL | _ | TERM | LD_* | DOTNET_ROOT* | DOTNET_HOST_PATH) continue ;; esac
    printf 'export %s=%s\n' "$name" "$(sq "${kv#*=}")"
  done < <(env -0)
  echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  echo 'export VMM_LAB=1 VMM_LAB_ARCH=arm64 DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1'
  echo 'export VSTEST_CONNECTION_TIMEOUT=${VSTEST_CONNECTION_TIMEOUT:-600}'
  printf 'cd %s || exit 125\n' "$(sq "$PWD")"
  # Through a pipe, as a command run from a script sees its output: no terminal colours or progress redraws.
  echo 'set -o pipefail'
  for a in "$@"; do printf '%s ' "$(sq "$a")"; done
  echo '2>&1 | cat'
  echo 'exit $?'
} > "$WORK/cmd.sh"
chmod 755 "$WORK/cmd.sh"

# The L1 console (PL011, ttyAMA0) goes to a log; the command's output comes back on a virtio-serial port (the virt
# machine has one PL011 only; a port rather than a virtio console, hvc0, which managed about 14 KB/s). pauth-impdef: QEMU's own pointer-authentication hash instead of QARMA5,
# which is expensive to emulate and which Debian's kernel runs on every function return. Under the lab's timeout,
# woken when idle through lab.out, QEMU's standard input (see lab_run_qemu in lib.sh).
log "booting the arm64 lab (QEMU TCG, -M virt with EL2 and GICv3, $CPUS vCPUs, $MEM MiB): $*"
lab_run_qemu qemu-system-aarch64 \
  -M virt,virtualization=on,gic-version=3 -cpu max,sve=off,pauth-impdef=on -accel tcg,thread=multi \
  -smp "$CPUS" -m "$MEM" \
  -nodefaults -no-user-config -display none -no-reboot \
  -kernel "$IMAGE/Image" -initrd "$IMAGE/initramfs.cpio" \
  -append "console=ttyAMA0 panic=-1 loglevel=4 lab.work=$WORK" \
  -serial "file:$WORK/console.log" \
  -chardev stdio,id=out -device virtio-serial-pci -device virtserialport,chardev=out,name=lab.out \
  -device virtio-rng-pci \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap
log "done in ${LAB_ELAPSED} s (lab boot to power-off; $(sed -n 's/^LAB-READY \(.*\)$/command started at \1/p' "$WORK/console.log")), command exit code $LAB_RC"
exit "$LAB_RC"
