"""Level value terms that noise and flat ground cannot satisfy, and the KL-to-reference term.

The older level rewards (:mod:`rlcreate.levels.rewards`: tile-pattern KL, validity, a fast solver,
tile-Hamming novelty) are all satisfied by stone noise or flat floors. These terms compare a level
with *human* levels through the pretrained generator and the corpus' element statistics:

- ``element_profile`` (:class:`ElementProfile`): pipes, question blocks, enemies, coins and gaps
  per 128 columns against the training windows' distribution; its ``offer_features()``
  (:class:`ProfileOffers`) let a token env show, per offered column, the pipes, question blocks
  and coins it adds next to how far the level so far is behind the human rate;
- ``lm_logprob`` (:class:`LMLogProb`): the column LM's log-likelihood of the level (the reference
  term of a KL penalty; see its docstring for how it forms ``-beta * KL(pi || p_LM)`` with PPO's
  entropy bonus, and why the shipped recipe uses the policy's exact ``kl_to_prior`` instead);
- ``lm_typicality`` (:class:`LMTypicality`): the column LM's per-column log-likelihood normalised
  by the distribution of human (DEV) levels' own: as likely as a human level, not more, not less;
- ``latent_prior`` (:class:`LatentPrior`): for latent envs, whether the latent lies in the prior's
  typical set (needs the latent in the context as ``latent``);
- ``residual_prior`` (:class:`ResidualPrior`): for MarioLatent-v1's residual actions, the prior's
  log-density of the residual (with PPO's entropy bonus, a KL to the prior);
- ``batch_diversity`` (:class:`BatchDiversity`): a group reward, the distance of a level to the
  nearest other level of the same batch in a structural feature space.

Judges for claims must not reuse these: a run trained on ``lm_typicality`` is not judged by LM
likelihood; the independent judge is the classifier two-sample test on the TEST split
(:func:`rlcreate.levels.quality.human_likeness`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlcreate.levels.features import segment_features
from rlcreate.levels.objectives import ColumnTable, OfferFeatures
from rlcreate.rewards.base import RewardModule
from rlcreate.rewards.registry import register

__all__ = [
    "ElementProfile",
    "ProfileOffers",
    "SetProfile",
    "LMLogProb",
    "LMTypicality",
    "LatentPrior",
    "ResidualPrior",
    "BatchDiversity",
    "column_loglik",
    "human_element_stats",
    "human_loglik_stats",
]


# ------------------------------------------------------------------------------------- references


@functools.lru_cache(maxsize=8)
def human_element_stats(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the element profile (per 128 columns) of all training windows of ``width``
    columns (stride 4): the human distribution the element-profile reward compares against."""
    from rlcreate.levels.corpus import training_windows
    from rlcreate.levels.quality import ELEMENTS, element_profile

    prof = element_profile(training_windows(width, stride=4))
    x = np.stack([prof[e] for e in ELEMENTS], 1)
    return x.mean(0), np.maximum(x.std(0), 0.5)


@functools.lru_cache(maxsize=2)
def _column_lm(path: str | None = None):
    from rlcreate.levels.generators.column_lm import ColumnLM

    return ColumnLM.load(path)


def column_loglik(
    levels: Sequence[np.ndarray], lm: Any = None, oov_logprob: float = -20.0, batch: int = 64
) -> np.ndarray:
    """Per level, the column LM's log-probability of every column given the previous ones (from
    ``<bos>``), shape ``(n, W)``. Columns outside the LM's vocabulary score ``oov_logprob`` (they
    cannot be generated). Levels longer than the LM's context are scored in context-sized pieces."""
    import torch

    from rlcreate.levels.generators.column_lm import BOS_ID

    lm = lm or _column_lm()
    grids = [np.asarray(g) for g in levels]
    width = grids[0].shape[1]
    piece = lm.max_length - 1
    out = np.zeros((len(grids), width), np.float64)
    ids = np.array([[lm._index.get(c.tobytes(), -1) for c in g.T.astype(np.int8)] for g in grids])
    oov = ids < 0
    nearest = np.array([lm.encode_level(g, oov="nearest") for g in grids]) if oov.any() else ids
    for a in range(0, len(grids), batch):
        for s in range(0, width, piece):
            tok = torch.as_tensor(nearest[a : a + batch, s : s + piece], dtype=torch.long)
            inp = torch.cat([torch.full((len(tok), 1), BOS_ID, dtype=torch.long), tok[:, :-1]], 1)
            with torch.inference_mode():
                logits = lm._masked(lm.model(input_ids=inp).logits)
            lp = torch.log_softmax(logits, -1).gather(2, tok[:, :, None])[:, :, 0]
            out[a : a + batch, s : s + piece] = lp.double().numpy()
    out[oov] = oov_logprob
    return out


