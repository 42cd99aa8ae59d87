#!/usr/bin/env bash
# Produce the published GPU result sets in one go: every GPU preset into results/<gpu>-<date>/<preset>, each with
# its terminal table as summary.txt, then the performance targets judged on them (targets.txt). Re-running the same
# day resumes what an interrupted run left (--resume).
#
#   bash tools/run_gpu_sets.sh                 # kat-b ffn-768 spark-topk decode-gemma2b peers
#   bash tools/run_gpu_sets.sh kat-b           # one preset
set -euo pipefail
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(kat-b ffn-768 spark-topk decode-gemma2b peers)
gpu=$(python3 -c 'import sys, torch
if not torch.cuda.is_available():
    sys.exit("run_gpu_sets: no CUDA device here; the GPU sets need one (the CPU sets: see the README).")
print(torch.cuda.get_device_name().lower().replace("nvidia", "").split()[0])')
day=$(date -u +%Y-%m-%d)
for preset in "${presets[@]}"; do
  out="results/${gpu}-${day}/${preset}"
  mkdir -p "$out"
  resume=()
  [ -s "$out/results.csv" ] && resume=(--resume)
  kanbench run --preset "$preset" --cuda-graph --no-progress --out "$out" "${resume[@]}" 2>&1 | tee "$out/summary.txt"
done
kanbench targets "results/${gpu}-${day}"/*/ 2>&1 | tee "results/${gpu}-${day}/targets.txt"
echo "sets under results/${gpu}-${day}/"
