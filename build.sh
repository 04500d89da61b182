#!/usr/bin/env bash
# One entry point for people and CI. On a fresh Debian 12 machine with the .NET 10 SDK:
#   ./build.sh demo    build everything needed and stream from the built-in test-pattern camera in a VM
#   ./build.sh test    build the guest kit and firmware, then run every test (KVM integration tests included) and a
#                      short run of each fuzzer; where /dev/kvm is missing, the KVM tests run in the lab (lab/run.sh)
# Other verbs: build (dotnet build), guest (test guest kernel kit), firmware (guest payloads), bench (benchmarks),
# bench-lab (the performance lab: suites, results.json and plots).
# Installs missing Debian packages with apt-get (needs root or sudo). Caches the guest kernel by input hash.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
ROOT=$PWD

log() { printf '[build.sh] %s\n' "$*" >&2; }

# Debian packages the build and the tests need (the guest kit script installs its own kernel-build packages);
# libturbojpeg0 is what the built-in JPEG decoder (--media jpeg-decoder) decodes with; dtc (device-tree-compiler)
# checks the arm64 device tree in a unit test; gcc-aarch64-linux-gnu builds the arm64 firmware guest.
APT_PACKAGES=(gcc libc6-dev make binutils cpio busybox-static zstd xz-utils lz4 bzip2 lzma libturbojpeg0 device-tree-compiler
  gcc-aarch64-linux-gnu)

# What the performance lab needs besides: the NativeAOT compiler links `vmm` with clang against zlib.
BENCH_APT_PACKAGES=(clang zlib1g-dev)

ensure_apt_packages() { bash "$ROOT/scripts/ensure-apt-packages.sh" "$@"; }

build_guest() {
  # Prints the kit directory (vmlinux, bzImage, initramfs images) on stdout.
  bash firmware/linux-guest/build.sh --print-dir | tail -n 1
}

build_firmware() {
  ARM64=1 bash firmware/build.sh >&2
  echo "$ROOT/firmware/out"
}

# Where KVM comes from: "native" when /dev/kvm opens read-write here, else "lab" (lab/run.sh: a standard AMD KVM
# under QEMU TCG). "pvm" is a native PVM host, which hides the ordinary host's code paths from the tests.
kvm_mode() {
  if [ -c /dev/kvm ] && { exec 3<>/dev/kvm; } 2>/dev/null; then
    exec 3>&-
    if [ -d /sys/module/kvm_pvm ] && [ -d /sys/class/misc/kvm ]; then echo pvm; else echo native; fi
  else
    echo lab
  fi
}

# The test projects that need KVM (they run in the lab where this machine has none).
KVM_TEST_PROJECTS=(tests/Vmm.Kvm.Tests tests/Vmm.IntegrationTests)
# The test projects that need vivid, the kernel's V4L2 test driver: they always run in the lab.
LAB_ONLY_TEST_PROJECTS=(tests/Vmm.HostV4l2.Tests)

# Runs `dotnet test` on each project given, teeing to $TEST_LOG; returns non-zero if any failed.
dotnet_test_each() {
  local rc=0 p
  for p in "$@"; do
    dotnet test "$p" -c Release --no-build -nologo "${TEST_ARGS[@]}" || rc=1
  done
  return $rc
}

# Sums "Passed!/Failed!  - Failed: F, Passed: P, Skipped: S" lines: prints "run skipped".
count_tests() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '/(Passed|Failed)! +- +Failed:/ {
    for (i = 1; i <= NF; i++) { f = $i; gsub(/[:,]/, "", f); v = $(i+1); gsub(/,/, "", v);
      if (f == "Failed" || f == "Passed") run += v; else if (f == "Skipped") skip += v } }
    END { printf "%d %d\n", run, skip }'
}

dotnet_build() {
  dotnet build Vmm.sln -c Release -nologo -v quiet "$@" >&2
}

