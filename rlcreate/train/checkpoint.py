"""Run-folder state as data, never code: the generic part every trainer shares.

Everything rlcreate writes into a run folder can be opened without executing anything:

* reward-set state (novelty archives, running normalisers): ``reward_state.npz`` read with
  ``allow_pickle=False``, its tree structure as JSON inside (:func:`save_tree` / :func:`load_tree`);
* weights: ``safetensors`` (tensors only); descriptions and counters: JSON.

Every trainer writes the same layout (``RUN/checkpoints/step_<N>/`` during training, ``RUN/model/``
at the end), each folder holding at least ``reward_state.npz`` and ``trainer_state.json``; what else
a folder holds is the trainer's (SB3: :mod:`rlcreate.sb3.io`; TRL: :mod:`rlcreate.trl.grpo`).
A checkpoint is written under a temporary name and renamed into place with :func:`os.replace`
(:func:`atomic_folder`), so a kill at any moment leaves either the whole checkpoint or none of it.
Temporary folders start with ``.`` and are ignored (and removed on resume).

Nothing here unpickles: ``np.load(..., allow_pickle=False)``, ``safetensors`` and ``json`` only.
"""

from __future__ import annotations

import json
import os
import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.errors import UserError
from rlcreate.runbox import atomic_target, remove, replace_folder
from rlcreate.safe_io import UnsafeInputError, check_npz, check_safetensors, load_json, loads_json
from rlcreate.trainers import CHECKPOINT_FILES  # the layout every trainer writes

__all__ = [
    "StateFormatError",
    "FORMAT",
    "save_tree",
    "load_tree",
    "atomic_folder",
    "load_reward_state",
    "list_checkpoints",
    "latest_checkpoint",
    "checkpoint_steps",
    "clear_run_outputs",
    "RUN_OUTPUTS",
    "CHECKPOINT_FILES",
]

FORMAT = "rlcreate-checkpoint/1"
_STEP_DIR = re.compile(r"step_(\d+)")
# What `train` writes into a run folder (and what `train --overwrite` removes; nothing else).
RUN_OUTPUTS = (
    "config.yaml",
    "tb",
    "checkpoints",
    "model",
    "samples",
    "eval_samples",
    "generated",
    "metrics.json",
    "audit.json",
    "model.zip",
    "reward_state.pkl",
)


class StateFormatError(UserError):
    """A run-folder file is not what rlcreate writes (corrupt, truncated, foreign or hand-edited)."""


# --------------------------------------------------------------------------------- state trees


def _encode(x: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(x, dict):
        bad = [k for k in x if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where}: state keys must be strings, got {bad[0]!r}")
        return {"t": "dict", "v": {k: _encode(v, arrays, f"{where}.{k}") for k, v in x.items()}}
    if isinstance(x, (list, tuple)):
        return {"t": "list", "v": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(x)]}
    if type(x).__module__ == "torch" and type(x).__name__ == "Tensor":
        key = f"a{len(arrays)}"
        arrays[key] = x.detach().cpu().numpy()
        return {"t": "tensor", "k": key}
    if isinstance(x, np.ndarray):
        if x.dtype.hasobject:
            raise TypeError(f"{where}: object arrays cannot be saved without pickle")
        key = f"a{len(arrays)}"
        arrays[key] = x
        return {"t": "array", "k": key}
    if isinstance(x, np.generic):
        x = x.item()
    if x is None or isinstance(x, (bool, int, str)):
        return {"t": "py", "v": x}
    if isinstance(x, float):
        return {"t": "float", "v": repr(x)}  # repr round-trips exactly, nan/inf included
    raise TypeError(
        f"{where}: cannot save a {type(x).__name__} without pickle; state_dict() must hold "
        "dicts, lists, numbers, strings, None and numeric arrays"
    )


def _decode(node: Any, data: Any, where: str) -> Any:
    if not isinstance(node, dict) or "t" not in node:
        raise StateFormatError(f"{where}: malformed state tree")
    t = node["t"]
    if t == "dict":
        return {str(k): _decode(v, data, f"{where}.{k}") for k, v in dict(node["v"]).items()}
    if t == "list":
        return [_decode(v, data, f"{where}[{i}]") for i, v in enumerate(list(node["v"]))]
    if t in ("array", "tensor"):
        key = str(node["k"])
        if key not in data.files:
            raise StateFormatError(f"{where}: array {key!r} missing from the file")
        arr = data[key]
        if t == "tensor":
            import torch

            return torch.from_numpy(np.array(arr))
        return np.array(arr)
    if t == "float":
        return float(node["v"])
    if t == "py":
        v = node["v"]
        if v is not None and not isinstance(v, (bool, int, str)):
            raise StateFormatError(f"{where}: unexpected value {v!r}")
        return v
    raise StateFormatError(f"{where}: unknown node type {t!r}")


