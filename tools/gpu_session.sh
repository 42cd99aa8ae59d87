#!/usr/bin/env bash
# One device call that fits a lent GPU's budget (15 minutes of device time a session, 10 minutes a command): install
# from the tree, run every kernel test on the GPU, then the GPU sets in the order the performance targets need them,
# each step bounded by what is left of SECONDS, and pack what came out into $OUT (at most 8 files come back).
#
#   bash tools/gpu_session.sh [SECONDS]      # default 540: leave the rest of a 600 s call for packing
#
# In the device call: carry [".whl"] (built here by ../shared/tools/device-wheels.sh: fvcore, mnist1d) and, to resume
# an interrupted session's sets, unpack its sets.tar.gz into results/ here first (the tree travels; --resume
# continues each set where it stopped). The sets are the targets' own shapes first, kanbench's kernels beside the
# references, the floors and the MLP baseline; the `compiled` impls and the peers (a torch.compile or a package per
# shape: minutes each) are left for a later call:
#   1. kat-b           the rational op vs GELU (fp32, bf16): op fwd <= 1.2x, fwd+bwd <= 1.5x the floor
#   2. spark-topk      statistical top-k fwd+bwd <= 1.2x the floor at >= 1024 rows
#   3. decode-gemma2b  Spark decode vs the dense gated FFN at batch 1..64: >= 2x at batch 1
#   4. ffn-768         8192 tokens, bf16, then fp32: every KAN block's triton and triton_unfused, GR-KAN's
#                      triton_fused, vs the MLP
#   5. profiles        kat-b and ffn-768 (8192 tokens, bf16) under the profile harness: what limits a missed target
set -uo pipefail
budget=${1:-540}
start=$SECONDS
out=${OUT:-/tmp/gpu-session-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
left() { echo $(( budget - (SECONDS - start) )); }

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target .site .whl/*.whl && export PYTHONPATH=$PWD/.site:${PYTHONPATH:-}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . || { echo "gpu_session: install failed"; exit 1; }
python3 -c 'import sys, torch, triton
if not torch.cuda.is_available():
    sys.exit("gpu_session: no CUDA device here (the CPU checks are .ci/run)")
print("torch", torch.__version__, "triton", triton.__version__, torch.cuda.get_device_name())' > "$out/versions.txt" \
  || exit 1

# every kernel test on the GPU (without TRITON_INTERPRET the kernels are compiled; the gpu-marked tests run); the
# binaries land in Triton's disk cache, so the sets below compile again only what the tests did not (the KAN
# layers' autotuner compiles its nine tiles per family here). Not the ahead-of-time compiles for other GPUs
# (test_kernels_compile.py): they need no GPU, CI runs them, and here they would spend device time.
timeout 180 python3 -m pytest -q -p no:cacheprovider tests/test_kernels_*.py tests/test_peers.py \
  -k "not test_kernels_compile" 2>&1 | tail -40 > "$out/tests.log"
# the CUDA cases of the peak-memory and timing checks (seconds)
timeout 40 python3 -m pytest -q -p no:cacheprovider tests/test_numbers.py -k "peak or collector" 2>&1 \
  | tail -5 >> "$out/tests.log"

step() {  # step PRESET [flags...]: one set, bounded by what is left (30 s kept for the targets and the packing)
  local t
  t=$(( $(left) - 30 ))
  if [ "$t" -lt 30 ]; then echo "gpu_session: no time left for $*" | tee -a "$out/skipped.txt"; return; fi
  timeout "$t" bash tools/run_gpu_sets.sh "$1" -- "${@:2}" >/dev/null 2>&1 \
    || echo "gpu_session: $* stopped (exit $?, after at most ${t} s): resume it in the next call" \
    | tee -a "$out/skipped.txt"
}
kernels=reference,triton,triton_fused,triton_unfused,cuda,sparse_cpu
step kat-b --impl "$kernels"
step spark-topk --impl "$kernels"
step decode-gemma2b --impl "$kernels"
step ffn-768 --tokens 8192 --dtype bf16 --impl "$kernels"
step ffn-768 --tokens 8192 --dtype fp32 --impl "$kernels"
# then where each call's time goes (the profile harness: kernels per call and the longest ones), for the targets a
# set misses; the sets' latency rows are already there, so only the profiles run. First the harness's GPU test
# (the L2 flush taken out of the kernel table), if there is time for it.
if [ "$(left)" -gt 90 ]; then
  timeout 45 python3 -m pytest -q -p no:cacheprovider tests/test_profile.py -k gpu 2>&1 | tail -5 >> "$out/tests.log"
fi
step kat-b --impl "$kernels" --harness latency,profile
step ffn-768 --tokens 8192 --dtype bf16 --impl "$kernels" --harness latency,profile

sets=$(ls -d results/*-"$(date -u +%Y-%m-%d)" 2>/dev/null | grep -v cpu- | head -1)
if [ -n "$sets" ]; then
  kanbench targets "$sets"/*/ > "$out/targets.txt" 2>&1
  # the profiles' traces apart: a file over 16 MiB does not come back, and the sets must
  tar czf "$out/sets.tar.gz" --exclude=profiles "$sets"
  profiles=$(find "$sets" -type d -name profiles)
  [ -n "$profiles" ] && tar czf "$out/profiles.tar.gz" $profiles
fi
echo "gpu_session: $(( SECONDS - start )) s; back in \$OUT: $(ls "$out" | tr '\n' ' ')"
