"""Gymnasium ``VectorEnv`` over rlcreate's batched environment cores.

Each batched environment keeps its state in a *core* that steps all rows with one decoder or LM
forward pass (:class:`~rlcreate.envs.core_vec_env.CoreVecEnv` wraps the same cores for SB3).
:class:`CoreVectorEnv` exposes such a core with Gymnasium's vector API, so
``gym.make_vec("rlcreate/MarioLatent-v0", num_envs=64)`` steps 64 levels per decoder call instead
of 64 envs one at a time (every id registers a ``vector_entry_point``; see
:func:`rlcreate.domains.register_envs`). CleanRL-style loops, Gymnasium's vector wrappers and RLlib's
env runners take it as it is.

Gymnasium conventions:

- **Autoreset NEXT_STEP** (``metadata["autoreset_mode"]``): a row that ends returns its final
  observation; the next ``step`` resets that row, ignores its action and returns the first
  observation of its new episode with reward 0 and both flags False.
- **Infos** are a dict of arrays, each key ``k`` with a boolean mask ``_k`` saying which rows hold
  it; nested dicts (``info["rewards"]``, one entry per reward term) nest the same way.
- **Action masks** of token cores are in ``info["action_mask"]`` after ``reset`` and every ``step``
  (the mask of the returned observations); ``action_masks()`` returns the same array.

The core protocol: ``n``, ``observation_space`` / ``action_space`` (one row), ``reset(rng)``,
``reset(rng, rows)`` when rows can end at different steps, ``step(actions)`` returning ``(obs,
rewards, terminated, infos)`` or ``(obs, rewards, terminated, truncated, infos)`` with one info dict
per row, and ``step(actions, active=mask)`` (rows outside ``active`` are neither scored nor ended)
for cores whose rows end at different steps. Optional: ``action_masks()``, ``progress``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

__all__ = ["CoreVectorEnv", "make_vector_env", "batch_infos"]


class CoreVectorEnv(gym.vector.VectorEnv):
    """A batched core as a ``gymnasium.vector.VectorEnv`` (NEXT_STEP autoreset, one forward pass per
    step for all rows). ``reset(seed=s)`` seeds every draw of the core (targets, prompts)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, core: Any):
        self.core = core
        self.num_envs = int(core.n)
        self.single_observation_space = core.observation_space
        self.single_action_space = core.action_space
        self.observation_space = batch_space(core.observation_space, self.num_envs)
        self.action_space = batch_space(core.action_space, self.num_envs)
        self._autoreset = np.zeros(self.num_envs, bool)
        self._started = False
        self._rows_rng: _RowGenerators | None = None

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        """``seed``: one int seeds every draw; a list of ``num_envs`` seeds (Gymnasium's per-env
        convention) gives row ``i`` its own generator, so its episodes depend on ``seed[i]`` alone."""
        if isinstance(seed, (list, tuple, np.ndarray)):
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(
                    f"reset(seed=[...]) got {len(seeds)} seeds for {self.num_envs} envs; pass one "
                    "per env, or a single int"
                )
            super().reset(seed=seeds[0], options=options)
            self._rows_rng = _RowGenerators([np.random.default_rng(s) for s in seeds])
        else:  # not a list: one int (or numpy integer) or None, which Gymnasium itself checks
            super().reset(seed=cast("int | None", seed), options=options)
            self._rows_rng = None
        obs = self.core.reset(self._rng_for())
        self._autoreset[:] = False
        self._started = True
        return obs, self._with_masks({})

    def _rng_for(self, rows: np.ndarray | None = None) -> Any:
        """The generator a core draws rows from: ``np_random``, or the rows' own after per-env seeds."""
        if self._rows_rng is None:
            return self.np_random
        return self._rows_rng if rows is None else _RowGenerators([self._rows_rng.gens[r] for r in rows])

    def step(self, actions):
        if not self._started:
            raise gym.error.ResetNeeded("step() before reset(): call reset() first")
        n = self.num_envs
        resetting = self._autoreset.copy()
        zeros = np.zeros(n, bool)
        if resetting.all():  # every row ended last step (lockstep cores): a plain reset, no step
            obs = self.core.reset(self._rng_for())
            rewards, terminated, truncated, row_infos = np.zeros(n), zeros, zeros.copy(), [{}] * n
        else:
            actions = self._legal_for_resetting_rows(np.array(actions), resetting)
            out = self.core.step(actions, active=~resetting) if resetting.any() else self.core.step(actions)
            obs, rewards, terminated, *rest, row_infos = out
            truncated = np.array(rest[0], bool) if rest else zeros.copy()
            rewards, terminated = np.asarray(rewards, np.float64), np.asarray(terminated, bool).copy()
            if resetting.any():  # rows that ended last step start their next episode now
                rows = np.flatnonzero(resetting)
                obs = self.core.reset(self._rng_for(rows), rows)
                rewards[rows], terminated[rows], truncated[rows] = 0.0, False, False
                row_infos = [{} if r else info for r, info in zip(resetting, row_infos)]
        self._autoreset = terminated | truncated
        return obs, rewards, terminated, truncated, self._with_masks(batch_infos(row_infos))

    def _legal_for_resetting_rows(self, actions: np.ndarray, resetting: np.ndarray) -> np.ndarray:
        """Actions of rows about to reset are ignored (NEXT_STEP); give the core an allowed one so a
        strict core never rejects them."""
        if resetting.any() and hasattr(self.core, "action_masks"):
            actions[resetting] = self.core.action_masks().argmax(axis=1)[resetting]
        return actions

    def _with_masks(self, infos: dict) -> dict:
        if hasattr(self.core, "action_masks"):
            infos["action_mask"] = np.asarray(self.core.action_masks(), bool)
            infos["_action_mask"] = np.ones(self.num_envs, bool)
        return infos

    # ------------------------------------------------------------------ extras

    def action_masks(self) -> np.ndarray:
        """(num_envs, n_actions) bool: actions allowed in the current observations."""
        if not hasattr(self.core, "action_masks"):
            raise AttributeError(f"{type(self.core).__name__} has no action masks (continuous actions)")
        return np.asarray(self.core.action_masks(), bool)

    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1], for reward weight schedules."""
        self.core.progress = float(progress)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple:
        """Call a method (or read an attribute) of the core; one result per row, like SyncVectorEnv."""
        if name == "action_masks":
            return tuple(self.action_masks())
        value = getattr(self if name == "set_progress" else self.core, name)
        value = value(*args, **kwargs) if callable(value) else value
        return (value,) * self.num_envs

    def get_attr(self, name: str) -> tuple:
        return (getattr(self.core, name),) * self.num_envs

    def set_attr(self, name: str, values: Any) -> None:
        setattr(self.core, name, values)


class _RowGenerators:
    """One ``numpy`` generator per row behind the ``Generator`` methods cores call: a draw of
    ``size = number of rows`` takes row ``i``'s value from generator ``i`` (per-env seeds)."""

    def __init__(self, gens: list[np.random.Generator]):
        self.gens = gens

    def _rows(self, method: str, size: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        shape = (size,) if np.ndim(size) == 0 else tuple(size)
        if size is None or shape[0] != len(self.gens):
            raise ValueError(
                f"per-env seeds: a core drew {size} values for {len(self.gens)} rows; it must draw "
                "one value (or one row of values) per row"
            )
        rest = shape[1:] or None
        return np.stack([getattr(g, method)(*args, size=rest, **kwargs) for g in self.gens])

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None) -> np.ndarray:
        return self._rows("uniform", size, low, high)

    def integers(self, low: Any, high: Any = None, size: Any = None, **kwargs: Any) -> np.ndarray:
        return self._rows("integers", size, low, high, **kwargs)

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> np.ndarray:
        return self._rows("normal", size, loc, scale)

    def random(self, size: Any = None, **kwargs: Any) -> np.ndarray:
        return self._rows("random", size, **kwargs)


