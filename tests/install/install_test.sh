#!/usr/bin/env bash
# install_test.sh BUILD_DIR CONSUMER_SRC PYTHON_DIR [PYTHON]: installs BUILD_DIR into a temporary
# prefix, builds and runs the consumer against it, runs the installed CLI and imports the
# installed Python module from the prefix. Cleans up on every exit path.
set -euo pipefail
build=$1 consumer=$2 pydir=$3 python=${4:-python3}
tmp=$(mktemp -d /tmp/nephroseg-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
for f in bin/nephroseg include/nephroseg/eval/metrics.h; do
  [ -e "$prefix/$f" ] || { echo "install: $f missing from the prefix"; exit 1; }
done
config=$(find "$prefix" -name nephrosegConfig.cmake | head -n1)
[ -n "$config" ] || { echo "install: nephrosegConfig.cmake missing"; exit 1; }
echo "install: package config at ${config#$prefix/}"

# The consumer: configured and built with no knowledge of the source tree.
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$consumer" -B "$tmp/consumer" "${gen[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/configure.log" || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/consumer" >"$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }
out=$("$tmp/consumer/consumer")
echo "consumer: $out"
[ "$out" = "dice 0.5000 iou 0.3333" ] || { echo "install: unexpected consumer output"; exit 1; }

# The installed CLI and Python module.
"$prefix/bin/nephroseg" --version
if [ -d "$prefix/$pydir/nephroseg" ]; then
  (cd "$tmp" && PYTHONPATH="$prefix/$pydir" "$python" -c "
import nephroseg, numpy as np, sys
assert nephroseg.__file__.startswith('$prefix'), nephroseg.__file__
m = nephroseg.metrics(np.eye(4, dtype=bool), np.eye(4, dtype=bool))
assert m['dice'] == 1.0
print('python: nephroseg', nephroseg.__version__, 'from', nephroseg.__file__)")
else
  echo "install: no Python module in the prefix (built without NEPHROSEG_BUILD_PYTHON)"
fi
echo "install: OK"
