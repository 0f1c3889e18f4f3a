"""Text reward modules: novelty, fluency, relevance, surprise, memorization, an engagement proxy.

Every module follows the reward contract (:mod:`rlcreate.rewards.base`): ``reward(completions,
prompts=..., **context) -> list[float | None]``, one value per completion. ``prompts`` is optional
context, named as TRL names it, so each module drops into ``GRPOTrainer`` unchanged. Completions and
prompts may be plain strings or TRL's conversational form (a list of ``{"role", "content"}``
messages); the text used is the messages' content.

Registered names (``get_reward(name, **kwargs)``):

================  ==========================================================  =================
name              measures                                                    range
================  ==========================================================  =================
text_novelty      MiniLM cosine k-NN distance to a reference corpus + archive [0, 2], ~[0, 1]
fluency           mean token log-likelihood under a reference LM, rescaled    [0, 1]
surprise          per-token surprisal above what the reference LM expected    nats, ~[-3, 10]
relevance         cosine similarity of prompt and completion embeddings       [-1, 1]
memorization      longest word n-gram shared with the reference corpus        [-1, 0] (penalty)
engagement_proxy  zero-shot "vivid vs dull" in MiniLM space, or any HF        [0, 1]
                  sequence classifier; a PROXY, not measured engagement
================  ==========================================================  =================

Batch diversity for text is :mod:`rlcreate.rewards.diversity`'s ``distinct_n`` (distinct-n per
sample or per batch) and ``self_bleu_diversity`` (1 - self-BLEU); re-exported here, not duplicated.

The reference LM (fluency, surprise) is one :class:`ReferenceLM` per model, shared by both modules
and cached by (context, completion): scoring the same batch for fluency and surprise runs the model
once. The sentence embedder is shared the same way (:func:`rlcreate.text.embed.default_embedder`).
Heavy libraries (torch, transformers, sentence-transformers) load on first use, not on import.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from rlcreate.errors import UserError
from rlcreate.rewards.base import RewardModule, message_text, prompt_text

# Batch diversity for text is the reward core's (registered there as "distinct_n" and
# "self_bleu_diversity"); re-exported so text users find every text term in one place.
from rlcreate.rewards.diversity import DistinctNReward, SelfBLEUDiversity
from rlcreate.rewards.novelty import NoveltyArchive, NoveltyReward
from rlcreate.rewards.registry import register
from rlcreate.text.scoring import ReferenceLM, TokenStats, default_reference_lm

__all__ = [
    "TextRewardError",
    "as_texts",
    "TextNovelty",
    "Fluency",
    "Surprise",
    "Relevance",
    "Memorization",
    "EngagementProxy",
    "ENGAGING_ANCHORS",
    "DULL_ANCHORS",
    "word_tokens",
    "DistinctNReward",
    "SelfBLEUDiversity",
]


class TextRewardError(UserError):
    """Bad input or settings for a text reward; the message names the value and the fix."""


# ------------------------------------------------------------------------------------ inputs


def _message_text(x: Any, what: str, i: int, last_only: bool) -> str:
    """One sample's text by the reward core's converter (TRL's conversational format included);
    a prompt's text is its last user turn. A wrong type is a user error naming the item."""
    try:
        return prompt_text(x) if last_only else message_text(x)
    except TypeError:
        raise TextRewardError(
            f"{what} {i} is a {type(x).__name__}; expected a str or a list of {{'role', 'content'}} "
            "messages (TRL's conversational format)"
        ) from None


def as_texts(samples: Sequence[Any], what: str = "completion") -> list[str]:
    """Plain strings from strings or TRL conversational messages (contents joined)."""
    if isinstance(samples, str):
        raise TextRewardError(f"got a single string where a list of {what}s was expected; wrap it: [text]")
    return [_message_text(s, what, i, last_only=False) for i, s in enumerate(samples)]


@overload
def _prompts_from(context: dict, n: int, required: Literal[True], module: str) -> list[str]: ...
@overload
def _prompts_from(context: dict, n: int, required: bool, module: str) -> list[str] | None: ...
def _prompts_from(context: dict, n: int, required: bool, module: str) -> list[str] | None:
    prompts = context.get("prompts")
    if prompts is None:
        if required:
            raise TextRewardError(
                f"{module} needs the prompts: call it as reward(completions, prompts=[...]) with one "
                f"prompt per completion ({n} here)"
            )
        return None
    if isinstance(prompts, str):
        prompts = [prompts] * n  # one prompt shared by the whole batch
    prompts = [_message_text(p, "prompt", i, last_only=True) for i, p in enumerate(prompts)]
    if len(prompts) != n:
        raise TextRewardError(
            f"{module}: got {len(prompts)} prompts for {n} completions; pass one "
            "prompt per completion (repeat a prompt for each of its completions)"
        )
    return prompts


def _shipped_corpus() -> list[str]:
    from rlcreate.text.data import reference_corpus

    return reference_corpus()


def _corpus_arg(corpus: Any, field: str) -> list[str]:
    """``"shipped"`` -> the packaged corpus; a path -> its non-empty lines; a list -> itself."""
    if isinstance(corpus, str) and corpus == "shipped":
        return _shipped_corpus()
    if isinstance(corpus, (str, os.PathLike)):
        path = Path(corpus).expanduser()
        if not path.is_file():
            raise TextRewardError(
                f"{field}={str(corpus)!r} is not a file; pass 'shipped' (the packaged "
                "corpus), a UTF-8 text file with one text per line, or a list of strings"
            )
        from rlcreate.safe_io import read_bounded

        try:  # at most 64 MB: a reference corpus is text, and a larger file would only fill memory
            lines = read_bounded(path, 64 * 2**20, "reference corpus").decode("utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise TextRewardError(
                f"{field}={str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start}); re-save it as UTF-8"
            ) from None
        texts = [ln.strip() for ln in lines if ln.strip()]
    else:
        texts = as_texts(list(corpus), what=f"{field} item")
        texts = [t for t in texts if t.strip()]
    if not texts:
        raise TextRewardError(f"{field} holds no non-empty text; pass 'shipped' or some sentences")
    return texts


def _embedder(embedder: Any):
    from rlcreate.text.embed import Embedder, default_embedder

    if embedder is None:
        return default_embedder()
    if isinstance(embedder, (str, os.PathLike)):
        return Embedder(embedder)
    if not callable(getattr(embedder, "embed", None)):
        raise TextRewardError(
            f"embedder={embedder!r} has no embed(texts) method; pass an "
            "rlcreate.text.embed.Embedder, a sentence-transformers folder, or None"
        )
    return embedder


# ----------------------------------------------------------------------------- reference LM


def _reference_lm(lm: Any) -> ReferenceLM:
    if lm is None or isinstance(lm, (str, os.PathLike)):
        return default_reference_lm(None if lm is None else str(lm))
    if isinstance(lm, ReferenceLM):
        return lm
    if isinstance(lm, (tuple, list)) and len(lm) == 2:  # (model, tokenizer), e.g. a LoadedLM
        return ReferenceLM(lm[0], lm[1])
    raise TextRewardError(
        f"lm={lm!r}: pass a ReferenceLM, a (model, tokenizer) pair, a model "
        "name/folder for load_causal_lm, or None for the offline SmolLM2 default"
    )


class _LMReward(RewardModule):
    artifact = "text"

    def __init__(self, lm: Any = None, name: str | None = None):
        super().__init__(name)
        self._lm_spec = lm
        self._lm: ReferenceLM | None = lm if isinstance(lm, ReferenceLM) else None

    @property
    def lm(self) -> ReferenceLM:
        if self._lm is None:  # loaded on first score, so building a recipe stays cheap
            self._lm = _reference_lm(self._lm_spec)
        return self._lm

    def _stats(self, samples: Sequence[Any], context: dict) -> list[TokenStats]:
        texts = as_texts(samples)
        prompts = _prompts_from(context, len(texts), required=False, module=self.name)
        return self.lm.token_stats(texts, prompts)

    def __getstate__(self) -> dict:  # picklable: the loaded model is not part of the state
        state = self.__dict__.copy()
        if not isinstance(self._lm_spec, ReferenceLM):
            state["_lm"] = None
        return state


# ----------------------------------------------------------------------------------- modules


@register("fluency")
class Fluency(_LMReward):
    """Fluency: how likely a reference LM finds the completion, per token.

    Measures: the mean token log-likelihood ``L`` (nats) of the completion under a frozen reference
    LM, given the prompt as context when ``prompts`` are passed; reported as
    ``clip(1 + L / floor_nats, 0, 1)``: 1 when every token is certain, 0 when the average token is
    at or below ``exp(-floor_nats)`` probability. ``None`` for an empty completion (which adds 0 to a
    weighted sum, the same as the worst score).

    Range: [0, 1]. Measured with SmolLM2-135M-Instruct, ``floor_nats=10``, 32 corpus sentences as
    completions of the held-out prompts: natural sentences 0.53 on average (single sentences
    0.35-0.65 without a prompt), the same words shuffled 0.13, each sentence repeated three times
    0.80, random letters 0.31 (per-token likelihood is tokenisation-dependent: character soup
    splits into many short, individually guessable tokens, so fluency alone does not reject it).

    Gaming: likelihood rewards the predictable. Maximising it alone yields short, generic or
    repetitive text (a repeated phrase becomes near-certain), i.e. the opposite of novelty. Pair it
    with novelty or surprise, or put it through a sweet-spot transform.

    Args:
        lm: a :class:`ReferenceLM`, a (model, tokenizer) pair, a model name/folder, or ``None`` for
            the shared offline SmolLM2 default.
        floor_nats: mean log-likelihood (negated) that maps to 0.
    """

    def __init__(self, lm: Any = None, floor_nats: float = 10.0, name: str | None = None):
        if not (isinstance(floor_nats, (int, float)) and math.isfinite(floor_nats) and floor_nats > 0):
            raise TextRewardError(f"floor_nats={floor_nats!r} must be a positive number of nats; try 10")
        super().__init__(lm, name)
        self.floor_nats = float(floor_nats)

    def mean_logprob(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        """The raw mean token log-likelihood in nats (``None`` for empty completions)."""
        return [float(s.logprobs.mean()) if s.n else None for s in self._stats(samples, context)]

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        return [
            None if v is None else float(np.clip(1.0 + v / self.floor_nats, 0.0, 1.0))
            for v in self.mean_logprob(samples, **context)
        ]


SURPRISE_MEASURES = ("excess", "surprisal")


@register("surprise")
class Surprise(_LMReward):
    """Surprise: how far the text departs from what the reference LM expected.

    Measures (``measure="excess"``, default): the mean over completion tokens of
    ``-log p(token) - H``, the token's surprisal minus the entropy ``H`` of the LM's predictive
    distribution at that position, i.e. how much more surprising the actual token was than the LM
    expected a token there to be (the deviation from *typicality*, Meister et al. 2023, "Locally
    typical sampling"). ``measure="surprisal"``: the plain mean surprisal ``-log p`` in nats.
    Prompt-conditioned when ``prompts`` are passed. ``None`` for an empty completion.

    Range (nats): ``excess`` is about -3..10 in practice: below or near 0 for text more predictable
    than the LM's own samples (repetition, greedy clichés), positive for natural human text, large
    for word salad. Measured with SmolLM2-135M-Instruct on 32 corpus sentences as completions of
    the held-out prompts: natural 1.56, each sentence repeated three times 0.01, words shuffled
    3.99, random letters 1.77. ``surprisal`` (>= 0): natural 4.7, repeated 2.0, shuffled 8.7,
    random letters 6.9.

    Gaming: "more surprise" is maximised by word salad, so do NOT use this raw with a positive
    weight. Use the sweet-spot transform to reward the level of natural text, e.g. for SmolLM2::

        surprise: {weight: 1.0, transform: {sweet_spot: {target: 1.5, width: 1.0}}}

    which gives natural text ~1, repetition ~0.3 and word salad ~0.05. Random *letters* are not
    caught by ``excess`` (once the context is garbage the LM expects garbage, so its entropy is high
    too): keep a fluency term alongside, or use ``measure="surprisal"`` (random letters 6.9 vs 4.7).
    Calibrate ``target`` by scoring text you consider good with your own reference LM.

    Args:
        lm: as for :class:`Fluency` (the same shared model by default).
        measure: ``"excess"`` or ``"surprisal"``.
    """

    def __init__(self, lm: Any = None, measure: str = "excess", name: str | None = None):
        if measure not in SURPRISE_MEASURES:
            raise TextRewardError(f"measure={measure!r} is not a surprise measure; use one of {SURPRISE_MEASURES}")
        super().__init__(lm, name)
        self.measure = measure

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        out: list[float | None] = []
        for s in self._stats(samples, context):
            if not s.n:
                out.append(None)
            elif self.measure == "surprisal":
                out.append(float(-s.logprobs.mean()))
            else:
                out.append(float((-s.logprobs - s.entropies).mean()))
        return out


@register("text_novelty")
class TextNovelty(NoveltyReward):
    """Text novelty: distance in MiniLM sentence-embedding space to the nearest known texts.

    Measures: mean cosine distance (1 - cosine similarity) from the completion's all-MiniLM-L6-v2
    embedding to its ``k`` nearest neighbours among the reference corpus (by default the shipped
    corpus, :func:`rlcreate.text.data.reference_corpus`) and an archive of the generator's own past
    outputs, pooled (novelty search). The other completions of the same batch count as neighbours, so
    a batch of near-copies is not novel; after scoring, completions are offered to the archive. A
    thin wrapper around :class:`rlcreate.rewards.novelty.NoveltyReward`.

    Range: [0, 2]; in practice 0 (a copy of ``k`` known texts) to about 1.1 (unrelated text).

    Gaming: anything far from everything is novel: off-topic text, other languages, random tokens,
    markup. Pair it with fluency and relevance, or use a sweet-spot transform. Because the archive
    grows, revisiting one style stops paying (non-stationary by design).

    Args:
        reference: ``"shipped"`` (default), a UTF-8 file with one text per line, a list of strings,
            or ``None`` for archive-only novelty.
        embedder: an :class:`~rlcreate.text.embed.Embedder`, a sentence-transformers folder, or
            ``None`` for the shared offline MiniLM.
        k, capacity, insertion, threshold, seed: passed to :class:`NoveltyArchive` (cosine metric).
        against, within_batch, update: as for :class:`NoveltyReward`.
    """

    artifact = "text"

    def __init__(
        self,
        reference: Any = "shipped",
        embedder: Any = None,
        *,
        k: int = 5,
        against: str = "both",
        within_batch: bool = True,
        update: bool = True,
        capacity: int = 10_000,
        insertion: str = "threshold",
        threshold: float | None = None,
        seed: int = 0,
        name: str | None = None,
    ):
        self.embedder = _embedder(embedder)
        ref = None
        if reference is not None:
            ref = self.embedder.embed(_corpus_arg(reference, "reference"))
        archive = NoveltyArchive(
            ref, k=k, metric="cosine", capacity=capacity, insertion=insertion, threshold=threshold, seed=seed
        )
        super().__init__(archive, self._embed, against=against, within_batch=within_batch, update=update, name=name)

    def _embed(self, samples: Sequence[Any]) -> np.ndarray:
        return self.embedder.embed(as_texts(samples))


@register("relevance")
class Relevance(RewardModule):
    """Relevance: does the completion talk about what the prompt asked?

    Measures: cosine similarity of the all-MiniLM-L6-v2 embeddings of the prompt (the last user turn
    for conversational prompts) and the completion. Needs ``prompts``; raises without them. ``None``
    for an empty completion.

    Range: [-1, 1]; in practice about 0 (unrelated) to 0.8 (on topic); exactly 1 for a copy.

    Gaming: repeating or paraphrasing the prompt scores highest. Weight it lightly, use a sweet-spot
    transform (target ~0.5), or pair it with novelty against the prompt.

    Args:
        embedder: an :class:`~rlcreate.text.embed.Embedder`, a folder, or ``None`` (shared MiniLM).
    """

    artifact = "text"

    def __init__(self, embedder: Any = None, name: str | None = None):
        super().__init__(name)
        self._embedder_spec = embedder
        self._embedder = None

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = _embedder(self._embedder_spec)
        return self._embedder

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        texts = as_texts(samples)
        prompts = _prompts_from(context, len(texts), required=True, module=self.name)
        if not texts:
            return []
        emb = self.embedder.embed(texts + prompts)
        sims = (emb[: len(texts)] * emb[len(texts) :]).sum(axis=1)
        return [float(np.clip(s, -1.0, 1.0)) if t.strip() else None for s, t in zip(sims, texts)]


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def word_tokens(text: str) -> list[str]:
    """Lower-cased words (letters/digits, inner apostrophes kept); punctuation and case ignored."""
    return _WORD.findall(text.lower())


@register("memorization")
class Memorization(RewardModule):
    """Memorization penalty: the longest run of words copied from the reference corpus.

    Measures: ``L``, the length (in words, case and punctuation ignored) of the longest word n-gram
    of the completion that also occurs in the reference corpus. Returned as a **penalty**:
    ``-clip((L - min_n + 1) / (max_n - min_n + 1), 0, 1)``, so runs shorter than ``min_n`` words
    (common phrases: "in the middle of") cost nothing and a copied run of ``max_n`` or more words
    costs the full -1. Copying training data is the failure the project's source material warns
    about; this makes it visible and costly.

    Range: [-1, 0]; 0 for text that shares no ``min_n``-word run with the corpus; -1 for a copied
    sentence of ``max_n``+ words. A positive weight penalises (do not give it a negative weight).

    Index: every n-gram of the corpus for n in ``[min_n, max_n]`` is hashed once into a set per n
    (n-gram membership is monotone, so the longest match is found by growing n until no window of
    the completion is in the set). Scoring is O(words x (max_n - min_n)) set lookups.

    Gaming: light paraphrase (a synonym every ``min_n - 1`` words) escapes it; it only sees the
    corpus you give it, so for a fine-tuned LM pass its training text.

    Args:
        corpus: ``"shipped"`` (default), a UTF-8 file with one text per line, or a list of strings.
        min_n: shortest run that counts (default 4).
        max_n: run length that gets the full penalty (default 12).
    """

    artifact = "text"

    def __init__(self, corpus: Any = "shipped", min_n: int = 4, max_n: int = 12, name: str | None = None):
        for field, v in (("min_n", min_n), ("max_n", max_n)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TextRewardError(f"{field}={v!r} must be an integer >= 1")
        if max_n < min_n:
            raise TextRewardError(f"max_n={max_n} is below min_n={min_n}; max_n must be >= min_n (e.g. 4 and 12)")
        super().__init__(name)
        self.min_n, self.max_n = min_n, max_n
        docs = [word_tokens(t) for t in _corpus_arg(corpus, "corpus")]
        # One set of hashed n-grams per n. Python's tuple hash is 64-bit; a false match needs a
        # collision inside one set, negligible at corpus sizes this index is built for.
        self._index: dict[int, set[int]] = {n: set() for n in range(min_n, max_n + 1)}
        for words in docs:
            for n in range(min_n, min(max_n, len(words)) + 1):
                grams = self._index[n]
                for i in range(len(words) - n + 1):
                    grams.add(hash(tuple(words[i : i + n])))
        self.corpus_ngrams = sum(len(s) for s in self._index.values())

    def longest_match(self, text: str) -> int:
        """Longest shared word run, capped at ``max_n``; 0 when below ``min_n``."""
        words = word_tokens(text)
        longest = 0
        for n in range(self.min_n, min(self.max_n, len(words)) + 1):
            grams = self._index[n]
            if not any(hash(tuple(words[i : i + n])) in grams for i in range(len(words) - n + 1)):
                break  # no n-gram matches, so no longer one can
            longest = n
        return longest

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        span = self.max_n - self.min_n + 1
        out: list[float | None] = []
        for text in as_texts(samples):
            length = self.longest_match(text)
            out.append(-float(np.clip((length - self.min_n + 1) / span, 0.0, 1.0)) if length else 0.0)
        return out


# Anchor descriptions for the zero-shot engagement proxy: what readers tend to call gripping
# (concrete sensory detail, tension, an unexpected turn) versus what they call dull.
ENGAGING_ANCHORS = (
    "A vivid scene full of concrete sensory detail: sounds, smells, colours and textures.",
    "A surprising twist that makes the reader desperate to know what happens next.",
    "A character facing a tense, emotional choice with something important at stake.",
    "An original, striking image described with precise and unusual words.",
)
DULL_ANCHORS = (
    "A generic, vague statement with no detail at all.",
    "A dull, repetitive sentence that says nothing new.",
    "Bland filler text made of clichés and empty phrases.",
    "An abstract summary with no events, no people and no images.",
)


@register("engagement_proxy")
class EngagementProxy(RewardModule):
    """Engagement PROXY: a stand-in score for "would a reader find this engaging?".

    This is a proxy, not a measurement: nothing here has been validated against human engagement
    ratings. Two scorers:

    - default (offline, no extra model): zero-shot similarity in all-MiniLM-L6-v2 space, as in
      CLIP-style zero-shot classification. ``p = softmax([mean cos(text, engaging anchors), mean
      cos(text, dull anchors)] / temperature)[0]`` with the anchors in :data:`ENGAGING_ANCHORS` /
      :data:`DULL_ANCHORS` (concrete sensory detail, tension and surprise versus generic, vague,
      repetitive filler: the qualities writing advice and readability studies associate with
      engagement). Cheap, deterministic, and it reuses the embedder the other text rewards load.
    - ``classifier="path/or/hub-id"``: any Hugging Face sequence-classification model (an
      interest, sentiment or quality classifier); the score is the softmax probability of ``label``
      (a label name from the model's ``id2label`` or an index; default the last label).

    Range: [0, 1], 0.5 = undecided.

    Gaming: the zero-shot score rewards text that *describes* vividness, so words like "vivid",
    "surprising", "tense" or lists of sensory nouns raise it without making the text better; a
    classifier is gamed by whatever features it keys on (sentiment words, exclamation marks).
    Weight it lightly and audit samples.

    Args:
        embedder: for the default scorer (``None``: the shared MiniLM).
        temperature: softmax temperature of the zero-shot scorer (cosine units).
        classifier: HF sequence-classification model folder or id (loaded offline); replaces the
            zero-shot scorer.
        label: which class of ``classifier`` counts as engaging.
        batch_size: texts per classifier forward pass.
    """

    artifact = "text"

    def __init__(
        self,
        embedder: Any = None,
        temperature: float = 0.05,
        classifier: str | None = None,
        label: str | int | None = None,
        batch_size: int = 32,
        engaging_anchors: Sequence[str] = ENGAGING_ANCHORS,
        dull_anchors: Sequence[str] = DULL_ANCHORS,
        name: str | None = None,
    ):
        super().__init__(name)
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise TextRewardError(f"temperature={temperature!r} must be a positive number; try 0.05")
        if not engaging_anchors or not dull_anchors:
            raise TextRewardError("engaging_anchors and dull_anchors each need at least one description")
        self.temperature = float(temperature)
        self.batch_size = int(batch_size)
        self.engaging_anchors, self.dull_anchors = tuple(engaging_anchors), tuple(dull_anchors)
        self.classifier = classifier
        self._embedder_spec = embedder
        self._embedder = None
        self._clf: tuple[Any, Any] | None = None  # (model, tokenizer) of a loaded classifier
        self.label_index: int | None = None
        if classifier is not None:
            self._load_classifier(classifier, label)

    def _load_classifier(self, classifier: str, label: str | int | None) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        local = Path(str(classifier)).expanduser().is_dir()
        try:
            tok = AutoTokenizer.from_pretrained(classifier, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(classifier, local_files_only=True)
        except (OSError, ValueError) as err:
            where = "folder" if local else "hub id (looked only in the local Hugging Face cache)"
            raise TextRewardError(
                f"classifier={classifier!r}: could not load a sequence-classification model from this "
                f"{where}: {str(err).splitlines()[0] if str(err) else type(err).__name__}. Pass a local "
                "folder saved with save_pretrained, or leave classifier unset for the offline "
                "zero-shot MiniLM proxy"
            ) from None
        id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
        if label is None:
            index = max(id2label)
        elif isinstance(label, int) and not isinstance(label, bool):
            index = label
        else:
            names = {v: k for k, v in id2label.items()}
            if label not in names:
                raise TextRewardError(
                    f"label={label!r} is not a class of {classifier!r}; its labels are "
                    f"{sorted(names)} (or pass an index 0..{len(id2label) - 1})"
                )
            index = names[label]
        if not 0 <= index < model.config.num_labels:
            raise TextRewardError(f"label index {index} is out of range for {model.config.num_labels} classes")
        if tok.pad_token is None and tok.eos_token is not None:
            tok.pad_token = tok.eos_token
        if model.config.pad_token_id is None:  # GPT-style classifiers locate the last real token by it
            model.config.pad_token_id = tok.pad_token_id
        self._clf = (model.eval(), tok)
        self.label_index = index

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = _embedder(self._embedder_spec)
        return self._embedder

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        texts = as_texts(samples)
        if not texts:
            return []
        probs = self._classify(texts, *self._clf) if self._clf is not None else self._zero_shot(texts)
        return [float(p) if t.strip() else None for p, t in zip(probs, texts)]

    def _zero_shot(self, texts: list[str]) -> np.ndarray:
        emb = self.embedder.embed(texts)
        good = self.embedder.embed(list(self.engaging_anchors)).mean(axis=0)
        bad = self.embedder.embed(list(self.dull_anchors)).mean(axis=0)
        # mean cosine to a set of unit vectors = dot product with their mean vector
        margin = (emb @ good - emb @ bad) / self.temperature
        return 1.0 / (1.0 + np.exp(-margin.astype(np.float64)))  # 2-way softmax

    def _classify(self, texts: list[str], model: Any, tok: Any) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for b in range(0, len(texts), self.batch_size):
                enc = tok(
                    texts[b : b + self.batch_size], padding=True, truncation=True, max_length=512, return_tensors="pt"
                )
                logits = model(**enc).logits.float()
                out.append(torch.softmax(logits, dim=-1)[:, self.label_index].cpu().numpy())
        return np.concatenate(out)
