#!/usr/bin/env bash
# Oldest-allowed-versions check: install every runtime dependency at the lower bound of its
# pyproject.toml specifier into a temporary virtual environment and run a smoke subset of the
# tests there.
#
#   scripts/check_lower_bounds.sh               run the check (make lower-bounds)
#   scripts/check_lower_bounds.sh --print-pins  print the pins only
#
# torch and torchvision are not pinned: their wheels with CUDA libraries are about 5 GB, so the
# temporary environment sees this environment's own torch/torchvision build (and their
# dependencies, by symbolic links), and everything else at its lower bound. docs/dependencies.md
# records which lower bounds the check installs and how long it takes.
#
# Environment: PYTHON (default .venv/bin/python, else python3) is the interpreter whose torch is
# shared and which creates the temporary venv; KEEP=1 keeps the temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
SHARED_NAMES="torch torchvision"

pins() {
    "$PYTHON" - "$SHARED_NAMES" <<'EOF'
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from packaging.requirements import Requirement

shared = sys.argv[1].split()
project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
for text in project["dependencies"]:
    req = Requirement(text)
    lower = [s for s in req.specifier if s.operator in (">=", "==", "~=")]
    if len(lower) != 1:
        sys.exit(f"{req}: needs exactly one lower bound (>=, == or ~=)")
    if req.name in shared:
        print(f"# {req.name}: lower bound {lower[0].version} not installed; this environment's "
              "build is used")
    else:
        print(f"{req.name}=={lower[0].version}")
EOF
}

if [[ "${1:-}" == "--print-pins" ]]; then
    pins
    exit 0
fi

start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fairmetric-lower-bounds.XXXXXX")
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$tmp"' EXIT; fi
pins > "$tmp/pins.txt"
echo "== pins (lower bounds of pyproject.toml)"
cat "$tmp/pins.txt"

"$PYTHON" -m venv "$tmp/venv"
site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

# torch, torchvision and their own dependencies (not the pinned ones) from this environment:
# symbolic links in one folder that a .pth file appends to the temporary venv's path, so the
# venv's own packages come first and pip sees torch as installed.
"$PYTHON" - "$tmp/shared" "$tmp/pins.txt" "$SHARED_NAMES" "$site" <<'EOF'
import os
import sys
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

out, pins_file, shared, venv_site = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(), sys.argv[4]
pinned = {
    canonicalize_name(Requirement(line.strip()).name)
    for line in open(pins_file)
    if line.strip() and not line.startswith("#")
}
own = {canonicalize_name(p.name.split("-")[0]) for p in Path(venv_site).glob("*.dist-info")}
out.mkdir()
todo, seen = [canonicalize_name(n) for n in shared], set()
while todo:
    name = todo.pop()
    if name in seen or name in pinned or name in own:
        continue
    seen.add(name)
    dist = distribution(name)
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(canonicalize_name(req.name))
    site = Path(dist.locate_file(""))
    tops = {Path(str(f)).parts[0] for f in dist.files or []}
    for top in sorted(tops):
        src = site / top
        if top not in ("..", "bin", "__pycache__") and src.exists() and not (out / top).exists():
            os.symlink(src, out / top)
print(f"shared from {sys.executable}: {', '.join(sorted(seen))}")
EOF
echo "$tmp/shared" > "$site/_fairmetric_shared.pth"

pip=("$tmp/venv/bin/python" -m pip install --disable-pip-version-check --quiet)
"${pip[@]}" -r "$tmp/pins.txt"
"${pip[@]}" "pytest>=7" "hypothesis>=6" "packaging>=23"
"$tmp/venv/bin/python" -m pip check --disable-pip-version-check
echo "== installed"
"$tmp/venv/bin/python" - <<'EOF'
from importlib.metadata import version

for name in ["torch", "torchvision", "timm", "pytorch-metric-learning", "faiss-cpu", "numpy",
             "pyyaml", "tqdm", "matplotlib", "safetensors", "scikit-learn", "scipy",
             "threadpoolctl", "pillow"]:
    print(f"{name} {version(name)}")
EOF
installed=$(date +%s)

# a smoke subset: PML reducers and losses, timm backbones, faiss search (the IVF-PQ index and its
# agreement check too), the audit and its reports (matplotlib), samplers, config loading (yaml),
# checkpoints (safetensors), a training run
smoke=(
    tests/test_dependencies.py
    tests/losses/test_reducers.py
    tests/losses/test_objective.py
    tests/models/test_embedder.py
    tests/neighbors/test_search.py
    tests/neighbors/test_ivfpq.py
    tests/audit/test_index_agreement.py
    tests/audit/test_audit.py
    tests/audit/test_min_group_size.py
    tests/report/test_writers.py
    tests/sampling/test_m_per_class.py
    tests/train/test_config.py
    tests/train/test_trainer.py
)
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONPATH="$PWD" \
    "$tmp/venv/bin/python" -m pytest -q -x -p no:cacheprovider "${smoke[@]}"
end=$(date +%s)
echo "lower-bounds check passed: install $((installed - start)) s, tests $((end - installed)) s"
