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
    longest word n-gram shared with the reference corpus (:class:`rlcreate.text.rewards.Memorization`
    index with ``min_n = 1``): ``mean_longest``, ``max_longest`` and ``copied`` (share of texts
    sharing a run of >= 8 words, i.e. a copied clause).
``length``
    mean words per text and the share of empty texts (context for every other measure).
``noveltybench``
    ``distinct_k`` and ``utility_k`` per prompt (texts grouped by their prompt; needs ``prompts``),
    NoveltyBench's definitions (Zhang et al., 2025, arXiv:2504.05228, v1 of the paper):
    ``distinct_k`` = number of classes of meaningfully different answers among the k texts of a
    prompt; ``utility_k = (1 - p) / (1 - p^k) * sum_i p^(i-1) * [text i opens a new class] * u_i``
    with patience ``p = 0.8`` (a user who asks again with probability p values answers new to them).
    Two changes, forced by working offline: equivalence is decided lexically, **same first 4
    words or content-word Jaccard >= 0.2** (:func:`rlcreate.text.group_diversity.lexical_partition`;
    calibrated on DEV prompts, see ``EQUIVALENCE_JACCARD``; NoveltyBench uses a fine-tuned DeBERTa
    classifier), and the quality ``u_i`` in [0, 1] is ``fluency_standalone`` (the base LM
    reading the text without its prompt, below) gated by prompt adherence (``prompt_pmi > 0``), not
    a reward model's 1-10 score. The partition uses no embedding model, so it shares nothing with
    the MiniLM terms a recipe trains on (``text_novelty``, ``relevance``, ``group_diversity``).
``adherence``
    does the text answer its prompt? ``prompt_pmi``: how much reading the text makes the base LM
    expect the prompt, ``[log p(prompt | text) - log p(prompt)] / prompt tokens`` (nats per token;
    > 0 = on topic), with both read as plain text after a fixed bridge (``"\n\nWriting prompt: "``);
    ``on_topic`` = share of texts with ``prompt_pmi > 0``; ``prompt_word_recall`` = share of the
    prompt's content words that the text uses (model-free). The base LM is asked the reverse
    question of the fluency reward (prompt given text, not text given prompt); no MiniLM.

:func:`creative_metrics` computes every measure per prompt (k texts each) for paired comparisons,
and :func:`compare_conditions` turns them into means with 95% bootstrap confidence intervals and
paired per-prompt differences against a baseline condition. :func:`evaluate_finetune_run` is what
``rlcreate eval`` runs on a run whose LM was fine-tuned (GRPO): base and tuned model sampled on the
TEST prompts with the same seeds, judged, paired samples written.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlcreate.runbox import write_text  # exclusive temp file + rename: never through a link

__all__ = [
    "TEXT_JUDGES",
    "DEFAULT_TEXT_JUDGES",
    "run_text_judges",
    "check_text_judges",
    "COPIED_RUN_WORDS",
    "noveltybench_scores",
    "prompt_pmi",
    "prompt_word_recall",
    "creative_metrics",
    "compare_conditions",
    "bootstrap_ci",
    "evaluate_finetune_run",
    "sample_k",
    "NOVELTYBENCH_PATIENCE",
    "EQUIVALENCE_JACCARD",
]

DEFAULT_TEXT_JUDGES = ("ngram_novelty", "distinct", "self_bleu", "perplexity", "memorization", "length")
COPIED_RUN_WORDS = 8  # a shared run this long is a copied clause, not a common phrase
FLUENCY_FLOOR_NATS = 10.0  # the fluency reward's default floor: same scale for proxy and judge


@functools.lru_cache(maxsize=1)
def _corpus_ngrams() -> dict[int, frozenset]:
    from rlcreate.text.data import reference_corpus
    from rlcreate.text.rewards import word_tokens

    docs = [word_tokens(t) for t in reference_corpus()]
    return {n: frozenset(tuple(w[i : i + n]) for w in docs for i in range(len(w) - n + 1)) for n in (2, 3, 4)}


