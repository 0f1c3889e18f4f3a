"""SB3 policy folders as data, never code: ``policy.json`` + safetensors weights and optimizer,
``reward_state.npz``, ``trainer_state.json`` + ``rng.safetensors``.

* what the policy is (algorithm, policy name, hyper-parameters, observation/action spaces, steps):
  ``policy.json``. rlcreate rebuilds the SB3 ``PPO`` / ``MaskablePPO`` from it and loads the
  weights; policy names resolve only through SB3's own names and :mod:`rlcreate.sb3.policies`;
* trainer state for resume (step counters, torch / numpy / Python / environment RNG states):
  ``trainer_state.json`` + ``rng.safetensors``.

Folders are written with :func:`rlcreate.train.checkpoint.atomic_folder`; nothing here unpickles.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import stable_baselines3
import torch
from gymnasium import spaces
from safetensors.torch import save_file

from rlcreate.errors import UserError
from rlcreate.safe_io import state_float, state_int
from rlcreate.sb3.algo import ALGOS, build_algo
from rlcreate.train.checkpoint import FORMAT, StateFormatError, _load_safetensors, _read_json, atomic_folder, save_tree

__all__ = [
    "POLICY_FILES",
    "save_checkpoint",
    "load_policy_folder",
    "restore_trainer_state",
    "space_to_json",
    "space_from_json",
]

#: what a complete SB3 checkpoint (``checkpoints/step_<N>/`` or ``model/``) holds
POLICY_FILES = ("policy.json", "policy.safetensors", "reward_state.npz", "trainer_state.json")
#: Largest observation / action space a policy.json may describe (entries or choices).
MAX_SPACE_SIZE = 1_000_000

# --------------------------------------------------------------------------------- spaces


def space_to_json(space: Any) -> dict:
    """A Gymnasium Box / Discrete / MultiDiscrete / MultiBinary space as JSON data."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": [repr(float(v)) for v in space.low.ravel()],
            "high": [repr(float(v)) for v in space.high.ravel()],
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise TypeError(f"cannot describe a {type(space).__name__} space")


