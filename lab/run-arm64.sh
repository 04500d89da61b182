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
PATH=$PATH:/usr/sbin:/sbin   # depmod and modprobe
CACHE=${VMM_LAB_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-lab-arm64}

log() { printf '[lab-arm64] %s\n' "$*" >&2; }
die() { printf 'lab: %s\n' "$*" >&2; exit 125; }

MEM=8192
# One CPU by default, as in the x86 lab (there, two made nested guests stall). TCG is multi-threaded here
# (thread=multi, QEMU's default for an arm64 guest on x86), so --cpus 2 does use both of this machine's cores.
CPUS=1
TIMEOUT=4800
PRINT_IMAGE=0
WITH_QEMU=0
BINDS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) [ "$2" = arm64 ] || [ "$2" = aarch64 ] || die "run-arm64.sh is the arm64 lab, not --arch $2"; shift 2 ;;
    --mem) MEM=$2; shift 2 ;;
    --cpus) CPUS=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --bind) BINDS+=("$2"); shift 2 ;;
    --with-qemu) WITH_QEMU=1; shift ;;
    --vivid-params) die "--vivid-params: the arm64 lab has no vivid" ;;
    --print-image) PRINT_IMAGE=1; shift ;;
    --) shift; break ;;
    -*) die "unknown option $1 (usage: lab/run.sh --arch arm64 [--mem MiB] [--cpus N] [--timeout S] [--bind DIR] [--with-qemu] -- CMD...)" ;;
    *) break ;;
  esac
