"""Super Mario Bros configurations of the generic environments.

``rlcreate/MarioLatent-v0`` — :func:`make_mario_latent`: the shipped level VAE writes a level of
``n_segments`` 16-column segments; each action is the next segment's latent.

Description
    A policy builds a Mario level left to right. Each step's action is a latent vector; the VAE
    decodes it into the next 14 x 16 segment. Control targets (e.g. enemies per segment, gaps,
    difficulty) are sampled per episode and observed, so one policy serves many requests.
Action Space
    ``Box(-1, 1, (32,), float32)``, multiplied by the generator's ``action_scale`` (2.5 prior std).
Observation Space
    ``Box(0, 1, (2F + 14 + 1 + T,), float32)``: F = 9 features of the last segment and their mean over
    the level so far (:func:`segment_features`), the 14 rows where Mario can stand at the seam
    (fast solver), progress ``t / n_segments``, and the T control targets scaled to [0, 1].
Rewards
    The recipe's reward set on the new segment, with context ``position``, ``targets`` and
    ``seam_state``; default terms in :data:`DEFAULT_REWARDS` (playability with the seam checked,
    novelty vs corpus + archive, style coherence, engagement curve fit, target match). Each term is in
    ``info["rewards"]``.
Starting State
    An empty level; targets drawn uniformly from their ranges with the env's RNG.
Episode End
    ``terminated`` when the level has ``n_segments`` segments (the level is complete: there is no
    future to bootstrap, so this is a terminal state, not a time limit). The level is in
    ``info["level"]``.
Arguments
    ``n_segments`` (8), ``targets`` ({name: [low, high]}), ``reward`` (a RewardSet / recipe rewards
    dict; default :data:`DEFAULT_REWARDS`), ``generator`` (a latent generator; default the shipped
    VAE), ``n_envs`` (for :func:`make_mario_latent_vec`).
Version History
    v0: initial version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlcreate.envs.latent_level import LatentLevelCore, LatentLevelEnv, LatentLevelVecEnv
from rlcreate.levels import tiles as T

__all__ = ["segment_features", "SolverSeam", "DEFAULT_REWARDS", "DEFAULT_TARGETS", "make_mario_latent",
           "make_mario_latent_vec", "default_reward_set", "FEATURE_NAMES"]

FEATURE_NAMES = ("enemies", "gaps", "blocks", "coins", "pipes", "cannons", "height", "height_var", "difficulty")
# per-feature scale so that typical values land in [0, 1] (observations are clipped to [0, 1])
_FEATURE_SCALE = np.array([4, 16, 80, 16, 4, 2, 14, 4, 1], np.float64)  # ~99th pct of corpus segments

#: default reward recipe of MarioLatent-v0 (term -> spec), also used by recipes/mario_latent.yaml
DEFAULT_REWARDS: dict[str, dict] = {
    "playability": {"weight": 1.0},
    # novelty is a sweet spot: corpus segments sit at ~0.04 from their nearest training window and
    # a flat-ground copy at ~0.03 once it is in the archive; 0.08 asks for new but not chaotic (at
    # 0.10 a 200k-step policy drifted to jagged terrain the A* agent beat only 75% of the time)
    "novelty": {"weight": 1.0, "reward": "level_novelty",
                "transform": {"sweet_spot": {"target": 0.08, "width": 0.04}}},
    "coherence": {"weight": 0.5, "reward": "style_coherence"},
    "structure": {"weight": 0.5, "reward": "validity"},
    "engagement": {"weight": 1.0, "reward": "difficulty_curve"},
    "targets": {"weight": 1.0, "reward": "target_match"},
}
DEFAULT_TARGETS = {"enemies": [0.0, 2.0], "gaps": [0.0, 1.0]}


def segment_features(segments: np.ndarray) -> np.ndarray:
    """Fixed-size features of a batch of segments ``(n, 14, W)`` -> ``(n, 9)`` in ~[0, 1]:
    enemies, gap columns, blocks, coins, pipes, cannons (counts), mean ground height, height
    variation, difficulty (see :func:`segment_difficulty`)."""
    g = np.asarray(segments)
    count = lambda *ids: np.isin(g, ids).sum(axis=(1, 2))  # noqa: E731
    solid = T.IS_SOLID[g.astype(np.intp)]
    gaps = (~solid[:, -1, :]).sum(axis=1)
    # height of the highest solid tile per column (0 = none), rows counted from the bottom
    any_solid = solid.any(axis=1)
    top = np.where(any_solid, T.HEIGHT - solid.argmax(axis=1), 0)
    feats = np.stack([count(T.ENEMY), gaps, count(T.BRICK, T.QUESTION, T.QCOIN), count(T.COIN),
                      count(T.PIPE_TL), count(T.CANNON), top.mean(1), np.abs(np.diff(top, axis=1)).mean(1),
                      segment_difficulty(g)], 1)
    return feats / _FEATURE_SCALE


def segment_difficulty(segments: np.ndarray) -> np.ndarray:
    """Difficulty of each segment in [0, 1] (:func:`rlcreate.levels.metrics.segment_difficulty`)."""
    from rlcreate.levels.metrics import segment_difficulty as difficulty

    return difficulty(segments)


class SolverSeam:
    """Seam state = the fast solver's exit states at the right edge of the level so far (row x jump
    phase, flattened): the next segment is solved from them, so seams are checked exactly, jumps
    in flight included. Observed as the 14 rows where Mario can stand at the edge. A segment Mario
    cannot cross leaves an empty state; the next one then starts fresh, so one bad segment does not
    zero every later one."""

    def __init__(self):
        from rlcreate.levels.solver import N_PHASES

        self.phases = N_PHASES
        self.size = T.HEIGHT * N_PHASES
        self.observed_size = T.HEIGHT

    def initial(self, n: int) -> np.ndarray:
        return np.zeros((n, self.size))  # empty = "start fresh" (the solver's default start)

    def advance(self, segments: np.ndarray, state: np.ndarray) -> np.ndarray:
        from rlcreate.levels.solver import solve_batch

        *_, exit_state = solve_batch(segments, self.start_states(state))
        return exit_state.reshape(len(segments), -1).astype(np.float64)

    def start_states(self, state: np.ndarray) -> np.ndarray:
        return np.asarray(state).reshape(len(state), T.HEIGHT, self.phases) > 0

    def observe(self, state: np.ndarray) -> np.ndarray:
        """Rows where Mario stands (phase 0) or can be in any phase at the edge."""
        return self.start_states(state).any(axis=2).astype(np.float64)


def default_generator():
    from rlcreate.generators.latent import LatentLevelGenerator

    return LatentLevelGenerator.load()


def default_reward_set(rewards: dict[str, dict] | None = None, nonfinite: str = "raise"):
    from rlcreate.recipe import parse_recipe, build_reward_set

    recipe = parse_recipe({"env": {"id": "rlcreate/MarioLatent-v0"}, "rewards": rewards or DEFAULT_REWARDS,
                           "nonfinite": nonfinite})
    return build_reward_set(recipe)


def _core(n: int, n_segments: int, targets, reward, generator) -> LatentLevelCore:
    generator = generator or default_generator()
    if reward is None or isinstance(reward, dict):
        reward = default_reward_set(reward)
    return LatentLevelCore(generator, reward, segment_features, len(FEATURE_NAMES), n_segments=n_segments,
                           targets=DEFAULT_TARGETS if targets is None else targets, seam=SolverSeam(), n=n)


def make_mario_latent(n_segments: int = 8, targets: dict | None = None, reward: Any = None,
                      generator: Any = None, render_mode: str | None = None) -> LatentLevelEnv:
    """Single-env ``rlcreate/MarioLatent-v0`` (what ``gymnasium.make`` returns)."""
    return LatentLevelEnv(_core(1, n_segments, targets, reward, generator), render_mode=render_mode)


def make_mario_latent_vec(n_envs: int = 16, n_segments: int = 8, targets: dict | None = None,
                          reward: Any = None, generator: Any = None, seed: int | None = None) -> LatentLevelVecEnv:
    """Batched ``MarioLatent-v0`` as an SB3 VecEnv: ``n_envs`` levels per decoder call."""
    return LatentLevelVecEnv(_core(n_envs, n_segments, targets, reward, generator), seed=seed)


def make_mario_tokens(**kwargs):
    from rlcreate.envs.column_tokens import make_mario_tokens as make

    return make(**kwargs)
