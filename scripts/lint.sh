#!/usr/bin/env bash
# Ruff (lint + format check) and the type checker over the package, as CI runs them.
# mypy reads the installed layout (envs/ and rewards/ inside rlcreate/, as pyproject's package-dir
# mapping installs them), so the sources are staged into a temporary folder first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
"$PY" -m ruff check rlcreate envs rewards tests scripts
"$PY" -m ruff format --check rlcreate envs rewards
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
"$PY" - "$stage" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, ".")
from tests.test_architecture import stage_package

stage_package(Path(sys.argv[1]))
PY
(cd "$stage" && "$PY" -m mypy rlcreate --config-file "$ROOT/pyproject.toml" --cache-dir "$stage/.mypy_cache")
