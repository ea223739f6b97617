#!/usr/bin/env bash
# deb_test.sh BUILD_DIR [PYTHON]: builds the .deb with CPack, checks that its Depends names Debian
# packages (each one known to dpkg on this machine) and that it carries the CLI, the
# package config and the Python module; then unpacks it into a temporary root (no
# system-wide install: a test must not change the machine) and runs the CLI and
# `import nephroseg` from there.
set -euo pipefail
build=$1 python=${2:-python3}
tmp=$(mktemp -d /tmp/nephroseg-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/pkg" >"$tmp/cpack.log") ||
  { cat "$tmp/cpack.log"; exit 1; }
deb=$(find "$tmp/pkg" -maxdepth 1 -name 'nephroseg_*.deb' | head -n1)
[ -n "$deb" ] || { echo "deb: no .deb produced"; cat "$tmp/cpack.log"; exit 1; }
echo "deb: $(basename "$deb") ($(du -h "$deb" | cut -f1))"
depends=$(dpkg-deb -f "$deb" Depends)
echo "deb: Depends: $depends"
for p in libtorch1.13 libopencv-core406 libopenslide0 python3-numpy; do
  grep -qw -- "$p" <<<"$depends" || { echo "deb: Depends lacks $p"; exit 1; }
done
IFS=',' read -ra entries <<<"$depends"
for e in "${entries[@]}"; do
  name=$(awk '{print $1}' <<<"$e")
  dpkg-query -W "$name" >/dev/null 2>&1 || { echo "deb: Depends names '$name', which dpkg does not know"; exit 1; }
done
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/nephroseg ./usr/lib/python3/dist-packages/nephroseg/__init__.py nephrosegConfig.cmake; do
  grep -q -- "$f" <<<"$contents" || { echo "deb: $f missing from the package"; exit 1; }
done
dpkg-deb -x "$deb" "$tmp/root"
"$tmp/root/usr/bin/nephroseg" --version
(cd "$tmp" && PYTHONPATH="$tmp/root/usr/lib/python3/dist-packages" "$python" -c \
  "import nephroseg; assert nephroseg.__file__.startswith('$tmp/root'); print('python: import nephroseg OK', nephroseg.__version__)")
echo "deb: OK"
