#!/usr/bin/env bash
# Sets up, builds and runs the self-contained GBMSeg demo (no download needed):
# phantom TEM images -> GBMSeg (official weights if found in $NEPHROSEG_MODELS or
# --models DIR, weight-free backends otherwise) -> masks, thickness, HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
./build/nephroseg demo --out nephroseg-demo "$@"
