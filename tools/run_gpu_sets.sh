#!/usr/bin/env bash
# Produce the published GPU result sets: every GPU preset into results/<gpu>-<date>/<preset>, each with its terminal
# output appended to summary.txt, then the performance targets judged on them (targets.txt). Running it again the
# same day resumes what an interrupted or narrowed run left (--resume keys every unit, whatever the flags were).
#
#   bash tools/run_gpu_sets.sh                              # kat-b ffn-768 spark-topk decode-gemma2b
#   bash tools/run_gpu_sets.sh kat-b                        # one preset
#   bash tools/run_gpu_sets.sh ffn-768 -- --tokens 8192     # flags after -- go to every `kanbench run`
#
# On a GPU, ffn-768 already measures the peer packages' impls (every variant, every impl), so the `peers` preset
# would repeat it. ffn-768 is the long one (10 variants x their impls x 4 token counts x 2 dtypes, a torch.compile
# per shape for every `compiled` impl): on a time budget, run it at the targets' 8192 tokens first and resume the
# other token counts later.
set -euo pipefail
presets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do presets+=("$1"); shift; done
[ $# -gt 0 ] && shift  # the --
extra=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(kat-b ffn-768 spark-topk decode-gemma2b)
gpu=$(python3 -c 'import sys, torch
if not torch.cuda.is_available():
    sys.exit("run_gpu_sets: no CUDA device here; the GPU sets need one (the CPU sets: see the README).")
print(torch.cuda.get_device_name().lower().replace("nvidia", "").split()[0])')
day=$(date -u +%Y-%m-%d)
# Triton's autotuners (GR-KAN's fused matmul, the KAN-layer matmuls) print the tile they picked per kernel and shape
# when they pick it (in the gate, before any timing): summary.txt keeps which tile each figure ran at
export TRITON_PRINT_AUTOTUNING=${TRITON_PRINT_AUTOTUNING:-1}
for preset in "${presets[@]}"; do
  out="results/${gpu}-${day}/${preset}"
  mkdir -p "$out"
  resume=()
  [ -s "$out/results.csv" ] && resume=(--resume)
  kanbench run --preset "$preset" --cuda-graph --no-progress --out "$out" "${resume[@]}" "${extra[@]}" 2>&1 \
    | tee -a "$out/summary.txt"
done
kanbench targets "results/${gpu}-${day}"/*/ 2>&1 | tee "results/${gpu}-${day}/targets.txt"
echo "sets under results/${gpu}-${day}/"
