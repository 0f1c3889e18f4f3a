"""Run-folder state as data, never code: one format for policies, optimizers, reward state and RNGs.

Everything rlcreate writes into a run folder can be opened without executing anything:

* policy and optimizer weights: ``safetensors`` (tensors only);
* what the policy is (algorithm, policy name, hyper-parameters, observation/action spaces, steps):
  ``policy.json``. rlcreate rebuilds the SB3 ``PPO`` / ``MaskablePPO`` from it and loads the
  weights; policy names resolve only through SB3's own names and :mod:`rlcreate.train.policies`;
* reward-set state (novelty archives, running normalisers): ``reward_state.npz`` read with
  ``allow_pickle=False``, its tree structure as JSON inside (:func:`save_tree` / :func:`load_tree`);
* trainer state for resume (step counters, torch / numpy / Python / environment RNG states):
  ``trainer_state.json`` + ``rng.safetensors``.

A checkpoint is one folder (``RUN/checkpoints/step_<N>/`` during training, ``RUN/model/`` at the
end) written under a temporary name and renamed into place with :func:`os.replace`, so a kill at
any moment leaves either the whole checkpoint or none of it. Temporary folders start with ``.``
and are ignored (and removed on resume).

Nothing here unpickles: ``np.load(..., allow_pickle=False)``, ``safetensors`` and ``json`` only.
SB3's own ``.zip`` (which unpickles on load) is only written by :func:`export_sb3_zip`, an
explicit export for people who want to hand a policy to plain SB3.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from rlcreate.errors import UserError

__all__ = ["StateFormatError", "FORMAT", "save_tree", "load_tree", "atomic_folder", "save_checkpoint",
           "load_policy_folder", "load_reward_state", "list_checkpoints", "latest_checkpoint",
           "restore_trainer_state", "checkpoint_every", "space_to_json", "space_from_json",
           "clear_run_outputs", "RUN_OUTPUTS"]

FORMAT = "rlcreate-checkpoint/1"
_STEP_DIR = re.compile(r"step_(\d+)")
# What `train` writes into a run folder (and what `train --overwrite` removes; nothing else).
RUN_OUTPUTS = ("config.yaml", "tb", "checkpoints", "model", "samples", "eval_samples", "generated",
               "metrics.json", "audit.json", "model.zip", "reward_state.pkl")
_FILES = ("policy.json", "policy.safetensors", "reward_state.npz", "trainer_state.json")


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
    raise TypeError(f"{where}: cannot save a {type(x).__name__} without pickle; state_dict() must hold "
                    "dicts, lists, numbers, strings, None and numeric arrays")


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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, __tree__=np.array(json.dumps({"format": FORMAT, "tree": meta})), **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_tree(path: str | Path) -> dict:
    """Read a file written by :func:`save_tree` (``allow_pickle=False``: nothing executes)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            head = json.loads(str(data["__tree__"]))
            if not isinstance(head, dict) or head.get("format") != FORMAT:
                raise StateFormatError(f"{path}: not an rlcreate state file (format {head.get('format')!r})")
            return _decode(head["tree"], data, "state")
    except StateFormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        # ValueError covers np.load's refusal of pickled object arrays and bad zip members
        raise StateFormatError(f"{path}: not a readable rlcreate state file ({type(exc).__name__}: "
                               f"{str(exc)[:120]}); it may be truncated or not written by rlcreate") from None
    except Exception as exc:  # zipfile.BadZipFile and friends
        raise StateFormatError(f"{path}: not a readable rlcreate state file ({type(exc).__name__}); "
                               "it may be truncated or not written by rlcreate") from None


# --------------------------------------------------------------------------------- spaces

def space_to_json(space: Any) -> dict:
    """A Gymnasium Box / Discrete / MultiDiscrete / MultiBinary space as JSON data."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": [repr(float(v)) for v in space.low.ravel()],
                "high": [repr(float(v)) for v in space.high.ravel()]}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise TypeError(f"cannot describe a {type(space).__name__} space")


def space_from_json(d: dict) -> Any:
    from gymnasium import spaces

    try:
        kind = d["type"]
        if kind == "Box":
            shape = tuple(int(s) for s in d["shape"])
            dtype = np.dtype(str(d["dtype"]))
            low = np.array([float(v) for v in d["low"]]).reshape(shape).astype(dtype)
            high = np.array([float(v) for v in d["high"]]).reshape(shape).astype(dtype)
            return spaces.Box(low, high, shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete([int(v) for v in d["nvec"]])
        if kind == "MultiBinary":
            return spaces.MultiBinary(d["n"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFormatError(f"policy.json: malformed space {str(d)[:80]} ({exc})") from None
    raise StateFormatError(f"policy.json: unknown space type {d.get('type')!r}")


# --------------------------------------------------------------------------------- atomic folders

def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


@contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``final`` in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists():  # replace an older copy: move it aside first (rename onto a folder fails)
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def clear_run_outputs(run_dir: Path) -> None:
    """Remove what an earlier ``train`` wrote into ``run_dir`` (only rlcreate's own outputs)."""
    for name in RUN_OUTPUTS:
        p = Path(run_dir) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


# --------------------------------------------------------------------------------- save

def _tensors(sd: dict) -> dict:
    # clone(): safetensors refuses tensors that share storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def _optimizer_split(opt_state: dict) -> tuple[dict, dict]:
    """torch optimizer state_dict -> (tensors, JSON-able rest)."""
    import torch

    tensors, state = {}, {}
    for pid, entry in opt_state["state"].items():
        state[str(pid)] = {}
        for name, v in entry.items():
            if isinstance(v, torch.Tensor):
                key = f"state.{pid}.{name}"
                tensors[key] = v.detach().cpu().contiguous().clone()
                state[str(pid)][name] = {"tensor": key}
            else:
                state[str(pid)][name] = {"value": v}
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in opt_state["param_groups"]]
    return tensors, {"state": state, "param_groups": groups}


