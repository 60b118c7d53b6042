#!/usr/bin/env bash
# Data-parallel scaling: runs build/bench/data_parallel_bench on 1 rank and on each P of
# RANKS (under mpirun), for LoRA and full fine-tuning, and prints tokens/s, the share of the
# step spent in collectives, and the scaling efficiency tokens/s(P) / (P · tokens/s(1)).
#   bench/dist/scaling.sh [--device cpu|cuda|cuda-emu] [--ranks "2 4 8"] [bench options…]
# On cpu each rank gets OMP_NUM_THREADS=SMOL_THREADS_PER_RANK (default 1), so P ranks use P
# cores and the 1-rank baseline uses one: the comparison adds cores as ranks.
# Default ranks: 2 on cpu; every GPU nvidia-smi lists on cuda.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench=${SMOL_BUILD_DIR:-build}/bench/data_parallel_bench
device=cpu
ranks=""
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done
if [[ -z "$ranks" ]]; then
  if [[ "$device" == cuda ]]; then
    gpus=$(nvidia-smi -L | wc -l)
    ranks=$(seq -s ' ' 2 "$gpus")
  else
    ranks=2
  fi
fi
[[ -x "$bench" ]] || { echo "scaling.sh: $bench not built (cmake --build build)" >&2; exit 1; }
export OMP_NUM_THREADS=${SMOL_THREADS_PER_RANK:-1} OMP_WAIT_POLICY=passive
mpi=(mpirun --oversubscribe --bind-to none)
[[ $(id -u) == 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

for mode in lora full; do
  base=$("$bench" --device "$device" --mode "$mode" "${extra[@]}")
  echo "$base"
  base_tps=$(sed -E 's/.* ([0-9.]+) tokens\/s.*/\1/' <<<"$base")
  for p in $ranks; do
    line=$("${mpi[@]}" -np "$p" "$bench" --device "$device" --mode "$mode" "${extra[@]}")
    tps=$(sed -E 's/.* ([0-9.]+) tokens\/s.*/\1/' <<<"$line")
    echo "$line  efficiency $(awk -v a="$tps" -v b="$base_tps" -v p="$p" \
      'BEGIN { printf "%.2f", a / (p * b) }')"
  done
done
