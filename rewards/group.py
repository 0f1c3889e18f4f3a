"""Group rewards: score the samples of one group together, one value per sample.

A *group* is the set of samples answering the same prompt: the ``num_generations`` completions of
one prompt in a GRPO batch, or the texts of one prompt that a batched environment finishes in the
same step. The group comes in the call's context (:func:`rlcreate.rewards.base.groups_of`):
``group_ids=`` (one id per sample) when given, else identical ``prompts`` entries, else the whole
batch. TRL passes no group index, so rlcreate derives ``group_ids`` from identical prompts
(:func:`rlcreate.rewards.base.from_trl_call`); the SB3 text environment passes ``prompts``. A
per-sample reward ignores all of this.

Shipped:

* :class:`~rlcreate.text.group_diversity.GroupDiversity` (``group_diversity``) — semantic diversity within the group, as DARLING
  (Li et al., 2025) and NoveltyBench (Zhang et al., 2025) define it: the group is partitioned into
  classes of near-equivalent answers, and a sample's diversity is the share of the *other* group
  members that fall in a different class. Both papers decide equivalence with a learned classifier
  (a fine-tuned DeBERTa), which cannot be installed offline; here equivalence is
  ``"embedding"`` (default): cosine similarity of all-MiniLM-L6-v2 sentence embeddings
  >= ``threshold`` (0.75), or ``"lexical"``: Jaccard overlap of content-word sets >= ``threshold``
  (no model; :func:`rlcreate.text.group_diversity.lexical_partition`). The partition is NoveltyBench's greedy one
  (:func:`greedy_partition`): each sample joins the first class whose first member it is
  equivalent to, else opens a new class.
* :class:`QualityDiversity` (``quality_x_diversity``) — DARLING's multiplicative composition,
  ``quality * diversity``, next to the weighted sum of :class:`~rlcreate.rewards.compose.RewardSet`:
  the quality part is itself a weighted sum of ordinary terms, the diversity part a
  :class:`~rlcreate.text.group_diversity.GroupDiversity`. A high-quality answer that repeats its siblings earns nothing; a
  different answer earns its full quality.

This module imports no gymnasium, stable_baselines3 or trl; the embedding model loads on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlcreate.errors import UserError
from rlcreate.rewards.base import RewardModule, check_values, groups_of, training_progress
from rlcreate.rewards.registry import get_reward, register

__all__ = [
    "GroupReward",
    "QualityDiversity",
    "GroupRewardError",
    "greedy_partition",
    "embedding_partition",
    "diversity_from_labels",
]


class GroupRewardError(UserError):
    """Bad settings for a group reward; the message names the value and the fix."""


# ------------------------------------------------------------------------------------ partitions


def greedy_partition(n: int, same: Callable[[int, int], bool]) -> np.ndarray:
    """Class labels of ``n`` items, NoveltyBench's way: item ``i`` joins the first existing class
    whose representative (its first member) ``same(rep, i)``; otherwise it starts a new class."""
    labels = np.full(n, -1, np.int64)
    reps: list[int] = []
    for i in range(n):
        for c, r in enumerate(reps):
            if same(r, i):
                labels[i] = c
                break
        else:
            labels[i] = len(reps)
            reps.append(i)
    return labels


def embedding_partition(X: Any, threshold: float = 0.75) -> np.ndarray:
    """Greedy partition of embedding rows: equivalent when cosine similarity >= ``threshold``."""
    X = np.asarray(X, np.float64)
    X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    sims = X @ X.T
    return greedy_partition(len(X), lambda a, b: sims[a, b] >= threshold)


def diversity_from_labels(labels: np.ndarray, n_scored: int | None = None) -> list[float | None]:
    """DARLING's per-sample diversity: the share of the other items in a different class.
    Scores the first ``n_scored`` items (default all) against all the others; ``None`` without others."""
    labels = np.asarray(labels)
    n = len(labels)
    n_scored = n if n_scored is None else n_scored
    if n < 2:
        return [None] * n_scored
    return [float((labels != labels[i]).sum() / (n - 1)) for i in range(n_scored)]


# ------------------------------------------------------------------------------------ base class


def _slice_context(context: dict, idx: list[int], n: int) -> dict:
    """Per-sample context lists (length ``n``) cut down to the group; everything else as is."""
    out = {}
    for k, v in context.items():
        if isinstance(v, (list, tuple)) and len(v) == n and k != "group_ids":
            out[k] = [v[i] for i in idx]
        else:
            out[k] = v
    return out


class GroupReward(RewardModule):
    """Base for rewards that score a group of samples together. Subclasses implement
    :meth:`score_group` (the samples of ONE group, with the context cut down to that group); this
    class splits the batch by :func:`~rlcreate.rewards.base.groups_of` and puts the values back in
    batch order."""

    group_reward = True

    def score_group(self, samples: list, **context: Any) -> list[float | None]:
        raise NotImplementedError(f"{type(self).__name__} must implement score_group(samples, **context)")

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        samples = list(samples)
        n = len(samples)
        out: list[float | None] = [None] * n
        for idx in groups_of(n, context):
            vals = check_values(
                self.name, self.score_group([samples[i] for i in idx], **_slice_context(context, idx, n)), len(idx)
            )
            for i, v in zip(idx, vals):
                out[i] = v
        return out


# ----------------------------------------------------------------------------- quality x diversity


def _quality_set(spec: Any):
    """``{name: weight | {reward, weight, transform, args}}``, a RewardSet or a reward -> a RewardSet."""
    from rlcreate.rewards.compose import RewardSet, Term, as_reward_set

    if not isinstance(spec, dict):
        return as_reward_set(spec)
    if not spec:
        raise GroupRewardError("quality = {}: name at least one quality term, e.g. {fluency: 1.0, relevance: 0.5}")
    terms = []
    for name, term in spec.items():
        term = {"weight": term} if isinstance(term, (int, float)) and not isinstance(term, bool) else term
        if not isinstance(term, dict):
            raise GroupRewardError(
                f"quality.{name} = {term!r}: write a weight or "
                "{reward: NAME, weight: W, transform: ..., args: {...}}"
            )
        unknown = set(term) - {"reward", "weight", "transform", "args"}
        if unknown:
            raise GroupRewardError(
                f"quality.{name}: unknown keys {sorted(unknown)}; known: reward, weight, transform, args"
            )
        module = get_reward(str(term.get("reward", name)), **dict(term.get("args") or {}))
        terms.append(Term(name, module, term.get("weight", 1.0), term.get("transform")))
    return RewardSet(terms)


@register("quality_x_diversity")
class QualityDiversity(RewardModule):
    """DARLING's composition: quality times within-group diversity.

    Measures: ``max(quality, 0) * (floor + (1 - floor) * diversity)`` per sample, where quality is
    the weighted sum of the ``quality`` terms (a :class:`~rlcreate.rewards.compose.RewardSet`; None
    terms count 0; their weight schedules follow the training progress) and diversity is
    :class:`~rlcreate.text.group_diversity.GroupDiversity` over the sample's group. A sample
    without a group to compare with (diversity ``None``) keeps its quality. When the TRL trainer
    calls it, the two factors are logged as ``rewards/<name>/quality`` and ``.../diversity``; in
    every call they are kept in ``last_parts``.

    Range: [0, max quality]; quality should be >= 0 (negative quality is clipped to 0, because a
    negative reward times a low diversity would *reward* repetition).

    Gaming: inherits the gaming of both factors: the diversity factor pays for answers unlike their
    siblings whether or not they are good; only the quality terms keep it honest. Pair with a KL
    penalty to the base model when fine-tuning.

    Args:
        quality: ``{term: weight}`` or ``{term: {reward, weight, transform, args}}`` (as a recipe's
            ``rewards:``), a RewardSet, or a reward module; required (this layer knows no domain's
            terms; for text, e.g. ``{fluency: 1.0, relevance: 0.5}``).
        diversity: keyword arguments of :class:`~rlcreate.text.group_diversity.GroupDiversity`, or a group reward module.
        floor: diversity factor given to a sample that repeats all its siblings (0 = DARLING).
    """

    def __init__(self, quality: Any = None, diversity: Any = None, floor: float = 0.0, name: str | None = None):
        super().__init__(name)
        if quality is None:
            raise GroupRewardError(
                "quality: name the quality terms to multiply by the diversity, as a recipe's rewards: "
                "(e.g. {fluency: 1.0, relevance: 0.5} for text)"
            )
        self.quality = _quality_set(quality)
        if diversity is None or isinstance(diversity, dict):
            # by name: the text domain registers group_diversity (this layer imports no domain)
            diversity = get_reward("group_diversity", **(diversity or {}))
        if not callable(diversity):
            raise GroupRewardError(
                f"diversity = {diversity!r}: pass GroupDiversity keyword arguments "
                "(e.g. {threshold: 0.75}) or a group reward module"
            )
        self.diversity = diversity
        if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 <= floor <= 1:
            raise GroupRewardError(f"floor = {floor!r}: must be in [0, 1]")
        self.floor = float(floor)
        self.last_parts: dict[str, list] = {}

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        ctx = {k: v for k, v in context.items() if k != "progress"}
        # the progress of the reward set that holds this term; when TRL calls it directly, its step
        progress = context.get("progress")
        progress = training_progress(context.get("trainer_state")) if progress is None else float(progress)
        quality = self.quality(samples, progress=progress, **ctx).total
        div = check_values(f"{self.name}.diversity", self.diversity(samples, **ctx), len(samples))
        factor = np.array([1.0 if d is None else self.floor + (1 - self.floor) * d for d in div])
        values = np.maximum(quality, 0.0) * factor
        self.last_parts = {"quality": quality.tolist(), "diversity": div}
        log_metric = context.get("log_metric")
        if callable(log_metric):
            log_metric(f"rewards/{self.name}/quality", float(np.mean(quality)))
            known = [d for d in div if d is not None]
            if known:
                log_metric(f"rewards/{self.name}/diversity", float(np.mean(known)))
        return values.tolist()

    def reset(self) -> None:
        self.quality.reset()
        if hasattr(self.diversity, "reset"):
            self.diversity.reset()

    def state_dict(self) -> dict:
        div = self.diversity.state_dict() if hasattr(self.diversity, "state_dict") else {}
        return {"quality": self.quality.state_dict(), "diversity": div}

    def load_state_dict(self, state: dict) -> None:
        self.quality.load_state_dict(state.get("quality", {}))
        if hasattr(self.diversity, "load_state_dict"):
            self.diversity.load_state_dict(state.get("diversity", {}))
