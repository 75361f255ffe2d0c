#!/usr/bin/env bash
# Installs the Debian packages gemma4 builds and tests with (idempotent; needs root or sudo).
# npm and python3 are only needed by the test setup (tools/fetch_tokenizers.sh); a machine that already has
# them (in any form) keeps its own.
set -euo pipefail
pkgs=(g++ cmake ninja-build libfmt-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libgtest-dev)
command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
