#!/usr/bin/env bash
# Peer benchmark (not part of the tests): the SAM ViT-B image encoder, 1024 x 1024,
# random weights, in ONNX Runtime fp32 (npm onnxruntime-node, CPU) and in nephroseg
# fp32 / bf16 / int8, in interleaved rounds on the same machine.
# Usage: bench/peer/ort_vs_nephroseg.sh [ROUNDS=3] [THREADS=2]
#   needs build/nephroseg (scripts/build.sh), Debian's python3-torch (scripts/setup.sh)
#   and npm; ONNX Runtime is installed into a scratch folder, never into the tree.
set -euo pipefail
rounds=${1:-3}
threads=${2:-2}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="$repo/build/nephroseg"
[ -x "$bin" ] || { echo "ort_vs_nephroseg: $bin not found (run scripts/build.sh)" >&2; exit 1; }
work=${ORT_PEER_DIR:-/tmp/nephroseg-ort-peer}
mkdir -p "$work"
if [ ! -d "$work/node_modules/onnxruntime-node" ]; then
  (cd "$work" && ONNXRUNTIME_NODE_INSTALL=skip npm install --silent onnxruntime-node >/dev/null)
fi
[ -s "$work/sam_vit_b_encoder.onnx" ] || /usr/bin/python3 "$here/sam_encoder_onnx.py" "$work/sam_vit_b_encoder.onnx"
echo "onnxruntime-node $(cd "$work" && node -p "require('onnxruntime-node/package.json').version"), threads $threads, $rounds rounds"
for r in $(seq 1 "$rounds"); do
  echo "== round $r"
  (cd "$work" && NODE_PATH="$work/node_modules" node "$here/ort_time.js" "$work/sam_vit_b_encoder.onnx" "$threads" 1)
  "$bin" --threads "$threads" bench sam --precisions fp32,bf16,int8 --runs 1 --warmup 1 |
    grep -E '^(fp32|bf16|int8) +[0-9]'
done