@functools.lru_cache(maxsize=1)
def _memorization_index():
    from rlcreate.text.rewards import Memorization

    return Memorization(min_n=1, max_n=64)


def judge_ngram_novelty(texts: list[str], **_) -> dict:
    from rlcreate.text.rewards import word_tokens

    ref = _corpus_ngrams()
    out: dict[str, Any] = {}
    for n, known in ref.items():
        grams = [tuple(w[i : i + n]) for w in map(word_tokens, texts) for i in range(len(w) - n + 1)]
        out[f"novel_{n}grams"] = float(np.mean([g not in known for g in grams])) if grams else float("nan")
    return out


def judge_distinct(texts: list[str], **_) -> dict:
    from rlcreate.rewards.diversity import distinct_n
    from rlcreate.text.rewards import word_tokens

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
    from rlcreate.text.scoring import ReferenceLM

    if lm is None:
        return {"skipped": "no base LM given: judge a text run (its recipe names env.kwargs.lm) or pass lm="}
    model, tok = (lm.model, lm.tokenizer) if isinstance(lm, ReferenceLM) else lm
    standalone = ReferenceLM(model, tok, chat=False, cache_size=0)
    ppl, median, per_text = _nll_summary(standalone.token_stats(texts, None))
    scaled = [float(np.clip(1.0 - v / FLUENCY_FLOOR_NATS, 0.0, 1.0)) for v in per_text if v == v]
    out = {
        "perplexity": ppl,
        "median_text_perplexity": median,
        "fluency_standalone": float(np.mean(scaled)) if scaled else float("nan"),
        "per_text_nll": per_text,
    }
    if prompts is not None:
        in_context = ReferenceLM(model, tok, cache_size=0)  # chat template decided by the tokenizer
        out["perplexity_in_context"] = _nll_summary(in_context.token_stats(texts, list(prompts)))[0]
    return out


def judge_memorization(texts: list[str], **_) -> dict:
    index = _memorization_index()
    longest = np.array([index.longest_match(t) for t in texts], np.float64)
    return {
        "mean_longest": float(longest.mean()),
        "max_longest": float(longest.max()),
        "copied": float((longest >= COPIED_RUN_WORDS).mean()),
        "per_text_longest": longest.tolist(),
    }


def judge_length(texts: list[str], **_) -> dict:
    from rlcreate.text.rewards import word_tokens

    words = np.array([len(word_tokens(t)) for t in texts], np.float64)
    return {"mean_words": float(words.mean()), "empty": float((words == 0).mean())}


# ------------------------------------------------------------------ NoveltyBench and adherence

NOVELTYBENCH_PATIENCE = 0.8  # NoveltyBench's p: the chance a user asks once more
# Two answers are the same answer when they share their first EQUIVALENCE_OPENING words or their
# content-word Jaccard is >= EQUIVALENCE_JACCARD. Chosen on DEV prompts (SmolLM2 samples, 1,120
# pairs) as the lexical rule that best agrees with MiniLM cosine >= 0.75 (F1 0.64; Jaccard >= 0.5
# alone called no pair equivalent); MiniLM is used for that calibration only, never on TEST texts.
EQUIVALENCE_JACCARD = 0.2
EQUIVALENCE_OPENING = 4
PMI_BRIDGE = "\n\nWriting prompt:"


def noveltybench_scores(
    texts: Sequence[str],
    quality: Sequence[float] | np.ndarray | None = None,
    threshold: float = EQUIVALENCE_JACCARD,
    patience: float = NOVELTYBENCH_PATIENCE,
    opening: int = EQUIVALENCE_OPENING,
) -> tuple:
    """``(distinct_k, utility_k)`` of the k answers to ONE prompt, in the order they were drawn.
    ``quality``: u_i in [0, 1] per answer (``None``: utility_k is NaN)."""
    from rlcreate.text.group_diversity import lexical_partition

    labels = lexical_partition(list(texts), threshold, opening)
    k = len(labels)
    if quality is None or k == 0:
        return float(len(set(labels.tolist()))), float("nan")
    new = np.array([labels[i] not in labels[:i] for i in range(k)], np.float64)
    disc = patience ** np.arange(k)
    norm = (1 - patience) / (1 - patience**k)
    return float(len(set(labels.tolist()))), float(norm * np.sum(disc * new * np.asarray(quality, np.float64)))