def _optimizer_join(tensors: dict, meta: dict) -> dict:
    state = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {name: (tensors[v["tensor"]] if "tensor" in v else v["value"]) for name, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state(venv: Any) -> tuple[dict, dict]:
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {"numpy": {"kind": np_state[0], "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                      "cached_gaussian": repr(float(np_state[4]))},
            "python": [py_state[0], list(py_state[1]), py_state[2]]}
    core = _inner_env(venv)
    if core is not None and hasattr(core, "_rng"):
        meta["env"] = core._rng.bit_generator.state
    tensors = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np.asarray(np_state[1]).astype(np.int64))}
    return tensors, meta


def _inner_env(venv: Any) -> Any:
    while venv is not None and hasattr(venv, "venv"):
        venv = venv.venv
    return venv


def save_checkpoint(folder: Path, model: Any, reward_set: Any, hyper: dict, algo: str, venv: Any = None,
                    extra: dict | None = None) -> Path:
    """Write policy, optimizer, reward state and trainer state into ``folder`` atomically."""
    import stable_baselines3
    import torch
    from safetensors.torch import save_file

    with atomic_folder(folder) as tmp:
        save_file(_tensors(model.policy.state_dict()), str(tmp / "policy.safetensors"))
        opt_tensors, opt_meta = _optimizer_split(model.policy.optimizer.state_dict())
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(opt_meta))
        description = {"format": FORMAT, "algo": algo, "hyper": hyper,
                       "observation_space": space_to_json(model.observation_space),
                       "action_space": space_to_json(model.action_space),
                       "num_timesteps": int(model.num_timesteps), "n_updates": int(getattr(model, "_n_updates", 0)),
                       "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__}}
        (tmp / "policy.json").write_text(json.dumps(description, indent=2))
        save_tree(reward_set.state_dict() if reward_set is not None else {}, tmp / "reward_state.npz")
        rng_tensors, rng_meta = _rng_state(venv)
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        (tmp / "trainer_state.json").write_text(json.dumps(
            {"num_timesteps": int(model.num_timesteps), "n_updates": int(getattr(model, "_n_updates", 0)),
             "rng": rng_meta, **(extra or {})}, indent=2))
    return Path(folder)


# --------------------------------------------------------------------------------- load

def _read_json(path: Path) -> dict:
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StateFormatError(f"{path}: not readable JSON ({exc}); the checkpoint is damaged") from None
    if not isinstance(out, dict):
        raise StateFormatError(f"{path}: expected a JSON object")
    return out


def _load_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError for truncated/foreign files
        raise StateFormatError(f"{path}: not a readable safetensors file ({type(exc).__name__}); "
                               "it may be truncated or not written by rlcreate") from None


def load_policy_folder(folder: Path, venv: Any = None, device: str = "cpu", optimizer: bool = False,
                       tb_dir: Path | None = None, seed: int | None = None) -> Any:
    """Rebuild the SB3 algorithm described by ``folder/policy.json`` and load its weights.

    With ``venv`` the algorithm is attached to it (for further training, its spaces must match);
    otherwise it is built from the spaces in the description (for prediction). ``optimizer``
    also restores the optimizer state (resume)."""
    from rlcreate.train.sb3 import build_algo

    folder = Path(folder)
    desc = _read_json(folder / "policy.json")
    if desc.get("format") != FORMAT:
        raise StateFormatError(f"{folder / 'policy.json'}: format {desc.get('format')!r}, expected {FORMAT!r}")
    if not isinstance(desc.get("hyper"), dict) or desc.get("algo") not in ("ppo", "maskable_ppo"):
        raise StateFormatError(f"{folder / 'policy.json'}: algo/hyper missing or malformed")
    obs_space = space_from_json(desc.get("observation_space") or {})
    act_space = space_from_json(desc.get("action_space") or {})
    if venv is not None and (venv.observation_space != obs_space or venv.action_space != act_space):
        raise StateFormatError(f"{folder}: the saved policy's spaces ({obs_space}, {act_space}) do not match the "
                               f"environment's ({venv.observation_space}, {venv.action_space}); the run's recipe "
                               "or environment changed since it was trained")
    model = build_algo(desc["algo"], dict(desc["hyper"]), venv=venv, spaces=(obs_space, act_space),
                       device=device, tb_dir=tb_dir, seed=seed)
    weights = _load_safetensors(folder / "policy.safetensors")
    try:
        model.policy.load_state_dict(weights, strict=True)
    except (RuntimeError, KeyError) as exc:
        raise StateFormatError(f"{folder / 'policy.safetensors'}: weights do not fit the described policy "
                               f"({str(exc)[:160]})") from None
    if optimizer:
        try:
            model.policy.optimizer.load_state_dict(_optimizer_join(
                _load_safetensors(folder / "optimizer.safetensors"), _read_json(folder / "optimizer.json")))
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise StateFormatError(f"{folder}: optimizer state does not fit the policy ({str(exc)[:160]})") from None
    model.num_timesteps = int(desc.get("num_timesteps", 0))
    model._n_updates = int(desc.get("n_updates", 0))
    return model


def load_reward_state(folder: Path, reward_set: Any) -> bool:
    """Load ``folder/reward_state.npz`` into ``reward_set``; False when the file is absent."""
    path = Path(folder) / "reward_state.npz"
    if not path.is_file():
        return False
    state = load_tree(path)
    try:
        reward_set.load_state_dict(state)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise StateFormatError(f"{path}: does not fit this run's reward terms ({type(exc).__name__}: "
                               f"{str(exc)[:120]})") from None
    return True


def restore_trainer_state(folder: Path, model: Any, venv: Any = None) -> dict:
    """Restore step counters and the torch / numpy / Python / environment RNG streams (resume)."""
    import torch

    meta = _read_json(Path(folder) / "trainer_state.json")
    tensors = _load_safetensors(Path(folder) / "rng.safetensors")
    try:
        rng = meta["rng"]
        torch.set_rng_state(tensors["torch"])
        npm = rng["numpy"]
        np.random.set_state((npm["kind"], tensors["numpy_keys"].numpy().astype(np.uint32), int(npm["pos"]),
                             int(npm["has_gauss"]), float(npm["cached_gaussian"])))
        py = rng["python"]
        random.setstate((int(py[0]), tuple(int(v) for v in py[1]), py[2]))
        core = _inner_env(venv)
        if "env" in rng and core is not None and hasattr(core, "_rng"):
            core._reset_seeds()  # resume continues the saved stream instead of re-seeding
            core._rng.bit_generator.state = rng["env"]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise StateFormatError(f"{folder}: trainer state is damaged ({type(exc).__name__}: {str(exc)[:120]})") from None
    model.num_timesteps = int(meta["num_timesteps"])
    model._n_updates = int(meta.get("n_updates", 0))
    return meta


# --------------------------------------------------------------------------------- finding them

def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in _FILES)


