"""Generic latent-space level environments: build a level segment by segment with a decoder.

The environment logic lives in :class:`LatentLevelCore`, which steps a whole batch of levels with
one decoder call and one reward-set call per step. :class:`LatentLevelVecEnv` exposes it to SB3 as
a ``VecEnv`` (the fast path: N levels per step in one process), :class:`LatentLevelEnv` as a
single Gymnasium env (``check_env``, ``gymnasium.make``). A domain configures these classes (the
Mario ids: :mod:`rlcreate.levels.envs`); point them at another decoder by passing your own
``generator`` (its ``height`` sets the grid height) / ``featurizer`` / ``seam`` / ``renderer``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import numpy as np
from gymnasium import spaces

from rlcreate.envs.core_vec_env import CoreEnv, CoreVecEnv, EnvConfigError, render_grid
from rlcreate.envs.target_control import TargetControl, TargetSpec, TermShaping
from rlcreate.rewards.compose import RewardSet, as_reward_set

__all__ = [
    "LatentGenerator",
    "Seam",
    "LatentLevelCore",
    "LatentLevelVecEnv",
    "LatentLevelEnv",
    "TargetSpec",
    "EnvConfigError",
    "LATENT_MODES",
]


class LatentGenerator(Protocol):
    latent_dim: int
    segment_width: int
    height: int  # rows of a decoded segment
    action_scale: float

    def decode(self, z: np.ndarray) -> np.ndarray: ...


class ContextLatentGenerator(LatentGenerator, Protocol):
    """A generator conditioned on the level so far: ``context_columns > 0`` promises that
    ``decode`` also takes the last columns of each level (``None`` for a level's first segment).
    One with ``takes_final = True`` also gets ``final=`` (is this the level's last segment?), so it
    may leave a structure open at a seam for the next segment to close."""

    context_columns: int

    def decode(self, z: np.ndarray, context: np.ndarray | None = None) -> np.ndarray: ...


class Seam(Protocol):
    """Tracks what one segment leaves for the next (e.g. where Mario can stand at the edge)."""

    size: int  # length of the state vector
    observed_size: int  # length of observe(state), part of the observation

    def initial(self, n: int) -> np.ndarray: ...  # (n, size)

    def advance(self, segments: np.ndarray, state: np.ndarray) -> np.ndarray: ...  # -> (n, size)

    def observe(self, state: np.ndarray) -> np.ndarray: ...  # -> (n, observed_size)

    def alive(self, state: np.ndarray) -> np.ndarray: ...  # -> (n,) bool: can the level still be crossed?


class LatentLevelCore:
    """Batched state of ``n`` levels under construction (shared by the VecEnv and the single env).

    ``latent_mode`` maps actions to decoder inputs (:data:`LATENT_MODES`; ``radius`` is the residual
    step); ``reward_every`` is ``"segment"`` (score each new segment) or ``"end"`` (score whole
    levels at their last step, with every step's actions / latents in the context). A generator
    with ``context_columns > 0`` gets the level so far's last columns with each decode.
    ``info["latent"]`` holds the share of saturated action entries and the RMS of z per step.
    ``control_channel``: the generator's ``control_names`` become extra action entries passed to
    ``decode(..., control=)``; ``target_measures`` ({target: (counts of a grid stack, tolerance)})
    adds one schedule deficit per target to the observation; ``target_shaping`` (needs measures) adds
    the token env's potential-based shaping after every segment; ``control_guidance`` adds the
    generator's ``control_for(rates the schedule still needs)`` to the policy's control entries.
    ``preview`` (residual mode): before each step the env decodes what ``a = 0`` would write (the
    prior draw z0 with the guide, in the level's current context) and adds its features to the
    observation (segment features, whether the level stays crossable, the schedule deficits after
    it); one more action entry, a gate: ``>= 0`` keeps that segment, ``< 0`` redraws (a fresh prior
    draw moved by the residual, with the policy's control entries). Why: the map from z0 to a
    segment depends on the context, so without it the policy cannot know which draws to leave.
    ``playability_shaping`` (needs a seam): potential-based credit for crossability, Phi = weight x
    the share of segments Mario has crossed from the level's start without a fall, 0 at the level's
    end, so it sums to 0 over a level (returns unchanged) but tells each step at once when it broke
    the level (the level-end playability term arrives 8 steps later).
    ``control_cap`` (needs ``control_guidance``): the guide also caps each segment at what the
    level's targets still allow (``round(target x columns / 16)`` minus what is written), passed as
    the generator's ``decode(..., limit=)``: enemies come in groups, so a logit shift alone
    overshoots low requests, and an overshoot cannot be taken back by later segments.
    ``residual_action = False`` (residual mode): the action has no latent entries, every segment
    decodes its prior draw z0 and the policy acts through the control channel only (a few designed
    numbers per segment instead of one quantile shift per column, whose meaning changes with z0 and
    the context).
    ``profile_measures`` ({name: (counts of a grid stack, human rate per 128 columns, tolerance)}):
    per name, how far the level so far is behind the human rate (``rate x columns / 128 - count``,
    over the tolerance, squashed: 0.5 = on the human rate) joins the observation: what the level
    still needs for an element profile term, which the segment features (blocks lump bricks with
    ?-blocks) do not say directly.
    ``shape_terms`` (names of reward terms; ``reward_every="end"``): the token env's potential-based
    shaping from terms that score a level so far as they score a whole one (``TermShaping``): each
    segment is paid its share of e.g. the element profile when it closes, not 8 steps later at the
    level's end; it sums to 0 over a level (returns unchanged).
    ``candidates = K`` (residual mode, K >= 2): before each step the env decodes K segments in the
    level's current context, all with the guide: candidate 0 is what ``a = 0`` writes (the prior
    draw z0), candidates 1..K-1 fresh prior draws; the observation adds, per candidate, its segment
    features, whether the level stays crossable after it, and the target and profile deficits after
    it. The action is K - 1 entries (no latent or control entries): the step writes candidate k
    (the largest entry) if ``a_k >= 0.5``, else candidate 0, so ``a = 0`` is still the generator +
    guide. Why: the policy sees what each choice would do to the objective before it chooses (the
    token env's per-offer features), at K decodes per step (compare with best-of-K levels).
    ``candidate_terms`` (names of stateless reward terms; needs ``candidates``): per candidate, also
    what writing it changes in each term's potential ``w * term(level so far) * columns / T`` (the
    quantity ``shape_terms`` pays; at the level's last step the term's whole-level reward) and
    their sum, each ``0.5 + 0.5 tanh(delta / CANDIDATE_TERM_SCALE)``. Batch terms (set profile,
    batch diversity) are scored as if every level of the batch took that candidate slot. Why: with
    the same terms in ``shape_terms``, the policy sees before it chooses exactly what each choice
    is paid for those terms, so credit is direct instead of learned from level-end returns.
    ``candidate_action`` (with ``candidates``): ``"box"`` (default) as above, or ``"choice"``: the
    action is ``Discrete(K)``, the index of the candidate to write. Why: a pick among K prior draws
    is a categorical choice; as thresholded Box entries most sampled actions write candidate 0 and
    the policy's log-probability says little about which candidate it chose. Every action writes a
    prior draw unchanged (nothing to saturate), and a uniform pick is the generator's distribution.
    All off by default (v0 and plain v1 unchanged).
    """

    def __init__(
        self,
        generator: LatentGenerator,
        reward: Any,
        featurizer: Callable[[np.ndarray], np.ndarray],
        n_features: int,
        n_segments: int = 8,
        targets: Mapping[str, Sequence[float]] | None = None,
        seam: Seam | None = None,
        n: int = 1,
        renderer: Any = None,
        latent_mode: str = "scaled",
        radius: float = 1.5,
        reward_every: str = "segment",
        control_channel: bool = False,
        target_measures: Mapping[str, Any] | None = None,
        target_shaping: float = 0.0,
        control_guidance: bool = False,
        preview: bool = False,
        playability_shaping: float = 0.0,
        control_cap: bool = False,
        residual_action: bool = True,
        profile_measures: Mapping[str, Any] | None = None,
        shape_terms: Sequence[str] = (),
        candidates: int = 0,
        candidate_terms: Sequence[str] = (),
        candidate_action: str = "box",
    ):
        if latent_mode not in LATENT_MODES:
            raise EnvConfigError(f"latent_mode = {latent_mode!r}: use one of {', '.join(LATENT_MODES)}")
        if latent_mode != "scaled" and getattr(generator, "prior", None) != "uniform":
            raise EnvConfigError(
                f"latent_mode = {latent_mode!r} needs a generator with a uniform [-1, 1] prior "
                "(generator.prior == 'uniform', e.g. rlcreate.levels.gan's generators); use 'scaled'"
            )
        if not (isinstance(radius, (int, float)) and not isinstance(radius, bool) and 0 < radius <= 10):
            raise EnvConfigError(f"radius = {radius!r}: must be a number in (0, 10] (residual step in atanh units)")
        if reward_every not in ("segment", "end"):
            raise EnvConfigError(f"reward_every = {reward_every!r}: use 'segment' or 'end'")
        if isinstance(n_segments, bool) or not isinstance(n_segments, int) or not 1 <= n_segments <= 1000:
            raise EnvConfigError(f"n_segments = {n_segments!r}: must be an integer in [1, 1000]")
        self.gen = generator
        self.reward: RewardSet = as_reward_set(reward)
        self.featurizer, self.n_features = featurizer, int(n_features)
        self.n_segments, self.n = n_segments, n
        self.targets = [TargetSpec(k, float(v[0]), float(v[1])) for k, v in (targets or {}).items()]
        self.seam, self.renderer = seam, renderer
        self.width, self.height = generator.segment_width, int(generator.height)
        self.latent_mode, self.radius, self.reward_every = latent_mode, float(radius), reward_every
        self.context_columns = int(getattr(generator, "context_columns", 0) or 0)
        d = generator.latent_dim
        # a designed control channel: extra action entries the generator turns into logit shifts
        self.n_controls = len(getattr(generator, "control_names", ())) if control_channel else 0
        if control_channel and not self.n_controls:
            raise EnvConfigError(
                f"control_channel = True needs a generator with control_names (e.g. the column LM "
                f"decoding noise); {type(generator).__name__} has none: set control_channel: false"
            )
        if not (isinstance(target_shaping, (int, float)) and np.isfinite(target_shaping) and target_shaping >= 0):
            raise EnvConfigError(f"target_shaping = {target_shaping!r}: must be a number >= 0 (0 = off)")
        # schedule deficits in the observation and potential-based shaping (the token env's helper)
        self.control = TargetControl(
            self.targets, dict(target_measures or {}), n_segments * generator.segment_width, float(target_shaping)
        )
        if control_guidance and not (self.n_controls and self.control.active):
            raise EnvConfigError(
                "control_guidance = True needs control_channel and target measures (observe_deficits): "
                "the guide turns each target's schedule deficit into control values"
            )
        self.control_guidance = bool(control_guidance)
        if control_cap and not self.control_guidance:
            raise EnvConfigError(
                "control_cap = True needs control_guidance: true (the cap is part of the guide: it stops "
                "a segment from writing more enemies / gaps than the level's targets allow); set "
                "control_guidance: true, or control_cap: false"
            )
        self.control_cap = bool(control_cap)
        if not residual_action and not (latent_mode == "residual" and self.n_controls):
            raise EnvConfigError(
                "residual_action = False needs latent_mode: residual and control_channel: true (the policy "
                "then acts through the control channel only, on the generator's own prior draws)"
            )
        self.n_latent_actions = d if residual_action else 0  # action entries that move z
        if preview and latent_mode != "residual":
            raise EnvConfigError(
                f"preview = True needs latent_mode: residual (a redraw is a fresh prior draw moved by the "
                f"residual); got latent_mode = {latent_mode!r}"
            )
        self.preview = bool(preview)
        ok = isinstance(playability_shaping, (int, float)) and not isinstance(playability_shaping, bool)
        if not (ok and np.isfinite(playability_shaping) and playability_shaping >= 0):
            raise EnvConfigError(f"playability_shaping = {playability_shaping!r}: must be a number >= 0 (0 = off)")
        if playability_shaping and seam is None:
            raise EnvConfigError("playability_shaping needs a seam (the solver state that says a segment was crossed)")
        self.play_shaping = float(playability_shaping)
        if shape_terms and reward_every != "end":
            raise EnvConfigError(
                f"shape_terms = {list(shape_terms)!r}: shaping spreads end-of-level terms over the segments; "
                "use it with reward_every: end, or drop shape_terms"
            )
        self.term_shaping = TermShaping(self.reward, list(shape_terms), n_segments * self.width, self.width)
        self.crossed = np.zeros(n)  # segments crossed from the level's start without a fall
        self.whole_alive = np.ones(n, bool)
        obs_dim = 2 * self.n_features + (seam.observed_size if seam else 0) + 1 + len(self.targets)
        obs_dim += d if latent_mode == "residual" else 0  # the prior draw the residual moves
        obs_dim += self.control.size(0)  # one schedule deficit per target (0 without measures)
        self.profile_measures = dict(profile_measures or {})
        obs_dim += len(self.profile_measures)
        if self.preview:  # features of the a = 0 segment, crossable after it, deficits after it
            obs_dim += self.n_features + (1 if seam else 0) + self.control.size(0)
        ok_k = (
            isinstance(candidates, int)
            and not isinstance(candidates, bool)
            and (candidates == 0 or 2 <= candidates <= 16)
        )
        if not ok_k:
            raise EnvConfigError(f"candidates = {candidates!r}: use 0 (off) or an integer in [2, 16]")
        if candidates and (latent_mode != "residual" or self.preview):
            raise EnvConfigError(
                "candidates needs latent_mode: residual and preview: false (it replaces the preview's gate)"
            )
        self.n_cand = int(candidates)
        if candidate_action not in CANDIDATE_ACTIONS:
            raise EnvConfigError(f"candidate_action = {candidate_action!r}: use one of {', '.join(CANDIDATE_ACTIONS)}")
        if candidate_action == "choice" and not self.n_cand:
            raise EnvConfigError("candidate_action = 'choice' needs candidates >= 2 (it picks one of them)")
        self.choice = candidate_action == "choice"
        if self.n_cand:  # per candidate: features, crossable after it, target and profile deficits after it
            obs_dim += self.n_cand * (
                self.n_features + (1 if seam else 0) + self.control.size(0) + len(self.profile_measures)
            )
        if candidate_terms and not (self.n_cand and reward_every == "end"):
            raise EnvConfigError(
                f"candidate_terms = {list(candidate_terms)!r}: needs candidates >= 2 and reward_every: end "
                "(each candidate's change of a whole-level term); set candidates, or drop candidate_terms"
            )
        # per candidate: what writing it changes in each named term's potential (w * f(prefix) * t / T)
        self.cand_terms = TermShaping(self.reward, list(candidate_terms), n_segments * self.width, self.width)
        if self.cand_terms.terms:  # one delta per term and their sum
            obs_dim += self.n_cand * (len(self.cand_terms.terms) + 1)
        self.observation_space = spaces.Box(0.0, 1.0, (obs_dim,), np.float32)
        n_act = self.n_latent_actions + self.n_controls + int(self.preview)
        if self.n_cand:
            n_act = self.n_cand - 1
        self.action_space: spaces.Space = (
            spaces.Discrete(self.n_cand) if self.choice else spaces.Box(-1.0, 1.0, (n_act,), np.float32)
        )
        self.progress = 0.0  # training progress in [0, 1] for weight schedules (set by the trainer)
        self.render_mode = None
        self.levels = np.zeros((n, self.height, n_segments * self.width), np.int8)
        self.t = np.zeros(n, np.int64)  # segments written so far, per level
        self.feat_sum = np.zeros((n, self.n_features))
        self.last_feat = np.zeros((n, self.n_features))
        self.seam_state = seam.initial(n) if seam else np.zeros((n, 0))
        self.target_values = np.zeros((n, len(self.targets)))
        self.base = np.zeros((n, d), np.float32)  # residual mode: this step's prior draw z0
        self.actions = np.zeros((n, n_segments, n_act), np.float32)  # so far
        self.preview_seg = np.zeros((n, self.height, self.width), np.int8)  # what a = 0 writes next (preview)
        self.cand_seg = np.zeros((n, max(self.n_cand, 1), self.height, self.width), np.int8)  # candidates
        self.cand_z = np.zeros((n, max(self.n_cand, 1), d), np.float32)
        self.latents = np.zeros((n, n_segments, d), np.float32)  # decoder inputs of the level so far
        self.rng = np.random.default_rng(0)
        self.cand_rng = np.random.default_rng(1)

    def _draw_base(self, rows: np.ndarray) -> None:
        if self.latent_mode == "residual":
            self.base[rows] = self.rng.uniform(-1, 1, (len(rows), self.base.shape[1]))

    def latent(self, a: np.ndarray) -> np.ndarray:
        """Decoder input for clipped actions ``a`` (see :data:`LATENT_MODES`)."""
        if self.latent_mode == "scaled":
            return a * self.gen.action_scale
        if self.latent_mode == "direct":
            return a
        u = np.arctanh(np.clip(self.base, -0.999, 0.999)) + self.radius * a
        return np.tanh(u).astype(np.float32)

    def reset(self, rng: np.random.Generator, rows: np.ndarray | None = None) -> np.ndarray:
        """Start new levels (all rows, or the rows in ``rows``); returns observations of all rows."""
        rows = np.arange(self.n) if rows is None else rows
        self.t[rows] = 0
        self.feat_sum[rows] = 0
        self.last_feat[rows] = 0
        self.levels[rows] = 0
        self.crossed[rows], self.whole_alive[rows] = 0, True
        if self.seam:
            self.seam_state[rows] = self.seam.initial(len(rows))
        for j, spec in enumerate(self.targets):
            self.target_values[rows, j] = rng.uniform(spec.low, spec.high, size=len(rows))
        if self.n_cand and rng is not self.rng:  # candidates' own stream: z0 and targets stay paired
            self.cand_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])  # type: ignore[attr-defined]
        self.rng = rng
        self._draw_base(rows)
        if self.control.active and len(rows) == self.n:  # levels run in lockstep: all reset together
            self.control.reset(self.n)
        if self.term_shaping.terms and len(rows) == self.n:
            self.term_shaping.reset(self.n)
        if self.preview:
            self._preview(rows)
        if self.n_cand:
            self._candidates(rows)
        return self.observe()

    def _candidates(self, rows: np.ndarray) -> None:
        """Decode the K candidates of ``rows`` in one call: z0 (what ``a = 0`` writes) and K - 1
        fresh prior draws, all with the guide's control (drawn for every row: streams stay paired)."""
        k, d = self.n_cand, self.base.shape[1]
        fresh = self.cand_rng.uniform(-1, 1, (self.n, k - 1, d)).astype(np.float32)
        self.cand_z[:, 0], self.cand_z[:, 1:] = self.base, fresh
        rep = np.repeat(rows, k)
        control = None
        if self.n_controls:
            control = np.repeat(self._controls(np.zeros((self.n, self.n_controls), np.float32))[rows], k, axis=0)
        segs = self._decode(self.cand_z[rows].reshape(-1, d), control, rep)
        self.cand_seg[rows] = segs.reshape(len(rows), k, self.height, self.width)

    def _after(self, seg: np.ndarray) -> list[np.ndarray]:
        """Observation parts for one candidate segment per level: its features, whether the level
        stays crossable after it, the target and profile deficits if it is written."""
        parts = [self.featurizer(seg)]
        if self.seam:
            parts.append(self.seam.alive(self.seam.advance(seg, self.seam_state))[:, None].astype(np.float64))
        t = int(self.t.max(initial=0)) * self.width
        prefix = np.concatenate([self.levels[:, :, :t], seg], 2)
        if self.control.active:
            deficit = self.target_values * prefix.shape[2] / self.control.per - self.control.counts(prefix)
            parts.append(0.5 + 0.5 * np.tanh(deficit / self.control.tols))
        for count, rate, tol in self.profile_measures.values():
            behind = rate * prefix.shape[2] / 128.0 - np.asarray(count(prefix), np.float64)
            parts.append((0.5 + 0.5 * np.tanh(behind / tol))[:, None])
        if self.cand_terms.terms:  # every row takes this candidate: set terms see a batch like the real one
            if t < self.n_segments * self.width:
                pots = self.cand_terms.potentials(prefix, self.progress, targets=self._target_context())
                deltas = np.stack([pots[k] - self._pot_now[k] for k in self.cand_terms.terms], 1)
            else:  # the level is over (terminal observation): nothing to choose
                deltas = np.zeros((self.n, len(self.cand_terms.terms)))
            deltas = np.concatenate([deltas, deltas.sum(1, keepdims=True)], 1)
            parts.append(0.5 + 0.5 * np.tanh(deltas / CANDIDATE_TERM_SCALE))
        return parts

    @property
    def candidate_width(self) -> int:
        """Entries per candidate block of the observation (the last ``n_cand`` blocks; 0 without
        candidates): what ``policy_kwargs.candidate_width`` of the ``candidate_scorer`` policy must be."""
        if not self.n_cand:
            return 0
        terms = len(self.cand_terms.terms) + 1 if self.cand_terms.terms else 0
        return self.n_features + (1 if self.seam else 0) + self.control.size(0) + len(self.profile_measures) + terms

    @property
    def rule_entries(self) -> list[int]:
        """Positions, inside a candidate block, of the entries :meth:`greedy_action` adds up: the
        crossable flag (with a seam) and the observed sum of term changes (the block's last entry);
        what ``policy_kwargs.rule_entries`` of the ``candidate_scorer`` policy must be. Empty
        without candidates and ``candidate_terms``."""
        if not (self.n_cand and self.cand_terms.terms):
            return []
        return ([self.n_features] if self.seam else []) + [self.candidate_width - 1]

    def greedy_action(self, obs: np.ndarray) -> np.ndarray:
        """A hand-built picker on this env's observation, no learning (what RL must beat to claim
        more than the features carry): per level, the candidate that keeps it crossable, then the
        one with the largest observed sum of term changes (``candidate_terms``); actions in the
        env's layout (entry k-1 = 1 writes candidate k, all 0 writes candidate 0; with
        ``candidate_action="choice"`` the candidate's index)."""
        if not (self.n_cand and self.cand_terms.terms):
            raise EnvConfigError("greedy_action: needs candidates >= 2 and candidate_terms")
        k, width = self.n_cand, self.candidate_width
        blocks = np.asarray(obs)[:, -k * width :].reshape(len(obs), k, width)
        score = blocks[:, :, self.rule_entries].sum(2)  # crossable in {0, 1} + the squashed sum
        pick = score.argmax(1)
        if self.choice:
            return pick
        a = np.zeros((len(obs), k - 1), np.float32)
        rows = np.flatnonzero(pick > 0)
        a[rows, pick[rows] - 1] = 1.0
        return a

    def _target_context(self) -> dict:
        return {s.name: self.target_values[:, j] for j, s in enumerate(self.targets)}

    def _preview(self, rows: np.ndarray) -> None:
        """Decode what ``a = 0`` writes next for ``rows`` (z0, the guide's control if any)."""
        zero = np.zeros((self.n, self.n_controls), np.float32)
        control = self._controls(zero)[rows] if self.n_controls else None
        z = self.latent(np.zeros((self.n, self.base.shape[1]), np.float32))[rows]  # exactly a = 0's input
        self.preview_seg[rows] = self._decode(z, control, rows)

    def observe(self) -> np.ndarray:
        mean = self.feat_sum / np.maximum(self.t, 1)[:, None]
        tnorm = (
            np.stack([s.normalise(self.target_values[:, j]) for j, s in enumerate(self.targets)], 1)
            if self.targets
            else np.zeros((self.n, 0))
        )
        seam = self.seam.observe(self.seam_state) if self.seam else np.zeros((self.n, 0))
        parts = [self.last_feat, mean, seam, (self.t / self.n_segments)[:, None], tnorm]
        if self.latent_mode == "residual":
            parts.append((self.base + 1.0) / 2.0)
        if self.control.active:  # target minus achieved so far, squashed: 0.5 = on schedule
            t = int(self.t.max(initial=0)) * self.width
            deficit = self.target_values * t / self.control.per - self.control.counts(self.levels[:, :, :t])
            parts.append(0.5 + 0.5 * np.tanh(deficit / self.control.tols))
        if self.profile_measures:  # behind (> 0.5) or ahead of the human rate, per element
            cols = int(self.t.max(initial=0)) * self.width
            so_far = self.levels[:, :, :cols]
            for count, rate, tol in self.profile_measures.values():
                behind = rate * cols / 128.0 - np.asarray(count(so_far), np.float64)
                parts.append((0.5 + 0.5 * np.tanh(behind / tol))[:, None])
        if self.preview:
            parts.append(self.featurizer(self.preview_seg))
            if self.seam:
                after = self.seam.advance(self.preview_seg, self.seam_state)
                parts.append(self.seam.alive(after)[:, None].astype(np.float64))
            if self.control.active:  # the deficits if the preview is kept
                t = int(self.t.max(initial=0)) * self.width
                prefix = np.concatenate([self.levels[:, :, :t], self.preview_seg], 2)
                deficit = self.target_values * prefix.shape[2] / self.control.per - self.control.counts(prefix)
                parts.append(0.5 + 0.5 * np.tanh(deficit / self.control.tols))
        if self.cand_terms.terms:  # the potentials of the level so far, which every candidate changes
            t = int(self.t.max(initial=0)) * self.width
            now = self.levels[:, :, :t]
            self._pot_now = (
                self.cand_terms.potentials(now, self.progress, targets=self._target_context())
                if 0 < t < self.n_segments * self.width
                else dict.fromkeys(self.cand_terms.terms, np.zeros(self.n))
            )
        for j in range(self.n_cand):
            parts.extend(self._after(self.cand_seg[:, j]))
        obs = np.concatenate(parts, 1)
        return np.clip(obs, 0.0, 1.0).astype(np.float32)

    def step(self, actions: np.ndarray):
        """Decode one segment per level, score it, advance. Returns obs, rewards, done, infos."""
        if self.choice:  # the candidate's index; stored as the Box layout that writes it (for rewards)
            pick = np.asarray(actions).reshape(self.n).astype(np.int64)
            if pick.min(initial=0) < 0 or pick.max(initial=0) >= self.n_cand:
                raise ValueError(f"candidate_action = 'choice': actions must be in 0..{self.n_cand - 1}")
            raw = np.eye(self.n_cand, dtype=np.float32)[pick, 1:]
        else:
            raw = np.asarray(actions, np.float32).reshape(self.n, -1)
        a = np.clip(raw, -1.0, 1.0)
        d = self.n_latent_actions
        # the latent entries (zeros without residual_action: z = z0) and the control entries
        lat = a[:, :d] if d else np.zeros((self.n, self.gen.latent_dim), np.float32)
        rows = np.arange(self.n)
        redraw = np.zeros(self.n, bool)
        if self.n_cand:
            pick = candidate_pick(a)
            z, segments = self.cand_z[rows, pick].copy(), self.cand_seg[rows, pick].copy()
            redraw = pick > 0
        elif self.preview:  # keep the previewed a = 0 segment, or redraw
            redraw = a[:, -1] < 0
            fresh = self.rng.uniform(-1, 1, self.base.shape)  # drawn for every row: streams stay paired
            z, segments = self.latent(np.zeros_like(lat)), self.preview_seg.copy()
            moved = np.flatnonzero(redraw)
            if len(moved):
                u = np.arctanh(np.clip(fresh[moved], -0.999, 0.999)) + self.radius * lat[moved]
                z[moved] = np.tanh(u)
                ctrl = self._controls(a[:, d : d + self.n_controls])[moved] if self.n_controls else None
                segments[moved] = self._decode(z[moved], ctrl, moved)
        else:
            z = self.latent(lat)
            segments = self._decode(z, self._controls(a[:, d : d + self.n_controls]) if self.n_controls else None)
        self.actions[rows, self.t] = a
        self.latents[rows, self.t] = z
        for i, t in enumerate(self.t):
            self.levels[i, :, t * self.width : (t + 1) * self.width] = segments[i]
        done = self.t + 1 >= self.n_segments
        context = {
            "position": (self.t + 0.5) / self.n_segments,
            "segment_index": self.t.copy(),
            "n_segments": self.n_segments,
            "targets": {s.name: self.target_values[:, j] for j, s in enumerate(self.targets)},
            "latent": z,  # the decoder input (prior / typical-set rewards)
            "action": a,  # the policy's (clipped) action: the residual in residual mode
        }
        if self.seam:
            context["seam_state"] = self.seam_state.copy()
        if self.reward_every == "segment":
            result = self.reward(list(segments), progress=self.progress, **context)
        elif done.any():  # levels are written in lockstep: all end together
            # the whole level is scored (solved from its start: no seam state), with the actions /
            # latents of all its steps
            whole = {k: v for k, v in context.items() if k not in ("seam_state", "segment_index", "position")}
            result = self.reward(
                list(self.levels.copy()),
                progress=self.progress,
                **dict(whole, action=self.actions.reshape(self.n, -1), latent=self.latents.reshape(self.n, -1)),
            )
        else:
            result = None
        # a choice has no box to saturate: every action writes a prior draw unchanged
        saturated = np.zeros(self.n) if self.choice else (np.abs(raw) > 0.99).mean(axis=1)
        stats = {"saturated": saturated, "norm": np.sqrt((z**2).mean(axis=1))}
        if self.preview or self.n_cand:
            stats["redraw"] = redraw.astype(np.float64)
        feats = self.featurizer(segments)
        self.last_feat = feats
        self.feat_sum += feats
        if self.seam:
            self.seam_state = self.seam.advance(segments, self.seam_state)
        play = np.zeros(self.n)
        if self.play_shaping and self.seam:  # Phi = w * crossed / n_segments, 0 once the level ends
            before = self.play_shaping * self.crossed / self.n_segments
            self.whole_alive &= self.seam.alive(self.seam_state)
            self.crossed += self.whole_alive
            after = np.where(done, 0.0, self.play_shaping * self.crossed / self.n_segments)
            play = after - before
        self.t += 1
        self._draw_base(rows)
        if self.preview:
            self.preview_seg[done] = 0  # finished levels get theirs at reset
            if not done.all():
                self._preview(np.flatnonzero(~done))
        if self.n_cand:
            self.cand_seg[done] = 0
            if not done.all():
                self._candidates(np.flatnonzero(~done))
        infos = [{"segment": segments[i], "latent": {k: float(v[i]) for k, v in stats.items()}} for i in range(self.n)]
        if result is not None:
            for i in range(self.n):
                infos[i]["rewards"] = result.per_sample(i)
        for row in np.flatnonzero(done):
            infos[row]["level"] = self.levels[row].copy()
            infos[row]["targets"] = {s.name: float(self.target_values[row, j]) for j, s in enumerate(self.targets)}
        total = result.total.astype(np.float32) if result is not None else np.zeros(self.n, np.float32)
        if self.play_shaping:
            total = total + play.astype(np.float32)
            for i in range(self.n):
                infos[i]["playability_shaping"] = float(play[i])
        if self.control.active and self.control.shaping_weight:  # levels advance in lockstep
            end = int(self.t.max()) * self.width
            shaping = self.control.shaping(self.levels[:, :, :end], self.target_values, bool(done.all()))
            total = total + shaping.astype(np.float32)
            for i in range(self.n):
                infos[i]["target_shaping"] = float(shaping[i])
        if self.term_shaping.terms:  # levels advance in lockstep
            end = int(self.t.max()) * self.width
            targets = {s.name: self.target_values[:, j] for j, s in enumerate(self.targets)}
            terms = self.term_shaping.shaping(self.levels[:, :, :end], bool(done.all()), self.progress, targets=targets)
            total = total + terms.astype(np.float32)
            for i in range(self.n):
                infos[i]["term_shaping"] = float(terms[i])
        return self.observe(), total, done, infos

    def _controls(self, a: np.ndarray) -> np.ndarray:
        """The control channel's decoder input: the policy's entries, plus (``control_guidance``) the
        generator's hand-built guide toward each target's schedule (``a = 0``: the guide alone)."""
        if not self.control_guidance:
            return a
        t = int(self.t.max(initial=0))
        counts = self.control.counts(self.levels[:, :, : t * self.width])
        per = self.control.per
        need = (self.target_values * (t + 1) * self.width / per - counts) * per / self.width  # per `per` columns
        names, gen = [s.name for s in self.targets], cast(Any, self.gen)  # a generator with control_names
        wanted = np.stack(
            [need[:, names.index(c)] if c in names else np.full(self.n, np.nan) for c in gen.control_names], 1
        )
        guide = np.where(np.isnan(wanted), 0.0, gen.control_for(np.nan_to_num(wanted)))
        return np.clip(a + guide, -1.0, 1.0)

    def _limits(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), controls): per control name, what the level's target still allows
        (``round(target x columns / per)`` minus the count so far; inf for a name with no target)."""
        t = int(self.t.max(initial=0)) * self.width  # levels advance in lockstep
        counts = self.control.counts(self.levels[rows, :, :t])
        total = np.floor(self.target_values[rows] * self.levels.shape[2] / self.control.per + 0.5)
        names, gen = [s.name for s in self.targets], cast(Any, self.gen)
        return np.stack(
            [
                total[:, names.index(c)] - counts[:, self.control.names.index(c)]
                if c in names
                else np.full(len(rows), np.inf)
                for c in gen.control_names
            ],
            1,
        )

    def _decode(self, z: np.ndarray, control: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """One decoder call for the levels ``rows`` (default all; ``z`` / ``control`` one row per
        level in ``rows``); a context-conditioned generator gets the last columns of each level so
        far (none for a level's first segment); ``control``: the control channel's action entries
        (generators with ``control_names``)."""
        rows = np.arange(self.n) if rows is None else np.asarray(rows)
        limit = self._limits(rows) if self.control_cap else None
        if not self.context_columns:
            kw0 = ({} if control is None else {"control": control}) | ({} if limit is None else {"limit": limit})
            return self.gen.decode(z, **kw0)
        gen = cast(ContextLatentGenerator, self.gen)  # context_columns > 0: it takes context=
        out = np.zeros((len(rows), self.height, self.width), np.int8)
        for t in np.unique(self.t[rows]):  # levels advance in lockstep: one group in practice
            sel = np.flatnonzero(self.t[rows] == t)
            end = int(t) * self.width
            ctx = self.levels[rows[sel], :, max(0, end - self.context_columns) : end] if t else None
            kw = {} if control is None else {"control": control[sel]}
            if limit is not None:
                kw["limit"] = limit[sel]
            if getattr(gen, "takes_final", False):  # it may leave a seam open unless told the level ends
                out[sel] = gen.decode(z[sel], context=ctx, final=bool(t == self.n_segments - 1), **kw)  # type: ignore[call-arg]
            else:
                out[sel] = gen.decode(z[sel], context=ctx, **kw)
        return out


#: ``candidate_terms``: a candidate's change of a term's potential (reward units) is shown as
#: ``0.5 + 0.5 tanh(delta / scale)``; 0.2 keeps differences between candidates of a few hundredths
#: of a term's weight readable (a whole level scores ~9 over 7 terms, a segment ~1/8 of that).
def candidate_pick(actions: np.ndarray) -> np.ndarray:
    """The candidate each row of (clipped) actions writes: k if entry k - 1 is the largest and
    >= 0.5, else candidate 0 (so ``a = 0`` writes the generator's own draw)."""
    a = np.asarray(actions)
    return np.where(a.max(axis=1) >= 0.5, a.argmax(axis=1) + 1, 0)


CANDIDATE_TERM_SCALE = 0.2

#: ``candidate_action``: ``box`` (K - 1 entries in [-1, 1], :func:`candidate_pick`) or ``choice``
#: (``Discrete(K)``: the candidate's index)
CANDIDATE_ACTIONS = ("box", "choice")

#: How an action ``a`` in ``[-1, 1]^d`` becomes the decoder input ``z``: ``scaled`` (v0):
#: ``z = action_scale * a`` (for a Gaussian prior the box's corners lie far out); ``direct``:
#: ``z = a``, the action box *is* a uniform prior; ``residual``: ``z = tanh(atanh(z0) + radius * a)``
#: around a fresh prior draw ``z0`` per step (observed), so ``a = 0`` decodes the generator's own sample.
LATENT_MODES = ("scaled", "direct", "residual")


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
        return render_grid(
            self.core.renderer, self.core.levels[0, :, : int(self.core.t[0]) * self.core.width], self.render_mode
        )