case "${1:-}" in
  build)
    dotnet_build
    ;;
  guest)
    ensure_apt_packages "${APT_PACKAGES[@]}"
    build_guest
    ;;
  firmware)
    ensure_apt_packages "${APT_PACKAGES[@]}"
    build_firmware
    ;;
  demo)
    ensure_apt_packages "${APT_PACKAGES[@]}"
    fw=$(build_firmware)
    dotnet_build
    shift
    # The firmware guest of this host's architecture (vmm runs guests of its own).
    firmware=media-stream.elf
    [ "$(uname -m)" = aarch64 ] && firmware=media-stream-arm64.img
    demo=(dotnet src/Vmm.Cli/bin/Release/net10.0/vmm.dll demo --firmware "$fw/$firmware" "$@")
    if [ "$(kvm_mode)" = lab ]; then
      log "demo: no usable /dev/kvm here, so it runs in the lab (a standard KVM under QEMU TCG, lab/run.sh): about 20 s more for the lab's boot and .NET start-up, and its fps say nothing about a real host"
      exec lab/run.sh -- "${demo[@]}"
    fi
    exec "${demo[@]}"
    ;;
  test)
    ensure_apt_packages "${APT_PACKAGES[@]}"
    VMM_GUEST_DIR=$(build_guest)
    VMM_FIRMWARE_DIR=$(build_firmware)
    VMM_STOCK_KERNEL=$(bash firmware/stock-kernel/fetch.sh | tail -n 1)
    # The aarch64 lab's inputs (tests/Vmm.Arm64Lab.Tests): Debian's arm64 kernel with a busybox initramfs, and vmm
    # as a NativeAOT binary for linux-arm64, cross-compiled (the single binary a user would ship; it also starts in
    # 0.4 s under the lab's TCG where the JIT build takes 3). Publishing restores for that RID, so it goes before
    # the ordinary build.
    VMM_ARM64_GUEST_DIR=$(bash firmware/arm64-guest/build.sh --print-dir | tail -n 1)
    VMM_ARM64_VMM_DIR=$(VMM_PUBLISH_AOT=1 lab/publish-vmm-arm64.sh | tail -n 1)
    export VMM_GUEST_DIR VMM_FIRMWARE_DIR VMM_STOCK_KERNEL VMM_ARM64_GUEST_DIR VMM_ARM64_VMM_DIR
    log "guest kit: $VMM_GUEST_DIR"
    log "firmware:  $VMM_FIRMWARE_DIR"
    log "arm64:     $VMM_ARM64_GUEST_DIR, vmm for linux-arm64 in $VMM_ARM64_VMM_DIR"
    dotnet_build
    shift
    TEST_ARGS=("$@")
    mode=$(kvm_mode)
    native_log=$(mktemp) lab_log=$(mktemp)
    trap 'rm -f "$native_log" "$lab_log"' EXIT
    rc=0
    # Projects that run here: all but those needing the lab's vivid, and (without /dev/kvm) those needing KVM.
    here_excluded=("${LAB_ONLY_TEST_PROJECTS[@]}")
    [ "$mode" = lab ] && here_excluded+=("${KVM_TEST_PROJECTS[@]}")
    mapfile -t here < <(ls tests/*/*.csproj | xargs -n1 dirname | grep -v -x -F "${here_excluded[@]/#/-e}")
    log "KVM: $mode; here: ${here[*]}"
    dotnet_test_each "${here[@]}" 2>&1 | tee "$native_log" || rc=1
    # A short run of each coverage-guided fuzzer (fuzz/README.md: long runs); a saved crash or hang fails the run.
    fuzz/run.sh all --seconds "${VMM_FUZZ_SECONDS:-30}" || rc=1
    # The lab: vivid (no machine has a camera) for the host V4L2 proxy tests everywhere; on a PVM host also the
    # ordinary host's paths (no int3/fwait repairs, CPUID as KVM reports it); without /dev/kvm every KVM test.
    # One lab boot for all of it.
    projects=("${LAB_ONLY_TEST_PROJECTS[@]}")
    [ "$mode" = pvm ] && projects+=(tests/Vmm.IntegrationTests)
    [ "$mode" = lab ] && projects+=("${KVM_TEST_PROJECTS[@]}")
    t0=$SECONDS
    # A bounded lab phase (about 8 minutes normally; the Linux-driver media tests, run only with a module, take up to
    # half an hour each). The lab's nested SVM under TCG has wedged a few runs for good, a nested guest spinning with
    # its L1 never getting the CPU back (lab/README.md, "Known quirks"): a phase that runs out of time (124) is run
    # once more, and says so; any other failure counts as it is.
    lab_timeout=${VMM_LAB_PHASE_TIMEOUT:-1800}
    [ -n "${VMM_VIRTIO_MEDIA_MODULE:-}" ] && lab_timeout=4800
    lab_rc=0
    for attempt in 1 2; do
      lab_rc=0
      lab/run.sh --timeout "$lab_timeout" -- ./build.sh test-projects "${projects[@]}" -- "$@" 2>&1 | tee "$lab_log" || lab_rc=${PIPESTATUS[0]}
      [ "$lab_rc" = 124 ] && [ "$attempt" = 1 ] || break
      log "the lab phase ran out of time after $lab_timeout s (a wedged lab, not a test failure): running it once more"
    done
    [ "$lab_rc" = 0 ] || rc=1
    log "lab phase: $((SECONDS - t0)) s for ${projects[*]}"
    read -r native_run native_skipped < <(count_tests "$native_log")
    read -r lab_run lab_skipped < <(count_tests "$lab_log")
    echo "tests by where they ran: native $native_run, lab $lab_run, skipped $((native_skipped + lab_skipped))"
    exit $rc
    ;;
  test-projects)
    # Internal (the lab runs it): test-projects PROJECT... [-- DOTNET-TEST-ARGS...], already built.
    shift
    projects=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do projects+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    TEST_ARGS=("$@")
    dotnet_test_each "${projects[@]}"
    ;;
  bench)
    shift
    dotnet run -c Release --project benchmarks/Vmm.Benchmarks -- "$@"
    ;;
  bench-lab)
    # The performance lab (benchmarks/README.md): bench-lab [--quick] [--suites transport,streaming,boot,exits,footprint].
    # Results (results.json, plots) go to ${VMM_PERF_LAB_OUT:-perf-lab-results}. Where this host has no KVM, the
    # cases that need a VM run in the lab and their results go to its lab/ subdirectory, labelled host kind "lab".
    shift
    ensure_apt_packages "${APT_PACKAGES[@]}" "${BENCH_APT_PACKAGES[@]}"
    VMM_FIRMWARE_DIR=$(build_firmware)
    VMM_GUEST_DIR=${VMM_GUEST_DIR:-$(build_guest)}
    export VMM_FIRMWARE_DIR VMM_GUEST_DIR
    dotnet_build
    # The footprint suite compares the JIT build with the NativeAOT binary.
    dotnet publish src/Vmm.Cli -c Release -p:PublishProfile=NativeAot -nologo -v quiet >&2
    out=${VMM_PERF_LAB_OUT:-perf-lab-results}
    lab=(dotnet benchmarks/Vmm.PerfLab/bin/Release/net10.0/vmm-perflab.dll "$@")
    if [ "$(kvm_mode)" = lab ]; then
      "${lab[@]}" --skip-vm --out "$out"
      lab/run.sh -- "${lab[@]}" --vm-only --out "$out/lab"
    else
      "${lab[@]}" --out "$out"
    fi
    ;;
  *)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
