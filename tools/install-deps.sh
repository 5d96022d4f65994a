#!/usr/bin/env bash
# Installs the Debian packages maskgen needs to build, test and benchmark, when they are missing.
set -euo pipefail
packages=(g++ cmake make pkg-config libeigen3-dev libsentencepiece-dev sentencepiece
          nlohmann-json3-dev libpcre2-dev libutf8proc-dev libgtest-dev libgmock-dev libbenchmark-dev
          libcpp-httplib-dev libboost-dev libcli11-dev clang libclang-rt-14-dev libfuzzer-14-dev
          nginx)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
