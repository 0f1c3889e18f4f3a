"""Semantic diversity within a group of texts (DARLING / NoveltyBench): ``group_diversity``.

The group machinery (groups from the call's context, DARLING's per-sample diversity from class
labels, quality x diversity) is generic and lives in :mod:`rlcreate.rewards.group`; what makes two
*texts* the same answer (MiniLM embeddings or content words) is the text domain's and lives here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlcreate.rewards.group import (
    GroupReward,
    GroupRewardError,
    diversity_from_labels,
    embedding_partition,
    greedy_partition,
)
from rlcreate.rewards.registry import register
from rlcreate.text.rewards import _embedder, as_texts

__all__ = ["GroupDiversity", "lexical_partition", "content_words", "EQUIVALENCES"]

EQUIVALENCES = ("embedding", "lexical")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def content_words(text: str) -> frozenset:
    """Lower-cased words of ``text`` without English stop words (scikit-learn's list)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS)


def lexical_partition(texts: Sequence[str], threshold: float = 0.5, opening: int = 0) -> np.ndarray:
    """Greedy partition of texts: equivalent when the Jaccard overlap of their content-word sets is
    >= ``threshold`` (two empty texts are equivalent), or, with ``opening = n > 0``, when both start
    with the same ``n`` words (the same opening is the same answer in short creative writing).
    Catches copies and light rewordings; misses paraphrases that change the words (it overcounts
    distinct answers, never undercounts copies)."""
    sets = [content_words(t) for t in texts]
    heads = [tuple(_WORD.findall(t.lower())[:opening]) if opening else () for t in texts]

    def same(a: int, b: int) -> bool:
        if opening and len(heads[a]) == opening and heads[a] == heads[b]:
            return True
        union = sets[a] | sets[b]
        return True if not union else len(sets[a] & sets[b]) / len(union) >= threshold

    return greedy_partition(len(sets), same)


@register("group_diversity")
class GroupDiversity(GroupReward):
    """Semantic diversity within a group (DARLING / NoveltyBench partition).

    Measures: the group's samples are partitioned into classes of near-equivalent answers
    (``equivalence="embedding"``: all-MiniLM-L6-v2 cosine >= ``threshold``; ``"lexical"``:
    content-word Jaccard >= ``threshold``; greedy, as NoveltyBench); a sample's value is the share of
    the other members of its group in a different class. With ``memory = m > 0`` the last ``m``
    texts seen for the same prompt (earlier calls) also count as others, so an environment whose
    texts of one prompt finish at different steps still compares them; ``memory`` is state
    (``state_dict``), 0 (off) by default, as GRPO groups are complete in one call.

    Range: [0, 1]: 1 = unlike every other answer to this prompt, 0 = a copy of all of them;
    ``None`` for a sample with no other sample to compare with (a group of one, no memory).

    Gaming: anything unlike its siblings counts, including off-topic or broken text; the
    embedding partition is also blind to differences MiniLM does not encode. Multiply it with a
    quality term (:class:`QualityDiversity`) rather than adding it alone.

    Args:
        equivalence: ``"embedding"`` (default) or ``"lexical"``.
        threshold: similarity at or above which two answers are the same answer (default 0.75 for
            embeddings, 0.5 for lexical).
        embedder: an :class:`~rlcreate.text.embed.Embedder`, a sentence-transformers folder, or
            ``None`` (the shared offline MiniLM); only for ``"embedding"``.
        memory: texts remembered per prompt (0 = off).
    """

    def __init__(
        self,
        equivalence: str = "embedding",
        threshold: float | None = None,
        embedder: Any = None,
        memory: int = 0,
        name: str | None = None,
    ):
        super().__init__(name)
        if equivalence not in EQUIVALENCES:
            raise GroupRewardError(f"equivalence = {equivalence!r}: use one of {EQUIVALENCES}")
        threshold = (0.75 if equivalence == "embedding" else 0.5) if threshold is None else threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise GroupRewardError(f"threshold = {threshold!r}: must be a similarity in (0, 1]")
        if isinstance(memory, bool) or not isinstance(memory, int) or memory < 0:
            raise GroupRewardError(f"memory = {memory!r}: must be an integer >= 0 (texts kept per prompt)")
        self.equivalence, self.threshold, self.memory = equivalence, float(threshold), memory
        self._embedder_spec = embedder
        self._embedder: Any = None  # built on first use from the spec
        self._seen: dict[str, list[str]] = {}

    def _labels(self, texts: list[str]) -> np.ndarray:
        if self.equivalence == "lexical":
            return lexical_partition(texts, self.threshold)
        if self._embedder is None:
            self._embedder = _embedder(self._embedder_spec)
        return embedding_partition(self._embedder.embed(texts), self.threshold)

    def score_group(self, samples: list, **context: Any) -> list[float | None]:
        texts = as_texts(samples)
        prompts = context.get("prompts")
        key = None
        if self.memory and prompts is not None and not isinstance(prompts, str) and len(prompts):
            key = str(prompts[0])
        past = list(self._seen.get(key, [])) if key is not None else []
        values = diversity_from_labels(self._labels(texts + past), n_scored=len(texts))
        if key is not None:
            self._seen[key] = (past + texts)[-self.memory :]
        return values

    def reset(self) -> None:
        self._seen = {}

    def state_dict(self) -> dict:
        return {"seen": {k: list(v) for k, v in self._seen.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._seen = {str(k): [str(t) for t in v] for k, v in dict(state.get("seen", {})).items()}

    def __getstate__(self) -> dict:  # picklable: the loaded embedding model is not part of the state
        state = dict(self.__dict__)
        state["_embedder"] = None
        return state
