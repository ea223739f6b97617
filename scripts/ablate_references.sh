#!/usr/bin/env bash
# Few-shot reference ablation (docs/gbmseg.md): GBMSeg with k = 1, 2, 3, 5 pooled
# references on phantoms, with the weight-free backends (no model files needed).
# Prints one table row per k: mean Dice against the phantom masks, and the mean
# absolute error of the direct (medial-axis) median thickness against the true one.
#   scripts/ablate_references.sh [TARGETS (default 12)] [EXTRA gbmseg OPTIONS...]
# Environment: NEPHROSEG_BIN (default build/nephroseg), KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NEPHROSEG_BIN:-build/nephroseg}
targets=${1:-12}
shift || true
work=$(mktemp -d /tmp/nephroseg-ablate-refs.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
# 5 reference phantoms (seeds 100..104), the targets from other seeds (200...), 16 nm/px.
"$bin" --quiet phantom --out "$work/refs" --count 5 --seed 100 --prefix ref --thickness-px 32 --nm-per-pixel 16
"$bin" --quiet phantom --out "$work/targets" --count "$targets" --seed 200 --prefix t --thickness-px 32 \
  --nm-per-pixel 16
printf "| k | references | mean Dice | mean abs. thickness error (direct median) |\n|---|---|---|---|\n"
for k in 1 2 3 5; do
  refs=()
  for i in $(seq 0 $((k - 1))); do
    refs+=(--reference-image "$work/refs/images/ref_$((100 + i)).png"
           --reference-mask "$work/refs/masks/ref_$((100 + i)).png")
  done
  "$bin" --quiet gbmseg --features classical --segmenter classical "${refs[@]}" \
    --target "$work/targets/images" --ground-truth "$work/targets/masks" --nm-per-pixel 16 --measure \
    --out "$work/k$k" "$@"
  python3 - "$work/k$k/summary.csv" "$work/targets/truth.csv" "$k" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
truth = {r["name"]: float(r["true_thickness_nm"]) for r in csv.DictReader(open(sys.argv[2]))}
mean = next(r for r in rows if r["name"] == "mean")
errs = [abs(float(r["thickness_direct_median_nm"]) - truth[r["name"]]) / truth[r["name"]]
        for r in rows if r["name"] in truth and r["thickness_direct_median_nm"]]
print(f"| {sys.argv[3]} | ref_100..ref_{100 + int(sys.argv[3]) - 1} | {float(mean['dice']):.4f} | "
      f"{100 * sum(errs) / len(errs):.1f} % over {len(errs)} targets |")
PY
done
