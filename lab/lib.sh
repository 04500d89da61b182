# shellcheck shell=bash
# What the lab scripts share: sourced (never run) by lab/run.sh (the x86 lab), lab/run-arm64.sh (the aarch64 lab)
# and firmware/arm64-guest/build.sh (the arm64 L2 test guest). The script that sources it sets -euo pipefail and
# defines log MESSAGE and die MESSAGE (its own prefix and exit code), which the functions here use. Each of those
# scripts hashes this file into its cache key ($LAB_LIB), so a change here rebuilds their images.
# shellcheck disable=SC2034 # used by the scripts that source this file
LAB_LIB=$(readlink -f "${BASH_SOURCE[0]}")

# --- Building an image ---
PATH=$PATH:/usr/sbin:/sbin   # depmod and modprobe

# Adds the arm64 architecture to dpkg, once, so that apt-get download can fetch arm64 packages (nothing is installed).
lab_add_arm64_arch() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to dpkg (for apt-get download of arm64 packages; nothing is installed)"
    dpkg --add-architecture arm64
    apt-get update -qq >&2
  fi
}

# lab_kernel_package ARCH: the newest linux-image-6.12.*+deb12-ARCH-unsigned (ARCH amd64 or arm64) in the apt lists,
# which are refreshed once if there is none.
lab_kernel_package() {
  local re="^linux-image-6\\.12\\.[0-9]+\\+deb12-$1-unsigned\$" pkg
  pkg=$(apt-cache search --names-only "$re" 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1)
  if [ -z "$pkg" ]; then
    apt-get update -qq >&2
    pkg=$(apt-cache search --names-only "$re" | awk '{print $1}' | sort -V | tail -n 1)
  fi
  [ -n "$pkg" ] || die "no linux-image-6.12.*+deb12-$1-unsigned package in the apt lists"
  echo "$pkg"
}

# lab_download DIR PKG...: makes DIR and downloads the packages into it (apt-get download, as the _apt user: hence
# mode 777).
lab_download() {
  local dir=$1
  shift
  mkdir -m 777 "$dir"
  (cd "$dir" && apt-get download "$@" >&2)
}

# lab_unpack_kernel DEB DIR: unpacks the kernel package DEB into DIR (which it makes), builds its modules.dep and
# prints the kernel's version (its directory under lib/modules).
# Its status is that of the first step that failed (run in $(...), it has no errexit).
lab_unpack_kernel() {
  local kver
  mkdir "$2" && dpkg-deb -x "$1" "$2" && kver=$(ls "$2/lib/modules") && depmod -b "$2" "$kver" && echo "$kver"
}

# lab_unpack_modules KDIR KVER DEST MODULE...: the modules named and their dependencies (from the kernel's own
# modules.dep, through modprobe --show-depends) out of the kernel unpacked in KDIR, decompressed into DEST in load
# order: each module after its dependencies, each once. DEST/order lists their file names, one a line, in that order.
lab_unpack_modules() {
  local kdir=$1 kver=$2 dest=$3 m line path name seen=" "
  shift 3
  : > "$dest/order"
  for m in "$@"; do
    while read -r line; do
      [[ "$line" == insmod* ]] || continue
      path=$(awk '{print $2}' <<<"$line")
      case "$seen" in *" $path "*) continue ;; esac
      seen="$seen$path "
      name=$(basename "$path" .xz)
      xz -dc "$path" > "$dest/$name"
      echo "$name" >> "$dest/order"
    done < <(modprobe -d "$kdir" -S "$kver" --show-depends "$m")
  done
}

# lab_cpio ROOT [CPIO OPTION...]: the tree ROOT as a newc cpio archive (in a stable order) on stdout.
lab_cpio() {
  local root=$1
  shift
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet "$@")
}

# --- Running the lab ---

# The options both labs take, with their defaults (the labs' own options are parsed in run.sh and run-arm64.sh).
MEM=8192
# One CPU: with two, nested guests in the x86 lab stalled at random points of early boot (a spinlock never released,
# seen under vmm and QEMU alike: 0 of 6 and 1 of 2 runs reached /init); with one, every run did. TCG runs one vCPU at
# a time there anyway (thread=single), so a second CPU buys no speed. The aarch64 lab defaults to one CPU as well; its
# TCG is multi-threaded (thread=multi, QEMU's default for an arm64 guest on x86), so --cpus 2 does use both of this
# machine's cores.
CPUS=1
TIMEOUT=4800
PRINT_IMAGE=0
# lab_common_option ARG...: when the command line left (ARG...) starts with one of those options (--mem MiB,
# --cpus N, --timeout SECONDS, --print-image), takes it and sets LAB_SHIFT to the number of words it used; returns 1
# when it does not.
lab_common_option() {
  case "$1" in
    --mem) MEM=$2; LAB_SHIFT=2 ;;
    --cpus) CPUS=$2; LAB_SHIFT=2 ;;
    --timeout) TIMEOUT=$2; LAB_SHIFT=2 ;;
    --print-image) PRINT_IMAGE=1; LAB_SHIFT=1 ;;
    *) return 1 ;;
  esac
}

