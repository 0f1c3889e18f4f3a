"""Batch diversity: distinct-n, self-BLEU and the Vendi score, as metrics and as reward modules.

Metrics (a whole batch -> one number):

- :func:`distinct_n` — unique n-grams / total n-grams over the batch (Li et al., 2016). Texts are
  split on whitespace (or by a ``tokenize`` callable); level grids ``(14, W)`` are read as
  sequences of *columns*, so it counts distinct runs of ``n`` columns.
- :func:`self_bleu` — mean sentence BLEU (sacrebleu, 0..100) of each text against all the others
  (Zhu et al., 2018, Texygen). High = repetitive. Texts only.
- :func:`vendi_score` — the Vendi score (Friedman & Dieng, 2023) via the ``vendi_score`` package:
  exp(entropy of the eigenvalues of the normalised similarity matrix), the "effective number of
  distinct samples", in [1, n]. From embeddings (cosine kernel) or a given kernel matrix. Level
  grids: pass :func:`one_hot_flatten` of them (cosine of one-hot grids = share of equal tiles).

Reward modules (one value per sample) built on them: :class:`DistinctNReward`,
:class:`SelfBLEUDiversity`, :class:`VendiContribution`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlcreate.errors import UserError
from rlcreate.rewards.base import RewardModule
from rlcreate.rewards.registry import register

__all__ = [
    "distinct_n",
    "self_bleu",
    "vendi_score",
    "one_hot_flatten",
    "DiversityInputError",
    "DistinctNReward",
    "SelfBLEUDiversity",
    "VendiContribution",
]


class DiversityInputError(UserError):
    """Input of the wrong kind or shape for a diversity measure; the message says what fits."""


# ---- tokens and n-grams ---------------------------------------------------------------------------
def _tokens(sample: Any, tokenize: Callable | None) -> list:
    """A text -> tokens (whitespace or ``tokenize``); a 2-D grid -> its columns; a sequence -> itself."""
    if isinstance(sample, str):
        return list(tokenize(sample)) if tokenize is not None else sample.split()
    if isinstance(sample, np.ndarray):
        if sample.ndim != 2:
            raise DiversityInputError(f"a level grid must be 2-D (rows, columns); got shape {sample.shape}")
        return [col.tobytes() for col in np.ascontiguousarray(sample.T)]
    if isinstance(sample, (list, tuple)):
        return list(sample)
    raise DiversityInputError(
        f"cannot read n-grams from a {type(sample).__name__}; pass texts, 2-D level grids or token sequences"
    )


def _ngrams(tokens: Sequence, n: int) -> list[tuple]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DiversityInputError(f"n={n!r} must be an integer >= 1 (n-gram length)")
    return int(n)


def distinct_n(samples: Sequence[Any], n: int = 2, tokenize: Callable | None = None) -> float:
    """Unique n-grams / total n-grams over the whole batch, in [0, 1]; 0.0 when there are none.

    ``samples``: texts, 2-D level grids (n-grams of columns) or token sequences.
    """
    n = _check_n(n)
    grams = [g for s in samples for g in _ngrams(_tokens(s, tokenize), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


# ---- self-BLEU ------------------------------------------------------------------------------------
def _bleu(tokenize: str):
    from sacrebleu.metrics import BLEU

    # effective_order: short sentences without 4-gram matches still get a meaningful score
    return BLEU(effective_order=True, tokenize=tokenize)


def _check_texts(samples: Sequence[Any], what: str) -> list[str]:
    bad = [type(s).__name__ for s in samples if not isinstance(s, str)]
    if bad:
        raise DiversityInputError(
            f"{what} works on texts; got {bad[0]} (for level grids use "
            "distinct_n over columns or vendi_score of one_hot_flatten)"
        )
    return list(samples)


def _self_bleu_each(texts: list[str], tokenize: str) -> list[float]:
    """Sentence BLEU (0..100) of each text against all the others as references.

    Equal to ``BLEU(effective_order=True).sentence_score(t, others)`` for every t (a test checks
    it), but each text is tokenised and its n-grams counted once instead of once per other text:
    n sentence_score calls redo that n * (n - 1) times (~0.4 s for 64 texts of 30 words here).
    Multi-reference BLEU clips each n-gram at its largest count in any single reference, so the
    largest and second-largest count per n-gram (with the text holding the largest) give that clip
    for every leave-one-out reference set.
    """
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    bleu = _bleu(tokenize)
    order = bleu.max_ngram_order
    counts, lens = [], []
    for t in texts:
        grams, length = extract_all_word_ngrams(bleu._preprocess_segment(t), 1, order)
        counts.append(grams)
        lens.append(length)
    best: dict = {}  # n-gram -> (top count, text index of top count, second count)
    for i, grams in enumerate(counts):
        for g, c in grams.items():
            top, who, second = best.get(g, (0, -1, 0))
            if c > top:
                best[g] = (c, i, top)
            elif c > second:
                best[g] = (top, who, c)
    scores = []
    for i, grams in enumerate(counts):
        correct, total = [0] * order, [0] * order
        for g, c in grams.items():
            top, who, second = best[g]
            clip = second if who == i else top
            total[len(g) - 1] += c
            correct[len(g) - 1] += min(c, clip)
        ref_len = bleu._get_closest_ref_len(lens[i], lens[:i] + lens[i + 1 :])
        scores.append(
            bleu.compute_bleu(
                correct, total, lens[i], ref_len, bleu.smooth_method, bleu.smooth_value, bleu.effective_order, order
            ).score
        )
    return scores


def self_bleu(texts: Sequence[str], tokenize: str = "13a") -> float:
    """Mean sentence BLEU (0..100) of each text against the rest of the batch; high = repetitive.

    ``tokenize``: a sacrebleu tokenizer name (``"13a"``, ``"char"``, ``"none"``, ...). Needs at
    least two texts. Each text is tokenised once (see :func:`_self_bleu_each`).
    """
    texts = _check_texts(texts, "self_bleu")
    if len(texts) < 2:
        raise DiversityInputError(f"self_bleu needs at least 2 texts, got {len(texts)}")
    return float(np.mean(_self_bleu_each(texts, tokenize)))


# ---- Vendi ----------------------------------------------------------------------------------------
def one_hot_flatten(grids: Any, n_classes: int | None = None) -> np.ndarray:
    """Integer grids ``(n, ...)`` -> one-hot rows ``(n, cells * n_classes)``, float32.

    The cosine similarity of two such rows is the share of cells with equal values, so Vendi over
    them counts distinct levels tile by tile. ``n_classes`` defaults to max value + 1.
    """
    g = np.asarray(grids)
    if g.ndim < 2 or not np.issubdtype(g.dtype, np.integer):
        raise DiversityInputError(
            f"one_hot_flatten needs integer grids of shape (n, ...); got {g.dtype} array of shape {g.shape}"
        )
    if g.size and g.min() < 0:
        raise DiversityInputError(f"one_hot_flatten needs values >= 0; got {int(g.min())}")
    k = int(g.max()) + 1 if n_classes is None else int(n_classes)
    flat = g.reshape(len(g), -1)
    if flat.size and flat.max() >= k:
        raise DiversityInputError(f"value {int(flat.max())} is out of range for n_classes={k}")
    out = np.zeros((flat.shape[0], flat.shape[1], k), dtype=np.float32)
    np.put_along_axis(out, flat[..., None].astype(np.int64), 1.0, axis=2)
    return out.reshape(len(g), -1)


def _vendi_of_kernel(K: np.ndarray, q: float) -> float:
    from vendi_score import vendi

    with warnings.catch_warnings():
        # vendi_score 0.0.3 tests `type(K) == scipy.sparse.csr.csr_matrix`; that scipy namespace is
        # deprecated (a DeprecationWarning under scipy 1.17) and goes away in scipy 2.0.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return float(vendi.score_K(K, q=q))
        except AttributeError:  # scipy >= 2: the same formula, with the package's own entropy
            import scipy.linalg

            return float(np.exp(vendi.entropy_q(scipy.linalg.eigvalsh(K / K.shape[0]), q=q)))


def _cosine_kernel(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim < 2 or len(X) == 0:
        raise DiversityInputError(f"expected embeddings of shape (n, d) with n >= 1; got shape {X.shape}")
    X = X.reshape(len(X), -1)
    if not np.isfinite(X).all():
        raise DiversityInputError("embeddings contain NaN or inf")
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    if (norm == 0).any():
        raise DiversityInputError(
            f"row {int(np.flatnonzero(norm[:, 0] == 0)[0])} is all zeros; "
            "cosine similarity is undefined for a zero embedding"
        )
    X = X / norm
    return X @ X.T


def vendi_score(X: Any = None, *, K: Any = None, q: float = 1.0) -> float:
    """Vendi score of a batch, in [1, n]: n identical samples -> 1, n orthogonal ones -> n.

    Give ``X`` (``(n, d)`` embeddings, rows flattened; the kernel is cosine similarity) or ``K``
    (an ``(n, n)`` positive semi-definite similarity matrix with ones on the diagonal). ``q`` is
    the order of the entropy (1 = Shannon, the paper's default).
    """
    if (X is None) == (K is None):
        raise DiversityInputError("give exactly one of X (embeddings) or K (kernel matrix)")
    if K is None:
        K = _cosine_kernel(X)
    else:
        K = np.asarray(K, dtype=np.float64)
        if K.ndim != 2 or K.shape[0] != K.shape[1] or len(K) == 0:
            raise DiversityInputError(f"K must be a square (n, n) matrix; got shape {K.shape}")
    return _vendi_of_kernel(K, q)


# ---- reward modules -------------------------------------------------------------------------------
@register("distinct_n")
class DistinctNReward(RewardModule):
    """Distinct-n of each sample, alone or as its share of the batch's diversity.

    Measures, by ``mode``:

    - ``"sample"`` (default): unique / total n-grams *within* the sample, in [0, 1]; penalises a
      text (or level) repeating itself.
    - ``"unique"``: share of the sample's n-gram occurrences found in no other sample of the batch,
      in [0, 1]; rewards saying something the rest of the batch does not.
    - ``"loo"``: leave-one-out contribution, distinct_n(batch) - distinct_n(batch without it), in
      [-1, 1] and O(1/batch size); the exact marginal effect on the batch metric.

    ``None`` for a sample with fewer than ``n`` tokens ("sample", "unique"). Samples are texts
    (whitespace tokens or ``tokenize``), level grids (n-grams of columns) or token sequences.

    Range: [0, 1] ("sample", "unique"); [-1, 1] ("loo").

    Gaming: never repeating a word is easy for nonsense — random tokens score 1. Pair with a
    fluency/coherence or playability term.
    """

    MODES = ("sample", "unique", "loo")

    def __init__(self, n: int = 2, mode: str = "sample", tokenize: Callable | None = None, name: str | None = None):
        super().__init__(name)
        self.n = _check_n(n)
        if mode not in self.MODES:
            raise DiversityInputError(f"mode={mode!r} is not a distinct-n mode; use one of {self.MODES}")
        self.mode, self.tokenize = mode, tokenize

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        per = [Counter(_ngrams(_tokens(s, self.tokenize), self.n)) for s in samples]
        if self.mode == "sample":
            return [len(c) / sum(c.values()) if c else None for c in per]
        # in how many samples each n-gram occurs, and its total count
        docs: Counter = Counter()
        total: Counter = Counter()
        for c in per:
            docs.update(c.keys())
            total.update(c)
        if self.mode == "unique":
            return [sum(v for g, v in c.items() if docs[g] == 1) / sum(c.values()) if c else None for c in per]
        U, T = len(total), sum(total.values())
        full = U / T if T else 0.0
        out: list[float | None] = []
        for c in per:
            t_i = sum(c.values())
            only_here = sum(1 for g, v in c.items() if total[g] == v)  # vanish without this sample
            rest = (U - only_here) / (T - t_i) if T - t_i else 0.0
            out.append(full - rest)
        return out


@register("self_bleu_diversity")
class SelfBLEUDiversity(RewardModule):
    """1 - BLEU/100 of each text against the rest of the batch (sacrebleu sentence BLEU).

    Measures: how little of the sample's n-grams the other samples in the batch share; 1 = nothing
    in common, 0 = a copy of another sample. Range [0, 1]. ``None`` for an empty text (BLEU would
    call it perfectly diverse) and for a batch of one. Texts only.

    Gaming: any text with words unseen in the batch scores ~1 — gibberish, other languages, random
    rare tokens. Pair with coherence.
    """

    def __init__(self, tokenize: str = "13a", name: str | None = None):
        super().__init__(name)
        self.tokenize = tokenize
        _bleu(tokenize)  # an unknown tokenizer name fails now, not mid-training

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        texts = _check_texts(samples, "SelfBLEUDiversity")
        if len(texts) < 2:
            return [None] * len(texts)
        bleu = _self_bleu_each(texts, self.tokenize)
        return [
            None if not t.strip() else min(max(1.0 - b / 100.0, 0.0), 1.0)  # BLEU can read 100.0000001
            for t, b in zip(texts, bleu)
        ]


@register("vendi_contribution")
class VendiContribution(RewardModule):
    """Leave-one-out drop in the batch's Vendi score: VS(batch) - VS(batch without the sample).

    Measures: how many "effective distinct samples" this one adds to the batch. About 1 for a
    sample orthogonal to all others, 0 when the batch is all copies, negative for a near-duplicate
    (removing one of two twins makes the rest more even). ``None`` for a batch of one.

    Range: [-1, 1] in practice.

    ``embed``: ``samples -> (n, d)`` array; ``"one_hot"`` for integer level grids
    (:func:`one_hot_flatten`); ``None`` when samples are already vectors. Kernel: cosine.

    Gaming: embedding-space outliers (off-topic or broken samples) look very "distinct"; the
    embedding defines what counts as different. Pair with value/coherence or playability.
    """

    def __init__(self, embed: Callable | str | None = None, q: float = 1.0, name: str | None = None):
        super().__init__(name)
        if embed == "one_hot":
            embed = one_hot_flatten
        if embed is not None and not callable(embed):
            raise DiversityInputError(
                f"embed={embed!r}; pass a callable samples -> (n, d), 'one_hot' for level grids, or None for vectors"
            )
        self.embed, self.q = embed, float(q)

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        n = len(samples)
        if n < 2:
            return [None] * n
        X = self.embed(samples) if self.embed is not None else np.asarray(samples)
        K = _cosine_kernel(X)
        if len(K) != n:
            raise DiversityInputError(f"embed returned {len(K)} rows for {n} samples")
        full = _vendi_of_kernel(K, self.q)
        keep = np.ones(n, dtype=bool)
        out: list[float | None] = []
        for i in range(n):
            keep[i] = False
            out.append(full - _vendi_of_kernel(K[np.ix_(keep, keep)], self.q))
            keep[i] = True
        return out
