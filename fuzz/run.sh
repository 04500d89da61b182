#!/usr/bin/env bash
# Coverage-guided fuzzing of the guest-facing parsers with SharpFuzz + AFL++ (see fuzz/README.md).
#   fuzz/run.sh TARGET|all [--seconds S] [--execs N] [--resume] [--timeout MS]
# TARGET: queue, pci, media, boot. Each target runs until S seconds (default 60) or N executions, whichever comes
# first; targets run one after another. Output (corpus, crashes, hangs, fuzzer_stats) goes to
# ${VMM_FUZZ_OUT:-${TMPDIR:-/tmp}/vmm-fuzz}/TARGET/out, outside the repository. --resume continues from that
# output instead of starting from fuzz/corpus/TARGET again. Prints one line per target; exits 1 when any target
# saved a crash or a hang. Runs afl-fuzz at nice 19 (VMM_FUZZ_NICE to change).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
ROOT=$PWD
OUT=${VMM_FUZZ_OUT:-${TMPDIR:-/tmp}/vmm-fuzz}
NICE=${VMM_FUZZ_NICE:-19}
ALL_TARGETS=(queue pci media boot)

log() { printf '[fuzz] %s\n' "$*" >&2; }
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
case "$1" in
  all) targets=("${ALL_TARGETS[@]}") ;;
  queue|pci|media|boot) targets=("$1") ;;
  *) usage ;;
esac
shift
seconds=60 execs="" resume=0 timeout=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --execs) execs=$2; shift 2 ;;
    --resume) resume=1; shift ;;
    --timeout) timeout=$2; shift 2 ;;
    *) usage ;;
  esac
done

bash "$ROOT/scripts/ensure-apt-packages.sh" afl++
dotnet tool restore >/dev/null

# Which assemblies (and which types, by name prefix) each target instruments: the code the input drives on the
# harness's thread. Device threads that run on their own (the rng's event loop, a device behind the PCI transport)
# stay uninstrumented: their timing-dependent edges would make most "new paths" noise (stability fell below 10% with
# them). The media target runs its device stepped, on the harness's thread, so all of the device is instrumented.
instrument_spec() {
  local m=Vmm.Devices.VirtioMedia
  case "$1" in
    queue) echo "Vmm.Core.dll:Vmm.Core.Virtio,Vmm.Core.Memory" ;;
    pci) echo "Vmm.Devices.Pci.dll Vmm.Core.dll:Vmm.Core.Bus" ;;
    media) echo "$m.dll:$m.Ioctls,$m.Device,$m.Buffers,$m.Sessions,$m.Kit,$m.Backends.TestPattern" ;;
    boot) echo "Vmm.Core.dll:Vmm.Core.Boot vmm.dll:Vmm.Cli.Configuration,Vmm.Cli.VmmCommandLine $m.dll:$m.Backends" ;;
  esac
}

# How long one input may take before afl-fuzz calls it a hang: pci activates devices that start threads.
default_timeout() { case "$1" in pci) echo 5000 ;; *) echo 2000 ;; esac; }

log "publishing fuzz/Vmm.Fuzz (Release)"
publish="$OUT/publish"
rm -rf "$publish"
dotnet publish fuzz/Vmm.Fuzz -c Release -o "$publish" -nologo -v quiet >&2

export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 \
  AFL_NO_AFFINITY=1 AFL_FORKSRV_INIT_TMOUT=60000 AFL_QUIET=1
summary=()
found=0
for t in "${targets[@]}"; do
  dir="$OUT/$t"
  bin="$dir/bin"
  rm -rf "$bin"
  mkdir -p "$dir"
  cp -r "$publish" "$bin"
  for spec in $(instrument_spec "$t"); do
    dll=${spec%%:*}
    prefixes=()
    [ "$spec" != "$dll" ] && IFS=, read -r -a prefixes <<< "${spec#*:}"
    dotnet sharpfuzz "$bin/$dll" "${prefixes[@]}" >&2
  done
  args=(-o "$dir/out" -t "${timeout:-$(default_timeout "$t")}" -m none -V "$seconds")
  [ -n "$execs" ] && args+=(-E "$execs")
  if [ $resume -eq 1 ] && [ -d "$dir/out/default" ]; then
    export AFL_AUTORESUME=1
    args+=(-i -)
  else
    unset AFL_AUTORESUME
    rm -rf "$dir/out"
    args+=(-i "$ROOT/fuzz/corpus/$t")
  fi
  log "$t: afl-fuzz for ${seconds} s${execs:+ or $execs execs} (output $dir/out)"
  nice -n "$NICE" afl-fuzz "${args[@]}" -- dotnet "$bin/Vmm.Fuzz.dll" "$t" > "$dir/afl.log" 2>&1 || {
    log "$t: afl-fuzz failed; last lines of $dir/afl.log:"
    tail -n 20 "$dir/afl.log" >&2
    exit 1
  }
  stats="$dir/out/default/fuzzer_stats"
  stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
  crashes=$(stat saved_crashes) hangs=$(stat saved_hangs)
  line=$(printf '%-6s execs %s, %s execs/s, corpus %s, bitmap %s, crashes %s, hangs %s, %s s' "$t" \
    "$(stat execs_done)" "$(stat execs_per_sec)" "$(stat corpus_count)" "$(stat bitmap_cvg)" "$crashes" "$hangs" \
    "$(stat run_time)")
  summary+=("$line")
  if [ "${crashes:-0}" != 0 ] || [ "${hangs:-0}" != 0 ]; then
    found=1
    log "$t: findings in $dir/out/default/crashes and $dir/out/default/hangs"
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit $found
