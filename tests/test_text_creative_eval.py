"""Creative-writing evaluation: NoveltyBench distinct_k / utility_k, prompt adherence (PMI under the
base LM, prompt-word recall), paired comparisons with bootstrap CIs, and `rlcreate eval` on a
finetune run (base vs tuned on TEST prompts). A tiny random GPT-2 stands in for the base LM."""

import json

import numpy as np
import pytest

from rlcreate.text.judges import (
    NOVELTYBENCH_PATIENCE,
    bootstrap_ci,
    compare_conditions,
    creative_metrics,
    evaluate_finetune_run,
    noveltybench_scores,
    prompt_pmi,
    prompt_word_recall,
    run_text_judges,
    sample_k,
)
from rlcreate.text.scoring import ReferenceLM
from tests.tiny_lm import tiny_lm, tiny_lm_folder


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


def test_noveltybench_scores_follow_the_definition():
    texts = ["A red fox runs over the hill.", "The red fox runs over a hill!", "Whales sing in the cold deep sea."]
    d, u = noveltybench_scores(texts, [1.0, 1.0, 0.5])
    p = NOVELTYBENCH_PATIENCE
    assert d == 2.0
    # answer 2 repeats answer 1 (no credit); answer 3 is new, discounted by p^2, quality 0.5
    assert u == pytest.approx((1 - p) / (1 - p ** 3) * (1.0 + p ** 2 * 0.5))
    assert noveltybench_scores(["same words here"] * 4, [1.0] * 4) == (1.0, pytest.approx((1 - p) / (1 - p ** 4)))
    d, u = noveltybench_scores(texts)
    assert d == 2.0 and np.isnan(u)


def test_prompt_word_recall_counts_content_words_of_the_prompt():
    out = prompt_word_recall(["The fox sat on the bridge.", "Nothing here."],
                             ["Describe a bridge and a fox", "Describe a bridge and a fox"])
    assert out == [1.0, 0.0]


def test_prompt_pmi_is_the_likelihood_gain_of_the_prompt_per_token(lm):
    texts, prompts = ["w5 w6 w7", "w1 w2"], ["w1 w2", "w3"]
    got = prompt_pmi(texts, prompts, lm)
    ref = ReferenceLM(*lm, chat=False, cache_size=0)
    for t, p, value in zip(texts, prompts, got):
        cond = ref.token_stats([f" {p}"], [f"{t}\n\nWriting prompt:"])[0]
        uncond = ref.token_stats([f" {p}"], ["Writing prompt:"])[0]
        assert value == pytest.approx((cond.logprobs.sum() - uncond.logprobs.sum()) / cond.n, abs=1e-5)


def test_bootstrap_ci_and_paired_comparison():
    mean, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and lo < mean < hi
    assert bootstrap_ci([2.0, 2.0, np.nan]) == (2.0, 2.0, 2.0)
    base = {"distinct_k": np.array([3.0, 4.0, 5.0]), "perplexity": np.array([10.0, 20.0, 40.0])}
    tuned = {"distinct_k": base["distinct_k"] + 1, "perplexity": base["perplexity"] * 2}
    out = compare_conditions({"base": base, "tuned": tuned})
    assert out["vs_base"]["tuned"]["distinct_k"] == {"mean": 1.0, "low": 1.0, "high": 1.0}
    assert out["vs_base"]["tuned"]["perplexity_ratio"]["mean"] == pytest.approx(2.0)
    assert out["conditions"]["tuned"]["distinct_k"]["mean"] == 5.0


def test_creative_metrics_per_prompt(lm):
    groups = [["w1 w2 w3", "w1 w2 w3", "w1 w2 w3"], ["w4 w5", "w6 w7 w8", "w9"]]
    m = creative_metrics(groups, ["w1", "w2"], lm)
    assert set(m) >= {"distinct_k", "utility_k", "distinct_1", "distinct_2", "self_bleu", "novel_3grams",
                      "perplexity", "prompt_pmi", "on_topic", "prompt_word_recall", "fluency_standalone"}
    assert all(len(v) == 2 for v in m.values())
    assert m["distinct_k"].tolist() == [1.0, 3.0]
    assert m["self_bleu"][0] == pytest.approx(100.0) and m["self_bleu"][1] < 50
    assert m["distinct_1"][0] == pytest.approx(1 / 3) and m["distinct_1"][1] == 1.0
    assert np.all(np.isfinite(m["perplexity"])) and np.all(m["perplexity"] > 1)


