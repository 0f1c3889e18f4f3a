"""SB3 ``VecEnv`` plumbing shared by rlcreate's batched environments.

Each batched environment keeps its state in a *core* object that steps all rows at once (one
decoder or LM forward pass). :class:`CoreVecEnv` wraps such a core for SB3: seeding, attribute and
method forwarding, action masks for sb3-contrib; subclasses implement ``step_wait``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from rlcreate.errors import UserError

__all__ = ["CoreVecEnv", "CoreEnv", "EnvConfigError", "InvalidActionError", "resolve_actions", "render_grid"]


class EnvConfigError(UserError):
    """An environment argument is invalid; the message names it and the fix."""


class InvalidActionError(UserError):
    """An action outside the action mask while ``strict_actions=True``; the message names the env."""


def resolve_actions(actions: np.ndarray, masks: np.ndarray, strict: bool = False):
    """Masked-action selection of the token cores -> ``(executed, replaced)`` per row. An out-of-range
    or masked action is replaced by the first allowed one (checkers and unmasked learners never
    crash an episode) and flagged; with ``strict`` it raises :class:`InvalidActionError` instead."""
    rows = np.arange(len(actions))
    in_range = (actions >= 0) & (actions < masks.shape[1])
    safe = np.where(in_range, actions, 0)
    legal = in_range & masks[rows, safe]
    if strict and not legal.all():
        i = int(np.flatnonzero(~legal)[0])
        raise InvalidActionError(
            f"action {int(actions[i])} of env {i} is outside its action mask (allowed: "
            f"{np.flatnonzero(masks[i]).tolist()}) and strict_actions=True; pick actions from "
            "info['action_mask'] / action_masks(), or pass strict_actions=False to execute the first "
            "allowed action instead (reported in info['executed_action'] and info['action_replaced'])"
        )
    return np.where(legal, safe, masks.argmax(axis=1)), ~legal


class CoreVecEnv(VecEnv):
    """Base for VecEnvs over a batched core with ``n``, spaces, ``reset(rng, rows=None)``, ``step``
    and, optionally, ``action_masks()``. ``seed(s)`` (or ``seed=`` here) fixes the core's draws."""

    def __init__(self, core: Any, seed: int | None = None):
        self.core = core
        self.render_mode = None
        super().__init__(core.n, core.observation_space, core.action_space)
        self._rng = np.random.default_rng(seed)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        if self._seeds[0] is not None:
            self._rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        return self.core.reset(self._rng)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def action_masks(self) -> np.ndarray:
        return self.core.action_masks()

    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1], for reward weight schedules (set by the trainer)."""
        self.core.progress = float(progress)

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices=None) -> list:
        target = self if attr_name == "render_mode" else self.core
        return [getattr(target, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.core, attr_name, value)

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list:
        if method_name == "action_masks":  # sb3-contrib's get_action_masks stacks one mask per env
            masks = self.core.action_masks()
            return list(masks if indices is None else masks[self._indices(indices)])
        idx = self._indices(indices)
        return [getattr(self, method_name)(*args, **kwargs)] * len(idx)

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [int(indices)] if isinstance(indices, (int, np.integer)) else list(indices)


class CoreEnv(gym.Env):
    """Single-env Gymnasium form over a batched core built with ``n = 1`` (what ``gymnasium.make``
    and ``check_env`` see); the same core class backs the VecEnv, so both behave identically."""

    def __init__(self, core: Any, render_mode: str | None = None):
        if core.n != 1:
            raise EnvConfigError(
                f"{type(self).__name__} needs a core with n=1, got n={core.n}; use the VecEnv form for batches"
            )
        modes = list(self.metadata.get("render_modes", []))
        if render_mode not in (None, *modes):
            choices = ", ".join(["None", *map(repr, modes[:-1])]) + (f" or {modes[-1]!r}" if modes else "")
            raise EnvConfigError(f"render_mode = {render_mode!r}: use {choices}")
        self.core = core
        self.observation_space, self.action_space = core.observation_space, core.action_space
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.core.reset(self.np_random)[0], {}

    def step(self, action):
        # a core returns (obs, rewards, done, infos), or (obs, rewards, terminated, truncated, infos)
        # when its episodes can be cut by a length cap
        obs, rewards, *ends, infos = self.core.step(np.asarray(action).reshape(1, *self.action_space.shape))
        terminated, truncated = (ends[0], ends[1]) if len(ends) == 2 else (ends[0], np.zeros(1, bool))
        return obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), infos[0]

    def set_progress(self, progress: float) -> None:
        self.core.progress = float(progress)


def render_grid(renderer: Any, grid: np.ndarray, mode: str | None):
    """Render a partial grid with a domain's renderer (an object with ``to_text(grid) -> str`` and
    ``to_image(grid) -> PIL image``): ``ansi`` -> text, ``rgb_array`` -> (H, W, 3) uint8, else None."""
    if mode is None or renderer is None:
        return None
    if mode == "ansi":
        return renderer.to_text(grid) if grid.shape[1] else ""
    return np.asarray(renderer.to_image(grid).convert("RGB")) if grid.shape[1] else None
