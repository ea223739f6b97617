#!/usr/bin/env bash
# Cluster overhead on this machine, against a real Slurm: the same GBMSeg batch as 1, 2
# and 4 array tasks (wall time of the array, of the merge, and the per-target time of a
# single process), then GlomSAM training steps/s at world size 1 and 2 with the share
# of a step spent in all-reduce.
#
#   scripts/slurm/bench_cluster.sh [TARGETS] [TRAIN_IMAGES]
#
# Needs a built tree (build/nephroseg, or NEPHROSEG_BIN) and ../shared (the tiny golden
# models), and a cluster: SLURM_CONF of a running one, else one is started with
# scripts/slurm/local_cluster.sh in a temporary folder and stopped at the end.
# GBMSEG_MODELS="--dinov2 F --dinov2-config J --sam F --sam-config J" replaces the tiny
# models (e.g. full-size ones) for a per-target cost that means something.
# On a 2-core node the tasks share the cores: the point is correctness and the fixed
# cost of sharding (model load per task, merge), not a speed-up.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exe=${NEPHROSEG_BIN:-$root/build/nephroseg}
shared=${NEPHROSEG_SHARED:-$root/../shared}
targets=${1:-12}
train_images=${2:-8}
[ -x "$exe" ] || { echo "bench_cluster: build first ($exe missing)" >&2; exit 1; }
[ -f "$shared/golden/models/sam_tiny.pth" ] || { echo "bench_cluster: $shared/golden is missing" >&2; exit 1; }

work=$(mktemp -d /tmp/nephroseg-bench-cluster.XXXXXX)
chmod 755 "$work"  # munged (its own user) must reach the cluster folder inside
cluster=""
cleanup() {
  [ -n "$cluster" ] && "$root/scripts/slurm/local_cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
  [ -n "${KEEP_BENCH_DIR:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${SLURM_CONF:-}" ]; then
  cluster=$work/cluster
  mkdir -p "$cluster"
  "$root/scripts/slurm/local_cluster.sh" start "$cluster" >/dev/null
  export SLURM_CONF=$cluster/slurm.conf
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# --- GBMSeg: phantoms, the last one the reference --------------------------------------
"$exe" --quiet phantom --out "$work/ph" --count $((targets + 1)) --size 224
mkdir -p "$work/ref"
mv "$work/ph/images/phantom_$targets.png" "$work/ref/image.png"
mv "$work/ph/masks/phantom_$targets.png" "$work/ref/mask.png"
models=${GBMSEG_MODELS:-"--dinov2 $shared/golden/models/dinov2_tiny.pth --dinov2-config $shared/golden/models/dinov2_tiny.json --sam $shared/golden/models/sam_tiny.pth --sam-config $shared/golden/models/sam_tiny.json"}
echo "GBMSeg, $targets targets ($(nproc) cores on this node)"
printf "%-8s %10s %10s %14s\n" tasks array_s merge_s per_target_s
for n in 1 2 4; do
  out=$work/out$n
  t0=$(now)
  # shellcheck disable=SC2086
  NEPHROSEG=$exe sbatch --quiet --wait --array=0-$((n - 1)) --cpus-per-task=1 --mem=2G \
    --output="$work/slurm-%A_%a.out" "$root/scripts/slurm/gbmseg.sbatch" \
    "$work/ref/image.png" "$work/ref/mask.png" "$work/ph/images" "$out" $models >/dev/null
  t1=$(now)
  # One task is the whole batch (--shard auto = 1/1): nothing to merge.
  [ "$n" -gt 1 ] && "$exe" --quiet merge "$out"
  t2=$(now)
  per=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; ++i) if ($i == "total_s") c = i; next }
                 $0 !~ /mean/ && c { s += $c; k += 1 } END { if (k) printf "%.2f", s / k }' "$out/summary.csv")
  printf "%-8s %10s %10s %14s\n" "$n" "$(elapsed "$t0" "$t1")" "$(elapsed "$t1" "$t2")" "$per"
done

# --- GlomSAM training: world size 1 and 2 under srun ----------------------------------
"$exe" --quiet phantom --out "$work/train" --count "$train_images" --size 160
echo
echo "GlomSAM training (tiny config, $train_images images, global batch 4)"
printf "%-8s %10s %14s\n" ranks steps_per_s allreduce_share
port=$((20000 + $$ % 20000))
for w in 1 2; do
  log=$work/train$w.log
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$((port + w)) srun -n "$w" "$exe" --threads 1 glomsam train \
    --images "$work/train/images" --masks "$work/train/masks" --out "$work/run$w" --config tiny --seed 3 \
    --epochs 2 --batch-size $((4 / w)) --patience 0 --train-vit --freeze-bn --distributed --dist-timeout 120 \
    >"$log" 2>&1
  # Steps/s from the last epoch's images/s (global batch 4); the all-reduce share from
  # rank 0's data-parallel line (world size 2 only).
  ips=$(grep " img/s)" "$log" | tail -n1 | sed -n 's/.* s, \([0-9.e+-]*\) img\/s).*/\1/p' || true)
  steps=$(awk -v x="$ips" 'BEGIN { if (x != "") printf "%.2f", x / 4 }')
  line=$(grep "data-parallel:" "$log" | tail -n1 || true)
  share=$(sed -n 's/.*s (\([0-9.e+-]*\)% of training).*/\1/p' <<<"$line")
  printf "%-8s %10s %14s\n" "$w" "${steps:-?}" "${share:+$share %}"
done