@functools.lru_cache(maxsize=8)
def human_loglik_stats(width: int) -> tuple[float, float]:
    """Mean and std of the column LM's mean per-column log-likelihood over DEV human windows of
    ``width`` columns (stride 8): held-out levels, so the LM has not memorised them. Columns outside
    the LM's vocabulary (8% of held-out columns) are left out: levels written by the LM have none."""
    from rlcreate.levels.corpus import dev_windows

    w = dev_windows(width, stride=8)
    ll = np.nanmean(column_loglik(list(w), oov_logprob=np.nan), axis=1)  # in-vocabulary columns only
    return float(ll.mean()), float(max(ll.std(), 0.05))


# ----------------------------------------------------------------------------------------- rewards


@register("element_profile")
class ElementProfile(RewardModule):
    """Element profile against human levels: per level, the counts of pipes, question blocks,
    enemies, coins and gaps per 128 columns are z-scored against the training windows of the same
    width (:func:`human_element_stats`), and the reward is ``mean_e exp(-z_e^2 / 2)``. Range (0, 1];
    1 = every count at the human mean. Elements under a control target (context ``targets``, e.g.
    enemies and gaps) are left out, so the profile never fights the target term. Flat floors (no
    elements) and stone noise (no pipes, coins or enemies) score low. Gamed by: right counts in wrong places (enemies in the air, coins in walls) —
    the counts say nothing about layout; pair with ``lm_typicality`` / the KL term."""

    artifact = "level"

    def score(self, samples: Sequence[np.ndarray], targets: dict | None = None, **context: Any):
        from rlcreate.levels.quality import ELEMENTS, element_profile

        keep = np.array([e not in (targets or {}) for e in ELEMENTS])
        if not keep.any():
            return [None] * len(samples)
        grids = [np.asarray(g) for g in samples]
        out = np.zeros(len(grids))
        for w in {g.shape[1] for g in grids}:
            ix = [i for i, g in enumerate(grids) if g.shape[1] == w]
            prof = element_profile([grids[i] for i in ix])
            mu, sd = human_element_stats(w)
            z = (np.stack([prof[e] for e in ELEMENTS], 1) - mu) / sd
            out[ix] = np.exp(-0.5 * z[:, keep] ** 2).mean(axis=1)
        return out.tolist()

    def offer_features(self) -> ProfileOffers:
        return ProfileOffers()