done
[ "$PRINT_IMAGE" = 1 ] || [ $# -gt 0 ] || die "no command given (usage: lab/run.sh --arch arm64 [options] -- CMD...)"
[ "$(id -u)" -eq 0 ] || die "the lab needs root (it shares this machine's / with QEMU's 9p passthrough); run it with sudo"
for n in "$MEM" "$CPUS" "$TIMEOUT"; do [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: $n"; done

# Host packages: QEMU for arm64 guests and the tools that build the image. The arm64 packages are only downloaded.
ensure_packages() {
  bash "$LAB_DIR/../scripts/ensure-apt-packages.sh" qemu-system-arm kmod xz-utils cpio binutils
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to dpkg (for apt-get download of arm64 packages; nothing is installed)"
    dpkg --add-architecture arm64
    apt-get update -qq >&2
  fi
}

# The newest linux-image-6.12.*+deb12-arm64-unsigned in the apt lists (the lists are refreshed once if there is none).
kernel_package() {
  local re='^linux-image-6\.12\.[0-9]+\+deb12-arm64-unsigned$' pkg
  pkg=$(apt-cache search --names-only "$re" 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1)
  if [ -z "$pkg" ]; then
    apt-get update -qq >&2
    pkg=$(apt-cache search --names-only "$re" | awk '{print $1}' | sort -V | tail -n 1)
  fi
  [ -n "$pkg" ] || die "no linux-image-6.12.*+deb12-arm64-unsigned package in the apt lists"
  echo "$pkg"
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

# Builds the kernel + initramfs into $CACHE/<hash> (hash of the package versions, the modules and these scripts)
# and prints that directory.
build_image() {
  local pkg version key dir p versions
  pkg=$(kernel_package)
  local names=("$pkg" "${ROOT_PACKAGES[@]}")
  [ "$WITH_QEMU" = 0 ] || names+=(qemu-system-arm)
  versions=" $(candidates "${names[@]}" | tr '\n' ' ')"
  [ "$WITH_QEMU" = 0 ] || versions="$versions ipxe-qemu=$(apt-cache policy ipxe-qemu | awk '/Candidate:/ {print $2}')"
  version=$(sed -n "s/^ $pkg=\([^ ]*\) .*/\1/p" <<<"$versions")
  [ -n "$version" ] || die "no candidate version of $pkg:arm64"
  key=$( { echo "$pkg $version$versions ${LAB_MODULES[*]}"; cat "$LAB_DIR/run-arm64.sh" "$LAB_DIR/init-arm64.sh"; } \
         | sha256sum | cut -c1-16)
  dir=$CACHE/$key
  if [ -f "$dir/initramfs.cpio" ] && [ -f "$dir/Image" ]; then echo "$dir"; return; fi

  log "building the arm64 lab image ($pkg $version$([ "$WITH_QEMU" = 0 ] || echo ', with QEMU')) into $dir"
  local t0=$SECONDS tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  mkdir -m 777 "$tmp/deb"   # apt downloads as the _apt user
  local dl=("$pkg:arm64")
  for p in "${ROOT_PACKAGES[@]}"; do dl+=("$p:arm64"); done
  # ipxe-qemu (architecture all): the option ROMs (efi-virtio.rom) QEMU loads for its default NIC, virtio-net-pci,
  # from /usr/lib/ipxe/qemu; without them QEMU stops with 'failed to find romfile' unless given -nic none.
  [ "$WITH_QEMU" = 0 ] || dl+=(qemu-system-arm:arm64 ipxe-qemu)
  (cd "$tmp/deb" && apt-get download "${dl[@]}" >&2)
  mkdir "$tmp/k"
  dpkg-deb -x "$tmp/deb/${pkg}"_*_arm64.deb "$tmp/k"
  local kver
  kver=$(ls "$tmp/k/lib/modules")
  depmod -b "$tmp/k" "$kver"

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
  # Load order: each module after its dependencies, each once.
  local m line path seen=" " name
  : > "$root/lib/modules/lab/order"
  for m in "${LAB_MODULES[@]}"; do
    while read -r line; do
      [[ "$line" == insmod* ]] || continue
      path=$(awk '{print $2}' <<<"$line")
      case "$seen" in *" $path "*) continue ;; esac
      seen="$seen$path "
      name=$(basename "$path" .xz)
      xz -dc "$path" > "$root/lib/modules/lab/$name"
      echo "$name" >> "$root/lib/modules/lab/order"
    done < <(modprobe -d "$tmp/k" -S "$kver" --show-depends "$m")
  done
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$tmp/initramfs.cpio"
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

# The work directory holds the command script and the L1 console log; it is on this machine and reached over 9p.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmm-lab.XXXXXX")
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT

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

# A lab that fell asleep for good is woken, as in the x86 lab (run.sh): when QEMU has used no CPU for WAKE_AFTER
# seconds, one byte goes to the L1's virtio-serial port lab.out (the command's output; nobody reads its input).
WAKE_AFTER=30
mkfifo "$WORK/console-in"
exec 4<>"$WORK/console-in"
wake_when_idle() {
  local tpid=$1 qpid="" last="" now idle=0 wakes=0
  while sleep 5; do
    [ -n "$qpid" ] || qpid=$(pgrep -P "$tpid" | head -n 1) || true
    [ -n "$qpid" ] || continue
    now=$(awk '{print $14 + $15}' "/proc/$qpid/stat" 2>/dev/null) || return 0
    if [ "$now" = "$last" ]; then idle=$((idle + 5)); else idle=0; fi
    last=$now
    if [ "$idle" -ge "$WAKE_AFTER" ]; then
      wakes=$((wakes + 1))
      log "QEMU used no CPU for ${idle} s: the lab is asleep with no timer armed; sending it an interrupt (wake-up $wakes)"
      printf '\r' >&4
      idle=0
    fi
  done
}

# The L1 console (PL011, ttyAMA0) goes to a log; the command's output comes back on a virtio-serial port (the virt
# machine has one PL011 only; a port rather than a virtio console, hvc0, which managed about 14 KB/s). pauth-impdef: QEMU's own pointer-authentication hash instead of QARMA5,
# which is expensive to emulate and which Debian's kernel runs on every function return.
log "booting the arm64 lab (QEMU TCG, -M virt with EL2 and GICv3, $CPUS vCPUs, $MEM MiB): $*"
t0=$SECONDS
set +e
timeout --foreground -k 10 "$TIMEOUT" qemu-system-aarch64 \
  -M virt,virtualization=on,gic-version=3 -cpu max,sve=off,pauth-impdef=on -accel tcg,thread=multi \
  -smp "$CPUS" -m "$MEM" \
  -nodefaults -no-user-config -display none -no-reboot \
  -kernel "$IMAGE/Image" -initrd "$IMAGE/initramfs.cpio" \
  -append "console=ttyAMA0 panic=-1 loglevel=4 lab.work=$WORK" \
  -serial "file:$WORK/console.log" \
  -chardev stdio,id=out -device virtio-serial-pci -device virtserialport,chardev=out,name=lab.out \
  -device virtio-rng-pci \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap \
  < "$WORK/console-in" &
tpid=$!
wake_when_idle "$tpid" &
wpid=$!
wait "$tpid"
qrc=$?
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
exec 4>&-
set -e
elapsed=$((SECONDS - t0))
rc=$(sed -n 's/^LAB-EXIT \([0-9]*\).*/\1/p' "$WORK/console.log" 2>/dev/null | tail -n 1)
if [ "$qrc" = 124 ]; then
  log "the lab ran out of time after ${TIMEOUT} s; the L1 console's last lines:"
  tail -n 30 "$WORK/console.log" >&2 || true
  exit 124
fi
if [ -z "$rc" ]; then
  log "the lab stopped without the command's exit code (QEMU exit $qrc); the L1 console's last lines:"
  tail -n 40 "$WORK/console.log" >&2 || true
  exit 125
fi
log "done in ${elapsed} s (lab boot to power-off; $(sed -n 's/^LAB-READY \(.*\)$/command started at \1/p' "$WORK/console.log")), command exit code $rc"
exit "$rc"