def space_from_json(d: dict) -> Any:
    from gymnasium import spaces

    if not isinstance(d, dict):
        raise StateFormatError(f"policy.json: a space must be a JSON object, got {str(d)[:80]}")
    try:
        kind = d["type"]
        if kind == "Box":
            shape = tuple(state_int(s, "policy.json: Box shape", 0, MAX_SPACE_SIZE) for s in d["shape"])
            if (
                len(shape) > 8
                or math.prod(shape) > MAX_SPACE_SIZE
                or len(d["low"]) != math.prod(shape)
                or len(d["high"]) != math.prod(shape)
            ):
                raise StateFormatError(
                    f"policy.json: Box shape {shape[:8]} with {len(d['low'])} bounds: not a "
                    f"consistent space of at most {MAX_SPACE_SIZE} entries"
                )
            dtype = np.dtype(str(d["dtype"]))
            if dtype.kind not in "fiu":
                raise StateFormatError(f"policy.json: Box dtype {dtype} is not numeric")
            low = np.array([float(v) for v in d["low"]]).reshape(shape).astype(dtype)
            high = np.array([float(v) for v in d["high"]]).reshape(shape).astype(dtype)
            return spaces.Box(low, high, shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(
                state_int(d["n"], "policy.json: Discrete n", 1, MAX_SPACE_SIZE),
                start=state_int(d.get("start", 0), "policy.json: Discrete start", -(2**62)),
            )
        if kind == "MultiDiscrete":
            nvec = [state_int(v, "policy.json: MultiDiscrete nvec", 1, MAX_SPACE_SIZE) for v in d["nvec"]]
            if not 0 < len(nvec) <= MAX_SPACE_SIZE or sum(nvec) > MAX_SPACE_SIZE:
                raise StateFormatError(
                    f"policy.json: MultiDiscrete of {len(nvec)} dimensions summing to {sum(nvec)}: "
                    f"over {MAX_SPACE_SIZE}"
                )
            return spaces.MultiDiscrete(nvec)
        if kind == "MultiBinary":
            return spaces.MultiBinary(state_int(d["n"], "policy.json: MultiBinary n", 1, MAX_SPACE_SIZE))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise StateFormatError(f"policy.json: malformed space {str(d)[:80]} ({exc})") from None
    raise StateFormatError(f"policy.json: unknown space type {d.get('type')!r}")


# --------------------------------------------------------------------------------- save


def _tensors(sd: dict) -> dict:
    # clone(): safetensors refuses tensors that share storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def _optimizer_split(opt_state: dict) -> tuple[dict, dict]:
    """torch optimizer state_dict -> (tensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, dict] = {}
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
    state: dict[int, dict] = {}
    for pid, entry in meta["state"].items():
        state[int(pid)] = {name: (tensors[v["tensor"]] if "tensor" in v else v["value"]) for name, v in entry.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state(venv: Any) -> tuple[dict, dict]:
    # the legacy MT19937 tuple (the default form): (kind, keys, pos, has_gauss, cached_gaussian)
    np_state = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    py_state = random.getstate()
    meta = {
        "numpy": {
            "kind": np_state[0],
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": repr(float(np_state[4])),
        },
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    core = _inner_env(venv)
    if core is not None and hasattr(core, "_rng"):
        meta["env"] = core._rng.bit_generator.state
    tensors = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np.asarray(np_state[1]).astype(np.int64))}
    return tensors, meta


def _inner_env(venv: Any) -> Any:
    while venv is not None and hasattr(venv, "venv"):
        venv = venv.venv
    return venv


def save_checkpoint(
    folder: Path, model: Any, reward_set: Any, hyper: dict, algo: str, venv: Any = None, extra: dict | None = None
) -> Path:
    """Write policy, optimizer, reward state and trainer state into ``folder`` atomically."""
    with atomic_folder(folder) as tmp:
        save_file(_tensors(model.policy.state_dict()), str(tmp / "policy.safetensors"))
        opt_tensors, opt_meta = _optimizer_split(model.policy.optimizer.state_dict())
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(opt_meta))
        description = {
            "format": FORMAT,
            "algo": algo,
            "hyper": hyper,
            "observation_space": space_to_json(model.observation_space),
            "action_space": space_to_json(model.action_space),
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(getattr(model, "_n_updates", 0)),
            "versions": {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__},
        }
        (tmp / "policy.json").write_text(json.dumps(description, indent=2))
        save_tree(reward_set.state_dict() if reward_set is not None else {}, tmp / "reward_state.npz")
        rng_tensors, rng_meta = _rng_state(venv)
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        (tmp / "trainer_state.json").write_text(
            json.dumps(
                {
                    "num_timesteps": int(model.num_timesteps),
                    "n_updates": int(getattr(model, "_n_updates", 0)),
                    "rng": rng_meta,
                    **(extra or {}),
                },
                indent=2,
            )
        )
    return Path(folder)


# --------------------------------------------------------------------------------- load


def load_policy_folder(
    folder: Path,
    venv: Any = None,
    device: str = "cpu",
    optimizer: bool = False,
    tb_dir: Path | None = None,
    seed: int | None = None,
) -> Any:
    """Rebuild the SB3 algorithm described by ``folder/policy.json`` and load its weights.

    With ``venv`` the algorithm is attached to it (for further training, its spaces must match);
    otherwise it is built from the spaces in the description (for prediction). ``optimizer``
    also restores the optimizer state (resume)."""
    folder = Path(folder)
    desc = _read_json(folder / "policy.json")
    if desc.get("format") != FORMAT:
        raise StateFormatError(f"{folder / 'policy.json'}: format {desc.get('format')!r}, expected {FORMAT!r}")
    if not isinstance(desc.get("hyper"), dict) or desc.get("algo") not in ALGOS:
        raise StateFormatError(f"{folder / 'policy.json'}: algo/hyper missing or malformed")
    obs_space = space_from_json(desc.get("observation_space") or {})
    act_space = space_from_json(desc.get("action_space") or {})
    if venv is not None and (venv.observation_space != obs_space or venv.action_space != act_space):
        raise StateFormatError(
            f"{folder}: the saved policy's spaces ({obs_space}, {act_space}) do not match the "
            f"environment's ({venv.observation_space}, {venv.action_space}); the run's recipe "
            "or environment changed since it was trained"
        )
    num_timesteps = state_int(desc.get("num_timesteps", 0), f"{folder / 'policy.json'}: num_timesteps")
    n_updates = state_int(desc.get("n_updates", 0), f"{folder / 'policy.json'}: n_updates")
    model = build_algo(
        desc["algo"],
        dict(desc["hyper"]),
        venv=venv,
        spaces=(obs_space, act_space),
        device=device,
        tb_dir=tb_dir,
        seed=seed,
    )  # parameter budget checked before allocating
    expected = {k: tuple(v.shape) for k, v in model.policy.state_dict().items()}
    weights = _load_safetensors(folder / "policy.safetensors", expected)
    try:
        model.policy.load_state_dict(weights, strict=True)
    except (RuntimeError, KeyError) as exc:
        raise StateFormatError(
            f"{folder / 'policy.safetensors'}: weights do not fit the described policy ({str(exc)[:160]})"
        ) from None
    if optimizer:
        try:
            model.policy.optimizer.load_state_dict(
                _optimizer_join(
                    _load_safetensors(folder / "optimizer.safetensors"), _read_json(folder / "optimizer.json", False)
                )
            )
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise StateFormatError(f"{folder}: optimizer state does not fit the policy ({str(exc)[:160]})") from None
    model.num_timesteps, model._n_updates = num_timesteps, n_updates
    return model


def restore_trainer_state(folder: Path, model: Any, venv: Any = None) -> dict:
    """Restore step counters and the torch / numpy / Python / environment RNG streams (resume)."""
    import torch

    path = Path(folder) / "trainer_state.json"
    meta = _read_json(path)
    tensors = _load_safetensors(Path(folder) / "rng.safetensors")
    num_timesteps = state_int(meta.get("num_timesteps"), f"{path}: num_timesteps")
    n_updates = state_int(meta.get("n_updates", 0), f"{path}: n_updates")
    try:
        rng = meta["rng"]
        torch.set_rng_state(tensors["torch"])
        npm = rng["numpy"]
        keys = tensors["numpy_keys"]
        if tuple(keys.shape) != (624,) or npm["kind"] != "MT19937":
            raise ValueError("numpy RNG state is not an MT19937 state")
        np.random.set_state(
            (
                npm["kind"],
                keys.numpy().astype(np.uint32),
                state_int(npm["pos"], f"{path}: pos", 0, 624),
                state_int(npm["has_gauss"], f"{path}: has_gauss", 0, 1),
                state_float(npm["cached_gaussian"], f"{path}: cached_gaussian"),
            )
        )
        py = rng["python"]
        if not (isinstance(py, list) and len(py) == 3 and isinstance(py[1], list) and len(py[1]) == 625):
            raise ValueError("python RNG state is malformed")
        random.setstate(
            (
                state_int(py[0], f"{path}: python version", 0, 10),
                tuple(state_int(v, f"{path}: python state", 0, 2**32) for v in py[1]),
                None if py[2] is None else state_float(py[2], f"{path}: python gauss"),
            )
        )
        core = _inner_env(venv)
        if "env" in rng and core is not None and hasattr(core, "_rng"):
            core._reset_seeds()  # resume continues the saved stream instead of re-seeding
            core._rng.bit_generator.state = rng["env"]
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError, IndexError) as exc:
        raise StateFormatError(f"{folder}: trainer state is damaged ({type(exc).__name__}: {str(exc)[:120]})") from None
    if "ent_coef" in meta:
        meta["ent_coef"] = state_float(meta["ent_coef"], f"{path}: ent_coef", 0.0)
    model.num_timesteps, model._n_updates = num_timesteps, n_updates
    return meta
