#!/usr/bin/env bash
# The GPU check on the device machine, which has torch and transformers but not diffusers,
# pydantic or decord: they travel as wheels in .whl/ (git-ignored; docs/cluster.md, "GPU check").
#
#   bench/gpu_check.sh download        # here, once: fetch the wheels into .whl/ (Python 3.12, x86-64)
#   bench/gpu_check.sh run [ARGS...]   # there: install them into /tmp/site, run bench/gpu_check.py
#
# run writes $OUT/gpu_check.json (or ./gpu_check.json without $OUT) and exits with the check's status.
set -euo pipefail
cd "$(dirname "$0")/.."

# One version of each: the device's pip installs them with --no-deps.
WHEELS=(
  diffusers==0.42.1 importlib-metadata==9.1.0
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0
  decord==0.6.0
)

case "${1:-}" in
  download)
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64 \
      -d .whl "${WHEELS[@]}"
    ls -l .whl
    ;;
  run)
    shift
    ls .whl/*.whl > /dev/null  # fails clearly when the wheels were not carried
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    python3 -c "import diffusers, pydantic, torch, transformers; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'diffusers', diffusers.__version__, 'pydantic', pydantic.__version__)"
    exec python3 bench/gpu_check.py --out "${OUT:-.}/gpu_check.json" "$@"
    ;;
  *)
    echo "usage: bench/gpu_check.sh download | run [gpu_check.py arguments]" >&2
    exit 2
    ;;
esac