class ProfileOffers(OfferFeatures):
    """The element profile per offer, for a level written left to right: for pipes (a pipe's top
    left tile), question blocks and coins, the offer's value is ``1 - 2^-count`` of that element in
    the offered column, and the context ``0.5 + 0.5 tanh((mu * t / 128 - count so far) / 2)``: above
    0.5 while the level so far is behind the human training windows' mean rate ``mu``
    (:func:`human_element_stats`). Enemies and gaps are left out: the control targets cover them
    (``TargetControl``'s gains). Observations only: a policy must learn from reward what to do with
    them (the ``lm_prior`` offer head starts at zero), so they are no prior."""

    size = 3

    def __init__(self) -> None:
        from rlcreate.levels import tiles as T
        from rlcreate.levels.quality import ELEMENTS

        self.table = np.zeros((len(T.TILES), 3))  # tile id -> (pipe tops, question blocks, coins)
        self.table[T.PIPE_TL, 0] = self.table[T.QUESTION, 1] = self.table[T.QCOIN, 1] = self.table[T.COIN, 2] = 1
        self.mu = human_element_stats(128)[0][[ELEMENTS.index(e) for e in ("pipes", "question_blocks", "coins")]]
        self._per_column = ColumnTable(self._counts)  # (V, 3) counts of each vocabulary column

    def _counts(self, grids: np.ndarray) -> np.ndarray:
        """(m, 3) element counts of ``m`` tile arrays of any shape: one bincount over all of them
        (called every step on the growing prefix: a lookup per tile would build (m, H, t, 3))."""
        m, nt = grids.shape[0], self.table.shape[0]
        flat = grids.reshape(m, -1).astype(np.intp) + (np.arange(m) * nt)[:, None]
        return np.bincount(flat.ravel(), minlength=m * nt).reshape(m, nt) @ self.table

    def observe(self, prefix, offered, n_columns):
        n, k, _ = offered.shape
        per = self._counts(offered.reshape(n * k, -1)).reshape(n, k, 3)
        so_far = self._counts(prefix)
        ctx = 0.5 + 0.5 * np.tanh((self.mu * prefix.shape[2] / 128 - so_far) / 2.0)
        return ctx, 1.0 - np.exp2(-per)

    def observe_ids(self, prefix, offered, n_columns, prefix_ids, offer_ids, columns):
        """:meth:`observe` from vocabulary rows (see :class:`OfferFeatures`): each column's counts
        looked up and the prefix's summed, the same whole numbers as counting its tiles."""
        table = self._per_column.get(columns)
        so_far = table.take(prefix_ids, axis=0).sum(axis=1)
        ctx = 0.5 + 0.5 * np.tanh((self.mu * prefix_ids.shape[1] / 128 - so_far) / 2.0)
        return ctx, 1.0 - np.exp2(-table.take(offer_ids, axis=0))


@register("set_profile")
class SetProfile(RewardModule):
    """Element profile of the *set* as a group reward: how much each level moves its batch's mean
    counts of pipes, question blocks, enemies, coins and gaps (per 128 columns) toward the human
    mean. A difference reward (Wolpert & Tumer 2002): ``G(S) - G(S without i)`` with
    ``G(S) = -mean_e z_e^2 / 2`` and ``z_e = (mean_S e - mu_e) / (sd_e / sqrt|S|)`` (human mean and
    std of single windows, :func:`human_element_stats`; the same ``|S|`` on both sides), so a batch short of coins pays the levels
    that bring coins and a batch on the human mean pays nobody. The per-level ``element_profile``
    barely feels a set mean a third of a window std off, which is outside the human band of set
    means; this term does. The batch is the samples of one call (or one ``group`` from the context);
    elements under a control target are left out. Range: unbounded, about [-1, 1] for 16 levels
    near the human mean. Gamed by: a mix of extreme levels whose mean is right — pair with
    ``element_profile`` (per level) and the KL term."""

    artifact = "level"

    def score(self, samples: Sequence[np.ndarray], targets: dict | None = None, group: Any = None, **context: Any):
        from rlcreate.levels.quality import ELEMENTS, element_profile

        keep = np.array([e not in (targets or {}) for e in ELEMENTS])
        grids = [np.asarray(g) for g in samples]
        n = len(grids)
        if not keep.any() or n < 2:
            return [None] * n
        out = np.zeros(n)
        keys = np.asarray(group) if group is not None else np.zeros(n, int)
        for key in np.unique(keys):
            for w in {g.shape[1] for g in grids}:
                ix = [i for i in range(n) if keys[i] == key and grids[i].shape[1] == w]
                if len(ix) < 2:
                    continue
                prof = element_profile([grids[i] for i in ix])
                x = np.stack([prof[e] for e in ELEMENTS], 1)[:, keep]
                mu, sd = (v[keep] for v in human_element_stats(w))
                m = len(ix)
                scale = sd / np.sqrt(m)  # one scale for S and S without i: only the means differ
                whole = -0.5 * (((x.mean(0) - mu) / scale) ** 2).mean()
                without = (x.sum(0) - x) / (m - 1)  # the batch mean without each level
                rest = -0.5 * (((without - mu) / scale) ** 2).mean(1)
                out[ix] = whole - rest
        return out.tolist()

    def offer_features(self) -> SetProfileOffers:
        return SetProfileOffers()


