#!/usr/bin/env bash
# Installs every build and test dependency from Debian 12 packages.
# Used by the README, .ci/run and the Dockerfile alike. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libeigen3-dev prometheus-cpp-dev libyaml-cpp-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libgoogle-perftools-dev
)
# Optional extras: a real Prometheus (promtool and the scrape test) and
# clang with its sanitizer runtime for the fuzz targets; Debian's Python gRPC and
# pytest for the Python client and its tests; headless Chromium, which renders the
# HTML report in its test.
if [[ "${COREMLZ_WITH_TEST_TOOLS:-1}" == "1" ]]; then
  packages+=(prometheus clang libclang-rt-14-dev python3-grpcio python3-protobuf python3-pytest chromium)
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps.sh: run as root or install sudo" >&2; exit 1
  fi
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  echo "install-deps.sh: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# --no-install-recommends keeps the image small; the prometheus package's
# service is never started by us (tests run their own instance on loopback).
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