def list_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """``(steps, folder)`` of the run's complete checkpoints, oldest first (temporary folders skipped)."""
    out = []
    folder = Path(run) / "checkpoints"
    if folder.is_dir():
        for p in folder.iterdir():
            m = _STEP_DIR.fullmatch(p.name)
            if m and p.is_dir() and _complete(p):
                out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(run: Path) -> tuple[Path, str] | None:
    """The folder to load a run's policy from and a line saying which: the final ``model/`` when
    training finished, else the newest complete checkpoint; ``None`` when there is neither."""
    run = Path(run)
    if _complete(run / "model"):
        steps = _read_json(run / "model" / "policy.json").get("num_timesteps")
        return run / "model", f"final policy (model/, {steps} steps)"
    ckpts = list_checkpoints(run)
    if ckpts:
        steps, folder = ckpts[-1]
        return folder, (f"latest checkpoint (checkpoints/{folder.name}, {steps} steps): "
                        "training did not finish")
    return None


def checkpoint_every(value: Any) -> dict | None:
    """Validate ``trainer.checkpoint_every``: steps (an integer) or ``{steps: N, minutes: M}``.

    ``None`` keeps the default (``trainer.checkpoints`` evenly spaced checkpoints, and one every
    10 minutes of wall time). A checkpoint is taken at the first rollout boundary after the interval."""
    from rlcreate.recipe import RecipeError

    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"steps": value}
    if not isinstance(value, dict) or not value or set(value) - {"steps", "minutes"}:
        raise RecipeError(f"trainer.checkpoint_every = {value!r}: write a number of env steps (e.g. 5000) "
                          "or a mapping {steps: 5000, minutes: 10}")
    out: dict[str, Any] = {"steps": None, "minutes": None}
    steps = value.get("steps")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise RecipeError(f"trainer.checkpoint_every.steps = {steps!r}: must be an integer >= 1")
        out["steps"] = steps
    minutes = value.get("minutes")
    if minutes is not None:
        if (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes)
                or minutes <= 0):
            raise RecipeError(f"trainer.checkpoint_every.minutes = {minutes!r}: must be a positive number")
        out["minutes"] = float(minutes)
    return out