# lab_check_run PRINT_IMAGE NCMD USAGE NUMBER...: the checks both labs make before anything else: a command (NCMD, the
# number of its words, is not 0) unless only the image is asked for (PRINT_IMAGE 1), root, and the options' numbers.
lab_check_run() {
  local n
  [ "$1" = 1 ] || [ "$2" -gt 0 ] || die "no command given (usage: $3)"
  shift 3
  # Root: QEMU shares / with the lab as it is (security_model=passthrough), and the command runs as root inside.
  [ "$(id -u)" -eq 0 ] || die "the lab needs root (it shares this machine's / with QEMU's 9p passthrough); run it with sudo"
  for n in "$@"; do [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: $n"; done
}

# lab_make_work: sets WORK to a new work directory, removed on exit. It holds the command script and the L1 console
# log; it is on this machine and reached over 9p.
lab_make_work() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmm-lab.XXXXXX")
  chmod 755 "$WORK"
  trap 'rm -rf "$WORK"' EXIT
}

# A lab that fell asleep for good is woken. Under TCG with nested SVM the L1 has been seen halted, QEMU using no CPU
# at all and no timer armed (a lost timer interrupt), while a test waited for it: the run then sat until the lab's
# timeout. Any interrupt wakes it and its timers run again, so when QEMU has used no CPU for WAKE_AFTER seconds one
# byte goes to QEMU's standard input, which is the L1's port for the command's output (nobody reads its input): the
# second serial port, ttyS1, in the x86 lab; the virtio-serial port lab.out in the aarch64 lab. Each wake-up is
# logged: a lab that is merely idle keeps its timer ticking and so costs QEMU some CPU.
# A busy lab gets the same byte, silently, every NUDGE_EVERY seconds: a few runs wedged with QEMU at full CPU and
# no progress for the rest of the timeout, a nested guest spinning while its L1 never got the CPU back (a lost
# timer interrupt again, by the look of it). An interrupt from another device makes the nested guest exit to the L1;
# an L1 that is merely busy just reads and drops the byte.
WAKE_AFTER=30
NUDGE_EVERY=60
# lab_wake_when_idle TIMEOUT_PID: watches the QEMU that is the child of the timeout process; writes to fd 4.
lab_wake_when_idle() {
  local tpid=$1 qpid="" last="" now idle=0 busy=0 wakes=0
  while sleep 5; do
    [ -n "$qpid" ] || qpid=$(pgrep -P "$tpid" | head -n 1) || true
    [ -n "$qpid" ] || continue
    now=$(awk '{print $14 + $15}' "/proc/$qpid/stat" 2>/dev/null) || return 0
    if [ "$now" = "$last" ]; then idle=$((idle + 5)); busy=0; else idle=0; busy=$((busy + 5)); fi
    last=$now
    if [ "$idle" -ge "$WAKE_AFTER" ]; then
      wakes=$((wakes + 1))
      log "QEMU used no CPU for ${idle} s: the lab is asleep with no timer armed; sending it an interrupt (wake-up $wakes)"
      printf '\r' >&4
      idle=0
    elif [ "$busy" -ge "$NUDGE_EVERY" ]; then
      printf '\r' >&4
      busy=0
    fi
  done
}

# lab_run_qemu QEMU [ARG...]: runs QEMU for at most $TIMEOUT seconds (then killed), its standard input a FIFO in
# $WORK fed by lab_wake_when_idle, and reads the command's exit code from the L1 console log ($WORK/console.log,
# the "LAB-EXIT N" line /init prints). Sets LAB_RC to that code and LAB_ELAPSED to QEMU's run time in seconds.
# Exits 124, with the console's last lines, when the lab ran out of time; 125 when it stopped without an exit code.
# shellcheck disable=SC2034 # LAB_RC and LAB_ELAPSED are for the caller
lab_run_qemu() {
  local t0=$SECONDS tpid wpid qrc rc
  mkfifo "$WORK/serial-in"
  exec 4<>"$WORK/serial-in"
  set +e
  timeout --foreground -k 10 "$TIMEOUT" "$@" < "$WORK/serial-in" &
  tpid=$!
  lab_wake_when_idle "$tpid" &
  wpid=$!
  wait "$tpid"
  qrc=$?
  kill "$wpid" 2>/dev/null
  wait "$wpid" 2>/dev/null
  exec 4>&-
  set -e
  LAB_ELAPSED=$((SECONDS - t0))
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
  LAB_RC=$rc
}