def _plain_lm(lm: Any):
    from rlcreate.text.scoring import ReferenceLM

    model, tok = (lm.model, lm.tokenizer) if isinstance(lm, ReferenceLM) else lm
    return ReferenceLM(model, tok, chat=False, cache_size=0)


def prompt_pmi(texts: Sequence[str], prompts: Sequence[str], lm: Any) -> list[float]:
    """Per text, ``[log p(prompt | text + bridge) - log p(prompt | bridge)] / prompt tokens`` under
    the base LM read as plain text (nats per token; > 0: the text points at its prompt)."""
    ref = _plain_lm(lm)
    bridge = PMI_BRIDGE.strip()
    with_text = ref.token_stats(
        [f" {p}" for p in prompts], [f"{t.strip()}{PMI_BRIDGE}" if t.strip() else bridge for t in texts]
    )
    unique = sorted(set(prompts))
    base = dict(zip(unique, ref.token_stats([f" {p}" for p in unique], [bridge] * len(unique))))
    return [float((w.logprobs.sum() - base[p].logprobs.sum()) / max(w.n, 1)) for w, p in zip(with_text, prompts)]


def prompt_word_recall(texts: Sequence[str], prompts: Sequence[str]) -> list[float]:
    """Share of each prompt's content words (stop words dropped) that its text uses (model-free)."""
    from rlcreate.text.group_diversity import content_words

    out = []
    for t, p in zip(texts, prompts):
        want = content_words(p) - {
            "write",
            "describe",
            "tell",
            "short",
            "story",
            "scene",
            "line",
            "opening",
            "sentence",
            "poem",
            "letter",
            "diary",
            "entry",
            "speech",
            "conversation",
        }
        out.append(float(len(want & content_words(t)) / len(want)) if want else float("nan"))
    return out


