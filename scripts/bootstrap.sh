#!/usr/bin/env bash
# Set up everything from a clean clone: system OTB apps (with --otb), a virtual environment,
# the CPU build of PyTorch first (a plain `torch` requirement would pull a CUDA build),
# then the project with its test extras. Idempotent: reruns are quick.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--otb" ]] && ! command -v otbcli_ComputeConfusionMatrix >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq otb-bin >/dev/null
fi
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[test]'
# iota2's conda environment pins the older config 0.4 API: a test reads our cfgs with it too
[[ -f .venv/compat/config-0.4/config.py ]] || \
  .venv/bin/python -m pip install -q --no-deps --target .venv/compat/config-0.4 config==0.4.2
