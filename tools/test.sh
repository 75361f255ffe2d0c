#!/usr/bin/env bash
# The test command of the README: installs dependencies, fetches the test tokenizers, builds, runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
if [ -f tools/fetch_tokenizers.sh ]; then bash tools/fetch_tokenizers.sh; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build
ctest --test-dir build --output-on-failure -j2