def _by_prompt(texts: Sequence[str], prompts: Sequence[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p, []).append(i)
    return groups


def judge_adherence(texts: list[str], prompts: Sequence[str] | None = None, lm: Any = None, **_) -> dict:
    if prompts is None:
        return {"skipped": "adherence needs the prompt of every text"}
    out: dict[str, Any] = {"prompt_word_recall": float(np.nanmean(prompt_word_recall(texts, prompts)))}
    if lm is None:
        out["skipped_pmi"] = "no base LM given"
        return out
    pmi = np.array(prompt_pmi(texts, prompts, lm))
    out.update(prompt_pmi=float(pmi.mean()), on_topic=float((pmi > 0).mean()), per_text_pmi=pmi.tolist())
    return out


def judge_noveltybench(texts: list[str], prompts: Sequence[str] | None = None, lm: Any = None, **_) -> dict:
    if prompts is None:
        return {"skipped": "distinct_k / utility_k need the prompt of every text (k texts per prompt)"}
    groups = _by_prompt(texts, prompts)
    quality = None
    if lm is not None:
        nll = _nll_summary(_plain_lm(lm).token_stats(texts, None))[2]
        flu = np.array([np.clip(1 - v / FLUENCY_FLOOR_NATS, 0, 1) if v == v else 0.0 for v in nll])
        quality = flu * (np.array(prompt_pmi(texts, prompts, lm)) > 0)
    dk, uk, ks = [], [], []
    for idx in groups.values():
        d, u = noveltybench_scores([texts[i] for i in idx], None if quality is None else quality[idx])
        dk.append(d)
        uk.append(u)
        ks.append(len(idx))
    return {
        "distinct_k": float(np.mean(dk)),
        "utility_k": float(np.mean(uk)) if quality is not None else float("nan"),
        "k": int(np.median(ks)),
        "prompts": len(groups),
        "definition": "NoveltyBench v1, p=0.8, "
        "partition: same first 4 words or content-word Jaccard>=0.2, u=standalone fluency x on-topic",
    }


TEXT_JUDGES: dict[str, Callable[..., dict]] = {
    "ngram_novelty": judge_ngram_novelty,
    "distinct": judge_distinct,
    "self_bleu": judge_self_bleu,
    "perplexity": judge_perplexity,
    "memorization": judge_memorization,
    "length": judge_length,
    "noveltybench": judge_noveltybench,
    "adherence": judge_adherence,
}


def check_text_judges(names: Sequence[str]) -> list[str]:
    """Validate text judge names; unknown ones raise ``UnknownJudgeError`` with a suggestion."""
    from rlcreate.evaluation import UnknownJudgeError  # one error class for every domain's judges

    for n in names:
        if n not in TEXT_JUDGES:
            close = difflib.get_close_matches(str(n), TEXT_JUDGES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownJudgeError(f"judges: unknown text judge {n!r}.{hint} Text judges: {sorted(TEXT_JUDGES)}")
    return list(names)


def run_text_judges(
    texts: Sequence[str],
    names: Sequence[str] = DEFAULT_TEXT_JUDGES,
    prompts: Sequence[str] | None = None,
    lm: Any = None,
) -> dict[str, dict]:
    """Compute the named judges on ``texts``; ``{judge: {measure: value}}``.

    ``prompts``: one per text (only ``perplexity_in_context`` uses them). ``lm``: the base LM as a
    ``(model, tokenizer)`` pair or a :class:`~rlcreate.text.scoring.ReferenceLM` (``perplexity``)."""
    names = check_text_judges(names)
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("no texts to judge; generate some first (rlcreate generate RUN --n 16)")
    if prompts is not None and len(prompts) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(prompts)} prompts; pass one prompt per text or none")
    return {n: TEXT_JUDGES[n](texts, prompts=prompts, lm=lm) for n in names}


# ------------------------------------------------------------------ paired creative evaluation


def creative_metrics(groups: Sequence[Sequence[str]], prompts: Sequence[str], lm: Any) -> dict[str, np.ndarray]:
    """Every creative-writing measure per prompt: ``groups[i]`` are the k texts drawn for
    ``prompts[i]``. Returns ``{measure: array over prompts}`` (for paired comparisons):

    ``distinct_k``, ``utility_k`` (NoveltyBench, see module doc), ``distinct_1``, ``distinct_2``
    (within the prompt's k texts), ``self_bleu`` (sacrebleu, within the k texts), ``novel_3grams``
    (share of word 3-grams absent from the reference corpus), ``perplexity`` (exp mean token NLL of
    the texts under the base LM given their chat-templated prompt), ``fluency_standalone``,
    ``prompt_pmi``, ``on_topic``, ``prompt_word_recall``, ``words`` (mean length).
    """
    from rlcreate.rewards.diversity import distinct_n, self_bleu
    from rlcreate.text.rewards import word_tokens
    from rlcreate.text.scoring import ReferenceLM

    flat = [t for g in groups for t in g]
    flat_prompts = [p for p, g in zip(prompts, groups) for _ in g]
    model, tok = (lm.model, lm.tokenizer) if isinstance(lm, ReferenceLM) else lm
    in_context = ReferenceLM(model, tok, cache_size=0).token_stats(flat, flat_prompts)
    standalone = _nll_summary(_plain_lm(lm).token_stats(flat, None))[2]
    pmi = np.array(prompt_pmi(flat, flat_prompts, lm))
    recall = np.array(prompt_word_recall(flat, flat_prompts))
    flu = np.array([np.clip(1 - v / FLUENCY_FLOOR_NATS, 0, 1) if v == v else 0.0 for v in standalone])
    known3 = _corpus_ngrams()[3]
    rows: dict[str, list[float]] = {
        k: []
        for k in (
            "distinct_k",
            "utility_k",
            "distinct_1",
            "distinct_2",
            "self_bleu",
            "novel_3grams",
            "perplexity",
            "fluency_standalone",
            "prompt_pmi",
            "on_topic",
            "prompt_word_recall",
            "words",
        )
    }
    start = 0
    for g in groups:
        sl = slice(start, start + len(g))
        start += len(g)
        texts = list(g)
        d, u = noveltybench_scores(texts, flu[sl] * (pmi[sl] > 0))
        rows["distinct_k"].append(d)
        rows["utility_k"].append(u)
        rows["distinct_1"].append(distinct_n(texts, 1, tokenize=word_tokens))
        rows["distinct_2"].append(distinct_n(texts, 2, tokenize=word_tokens))
        rows["self_bleu"].append(self_bleu(texts) if len(texts) > 1 else float("nan"))
        grams = [tuple(w[i : i + 3]) for w in map(word_tokens, texts) for i in range(len(w) - 2)]
        rows["novel_3grams"].append(float(np.mean([x not in known3 for x in grams])) if grams else float("nan"))
        lps = [s.logprobs for s in in_context[sl] if s.n]
        rows["perplexity"].append(float(np.exp(-np.concatenate(lps).mean())) if lps else float("nan"))
        rows["fluency_standalone"].append(float(flu[sl].mean()))
        rows["prompt_pmi"].append(float(pmi[sl].mean()))
        rows["on_topic"].append(float((pmi[sl] > 0).mean()))
        rows["prompt_word_recall"].append(
            float(np.nanmean(recall[sl])) if np.isfinite(recall[sl]).any() else float("nan")
        )
        rows["words"].append(float(np.mean([len(word_tokens(t)) for t in texts])))
    return {k: np.array(v, np.float64) for k, v in rows.items()}


def bootstrap_ci(values: Any, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple:
    """Mean and percentile-bootstrap CI of ``values`` (NaNs dropped; scipy.stats.bootstrap)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(x) == 1 or np.all(x == x[0]):
        return float(x.mean()), float(x.mean()), float(x.mean())
    res = bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


#: measures where a ratio to the baseline is the natural comparison (reported next to the difference)
RATIO_MEASURES = ("perplexity",)


def compare_conditions(per_prompt: dict[str, dict[str, np.ndarray]], baseline: str = "base") -> dict:
    """Means with 95% CIs per condition, and paired per-prompt differences (ratios for perplexity)
    against ``baseline``, with 95% CIs, bootstrapped over prompts."""
    out: dict[str, Any] = {"conditions": {}, "vs_" + baseline: {}}
    base = per_prompt.get(baseline)
    for cond, metrics in per_prompt.items():
        out["conditions"][cond] = {m: dict(zip(("mean", "low", "high"), bootstrap_ci(v))) for m, v in metrics.items()}
        if base is None or cond == baseline:
            continue
        diffs = {}
        for m, v in metrics.items():
            if m in RATIO_MEASURES:
                r = np.log(v / base[m])
                mean, lo, hi = bootstrap_ci(r)
                diffs[m + "_ratio"] = {"mean": float(np.exp(mean)), "low": float(np.exp(lo)), "high": float(np.exp(hi))}
            else:
                diffs[m] = dict(zip(("mean", "low", "high"), bootstrap_ci(v - base[m])))
        out["vs_" + baseline][cond] = diffs
    return out


def sample_k(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    k: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    system: str | None = None,
    batch: int = 32,
) -> list[list[str]]:
    """``k`` ancestral samples per prompt (full vocabulary unless ``top_p`` < 1), seeded so that two
    models given the same arguments get paired draws. Returns one list of k texts per prompt."""
    from rlcreate.text.stepping import LMStepper

    stepper = LMStepper(model, tokenizer, top_k=1, system=system)
    flat = [p for p in prompts for _ in range(k)]
    texts: list[str] = []
    for start in range(0, len(flat), batch):
        texts += stepper.sample(
            flat[start : start + batch],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed + start,
        )
    return [texts[i * k : (i + 1) * k] for i in range(len(prompts))]


def evaluate_finetune_run(
    run: Any,
    tuned: Any,
    k: int = 8,
    split: str = "test",
    n_prompts: int | None = None,
    lm: Any = None,
    seed: int = 1234,
) -> dict:
    """``rlcreate eval`` for a run whose trainer fine-tuned the LM itself (GRPO): the base model
    (``tuned.base``; ``lm`` when already loaded) and the tuned one (a
    :class:`rlcreate.trainers.TunedGenerator`) each write ``k`` texts per prompt of the ``split``
    prompts (TEST by default), sampled as trained with the same seeds; :func:`creative_metrics`
    judges both; writes ``RUN/eval_<split>/paired_samples.json`` and ``creative_metrics.json`` and
    returns the summary."""
    import json
    from pathlib import Path

    from rlcreate.text.data import prompts as shipped_prompts
    from rlcreate.text.loading import load_causal_lm

    run = Path(run)
    s = tuned.sampling
    prompts = shipped_prompts(split)[:n_prompts]
    if lm is None:
        lm = load_causal_lm(tuned.base)
    base_pair = (lm.model, lm.tokenizer) if hasattr(lm, "model") else tuple(lm)
    draws = {
        name: sample_k(m, t, prompts, k, s["max_new_tokens"], s["temperature"], seed=seed, system=s.get("system"))
        for name, (m, t) in (("base", base_pair), ("tuned", (tuned.model, tuned.tokenizer)))
    }
    per_prompt = {name: creative_metrics(groups, prompts, base_pair) for name, groups in draws.items()}
    summary = compare_conditions(per_prompt, baseline="base")
    summary.update(
        split=split,
        k=k,
        prompts=len(prompts),
        seed=seed,
        model=tuned.rlcreate_source,
        sampler=f"ancestral, temperature {s['temperature']}, full vocabulary, {s['max_new_tokens']} new tokens",
        judges_model=f"base LM {tuned.base} (perplexity, fluency, PMI); no MiniLM",
    )
    out = run / f"eval_{split}"
    out.mkdir(exist_ok=True)
    pairs = [
        {"prompt": p, "base": b, "tuned": t}
        for p, bs, ts in zip(prompts, draws["base"], draws["tuned"])
        for b, t in zip(bs, ts)
    ]
    write_text(out / "paired_samples.json", json.dumps(pairs, indent=2, ensure_ascii=False))
    write_text(out / "creative_metrics.json", json.dumps(summary, indent=2))
    # the report's usual shape: judges per group (cheap set judges; the model-based measures are in
    # `creative`), the run's own group is the tuned model
    cheap = ["ngram_novelty", "distinct", "self_bleu", "memorization", "length"]
    groups = {}
    for name in ("base", "tuned"):
        flat = [t for g in draws[name] for t in g]
        judged = run_text_judges(flat, cheap, prompts=[p for p in prompts for _ in range(k)])
        judged["creative"] = {m: v["mean"] for m, v in summary["conditions"][name].items()}
        groups[name] = {"judges": judged}
    return {
        "run": run.name,
        "domain": "text",
        "kind": "finetune",
        "primary": "tuned",
        "source": f"{k} fresh texts per {split.upper()} prompt ({len(prompts)} prompts) from the base and the "
        f"tuned model ({tuned.rlcreate_source}), same seeds (eval_{split}/paired_samples.json)",
        "n_levels": len(pairs),
        "groups": groups,
        "judges": groups["tuned"]["judges"],
        "creative": summary,
        "paired_examples": pairs[::k][:6],
        "texts": [t for g in draws["tuned"] for t in g],
        "notes": [],
    }
