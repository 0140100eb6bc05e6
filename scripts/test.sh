#!/usr/bin/env bash
# kvc tests: the lit suite and the GoogleTest units, through ctest.
#
#   scripts/test.sh [ctest args...]
#
# Builds what changed first. Ends with ctest's summary line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${KVC_BUILD_DIR:-$ROOT/build}"
cmake --build "$BUILD_DIR"
cd "$BUILD_DIR"
ctest --output-on-failure "$@"