def make_vector_env(batched: str, num_envs: int = 1, **kwargs: Any) -> CoreVectorEnv:
    """Vector entry point: build the batched SB3 factory ``batched`` (``"module:function"``, taking
    ``n_envs`` and the env's keyword arguments) for ``num_envs`` rows and expose its core with the
    Gymnasium vector API. Registered per id as ``functools.partial(make_vector_env, batched)``."""
    module, name = batched.split(":")
    factory = getattr(importlib.import_module(module), name)
    return CoreVectorEnv(factory(n_envs=int(num_envs), **kwargs).core)


def batch_infos(rows: Sequence[dict]) -> dict:
    """Per-row info dicts -> Gymnasium's vector form: ``{key: array over rows, "_key": present mask}``,
    nested dicts recursively; numbers and same-shape arrays become numeric arrays, anything else an
    object array (rows without the key hold 0 / None)."""
    n = len(rows)
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for info in rows for k in info):
        present = np.array([key in info for info in rows], bool)
        values = [info[key] for info in rows if key in info]
        if all(isinstance(v, dict) for v in values):
            out[key] = batch_infos([info.get(key, {}) for info in rows])
        else:
            out[key] = _column(values, present, n)
        out[f"_{key}"] = present
    return out


def _column(values: list, present: np.ndarray, n: int) -> np.ndarray:
    numeric = all(isinstance(v, (bool, int, float, np.number, np.bool_)) for v in values)
    same_arrays = all(isinstance(v, np.ndarray) for v in values) and len({(v.shape, v.dtype.str) for v in values}) == 1
    if numeric or same_arrays:
        stacked = np.asarray(values)
        column = np.zeros((n, *stacked.shape[1:]), stacked.dtype)
        column[present] = stacked
        return column
    column = np.full(n, None, object)
    for i, v in zip(np.flatnonzero(present), values):
        column[i] = v
    return column
