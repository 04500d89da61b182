#!/usr/bin/env bash
# Publishes vmm for linux-arm64 (self-contained, JIT with ReadyToRun code, not NativeAOT) and prints the output
# directory, for running in the aarch64 lab (lab/run.sh --arch arm64):
#
#   dir=$(lab/publish-vmm-arm64.sh) && lab/run.sh --arch arm64 -- "$dir/vmm" --help
#
# ReadyToRun (precompiled code, crossgen2 from NuGet) is on by default: under the lab's TCG the JIT is the start-up
# cost, and R2R cuts it (see lab/README.md, "arm64 mode"). VMM_PUBLISH_R2R=false turns it off. The NativeAOT profile
# (src/Vmm.Cli/Properties/PublishProfiles/NativeAot.pubxml, linux-x64) is not used or touched here.
# The output lands in artifacts/publish/linux-arm64 (VMM_ARM64_PUBLISH_DIR overrides; artifacts/ is git-ignored). The
# intermediate files go to the projects' usual obj/ and bin/ under a linux-arm64 RID directory; the restore for
# linux-arm64 rewrites each project's obj/project.assets.json, which the next ordinary build restores back, so do not
# run this while another build of src/ is running.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
OUT=${VMM_ARM64_PUBLISH_DIR:-$ROOT/artifacts/publish/linux-arm64}
R2R=${VMM_PUBLISH_R2R:-true}
log() { printf '[publish-arm64] %s\n' "$*" >&2; }

t0=$SECONDS
log "dotnet publish src/Vmm.Cli for linux-arm64 (self-contained, ReadyToRun=$R2R) into $OUT"
dotnet publish "$ROOT/src/Vmm.Cli/Vmm.Cli.csproj" -c Release -r linux-arm64 --self-contained true \
  -p:PublishAot=false -p:PublishReadyToRun="$R2R" \
  -o "$OUT" -nologo -v:q >&2
[ -x "$OUT/vmm" ] || { log "no $OUT/vmm after publishing"; exit 1; }
log "published in $((SECONDS - t0)) s"
echo "$OUT"
