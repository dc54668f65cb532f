#!/usr/bin/env bash
# The GPU check (issue 17): from a fresh clone, install fairmetric into .venv if needed and run
# every CUDA check, one line each (benchmarks/gpu_check.py says what they are). Without a GPU
# every check is skipped with the reason. Meant to finish in under 8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh            # or: make gpu-check
#   bash benchmarks/gpu_check.sh --cpu      # the script's own smoke run, toy sizes on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c "import fairmetric" 2>/dev/null; then
    make .venv/.installed >&2
fi
exec .venv/bin/python benchmarks/gpu_check.py "$@"