def save_tree(tree: dict, path: str | Path) -> Path:
    """Write a nested state dict (dicts, lists, numbers, strings, numeric arrays) to one ``.npz``.

    Arrays are stored as npz members; the structure and scalars as JSON in member ``__tree__``.
    Written to a temporary file and renamed, so a reader never sees half a file."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    meta = _encode(tree, arrays, "state")
    with atomic_target(path) as tmp, open(tmp, "wb") as f:  # exclusive temp file: never through a link
        # numpy's stub: **arrays could in principle name savez's allow_pickle (our keys all start "state")
        np.savez(f, __tree__=np.array(json.dumps({"format": FORMAT, "tree": meta})), **arrays)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    return path


def load_tree(path: str | Path) -> dict:
    """Read a file written by :func:`save_tree` (``allow_pickle=False``: nothing executes)."""
    path = Path(path)
    check_npz(path)  # declared sizes checked before numpy allocates (rlcreate.safe_io)
    try:
        with np.load(path, allow_pickle=False) as data:
            head = loads_json(str(data["__tree__"]), f"{path}: __tree__")
            fmt = head.get("format") if isinstance(head, dict) else None
            if fmt != FORMAT:
                raise StateFormatError(f"{path}: not an rlcreate state file (format {fmt!r})")
            return _decode(head["tree"], data, "state")
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        # ValueError covers np.load's refusal of pickled object arrays and bad zip members
        raise StateFormatError(
            f"{path}: not a readable rlcreate state file ({type(exc).__name__}: "
            f"{str(exc)[:120]}); it may be truncated or not written by rlcreate"
        ) from None
    except Exception as exc:  # zipfile.BadZipFile and friends
        raise StateFormatError(
            f"{path}: not a readable rlcreate state file ({type(exc).__name__}); "
            "it may be truncated or not written by rlcreate"
        ) from None


# --------------------------------------------------------------------------------- atomic folders


def atomic_folder(final: Path) -> AbstractContextManager[Path]:
    """Yield a temporary sibling folder; on success its files are flushed and it replaces ``final``
    in one rename (:func:`rlcreate.runbox.replace_folder` with ``fsync``)."""
    return replace_folder(final, fsync=True)


def clear_run_outputs(run_dir: Path) -> None:
    """Remove what an earlier ``train`` wrote into ``run_dir`` (only rlcreate's own outputs)."""
    for name in RUN_OUTPUTS:
        remove(Path(run_dir) / name)  # a link is removed itself; nothing is followed


# --------------------------------------------------------------------------------- load


def _read_json(path: Path, finite: bool = True) -> dict:
    try:
        out = load_json(path, path.name, finite=finite)  # size and depth caps (rlcreate.safe_io)
    except UnsafeInputError as exc:
        raise StateFormatError(f"{exc}; the checkpoint is damaged") from None
    if not isinstance(out, dict):
        raise StateFormatError(f"{path}: expected a JSON object")
    return out


def _load_safetensors(path: Path, expected: dict | None = None) -> dict:
    """Tensors of a safetensors file whose header (shapes, sizes; ``expected`` shapes when given)
    was checked first; non-finite values are refused."""
    import torch
    from safetensors.torch import load_file

    check_safetensors(path, expected)
    try:
        out = load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError for truncated/foreign files
        raise StateFormatError(
            f"{path}: not a readable safetensors file ({type(exc).__name__}); "
            "it may be truncated or not written by rlcreate"
        ) from None
    for name, t in out.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise StateFormatError(
                f"{path}: tensor {name!r} holds NaN or infinite values; the checkpoint is "
                "damaged (resume from an earlier one, or retrain)"
            )
    return out


def load_reward_state(folder: Path, reward_set: Any) -> bool:
    """Load ``folder/reward_state.npz`` into ``reward_set``; False when the file is absent."""
    path = Path(folder) / "reward_state.npz"
    if not path.is_file():
        return False
    state = load_tree(path)
    try:
        reward_set.load_state_dict(state)
    # AttributeError: a list saved where a term's state dict belongs
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise StateFormatError(
            f"{path}: does not fit this run's reward terms ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None
    return True


# --------------------------------------------------------------------------------- finding them


def _complete(folder: Path, files: tuple[str, ...] = CHECKPOINT_FILES) -> bool:
    return all((folder / f).is_file() for f in files)


def list_checkpoints(run: Path, files: tuple[str, ...] = CHECKPOINT_FILES) -> list[tuple[int, Path]]:
    """``(steps, folder)`` of the run's complete checkpoints (holding ``files``), oldest first
    (temporary folders skipped)."""
    out = []
    folder = Path(run) / "checkpoints"
    if folder.is_dir():
        for p in folder.iterdir():
            m = _STEP_DIR.fullmatch(p.name)
            if m and p.is_dir() and _complete(p, files):
                out.append((int(m.group(1)), p))
    return sorted(out)


def checkpoint_steps(folder: Path) -> int:
    """Training steps behind a checkpoint folder: ``N`` of ``step_<N>``, or for ``model/`` the
    ``num_timesteps`` its ``trainer_state.json`` records (every trainer writes it there)."""
    folder = Path(folder)
    m = _STEP_DIR.fullmatch(folder.name)
    if m:
        return int(m.group(1))
    steps = _read_json(folder / "trainer_state.json").get("num_timesteps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise StateFormatError(f"{folder / 'trainer_state.json'}: num_timesteps = {steps!r} is not a step count")
    return steps


def latest_checkpoint(run: Path, files: tuple[str, ...] = CHECKPOINT_FILES) -> tuple[Path, str] | None:
    """The folder to load a run's model from and a line saying which: the final ``model/`` when
    training finished, else the newest complete checkpoint; ``None`` when there is neither."""
    run = Path(run)
    if _complete(run / "model", files):
        return run / "model", f"final model (model/, {checkpoint_steps(run / 'model')} steps)"
    ckpts = list_checkpoints(run, files)
    if ckpts:
        steps, folder = ckpts[-1]
        return folder, (f"latest checkpoint (checkpoints/{folder.name}, {steps} steps): training did not finish")
    return None
