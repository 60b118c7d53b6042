#!/usr/bin/env bash
# Installs every system dependency of smolengine from Debian packages. Idempotent:
# packages already present are left alone, and apt is only asked when something is missing.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libyaml-cpp-dev          # config files (engine/ only)
  nlohmann-json3-dev       # JSON: tokenizer.json, safetensors headers, datasets, outputs
  libpcre2-dev             # \p{L} / \p{N} pre-tokenizer regex with lookahead
  libopenblas-openmp-dev liblapacke-dev   # cpu backend sgemm (OpenMP threads), QR/SVD
  libsentencepiece-dev     # sentencepiece tokenizer models
  libcli11-dev             # command line
  libopenmpi-dev openmpi-bin   # data parallelism on cpu (MPI communicator, mpirun) and the
                               # cuda-emu NCCL entry points
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-minimal unzip    # unzip: scripts/fetch-model.sh unpacks the wheel
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
