"""Generic column-token level environments: a column language model writes a tile grid, the agent
picks columns.

The logic lives in :class:`ColumnTokensCore`, which holds ``n`` grids in one column-LM decoding
state (one shared KV cache) and advances all of them with a single forward pass per step.
:class:`ColumnTokensVecEnv` exposes it to SB3 / MaskablePPO as a ``VecEnv`` (the fast path);
:class:`ColumnTokensEnv` is the single-grid Gymnasium form (``check_env``, ``gymnasium.make``).
The column LM (``lm.start`` / ``lm.step`` / ``lm.columns``), the featurizer, the seam, the column
rule and the renderer are given by a domain: ``rlcreate/MarioTokens-v1`` is configured in
:mod:`rlcreate.levels.envs`.

All levels have the same length, so the rows of a batch run in lockstep: every episode ends at the
same step and the whole batch restarts with one prefill (no per-row cache splicing is needed, unlike
:mod:`rlcreate.envs.text_tokens`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces

from rlcreate.envs.core_vec_env import CoreEnv, CoreVecEnv, render_grid
from rlcreate.envs.latent_level import EnvConfigError, TargetSpec
from rlcreate.envs.target_control import TargetControl, TargetMeasure, TermShaping
from rlcreate.envs.token_stream import TokenStreamCore, lm_logprobs, topk_offers
from rlcreate.rewards.compose import RewardSet, as_reward_set

__all__ = [
    "ColumnTokensCore",
    "ColumnTokensVecEnv",
    "ColumnTokensEnv",
    "ColumnRule",
    "LOGPROB_FLOOR",
    "CHUNK",
    "REWARD_MODES",
]

LOGPROB_FLOOR = -20.0  # observed top-k log-probs are clipped here, then scaled to [0, 1]
CHUNK = 16  # columns per scored chunk (reward_every="column") and per observed feature window
REWARD_MODES = ("end", "column")


class _JointOffers:
    """Several reward terms' offer features side by side (``offer_objective: [a, b]``): contexts
    and per-offer values concatenated in the order given."""

    def __init__(self, parts: Sequence[Any]):
        self.parts = list(parts)
        self.size = sum(p.size for p in self.parts)

    def observe(self, prefix: np.ndarray, offered: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
        return self._joined([p.observe(prefix, offered, n_columns) for p in self.parts])

    def observe_ids(self, prefix, offered, n_columns, prefix_ids, offer_ids, columns):
        """Each part's ``observe_ids`` where it has one, else its ``observe``."""
        return self._joined(
            [offer_features(p, prefix, offered, n_columns, prefix_ids, offer_ids, columns) for p in self.parts]
        )

    @staticmethod
    def _joined(seen: list) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate([c for c, _ in seen], axis=1), np.concatenate([v for _, v in seen], axis=2)

    def finished(self, levels: np.ndarray) -> None:
        for p in self.parts:
            if hasattr(p, "finished"):
                p.finished(levels)


def offer_features(features, prefix, offered, n_columns, prefix_ids, offer_ids, columns):
    """``features.observe(prefix, offered, n_columns)``, through its ``observe_ids`` (the same arrays
    from vocabulary rows: ``prefix_ids`` (n, t) of the prefix's columns, ``offer_ids`` (n, k) of the
    offers, rows of ``columns``) where it has one."""
    by_ids = getattr(features, "observe_ids", None)
    if by_ids is None:
        return features.observe(prefix, offered, n_columns)
    return by_ids(prefix, offered, n_columns, prefix_ids, offer_ids, columns)


class ColumnRule(Protocol):
    """A structural constraint between neighbouring columns, used to mask top-k offers."""

    def allowed(self, prev: np.ndarray | None, candidates: np.ndarray, last: bool) -> np.ndarray:
        """``prev`` (n,) token ids of the columns written last (None at the level start),
        ``candidates`` (n, k) offered ids, ``last``: whether the candidate is the level's last
        column. Returns (n, k) bool: which candidates may follow."""
        ...


