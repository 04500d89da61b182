#!/usr/bin/env bash
# Publishes vmm for linux-arm64 (self-contained, JIT with ReadyToRun code by default; NativeAOT with
# VMM_PUBLISH_AOT=1) and prints the output directory, for running in the aarch64 lab (lab/run.sh --arch arm64):
#
#   dir=$(lab/publish-vmm-arm64.sh) && lab/run.sh --arch arm64 -- "$dir/vmm" --help
#
# ReadyToRun (precompiled code, crossgen2 from NuGet) is on by default: under the lab's TCG the JIT is the start-up
# cost, and R2R cuts it (see lab/README.md, "arm64 mode"). VMM_PUBLISH_R2R=false turns it off.
# VMM_PUBLISH_AOT=1 cross-compiles a NativeAOT binary instead (the single `vmm` ELF for aarch64, plus vmm.dbg and
# libSkiaSharp.so), into artifacts/publish/linux-arm64-aot: ILCompiler for linux-arm64 from NuGet, linked by clang
# with --target=aarch64-linux-gnu (set by the ILCompiler targets when the RID's architecture is not the host's),
# which finds Debian's cross toolchain on its own (aarch64-linux-gnu-ld.bfd, /usr/lib/gcc-cross/aarch64-linux-gnu,
# /usr/aarch64-linux-gnu): no SysRoot needed. zlib comes with the runtime pack (libz.a), so no zlib1g-dev:arm64.
# The NativeAOT profile for linux-x64 (src/Vmm.Cli/Properties/PublishProfiles/NativeAot.pubxml) is not used or touched.
# The output lands in artifacts/publish/linux-arm64 (VMM_ARM64_PUBLISH_DIR overrides; artifacts/ is git-ignored). The
# intermediate files go to the projects' usual obj/ and bin/ under a linux-arm64 RID directory; the restore for
# linux-arm64 rewrites each project's obj/project.assets.json, which the next ordinary build restores back, so do not
# run this while another build of src/ is running.
set -euo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
R2R=${VMM_PUBLISH_R2R:-true}
AOT=${VMM_PUBLISH_AOT:-0}
log() { printf '[publish-arm64] %s\n' "$*" >&2; }

t0=$SECONDS
if [ "$AOT" = 1 ] || [ "$AOT" = true ]; then
  OUT=${VMM_ARM64_PUBLISH_DIR:-$ROOT/artifacts/publish/linux-arm64-aot}
  # clang drives the link; gcc-aarch64-linux-gnu brings binutils-aarch64-linux-gnu (ld.bfd, objcopy) and
  # libgcc-12-dev-arm64-cross (crtbegin, libgcc); libc6-dev-arm64-cross is only its Recommends.
  bash "$ROOT/scripts/ensure-apt-packages.sh" clang gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  log "dotnet publish src/Vmm.Cli for linux-arm64 (NativeAOT, cross-compiled) into $OUT"
  dotnet publish "$ROOT/src/Vmm.Cli/Vmm.Cli.csproj" -c Release -r linux-arm64 --self-contained true \
    -p:PublishAot=true -p:PublishReadyToRun=false -p:ObjCopyName=aarch64-linux-gnu-objcopy \
    -p:PublishDocumentationFiles=false -p:PublishReferencesDocumentationFiles=false \
    -p:AllowedReferenceRelatedFileExtensions=- \
    -o "$OUT" -nologo -v:q >&2
else
  OUT=${VMM_ARM64_PUBLISH_DIR:-$ROOT/artifacts/publish/linux-arm64}
  log "dotnet publish src/Vmm.Cli for linux-arm64 (self-contained, ReadyToRun=$R2R) into $OUT"
  dotnet publish "$ROOT/src/Vmm.Cli/Vmm.Cli.csproj" -c Release -r linux-arm64 --self-contained true \
    -p:PublishAot=false -p:PublishReadyToRun="$R2R" \
    -o "$OUT" -nologo -v:q >&2
fi
[ -x "$OUT/vmm" ] || { log "no $OUT/vmm after publishing"; exit 1; }
log "published in $((SECONDS - t0)) s"
echo "$OUT"
