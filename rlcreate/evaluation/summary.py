"""Small pieces every domain's evaluation shares: reading a run folder's JSON files, and the
composite-return summary of a set of samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_json", "read_mapping", "dict_rows", "composite"]


def read_json(path: str | Path) -> Any:
    """A JSON file's content, or None when it is missing or not valid JSON (a partial run folder)."""
    from rlcreate.errors import UserError
    from rlcreate.safe_io import load_json

    if not Path(path).is_file():
        return None
    try:
        return load_json(path)  # size and depth caps
    except UserError:
        return None


def read_mapping(path: str | Path) -> dict:
    """A JSON file that should hold an object: its content, or ``{}`` when it is missing, damaged or
    of another shape (a hand-edited run folder is read as if the file were absent)."""
    value = read_json(path)
    return value if isinstance(value, dict) else {}


def dict_rows(value: Any) -> list[dict]:
    """The objects of a JSON list (other entries dropped); ``[]`` when ``value`` is not a list."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def composite(returns: Sequence[float] | np.ndarray) -> dict:
    """Mean, best and spread of composite returns (NaN entries, i.e. unscored samples, ignored)."""
    r = np.asarray(returns, np.float64)
    return {"mean": float(np.nanmean(r)), "best": float(np.nanmax(r)), "std": float(np.nanstd(r))}