class ColumnTokensCore(TokenStreamCore):
    """Batched state of ``n`` levels being written by a column LM (shared by the VecEnv and the env).

    ``step`` appends the chosen top-k column to every row, advances the LM with one forward pass and
    scores with one reward-set call when rewards are due. ``reset(rng)`` restarts every row.
    """

    def __init__(
        self,
        lm: Any,
        reward: Any,
        featurizer: Callable[[np.ndarray], np.ndarray],
        n_features: int,
        n_columns: int = 64,
        k: int = 8,
        targets: Mapping[str, Sequence[float]] | None = None,
        reward_every: str = "end",
        n: int = 1,
        min_prob: float = 1e-4,
        hidden_clip: float = 5.0,
        rule: ColumnRule | None = None,
        seam: Any = None,
        n_special: int = 0,
        renderer: Any = None,
        strict_actions: bool = False,
        target_measures: dict[str, TargetMeasure] | None = None,
        target_shaping: float = 0.0,
        playable_only: bool = False,
        reach_seam: Any = None,
        shape_terms: Sequence[str] = (),
        offer_objective: str | Sequence[str] | None = None,
        avoid_offers: str | None = None,
        logit_bias: np.ndarray | None = None,
    ):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise EnvConfigError(f"n_envs = {n!r}: must be an integer >= 1")
        if not isinstance(n_columns, (int, np.integer)) or n_columns < 1:
            raise EnvConfigError(f"n_columns = {n_columns!r}: must be an integer >= 1")
        if n_columns > lm.max_length:
            raise EnvConfigError(
                f"n_columns = {n_columns} exceeds the column LM's context of {lm.max_length} tokens "
                f"(<bos> + {lm.max_length - 1} columns fed back); use n_columns <= {lm.max_length}"
            )
        n_choices = lm.vocab_size - n_special
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= n_choices:
            raise EnvConfigError(f"k = {k!r}: must be an integer in [1, {n_choices}] (the LM's column vocabulary)")
        if reward_every not in REWARD_MODES:
            raise EnvConfigError(f"reward_every = {reward_every!r}: use one of {REWARD_MODES}")
        if not 0.0 <= min_prob < 1.0:
            raise EnvConfigError(
                f"min_prob = {min_prob!r}: must be in [0, 1) (probability below which a top-k column is masked)"
            )
        if not hidden_clip > 0:
            raise EnvConfigError(f"hidden_clip = {hidden_clip!r}: must be > 0")
        if playable_only and (reach_seam or seam) is None:
            raise EnvConfigError(
                "playable_only = True needs a seam (a solver that says where Mario can be at the "
                "level's edge); the domain gives none: set playable_only: false"
            )
        if not (isinstance(target_shaping, (int, float)) and np.isfinite(target_shaping) and target_shaping >= 0):
            raise EnvConfigError(
                f"target_shaping = {target_shaping!r}: must be a number >= 0 (0 = off; use the "
                "weight of the recipe's target_match term)"
            )
        if logit_bias is not None:
            logit_bias = np.asarray(logit_bias, np.float32)
            if logit_bias.shape != (lm.vocab_size,) or not np.isfinite(logit_bias).all():
                raise EnvConfigError(
                    f"logit_bias has shape {logit_bias.shape}: give one finite offset per token of the LM's "
                    f"vocabulary ({lm.vocab_size},)"
                )
        # added to the LM's logits before the top-k: the offers, masks and the policy's reference
        # follow the offset distribution; token_logprobs (likelihood rewards) stay the LM's own
        self.logit_bias = logit_bias
        self.lm, self.rule = lm, rule
        self._n_special = int(n_special)
        self.featurizer, self.renderer = featurizer, renderer
        self.reward: RewardSet = as_reward_set(reward)
        d = int(lm.model.config.n_embd)
        self._init_offers(n, k, d, hidden_clip, strict_actions)
        self._lm_logprobs = self.topk_logprobs.copy()  # the offers' log-probs under the LM without logit_bias
        self.n_columns, self.reward_every = int(n_columns), reward_every
        self.min_logprob = float(np.log(min_prob)) if min_prob > 0 else -np.inf
        self.targets = [TargetSpec(name, float(v[0]), float(v[1])) for name, v in (targets or {}).items()]
        self.n_features = int(n_features)
        if shape_terms and reward_every != "end":
            raise EnvConfigError(
                f"shape_terms = {list(shape_terms)!r}: shaping spreads end-of-level terms over the "
                "segments; use it with reward_every: end, or drop shape_terms"
            )
        self.term_shaping = TermShaping(self.reward, list(shape_terms), self.n_columns, CHUNK)
        self.control = TargetControl(
            self.targets, target_measures or {}, self.n_columns, float(target_shaping), columns=lm.columns
        )
        self.offer_structure = self._objective_offers(offer_objective)
        if avoid_offers is not None and not isinstance(avoid_offers, str):
            raise EnvConfigError(f"avoid_offers = {avoid_offers!r}: write one reward term's name, e.g. variety")
        self.avoid = self._objective_offers(avoid_offers, "avoid_offers")  # a hand-built rule, applied as a mask
        # hidden (scaled to [-1, 1]) | top-k log-probs (scaled to [0, 1]) | features of the last 16
        # columns and of the whole level so far | progress | targets | control (schedule deficits,
        # then what each offer adds to every target measure: k * T entries, slot-major) | with
        # offer_objective, S contexts and k * S per-offer values of the objective (slot-major)
        n_struct = (1 + k) * self.offer_structure.size if self.offer_structure else 0
        low = np.concatenate(
            [
                np.full(d, -1.0),
                np.zeros(k + 2 * self.n_features + 1 + len(self.targets) + self.control.size(k) + n_struct),
            ]
        )
        self.observation_space = spaces.Box(low.astype(np.float32), np.ones_like(low, np.float32), dtype=np.float32)
        self.action_space = spaces.Discrete(self.k)
        self.progress = 0.0  # training progress in [0, 1] for reward weight schedules (set by the trainer)
        self.render_mode = None
        self.levels = np.zeros((self.n, lm.columns.shape[1], self.n_columns), np.int8)
        self.t = 0  # columns written (the same in every row: lockstep)
        self.token_logprobs = np.zeros((self.n, self.n_columns), np.float32)
        self.target_values = np.zeros((self.n, len(self.targets)))
        self.last_feat = np.zeros((self.n, self.n_features))
        self.level_feat = np.zeros((self.n, self.n_features))
        self.seam = seam  # e.g. exact seams: a solver's exit states at the previous chunk's edge
        self.seam_state = seam.initial(self.n) if seam else np.zeros((self.n, 0))
        # playable_only: where Mario can be after the last column written (the seam's exit states);
        # offers after which he could be nowhere are masked (a hard constraint, like the pipe rule)
        self.playable_only = bool(playable_only)
        self.reach_seam = reach_seam or seam  # may be a stricter solver than the reward's seam
        self.reach = self.reach_seam.initial(self.n) if self.reach_seam else np.zeros((self.n, 0))
        self._state = None
        self._allowed = np.ones((self.n, k), bool)  # the rule's verdict on the current offers
        self._passes = np.ones((self.n, k), bool)  # playable_only's verdict on them
        self._offer_exits: np.ndarray | None = None  # per offer, the reach seam's exit states after it
        # per offer: its tile column; per row: the last column's token (-1 before the first); both
        # set with the offers, so masks, observation and control read them instead of recomputing
        self._offered = np.zeros((self.n, k, lm.columns.shape[1]), lm.columns.dtype)
        self._offer_index = np.zeros((self.n, k), np.int64)
        self._last = np.full(self.n, -1, np.int64)
        self._ids = np.zeros((self.n, self.n_columns), np.int64)  # rows of lm.columns written so far
        self._masks = self._compute_masks()
        self._tnorm = np.zeros((self.n, len(self.targets)))
        self._counts = self.control.counts(self.levels[:, :, :0])  # control measures of the levels so far

    def _objective_offers(self, terms: str | Sequence[str] | None, field: str = "offer_objective") -> Any:
        """The ``offer_features()`` of the modules of reward terms ``terms`` (one name or a list,
        whose features are observed side by side); None: no such observation."""
        if terms is None:
            return None
        names = [terms] if isinstance(terms, str) else terms
        if not isinstance(names, (list, tuple)) or not names or not all(isinstance(t, str) for t in names):
            raise EnvConfigError(f"{field} = {terms!r}: write a reward term's name or a list of names, e.g. objective")
        parts = []
        for term in names:
            found = [t.module for t in self.reward.terms if t.name == term]
            if not found:
                raise EnvConfigError(
                    f"{field} = {term!r}: not a term of the reward set; use one of {self.reward.names}"
                )
            make = getattr(found[0], "offer_features", None)
            if not callable(make):
                raise EnvConfigError(
                    f"{field} = {term!r}: its reward ({type(found[0]).__name__}) gives no per-offer "
                    "features; use a designer objective (difficulty_ramp, style_athletic, sketch_match, rhythm, "
                    f"level_variety), element_profile or set_profile, or drop {field}"
                )
            parts.append(make())
        return parts[0] if len(parts) == 1 else _JointOffers(parts)

    # ------------------------------------------------------------------ episodes

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Start ``n`` new levels (one prefill of ``<bos>``), draw targets from ``rng``; all rows' obs."""
        logits, self._state = self.lm.start(self.n, with_hidden=True)
        self.t = 0
        self.reach[:] = 0
        self._last[:] = -1
        self._offer(logits, prev=None)
        self.levels[:] = 0
        self.token_logprobs[:] = 0
        self.last_feat[:] = 0
        self.level_feat[:] = 0
        self.seam_state[:] = 0
        self.control.reset(self.n)
        self.term_shaping.reset(self.n)
        self._counts = self.control.counts(self.levels[:, :, :0])
        for j, spec in enumerate(self.targets):
            self.target_values[:, j] = rng.uniform(spec.low, spec.high, size=self.n)
            self._tnorm[:, j] = spec.normalise(self.target_values[:, j])
        return self.observe()

    def _offer(self, logits: np.ndarray, prev: np.ndarray | None) -> None:
        """Keep the LM's top-k next columns (ids and log-probs), its hidden state and which offers
        the column rule allows after ``prev`` (the ids just written; None at the start)."""
        if self.logit_bias is None:
            ids, logprobs = topk_offers(logits, self.k)
            self._lm_logprobs = logprobs
        else:
            ids, logprobs = topk_offers(logits + self.logit_bias, self.k)
            self._lm_logprobs = lm_logprobs(logits, ids)
        assert self._state is not None, "reset() starts the LM before the first offer"
        self._set_offers(self._state.hidden, logprobs, ids)
        self._offer_index = self._column_index(self.topk_ids)  # rows of lm.columns (observe reads them too)
        self._offered = self.lm.columns[self._offer_index]
        if self.rule is not None:
            self._allowed = self.rule.allowed(prev, self.topk_ids, last=self.t == self.n_columns - 1)
        if self.playable_only:
            self._passes = self._passable()
        self._masks = self._compute_masks()
        if self.avoid is not None:  # offers the rule flags go, unless nothing allowed would be left
            _, per = self._offer_features(self.avoid)
            keep = self._masks & (per[:, :, 0] < 0.5)
            self._masks = np.where(keep.any(axis=1, keepdims=True), keep, self._masks)

    def _offer_features(self, features) -> tuple[np.ndarray, np.ndarray]:
        """Context and per-offer values of offer features on the levels so far and the offers."""
        return offer_features(
            features,
            self.levels[:, :, : self.t],
            self._offered,
            self.n_columns,
            self._ids[:, : self.t],
            self._offer_index,
            self.lm.columns,
        )

    def _column_index(self, ids: np.ndarray) -> np.ndarray:
        """Token ids -> rows of ``lm.columns`` (a special token, masked anyway, maps to column 0)."""
        return np.maximum(ids - self._n_special, 0)

    def _passable(self) -> np.ndarray:
        """(n, k) bool: offers after which the seam says Mario is still alive (one solver call on all
        n x k candidate columns from the current exit states)."""
        with_exits = getattr(self.reach_seam, "alive_after_exits", None)
        if with_exits is not None:  # also each offer's exit states: step takes the chosen one's
            alive, self._offer_exits = with_exits(self._offered, self.reach)
            return alive
        if hasattr(self.reach_seam, "alive_after"):  # one compiled call, no exit states built
            return self.reach_seam.alive_after(self._offered, self.reach)
        cols = self._offered.reshape(self.n * self.k, -1, 1)
        exits = self.reach_seam.advance(cols, np.repeat(self.reach, self.k, axis=0))
        return self.reach_seam.alive(exits).reshape(self.n, self.k)

    def observe(self) -> np.ndarray:
        hidden, topk = self._observe_offers(LOGPROB_FLOOR, scaled=True)
        control = self.control.observe(
            self.levels[:, :, : self.t],
            self.target_values,
            self._offered,
            counts=self._counts,
            last_ids=self._last,
            offer_ids=self._offer_index,
        )
        if self.offer_structure is not None:
            ctx, per = self._offer_features(self.offer_structure)
            control = np.concatenate([control, ctx, per.reshape(self.n, -1)], 1)
        d = hidden.shape[1]
        out = np.empty((self.n, self.observation_space.shape[0]), np.float32)
        out[:, :d] = hidden
        out[:, d:] = np.clip(
            np.concatenate(
                [
                    topk,
                    self.last_feat,
                    self.level_feat,
                    np.full((self.n, 1), self.t / self.n_columns),
                    self._tnorm,
                    control,
                ],
                1,
            ),
            0.0,
            1.0,
        )
        return out

    def offered_columns(self) -> np.ndarray:
        """(n, k, H) the tile columns on offer (a special token, masked anyway, shows as column 0)."""
        return self._offered

    def action_masks(self) -> np.ndarray:
        """(n, k) bool: top-k slots a policy may pick — a column (special tokens are -inf in the LM's
        logits) with probability >= ``min_prob`` that the column rule allows and (``playable_only``)
        after which Mario can still be somewhere. Per row, the first non-empty of: all three; rule
        and passable at any probability; rule with ``min_prob``; rule at any probability; ``min_prob``
        alone. Every row has at least one allowed slot. Computed once per offer (read-only: the same
        array until the next step)."""
        return self._masks

    def _compute_masks(self) -> np.ndarray:
        real = np.isfinite(self.topk_logprobs)
        likely = real & (self.topk_logprobs >= self.min_logprob)
        likely[:, 0] = True  # the most likely column is a column (special tokens are -inf)
        ruled = self._allowed
        mask = likely
        for option in (real & ruled, likely & ruled, real & ruled & self._passes, likely & ruled & self._passes):
            mask = np.where(option.any(1, keepdims=True), option, mask)  # later options win where non-empty
        return mask

    def step(self, actions: np.ndarray):
        """Append one column per row; returns obs, rewards, done (all rows alike), infos (no reset)."""
        if self._state is None:
            raise EnvConfigError("step() before reset(): call reset() first")
        if self.t >= self.n_columns:
            raise EnvConfigError(f"the levels already have n_columns = {self.n_columns} columns; call reset()")
        rows = np.arange(self.n)
        chosen, replaced, tokens, _ = self._pick(actions)
        self.token_logprobs[:, self.t] = self._lm_logprobs[rows, chosen]  # the LM's own, without logit_bias
        self.levels[:, :, self.t] = self._offered[rows, chosen]  # = lm.columns[tokens - n_special]
        self.t += 1
        done = self.t >= self.n_columns
        if self.playable_only and self._offer_exits is not None:  # the same states, found with the mask
            self.reach = self.reach_seam.state_from_exits(self._offer_exits[rows, chosen])
        elif self.playable_only:
            self.reach = self.reach_seam.advance(self.levels[:, :, self.t - 1 : self.t], self.reach)
        self._last = self._column_index(tokens)
        self._ids[:, self.t - 1] = self._last
        self._counts = self.control.counts(self.levels[:, :, : self.t])
        if not done:  # the final column needs no forward pass: a terminal state has no future
            logits, self._state = self.lm.step(self._state, tokens, with_hidden=True)
            self._offer(logits, prev=tokens)
        self.last_feat = self._features(self.levels[:, :, max(0, self.t - CHUNK) : self.t])
        chunk_end = self.t % CHUNK == 0 or done
        if chunk_end:
            self.level_feat = self._features(self.levels[:, :, : self.t])

        rewards = self.control.shaping(
            self.levels[:, :, : self.t], self.target_values, done, counts=self._counts
        ).astype(np.float32)
        if self.term_shaping.terms:
            rewards += self.term_shaping.shaping(
                self.levels[:, :, : self.t], done, self.progress, targets=self._target_context()
            ).astype(np.float32)
        infos = self._action_infos(chosen, replaced)
        for info, t in zip(infos, tokens.tolist()):
            info["column"] = t
        result = None
        if self.reward_every == "end" and done:
            result = self.reward(
                list(self.levels),
                progress=self.progress,
                targets=self._target_context(),
                token_logprobs=self.token_logprobs.astype(np.float64),
            )  # likelihood terms reuse them
        elif self.reward_every == "column" and chunk_end:
            start = (self.t - 1) // CHUNK * CHUNK
            chunk = self.levels[:, :, start : self.t]
            seam = {"seam_state": self.seam_state.copy()} if self.seam else {}
            result = self.reward(
                list(chunk),
                progress=self.progress,
                targets=self._target_context(),
                position=np.full(self.n, (start + self.t) / 2 / self.n_columns),
                **seam,
            )
            self._advance_seam(chunk)
        if result is not None:
            rewards += result.total.astype(np.float32)
            for i in rows:
                infos[i]["rewards"] = result.per_sample(i)
        if done:
            if hasattr(self.offer_structure, "finished"):  # offer features that read the set so far
                self.offer_structure.finished(self.levels)
            for i in rows:
                infos[i]["level"] = self.levels[i].copy()
                infos[i]["targets"] = {s.name: float(self.target_values[i, j]) for j, s in enumerate(self.targets)}
                infos[i]["token_logprobs"] = self.token_logprobs[i].copy()
        return self.observe(), rewards, np.full(self.n, done), infos

    def _target_context(self) -> dict[str, np.ndarray]:
        return {s.name: self.target_values[:, j].copy() for j, s in enumerate(self.targets)}

    def _advance_seam(self, chunk: np.ndarray) -> None:
        if self.seam:
            self.seam_state = self.seam.advance(chunk, self.seam_state)

    def _features(self, window: np.ndarray) -> np.ndarray:
        """The featurizer on ``(n, H, w)`` windows, defined for ``w = 1`` too (a feature such as height
        variation needs two columns: NaN there becomes 0)."""
        if window.shape[2] > 1:  # no empty diff to warn about (the warning filter cost ~3% of a step)
            out = self.featurizer(window)
            return out if np.isfinite(out).all() else np.nan_to_num(out, nan=0.0)  # nan_to_num costs ~8 us
        with warnings.catch_warnings():  # mean of an empty diff -> NaN, replaced by 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nan_to_num(self.featurizer(window), nan=0.0)


