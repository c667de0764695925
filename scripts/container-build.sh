#!/usr/bin/env bash
# Build Cachalot the way the Dockerfile's build stage does, so the same steps
# can be run and debugged without a Docker engine:
#
#   scripts/container-build.sh SRC_DIR OUT_DIR
#
# Configures a Release build, builds, runs the unit tests and installs into
# the staging tree OUT_DIR (OUT_DIR/usr/bin/cachalot, OUT_DIR/etc/cachalot/...,
# OUT_DIR/lib/systemd/system/...). Running it again reuses the build directory
# and replaces OUT_DIR, so the result is the same.
#
# Environment:
#   CACHALOT_BUILD_DIR   build directory (default: SRC_DIR/build-container)
#   CACHALOT_SKIP_TESTS  1 to skip the unit tests
#   CACHALOT_JOBS        parallel build jobs (default: nproc)
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 SRC_DIR OUT_DIR" >&2
    exit 2
fi

src_dir=$(cd "$1" && pwd)
out_dir=$2
build_dir=${CACHALOT_BUILD_DIR:-$src_dir/build-container}
jobs=${CACHALOT_JOBS:-$(nproc)}
marker=.cachalot-staging

if [[ ! -f $src_dir/CMakeLists.txt ]]; then
    echo "$0: $src_dir has no CMakeLists.txt" >&2
    exit 2
fi

# OUT_DIR is wiped before installing, so only ever wipe a tree this script made.
out_dir=$(mkdir -p "$out_dir" && cd "$out_dir" && pwd)
if [[ $out_dir == / || $out_dir == "$src_dir" ]]; then
    echo "$0: refusing to use $out_dir as the staging directory" >&2
    exit 2
fi
if [[ -n $(ls -A "$out_dir") && ! -f $out_dir/$marker ]]; then
    echo "$0: $out_dir is not empty and was not made by this script" >&2
    exit 2
fi

generator=()
if command -v ninja >/dev/null 2>&1; then
    generator=(-G Ninja)
fi
# A build directory configured with another generator cannot be reused as is.
if [[ -f $build_dir/CMakeCache.txt ]] &&
   ! grep -q "^CMAKE_GENERATOR:INTERNAL=${generator[1]:-Unix Makefiles}\$" "$build_dir/CMakeCache.txt"; then
    rm -rf "$build_dir"
fi

echo "== configure ($build_dir)"
cmake -S "$src_dir" -B "$build_dir" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX=/usr \
    -DCACHALOT_TESTS=ON

echo "== build"
cmake --build "$build_dir" --parallel "$jobs"

if [[ ${CACHALOT_SKIP_TESTS:-0} != 1 ]]; then
    echo "== unit tests"
    # Conversation tests (conv.*) need a running daemon and tools the image
    # does not carry; they run in CI, not here.
    ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -R '^unit'
fi

echo "== install to $out_dir"
find "$out_dir" -mindepth 1 -delete
touch "$out_dir/$marker"
DESTDIR=$out_dir cmake --install "$build_dir" --strip

test -x "$out_dir/usr/bin/cachalot"
echo "== done: $out_dir/usr/bin/cachalot"