class SetProfileOffers(ProfileOffers):
    """The set's element profile per offer: the values are :class:`ProfileOffers`' (pipes, question
    blocks, coins the offered column adds); the context is the *set*'s, not the level's:
    ``0.5 + 0.5 tanh(z / 2)`` with ``z = (mu - recent) / (sd / sqrt(memory))``, where ``recent`` is a
    running mean of the counts per 128 columns of the levels this environment finished (each batch
    weighs ``n / memory``; it starts at the human mean ``mu``, so the first levels see no deficit) on
    the scale of the human band of ``memory``-level set means. Above 0.5 while the recent levels
    are short of the element. It is what ``set_profile`` pays for, and it lets a policy correct a
    set's drift while it writes the set, which one level's own counts cannot show. Observations
    only (the offer head starts at zero). Not saved with checkpoints: a resumed run starts at ``mu``."""

    def __init__(self, memory: int = 64) -> None:
        from rlcreate.levels.quality import ELEMENTS

        super().__init__()
        self.memory = int(memory)
        sd = human_element_stats(128)[1][[ELEMENTS.index(e) for e in ("pipes", "question_blocks", "coins")]]
        self.scale = sd / np.sqrt(self.memory)
        self.recent = self.mu.copy()

    def finished(self, levels: np.ndarray) -> None:
        """Fold finished levels ``(n, H, W)`` into the running mean."""
        per_128 = self._counts(levels) * (128.0 / levels.shape[2])
        a = min(1.0, len(levels) / self.memory)
        self.recent = (1.0 - a) * self.recent + a * per_128.mean(axis=0)

    def observe(self, prefix, offered, n_columns):
        n, k, _ = offered.shape
        per = self._counts(offered.reshape(n * k, -1)).reshape(n, k, 3)
        ctx = 0.5 + 0.5 * np.tanh((self.mu - self.recent) / self.scale / 2.0)
        return np.repeat(ctx[None], n, axis=0), 1.0 - np.exp2(-per)

    def observe_ids(self, prefix, offered, n_columns, prefix_ids, offer_ids, columns):
        """:meth:`observe` with the offers' counts looked up per vocabulary column."""
        ctx = 0.5 + 0.5 * np.tanh((self.mu - self.recent) / self.scale / 2.0)
        per = self._per_column.get(columns).take(offer_ids, axis=0)
        return np.repeat(ctx[None], len(offer_ids), axis=0), 1.0 - np.exp2(-per)


@register("lm_logprob")
class LMLogProb(RewardModule):
    """The column LM's log-likelihood of the level: ``sum_t log p_LM(column_t | columns_<t)``
    (``per_column=True``: the mean over columns). Uses ``token_logprobs`` from the context when the
    environment passes them, else scores the level with the shipped column LM
    (:func:`column_loglik`). Range (-inf, 0] (columns outside the vocabulary count -20).

    This is the reference term of a KL penalty. Per step,
    ``-beta * KL(pi || p_LM) = beta * E_pi[log p_LM(a)] + beta * H(pi)``: summed over a level, a
    reward ``beta * lm_logprob`` (weight beta, reward at the level's end, gamma = 1) plus PPO's
    entropy bonus with ``ent_coef = beta`` is the KL-regularised objective of RLHF (Ziegler et al.
    2019), up to PPO's advantage normalisation. In practice that pairing is lopsided: the entropy
    gradient is exact while this end-of-level sum is a high-variance sample, and MarioTokens
    policies drifted toward uniform over the top-k offers (crowded, off-style levels). The shipped
    recipe uses the exact per-state form instead (``lm_prior`` with ``kl_to_prior``,
    :mod:`rlcreate.sb3.policies`); this term remains a likelihood reward and a diagnostic.
    Gamed by (alone, without an entropy or KL term): the LM's single most likely continuation —
    flat, repeated floor columns; never use it without a diversity term."""

    artifact = "level"

    def __init__(self, per_column: bool = False, name: str | None = None):
        super().__init__(name)
        self.per_column = bool(per_column)

    def score(self, samples: Sequence[np.ndarray], token_logprobs: Any = None, **context: Any):
        lp = (
            np.asarray(token_logprobs, np.float64) if token_logprobs is not None else _per_width(samples, column_loglik)
        )
        if isinstance(lp, list):
            return [float(x.mean() if self.per_column else x.sum()) for x in lp]
        return (lp.mean(axis=1) if self.per_column else lp.sum(axis=1)).tolist()