# ---------------------------------------------------------------------------------------- VecEnv


class ColumnTokensVecEnv(CoreVecEnv):
    """SB3 ``VecEnv`` writing ``n_envs`` levels at once, one LM forward pass per step.

    All levels have the same length, so all episodes end together; finished levels are in
    ``info["level"]`` and the final observation in ``info["terminal_observation"]`` (SB3's
    auto-reset contract), and the returned observation is already the next episode's first.
    ``action_masks()`` gives the ``(n_envs, k)`` masks for MaskablePPO.
    """

    def step_wait(self):
        obs, rewards, done, infos = self.core.step(self._actions)
        if done.any():  # lockstep: every row ends here
            for i in range(self.num_envs):
                infos[i]["terminal_observation"] = obs[i]
                infos[i]["TimeLimit.truncated"] = False
            obs = self.core.reset(self._rng)
            for i, mask in enumerate(self.core.action_masks()):  # masks of the returned observations
                infos[i]["action_mask"] = mask
        return obs, rewards, done, infos


# ------------------------------------------------------------------------------------ single env


class ColumnTokensEnv(CoreEnv):
    """A column language model writes a Mario level; the agent picks each next column.

    ## Description
    Each episode writes one level of ``n_columns`` columns left to right. At every step the column
    LM (one token per 14-tile column, :class:`~rlcreate.levels.generators.column_lm.ColumnLM`) offers its
    ``k`` most likely next columns; the agent picks one. Control targets (enemies, gaps, ... per 16
    columns) are sampled per episode and observed, so one policy serves many requests.

    ## Action Space
    ``Discrete(k)``: the index of the offered column to append (0 = the LM's most likely).
    ``action_masks()`` allows the offers with probability >= ``min_prob`` that keep the level
    structurally valid (:class:`~rlcreate.levels.validity.MarioStructure`: no column that is invalid on its own, a pipe's left
    half followed by its right half, no pipe cut at the level's edges); see
    :meth:`ColumnTokensCore.action_masks` for the fallbacks. The mask of the current observation is
    also in ``info["action_mask"]`` (after ``reset`` and every ``step``). A masked or out-of-range
    action appends the first allowed slot's column and is never silent: ``info["executed_action"]``
    is the slot actually used and ``info["action_replaced"]`` flags the swap; with
    ``strict_actions=True`` it raises :class:`~rlcreate.envs.core_vec_env.InvalidActionError`.

    ## Observation Space
    ``Box(float32, (d + k + 2F + 1 + T + C,))``, ``C = (1 + k) * T`` with target measures, else 0: the LM's last-layer hidden state (after its final norm,
    ``d = n_embd``) divided by ``hidden_clip`` and clipped to ``[-1, 1]``; the top-k log-probs clipped
    to ``[-20, 0]`` and mapped to ``[0, 1]``; F = 9 features (:func:`rlcreate.levels.envs.segment_features`)
    of the last 16 columns and of the whole level so far (updated every 16 columns); progress
    ``t / n_columns``; the T control targets scaled to ``[0, 1]``; when the domain gives target measures
    (Mario does), T schedule deficits and the last ``k * T`` entries: what each offered column adds to
    each target's count (:class:`~rlcreate.envs.target_control.TargetControl`; the ``lm_prior``
    policy's ``offer_features: T`` reads them). All but the hidden part lie in ``[0, 1]``.

    ## Rewards
    The recipe's reward set (default: MarioLatent's :data:`~rlcreate.levels.envs.DEFAULT_REWARDS`).
    ``reward_every="end"`` (default): 0 on every step but the last, which scores the whole level
    with context ``targets`` and ``token_logprobs`` (the LM's log-prob of every chosen column, already
    computed while writing: likelihood terms need no second forward pass). ``reward_every="column"``: every completed 16-column chunk (and a last
    partial one) is scored with context ``position``, ``targets`` and ``seam_state`` (the fast
    solver's exit states at the previous chunk's edge, row x jump phase), as in MarioLatent. Scored steps
    carry every term in ``info["rewards"]``; ``info["column"]`` is the appended token id.
    ``target_shaping=w`` adds potential-based shaping toward the targets' schedule on every step; it
    sums to 0 over each level, so returns are unchanged (see :mod:`rlcreate.envs.target_control`).
    ``shape_terms=[names]`` does the same for reward terms that score a partial level: at every
    closed 16-column segment the level so far is scored by those terms (potential
    ``w * f(prefix) * t / n_columns``), so a per-segment objective pays each segment as it closes;
    the return of every level is unchanged.
    ``offer_objective=name`` (a reward term whose module has ``offer_features()``, the designer
    objectives of :mod:`rlcreate.levels.objectives`, ``element_profile`` and ``set_profile``)
    appends S contexts and, per offer, S values: what taking that column does to the term's own
    measure (the ``lm_prior`` policy's ``offer_structure: S`` reads them; S =
    ``offer_features().size``). A list of names observes their features side by side (S = the sum).
    Features with a ``finished(levels)`` method get every finished batch (``set_profile``'s context
    is the recent levels' element means).
    ``avoid_offers=name`` (a reward term with ``offer_features()``) masks every offer whose first
    per-offer value is >= 0.5, unless that leaves a row nothing allowed: a hand-built rule in the
    env, e.g. ``variety`` (a ``level_variety`` term): never take a column that keeps a repeat of an
    earlier segment alive. The policy's start then is that rule.

    ## Starting State
    An empty level after ``<bos>``; targets drawn uniformly from their ranges with ``self.np_random``.
    The LM itself is deterministic given the actions: same seed and actions, same level.

    ## Episode End
    ``terminated`` when the level has ``n_columns`` columns (the level is complete: there is no
    future to bootstrap, so this is a terminal state, not a time limit). ``info["level"]`` holds the
    (14, n_columns) grid, ``info["targets"]`` the targets and ``info["token_logprobs"]`` the LM's
    log-prob of every chosen column.

    ## Arguments
    ``n_columns=64``, ``k=8``, ``reward`` (a RewardSet or a recipe rewards dict; default
    MarioLatent's terms), ``targets`` ({name: [low, high]}, default
    :data:`~rlcreate.levels.envs.DEFAULT_TARGETS`), ``lm`` (a :class:`ColumnLM` or a model folder;
    default the shipped ``rlcreate/models/mario-column-lm``), ``reward_every`` ("end" | "column"),
    ``min_prob=1e-4``, ``hidden_clip=5.0``, ``target_shaping=0.0``, ``shape_terms=()``, ``playable_only=False`` (mask offers after
    which the fast solver has Mario nowhere: a wall he cannot climb, a gap he cannot clear),
    ``structure=True`` (mask offers that break validity),
    ``strict_actions=False`` (True: an action outside the mask is an error), ``render_mode`` (None |
    "ansi" | "rgb_array").

    ## Version History
    - v1: the observation gains the control schedule's deficits (target minus achieved so far) and,
      per offer, what that column would add toward them; ``playable_only`` masks offers after which
      the fast solver has Mario nowhere. A v0 policy's observation size no longer matches, so v0 is
      not registered any more: retrain old runs.
    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"]}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        return obs, {**info, "action_mask": self.action_masks()}

    def action_masks(self) -> np.ndarray:
        return self.core.action_masks()[0]

    def render(self):
        return render_grid(self.core.renderer, self.core.levels[0, :, : self.core.t], self.render_mode)
