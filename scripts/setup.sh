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

# Debian packages of the C++ build (LLVM/MLIR 22 come from bookworm-security).
PACKAGES=(
  g++ cmake ninja-build pkg-config
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libgtest-dev
  python3
  clang libclang-rt-14-dev
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

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DMLIR_DIR="$LLVM_PREFIX/lib/cmake/mlir" \
    -DLLVM_EXTERNAL_LIT="$LLVM_PREFIX/bin/lit"
fi
cmake --build "$BUILD_DIR"
echo "setup: built in $BUILD_DIR"
