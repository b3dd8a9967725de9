# shellcheck shell=bash
# The llama.cpp build flags, shared by install-llama-server.sh and install-llama-finetune.sh so
# both programs come from one configuration: static (no shared-library symlinks) and AMX-free
# (-march=native AMX kernels crash on some Xeon VMs).
cpu_args="-DGGML_NATIVE=OFF -DGGML_AVX2=ON"
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  cpu_args="$cpu_args -DGGML_AVX512=ON"
fi
export CMAKE_ARGS="-DBUILD_SHARED_LIBS=OFF $cpu_args -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF"
export LLAMA_CPP_BUILD_JOBS=${LLAMA_CPP_BUILD_JOBS:-$(nproc)}