def _per_width(samples: Sequence[np.ndarray], fn) -> list[np.ndarray] | np.ndarray:
    grids = [np.asarray(g) for g in samples]
    if len({g.shape for g in grids}) == 1:
        return fn(grids)
    return [fn([g])[0] for g in grids]


@register("lm_typicality")
class LMTypicality(RewardModule):
    """Human-typical likelihood under the column LM: ``z = (ll - mu) / sd`` where ``ll`` is the
    level's mean per-column log-likelihood and ``mu``, ``sd`` those of DEV human windows of the same
    width (:func:`human_loglik_stats`); reward ``exp(-z^2 / 2)``, or 1 for ``z >= 0`` when
    ``one_sided`` (default). One-sided because the reference is biased low: the LM has memorised
    its training levels (per-column NLL 0.97 train vs 1.95 held-out), so its own samples are *more*
    likely than held-out human levels, and a two-sided test would push a policy away from the LM's
    style. Noise and columns the corpus never had (VAE decodes) score near 0. Range (0, 1]. Gamed
    by: flat, repeated floor (very likely under the LM) and any mix of likely filler with a few odd
    columns; it judges columns in context, not the level's design — pair with ``element_profile``
    and ``batch_diversity``. Not a judge for runs trained with it (same model). Uses
    ``token_logprobs`` from the context when the environment passes them (MarioTokens-v0 does: the
    log-probs under the env's own LM, the shipped one unless the recipe names another)."""

    artifact = "level"

    def __init__(self, one_sided: bool = True, name: str | None = None):
        super().__init__(name)
        self.one_sided = bool(one_sided)

    def score(self, samples: Sequence[np.ndarray], token_logprobs: Any = None, **context: Any):
        grids = [np.asarray(g) for g in samples]
        # the env's log-probs of the columns it wrote (same LM, same quantity) spare a forward pass
        lp = np.asarray(token_logprobs, np.float64) if token_logprobs is not None else _per_width(grids, column_loglik)
        out = []
        for g, row in zip(grids, lp):
            mu, sd = human_loglik_stats(g.shape[1])
            z = (float(np.mean(row)) - mu) / sd
            out.append(1.0 if (self.one_sided and z >= 0) else float(np.exp(-0.5 * z * z)))
        return out


@register("latent_prior")
class LatentPrior(RewardModule):
    """Typical-set term for latent envs: with ``z`` the decoder input (context ``latent``, shape
    ``(n, d)``), ``||z||^2`` of a standard-normal prior sample is chi-square with ``d`` degrees of
    freedom (mean d, sd sqrt(2d)); reward ``exp(-u^2 / 2)`` with ``u = (||z||^2 - d) / sqrt(2 d)``.
    Latents the decoder rarely saw (far outside the shell, e.g. the action box's corners) score low.
    ``None`` when the context has no latent. Range (0, 1]. Gamed by: any latent on the shell — it
    says nothing about the decoded level; pair it with value terms."""

    artifact = "level"

    def score(self, samples: Sequence[np.ndarray], latent: Any = None, **context: Any):
        if latent is None:
            return [None] * len(samples)
        z = np.asarray(latent, np.float64).reshape(len(samples), -1)
        d = z.shape[1]
        u = ((z**2).sum(axis=1) - d) / np.sqrt(2.0 * d)
        return np.exp(-0.5 * u**2).tolist()


