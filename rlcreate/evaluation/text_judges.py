"""Text judges: evaluation measures of a set of texts that are distinct from the training reward.

A text recipe names them in ``judges:`` (or ``rlcreate eval RUN --judges ...``);
:func:`run_text_judges` computes them on a list of texts and returns ``{judge: {measure: value}}``.

``ngram_novelty``
    share of the texts' word n-grams (n = 2, 3, 4; lower-cased words, punctuation ignored) that do
    not occur in the reference corpus (:func:`rlcreate.text.data.reference_corpus`). The *surface*
    counterpart of the embedding novelty reward: a paraphrase of a corpus sentence is novel here,
    and a text the embedding places near the corpus may still use new wording.
``distinct``
    distinct-1/2/3 over the whole set (:func:`rlcreate.rewards.diversity.distinct_n` on the same
    word tokens): unique n-grams / all n-grams; low = the set repeats itself.
``self_bleu``
    mean sentence BLEU of each text against the others (sacrebleu, 0..100;
    :func:`rlcreate.rewards.diversity.self_bleu`); high = the texts are alike.
``perplexity``
    perplexity of the completions under the base LM (the recipe's ``env.kwargs.lm``) read as
    **standalone prose**: no prompt and no chat template, scored from the tokenizer's start token.
    The fluency reward scores a completion *in context* (after the chat-templated prompt), so text
    the chat context makes likely (assistant boilerplate, echoes of the prompt) earns fluency without
    reading well on its own; this judge does not see the context. No second LM can be installed
    offline, hence the same weights under a different context. Measures: ``perplexity`` =
    exp(token-weighted mean NLL), ``median_text_perplexity``, and ``fluency_standalone`` =
    mean of clip(1 - NLL / 10, 0, 1), the fluency reward's own scale (floor 10 nats), so the audit
    compares proxy and judge in the same units. ``perplexity_in_context`` (prompt + chat template,
    as the reward sees it) is reported next to it when prompts are given.
``memorization``
    longest word n-gram shared with the reference corpus (:class:`rlcreate.rewards.text.Memorization`
    index with ``min_n = 1``): ``mean_longest``, ``max_longest`` and ``copied`` (share of texts
    sharing a run of >= 8 words, i.e. a copied clause).
``length``
    mean words per text and the share of empty texts (context for every other measure).
"""

from __future__ import annotations

import difflib
import functools
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["TEXT_JUDGES", "DEFAULT_TEXT_JUDGES", "run_text_judges", "check_text_judges", "COPIED_RUN_WORDS"]

DEFAULT_TEXT_JUDGES = ("ngram_novelty", "distinct", "self_bleu", "perplexity", "memorization", "length")
COPIED_RUN_WORDS = 8  # a shared run this long is a copied clause, not a common phrase
FLUENCY_FLOOR_NATS = 10.0  # the fluency reward's default floor: same scale for proxy and judge


@functools.lru_cache(maxsize=1)
def _corpus_ngrams() -> dict[int, frozenset]:
    from rlcreate.rewards.text import word_tokens
    from rlcreate.text.data import reference_corpus

    docs = [word_tokens(t) for t in reference_corpus()]
    return {n: frozenset(tuple(w[i:i + n]) for w in docs for i in range(len(w) - n + 1)) for n in (2, 3, 4)}


@functools.lru_cache(maxsize=1)
def _memorization_index():
    from rlcreate.rewards.text import Memorization

    return Memorization(min_n=1, max_n=64)


def judge_ngram_novelty(texts: list[str], **_) -> dict:
    from rlcreate.rewards.text import word_tokens

    ref = _corpus_ngrams()
    out: dict[str, Any] = {}
    for n, known in ref.items():
        grams = [tuple(w[i:i + n]) for w in map(word_tokens, texts) for i in range(len(w) - n + 1)]
        out[f"novel_{n}grams"] = float(np.mean([g not in known for g in grams])) if grams else float("nan")
    return out


def judge_distinct(texts: list[str], **_) -> dict:
    from rlcreate.rewards.diversity import distinct_n
    from rlcreate.rewards.text import word_tokens

    return {f"distinct_{n}": float(distinct_n(texts, n, tokenize=word_tokens)) for n in (1, 2, 3)}


