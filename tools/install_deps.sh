#!/usr/bin/env bash
# Installs the Debian packages gemma4 builds and tests with (idempotent; needs root or sudo).
set -euo pipefail
pkgs=(g++ cmake ninja-build libfmt-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libgtest-dev libutf8proc-dev
      libomp-dev python3 nodejs npm)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