@register("residual_prior")
class ResidualPrior(RewardModule):
    """Prior term for bounded latent steering (MarioLatent-v1): ``-1/2 * sum((a / scale)^2)`` over
    the policy's action entries ``a`` (context ``action``; every step's when the env scores whole
    levels), the log-density of a N(0, scale^2) prior on the residual up to a constant. For a
    Gaussian policy N(mu, sigma^2), its expectation is ``-1/2 * sum(mu^2 + sigma^2) / scale^2``;
    added with weight beta to PPO's entropy bonus with ``ent_coef = beta`` this is
    ``-beta * KL(policy || N(0, scale^2 I))`` plus a constant, the latent counterpart of the token
    path's KL to its LM. The shipped ``mario_latent.yaml`` keeps this term but sets ``ent_coef`` 0:
    the exact entropy gradient out-pulled this noisy return term and widened the policy (more
    saturated actions). ``scale`` 0.4: at the prior's own spread 1.3% of action entries pass
    |a| > 0.99 (SB3 clips them into the box), at 1.0 it would be 32%. ``None`` without an action
    in the context. Range (-inf, 0] (>= -d * steps / (2 scale^2) for actions in the box). Gamed by:
    a policy that never moves (a = 0 is the generator's own sample); it only measures distance from
    the prior, pair it with value terms."""

    artifact = "level"

    def __init__(self, scale: float = 0.4, name: str | None = None):
        super().__init__(name)
        if not (isinstance(scale, (int, float)) and scale > 0):
            raise ValueError(f"residual_prior scale = {scale!r}: must be a number > 0")
        self.scale = float(scale)

    def score(self, samples: Sequence[np.ndarray], action: Any = None, **context: Any):
        if action is None:
            return [None] * len(samples)
        a = np.asarray(action, np.float64).reshape(len(samples), -1) / self.scale
        return (-0.5 * (a**2).sum(axis=1)).tolist()


def _structure(grids: np.ndarray) -> np.ndarray:
    """Structural descriptor of same-width levels: per 16-column segment, the 9 segment features
    (enemies, gap columns, blocks, coins, pipes, cannons, ground height, height variation,
    difficulty; ~[0, 1]), in order."""
    n, h, w = grids.shape
    seg = max(1, w // 16)
    width = w // seg
    parts = grids[:, :, : seg * width].reshape(n, h, seg, width).transpose(0, 2, 1, 3).reshape(n * seg, h, width)
    return segment_features(parts).reshape(n, -1)


@register("batch_diversity")
class BatchDiversity(RewardModule):
    """Set diversity as a group reward: the Euclidean distance of a level's structural descriptor
    (per 16-column segment: element counts, ground height and variation, difficulty) to the nearest
    *other* level of the same batch (or of the same ``group`` from the context), per descriptor
    dimension (RMS), divided by ``scale`` and clipped to [0, 1]. Batched envs that end all levels
    together (MarioTokens-v1) score the whole parallel set at once: a policy that writes one level
    type for every request scores 0. ``scale`` 0.25: sets of human windows and of the LM's own
    samples have a median nearest-level distance of ~0.2, so the reward keeps a gradient up to a
    little past human diversity instead of saturating. Range [0, 1]. Gamed by: varying counts and heights at random —
    noise is structurally diverse; pair with value terms (``element_profile``, ``lm_typicality``)."""

    artifact = "level"

    def __init__(self, scale: float = 0.25, name: str | None = None):
        super().__init__(name)
        self.scale = float(scale)

    def score(self, samples: Sequence[np.ndarray], group: Any = None, **context: Any):
        grids = [np.asarray(g) for g in samples]
        n = len(grids)
        out = np.zeros(n)
        keys = np.asarray(group) if group is not None else np.zeros(n, int)
        for key in np.unique(keys):
            for w in {g.shape for g in grids}:
                ix = [i for i in range(n) if keys[i] == key and grids[i].shape == w]
                if len(ix) < 2:
                    continue
                x = _structure(np.stack([grids[i] for i in ix]))
                d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).mean(axis=2))
                np.fill_diagonal(d, np.inf)
                out[ix] = np.clip(d.min(axis=1) / self.scale, 0.0, 1.0)
        return out.tolist()
