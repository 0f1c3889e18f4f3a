"""Generic latent-space level environments: build a level segment by segment with a decoder.

The environment logic lives in :class:`LatentLevelCore`, which steps a whole batch of levels with
one decoder call and one reward-set call per step. :class:`LatentLevelVecEnv` exposes it to SB3 as
a ``VecEnv`` (the fast path: N levels per step in one process), :class:`LatentLevelEnv` as a
single Gymnasium env (``check_env``, ``gymnasium.make``). A domain configures these classes (the
Mario ids: :mod:`rlcreate.levels.envs`); point them at another decoder by passing your own
``generator`` (its ``height`` sets the grid height) / ``featurizer`` / ``seam`` / ``renderer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from gymnasium import spaces
from rlcreate.envs.core_vec_env import CoreEnv, CoreVecEnv, EnvConfigError, render_grid

from rlcreate.rewards.compose import RewardSet, as_reward_set

__all__ = ["LatentGenerator", "Seam", "LatentLevelCore", "LatentLevelVecEnv", "LatentLevelEnv",
           "TargetSpec", "EnvConfigError"]


class LatentGenerator(Protocol):
    latent_dim: int
    segment_width: int
    height: int  # rows of a decoded segment
    action_scale: float

    def decode(self, z: np.ndarray) -> np.ndarray: ...


class Seam(Protocol):
    """Tracks what one segment leaves for the next (e.g. where Mario can stand at the edge)."""

    size: int  # length of the state vector
    observed_size: int  # length of observe(state), part of the observation

    def initial(self, n: int) -> np.ndarray: ...  # (n, size)

    def advance(self, segments: np.ndarray, state: np.ndarray) -> np.ndarray: ...  # -> (n, size)

    def observe(self, state: np.ndarray) -> np.ndarray: ...  # -> (n, observed_size)

    def alive(self, state: np.ndarray) -> np.ndarray: ...  # -> (n,) bool: can the level still be crossed?


@dataclass(frozen=True)
class TargetSpec:
    """A control target sampled uniformly from ``[low, high]`` at every episode start."""

    name: str
    low: float
    high: float

    def normalise(self, v: np.ndarray) -> np.ndarray:
        return (v - self.low) / (self.high - self.low) if self.high > self.low else np.zeros_like(v)


class LatentLevelCore:
    """Batched state of ``n`` levels under construction (shared by the VecEnv and the single env)."""

    def __init__(self, generator: LatentGenerator, reward: Any, featurizer: Callable[[np.ndarray], np.ndarray],
                 n_features: int, n_segments: int = 8, targets: dict[str, Sequence[float]] | None = None,
                 seam: Seam | None = None, n: int = 1, renderer: Any = None):
        if isinstance(n_segments, bool) or not isinstance(n_segments, int) or not 1 <= n_segments <= 1000:
            raise EnvConfigError(f"n_segments = {n_segments!r}: must be an integer in [1, 1000]")
        self.gen = generator
        self.reward: RewardSet = as_reward_set(reward)
        self.featurizer, self.n_features = featurizer, int(n_features)
        self.n_segments, self.n = n_segments, n
        self.targets = [TargetSpec(k, float(v[0]), float(v[1])) for k, v in (targets or {}).items()]
        self.seam, self.renderer = seam, renderer
        self.width, self.height = generator.segment_width, int(generator.height)
        obs_dim = 2 * self.n_features + (seam.observed_size if seam else 0) + 1 + len(self.targets)
        self.observation_space = spaces.Box(0.0, 1.0, (obs_dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (generator.latent_dim,), np.float32)
        self.progress = 0.0  # training progress in [0, 1] for weight schedules (set by the trainer)
        self.render_mode = None
        self.levels = np.zeros((n, self.height, n_segments * self.width), np.int8)
        self.t = np.zeros(n, np.int64)  # segments written so far, per level
        self.feat_sum = np.zeros((n, self.n_features))
        self.last_feat = np.zeros((n, self.n_features))
        self.seam_state = seam.initial(n) if seam else np.zeros((n, 0))
        self.target_values = np.zeros((n, len(self.targets)))

    def reset(self, rng: np.random.Generator, rows: np.ndarray | None = None) -> np.ndarray:
        """Start new levels (all rows, or the rows in ``rows``); returns observations of all rows."""
        rows = np.arange(self.n) if rows is None else rows
        self.t[rows] = 0
        self.feat_sum[rows] = 0
        self.last_feat[rows] = 0
        self.levels[rows] = 0
        if self.seam:
            self.seam_state[rows] = self.seam.initial(len(rows))
        for j, spec in enumerate(self.targets):
            self.target_values[rows, j] = rng.uniform(spec.low, spec.high, size=len(rows))
        return self.observe()

    def observe(self) -> np.ndarray:
        mean = self.feat_sum / np.maximum(self.t, 1)[:, None]
        tnorm = np.stack([s.normalise(self.target_values[:, j]) for j, s in enumerate(self.targets)], 1) \
            if self.targets else np.zeros((self.n, 0))
        seam = self.seam.observe(self.seam_state) if self.seam else np.zeros((self.n, 0))
        obs = np.concatenate([self.last_feat, mean, seam, (self.t / self.n_segments)[:, None], tnorm], 1)
        return np.clip(obs, 0.0, 1.0).astype(np.float32)

    def step(self, actions: np.ndarray):
        """Decode one segment per level, score it, advance. Returns obs, rewards, done, infos."""
        a = np.clip(np.asarray(actions, np.float32).reshape(self.n, -1), -1.0, 1.0)
        segments = self.gen.decode(a * self.gen.action_scale)
        context = {
            "position": (self.t + 0.5) / self.n_segments,
            "segment_index": self.t.copy(),
            "n_segments": self.n_segments,
            "targets": {s.name: self.target_values[:, j] for j, s in enumerate(self.targets)},
            "latent": a * self.gen.action_scale,  # the decoder input (prior / typical-set rewards)
        }
        if self.seam:
            context["seam_state"] = self.seam_state.copy()
        result = self.reward(list(segments), progress=self.progress, **context)
        for i, t in enumerate(self.t):
            self.levels[i, :, t * self.width:(t + 1) * self.width] = segments[i]
        feats = self.featurizer(segments)
        self.last_feat = feats
        self.feat_sum += feats
        if self.seam:
            self.seam_state = self.seam.advance(segments, self.seam_state)
        self.t += 1
        done = self.t >= self.n_segments
        infos = [{"rewards": result.per_sample(i), "segment": segments[i]} for i in range(self.n)]
        for row in np.flatnonzero(done):
            infos[row]["level"] = self.levels[row].copy()
            infos[row]["targets"] = {s.name: float(self.target_values[row, j]) for j, s in enumerate(self.targets)}
        return self.observe(), result.total.astype(np.float32), done, infos


class LatentLevelVecEnv(CoreVecEnv):
    """SB3 ``VecEnv`` stepping ``n_envs`` levels in lockstep with one decoder call per step.

    All levels have the same length, so all episodes end together; finished levels are in
    ``info["level"]`` (and ``terminal_observation``, per SB3's auto-reset contract).
    """

    def step_wait(self):
        obs, rewards, done, infos = self.core.step(self._actions)
        if done.any():
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = obs[i]
                infos[i]["TimeLimit.truncated"] = False
            obs = self.core.reset(self._rng, np.flatnonzero(done))
        return obs, rewards, done, infos


class LatentLevelEnv(CoreEnv):
    """Single-level Gymnasium form of :class:`LatentLevelVecEnv` (same core with ``n = 1``)."""

    metadata = {"render_modes": ["rgb_array", "ansi"]}

    def render(self):
        return render_grid(self.core.renderer, self.core.levels[0, :, :int(self.core.t[0]) * self.core.width],
                           self.render_mode)
