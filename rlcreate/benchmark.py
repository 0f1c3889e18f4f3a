"""One record of where and how a benchmark ran, for every benchmark JSON.

Benchmarks measure ratios inside one run, but a reader still needs the machine, the package
versions, the thread settings and how loaded the machine was (shared machines are noisy).
:func:`environment` captures all of it at the start; :func:`finish` adds the load at the end and
the wall time; :func:`write_json` writes the result atomically.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment", "finish", "write_json"]

PACKAGES = (
    "rlcreate",
    "torch",
    "numpy",
    "gymnasium",
    "stable-baselines3",
    "sb3-contrib",
    "transformers",
    "trl",
    "peft",
    "sentence-transformers",
    "faiss-cpu",
    "scikit-learn",
    "numba",
    "ray",
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment(settings: dict | None = None, command: str | None = None) -> dict:
    """Machine, versions, threads, load at start, the settings and the command line that ran."""
    threads = None
    if "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    return {
        "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "settings": settings or {},
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": threads,
            "load_avg_at_start": list(os.getloadavg()),
        },
        "versions": {p: v for p in PACKAGES if (v := _version(p)) is not None},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "_t0": time.perf_counter(),
    }


def finish(env: dict) -> dict:
    """The record with the load at the end and the wall time added."""
    out = {k: v for k, v in env.items() if k != "_t0"}
    out["machine"] = {**env["machine"], "load_avg_at_end": list(os.getloadavg())}
    out["wall_seconds"] = round(time.perf_counter() - env["_t0"], 2)
    return out


def write_json(path: str | Path, result: Any) -> Path:
    """Write ``result`` as indented JSON, atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    tmp.replace(path)
    return path