def test_noveltybench_and_adherence_judges_group_by_prompt(lm):
    texts = ["w1 w2", "w1 w2", "w3 w4", "w5 w6"]
    out = run_text_judges(texts, ["noveltybench", "adherence"], prompts=["a", "a", "b", "b"], lm=lm)
    assert out["noveltybench"]["distinct_k"] == 1.5 and out["noveltybench"]["prompts"] == 2
    assert 0 <= out["noveltybench"]["utility_k"] <= 1
    assert len(out["adherence"]["per_text_pmi"]) == 4 and 0 <= out["adherence"]["on_topic"] <= 1
    assert "skipped" in run_text_judges(texts, ["noveltybench"])["noveltybench"]


def test_sample_k_is_paired_by_seed(lm):
    a = sample_k(*lm, ["w1", "w2"], 3, 5, seed=4)
    assert a == sample_k(*lm, ["w1", "w2"], 3, 5, seed=4) and len(a) == 2 and all(len(g) == 3 for g in a)
    assert a != sample_k(*lm, ["w1", "w2"], 3, 5, seed=5)


def test_eval_of_a_finetune_run_pairs_base_and_tuned_on_test_prompts(tmp_path):
    from rlcreate.text.loading import load_causal_lm
    from rlcreate.trainers import TunedGenerator

    base = tiny_lm_folder(tmp_path / "lm", seed=0)
    run = tmp_path / "runs" / "ft"
    other = load_causal_lm(str(tiny_lm_folder(run / "model", seed=1)))  # the "tuned" model: other weights
    tuned = TunedGenerator(other.model, other.tokenizer, str(base),
                           {"temperature": 1.0, "max_new_tokens": 5, "system": None}, "final model (model/)")
    out = evaluate_finetune_run(run, tuned, k=3, n_prompts=4)
    pairs = json.loads((run / "eval_test" / "paired_samples.json").read_text())
    from rlcreate.text.data import prompts
    assert [p["prompt"] for p in pairs] == [p for p in prompts("test")[:4] for _ in range(3)]
    assert any(p["base"] != p["tuned"] for p in pairs)
    creative = json.loads((run / "eval_test" / "creative_metrics.json").read_text())
    assert creative["split"] == "test" and creative["k"] == 3 and creative["prompts"] == 4
    assert set(creative["vs_base"]["tuned"]) >= {"distinct_k", "utility_k", "perplexity_ratio", "prompt_pmi"}
    assert out["primary"] == "tuned" and out["judges"]["creative"]["distinct_k"] <= 3
    assert len(out["texts"]) == 12


def test_several_answers_parses_numbered_replies_and_the_baseline_method_runs(tmp_path, monkeypatch):
    import rlcreate.text.baselines as tb
    from rlcreate.recipe import parse_recipe

    replies = iter([["1. w1 w2\n2) w3\n3: w4 w5", "no numbering\nsecond line"]])
    monkeypatch.setattr(tb, "sample_texts", lambda stepper, asks, *a, **k: next(replies))
    answers, raw = tb.several_answers(None, ["p", "q"], 3, 5)
    assert answers == [["w1 w2", "w3", "w4 w5"], ["no numbering", "second line"]]
    monkeypatch.undo()

    lm_dir = tiny_lm_folder(tmp_path / "lm")
    (tmp_path / "p.txt").write_text("w1 w2\nw3\n", encoding="utf-8")
    recipe = parse_recipe({"name": "sev", "seed": 0,
                           "env": {"id": "rlcreate/TextTokens-v0",
                                   "kwargs": {"lm": str(lm_dir), "prompts": str(tmp_path / "p.txt"),
                                              "eval_prompts": str(tmp_path / "p.txt"), "max_new_tokens": 4}},
                           "rewards": {"distinct": {"reward": "distinct_n", "args": {"n": 1}}},
                           "trainer": {"total_timesteps": 40, "n_envs": 4, "samples": 2}})
    info = tb.run_text_baseline(recipe, "several-answers", tmp_path / "run", budget=6, n=2, progress_bar=False)
    assert info["method"] == "several-answers" and info["evaluations"] <= 6 and info["answers_per_reply"] == 2
    records = json.loads((tmp_path / "run" / "samples" / "texts.json").read_text())
    assert records and all(r["several_answers"]["prompt"] in ("w1 w2", "w3") for r in records)
    # without --n, several-answers asks for the documented default (4), not best-of-n's 8
    info = tb.run_text_baseline(recipe, "several-answers", tmp_path / "run4", budget=8, progress_bar=False)
    assert info["answers_per_reply"] == tb.DEFAULT_ANSWERS_PER_REPLY == 4