def judge_self_bleu(texts: list[str], **_) -> dict:
    from rlcreate.rewards.diversity import self_bleu

    if len(texts) < 2:
        return {"skipped": f"self-BLEU needs at least 2 texts, got {len(texts)}"}
    return {"self_bleu": float(self_bleu(texts))}


def _nll_summary(stats) -> tuple[float, float, list[float]]:
    """Token-weighted perplexity, median per-text perplexity, per-text mean NLL (NaN when empty)."""
    lps = [s.logprobs for s in stats if s.n]
    per_text = [float(-s.logprobs.mean()) if s.n else float("nan") for s in stats]
    if not lps:
        return float("nan"), float("nan"), per_text
    nll = float(-np.concatenate(lps).mean())
    return float(np.exp(nll)), float(np.exp(np.nanmedian(per_text))), per_text


def judge_perplexity(texts: list[str], prompts: Sequence[str] | None = None, lm: Any = None, **_) -> dict:
    from rlcreate.rewards.text import ReferenceLM

    if lm is None:
        return {"skipped": "no base LM given: judge a text run (its recipe names env.kwargs.lm) or pass lm="}
    model, tok = (lm.model, lm.tokenizer) if isinstance(lm, ReferenceLM) else lm
    standalone = ReferenceLM(model, tok, chat=False, cache_size=0)
    ppl, median, per_text = _nll_summary(standalone.token_stats(texts, None))
    scaled = [float(np.clip(1.0 - v / FLUENCY_FLOOR_NATS, 0.0, 1.0)) for v in per_text if v == v]
    out = {"perplexity": ppl, "median_text_perplexity": median,
           "fluency_standalone": float(np.mean(scaled)) if scaled else float("nan"),
           "per_text_nll": per_text}
    if prompts is not None:
        in_context = ReferenceLM(model, tok, cache_size=0)  # chat template decided by the tokenizer
        out["perplexity_in_context"] = _nll_summary(in_context.token_stats(texts, list(prompts)))[0]
    return out


def judge_memorization(texts: list[str], **_) -> dict:
    index = _memorization_index()
    longest = np.array([index.longest_match(t) for t in texts], np.float64)
    return {"mean_longest": float(longest.mean()), "max_longest": float(longest.max()),
            "copied": float((longest >= COPIED_RUN_WORDS).mean()), "per_text_longest": longest.tolist()}


def judge_length(texts: list[str], **_) -> dict:
    from rlcreate.rewards.text import word_tokens

    words = np.array([len(word_tokens(t)) for t in texts], np.float64)
    return {"mean_words": float(words.mean()), "empty": float((words == 0).mean())}


TEXT_JUDGES: dict[str, Callable[..., dict]] = {
    "ngram_novelty": judge_ngram_novelty, "distinct": judge_distinct, "self_bleu": judge_self_bleu,
    "perplexity": judge_perplexity, "memorization": judge_memorization, "length": judge_length,
}


def check_text_judges(names: Sequence[str]) -> list[str]:
    """Validate text judge names; unknown ones raise ``UnknownJudgeError`` with a suggestion."""
    from rlcreate.evaluation.judges import JUDGES, UnknownJudgeError

    for n in names:
        if n not in TEXT_JUDGES:
            close = difflib.get_close_matches(str(n), TEXT_JUDGES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            other = " (that is a level judge)" if n in JUDGES else ""
            raise UnknownJudgeError(f"judges: unknown text judge {n!r}{other}.{hint} "
                                    f"Text judges: {sorted(TEXT_JUDGES)}")
    return list(names)


def run_text_judges(texts: Sequence[str], names: Sequence[str] = DEFAULT_TEXT_JUDGES,
                    prompts: Sequence[str] | None = None, lm: Any = None) -> dict[str, dict]:
    """Compute the named judges on ``texts``; ``{judge: {measure: value}}``.

    ``prompts``: one per text (only ``perplexity_in_context`` uses them). ``lm``: the base LM as a
    ``(model, tokenizer)`` pair or a :class:`~rlcreate.rewards.text.ReferenceLM` (``perplexity``)."""
    names = check_text_judges(names)
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("no texts to judge; generate some first (rlcreate generate RUN --n 16)")
    if prompts is not None and len(prompts) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(prompts)} prompts; pass one prompt per text or none")
    return {n: TEXT_JUDGES[n](texts, prompts=prompts, lm=lm) for n in names}
