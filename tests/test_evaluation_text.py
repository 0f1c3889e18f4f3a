"""Evaluation of text recipes (baselines at equal budget, text judges, text audit, report) with a tiny
random GPT-2 saved as a folder; memorisation / collapse flags; the recipe's baselines: section.
Runs on the shipped SmolLM2 are marked slow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from rlcreate.evaluation import UnknownJudgeError
from rlcreate.evaluation.audit import AuditError, audit_run
from rlcreate.evaluation.baselines import BaselineError, baseline_section, read_baseline_section, run_baseline
from rlcreate.evaluation.report import evaluate_run, write_report
from rlcreate.levels import corpus
from rlcreate.levels.evaluate import level_flags
from rlcreate.recipe import RecipeError, load_recipe, parse_recipe
from rlcreate.text.baselines import sample_texts
from rlcreate.text.data import reference_corpus
from rlcreate.text.evaluate import text_flags
from rlcreate.text.judges import run_text_judges
from tests.tiny_lm import tiny_lm_folder as _tiny_lm_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny LM folder, prompt files and a text recipe scored by distinct-1 (no MiniLM, no SmolLM2)."""
    root = tmp_path_factory.mktemp("evaltext")
    lm = _tiny_lm_folder(root / "lm")
    (root / "train.txt").write_text("w1 w2\nw3 w4 w5\nw6\n", encoding="utf-8")
    (root / "heldout.txt").write_text("w9\nw10 w11\n", encoding="utf-8")
    data = {"name": "tiny-text", "seed": 0,
            "env": {"id": "rlcreate/TextTokens-v0",
                    "kwargs": {"lm": str(lm), "prompts": str(root / "train.txt"),
                               "eval_prompts": str(root / "heldout.txt"), "top_k": 4, "max_new_tokens": 6,
                               "min_new_tokens": 3}},
            "rewards": {"distinct": {"reward": "distinct_n", "args": {"n": 1}}},
            "judges": ["ngram_novelty", "distinct", "self_bleu", "perplexity", "memorization", "length"],
            "trainer": {"total_timesteps": 96, "n_envs": 4, "samples": 4, "checkpoints": 2,
                        "hyper": {"n_steps": 12, "batch_size": 24, "n_epochs": 1}}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return root, load_recipe(root / "tiny.yaml")


def _lm(root):
    from rlcreate.text.loading import load_causal_lm

    return load_causal_lm(str(root / "lm"))


# ---- sampling ---------------------------------------------------------------------------------

def test_sample_texts_respects_min_tokens_and_seed(tiny):
    from rlcreate.text.stepping import LMStepper

    root, _ = tiny
    model, tok = _lm(root)
    stepper = LMStepper(model, tok, top_k=1)
    stepper.eos_token_ids = [5]  # make a frequent word the EOS, so early stops would show
    a = sample_texts(stepper, ["w1"] * 16, max_new_tokens=6, min_new_tokens=4, seed=3)
    assert all(len(t.split()) >= 4 for t in a) and all("w2" not in t.split()[:4] for t in a)
    assert a == sample_texts(stepper, ["w1"] * 16, max_new_tokens=6, min_new_tokens=4, seed=3)
    assert a != sample_texts(stepper, ["w1"] * 16, max_new_tokens=6, min_new_tokens=4, seed=4)


# ---- baselines --------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["sampling", "best-of-n"])
def test_text_baseline_equal_budget_and_run_folder(tiny, method, tmp_path):
    root, recipe = tiny
    info = run_baseline(recipe, method, tmp_path / method, budget=24, n=4, lm=_lm(root), progress_bar=False,
                        section={"grid": [[0.7, 0.9], [1.3, 1.0]]} if method == "sampling" else None)
    assert info["evaluations"] == 24 and info["budget"] == 24
    progress = json.loads((tmp_path / method / "progress.json").read_text())
    assert progress[-1]["evaluations"] == 24
    samples = tmp_path / method / "samples"
    records = json.loads((samples / "texts.json").read_text())
    metrics = json.loads((samples / "metrics.json").read_text())
    assert len(records) == 4 and metrics["primary"] == info["primary"]
    from rlcreate.text.runs import read_text_records

    assert read_text_records(samples) == records  # rlcreate's own files pass the shape check
    heldout = {"w9", "w10 w11"}
    groups = [g for g in records[0] if g != "prompt"]
    for r in records:
        for g in groups:
            assert r[g]["prompt"] in heldout and set(r[g]["terms"]) == {"distinct"}
            assert len(r[g]["text"].split()) >= 3  # min_new_tokens held
    cfg = yaml.safe_load((tmp_path / method / "config.yaml").read_text())
    assert cfg["baselines"]["method"] == method and load_recipe(tmp_path / method / "config.yaml")
    if method == "best-of-n":
        assert info["selections"] == 6 and groups == ["best_of_n", "first_of_n"]
        # the best of 4 is never worse than the first of the same 4 candidates
        assert all(r["best_of_n"]["total"] >= r["first_of_n"]["total"] for r in records)
    else:
        assert groups == ["T0.7_p0.9", "T1.3_p1"]
        assert info["primary"] == max(info["group_means"], key=info["group_means"].get)


@pytest.mark.parametrize("content", [
    '{"prompt": "p"}',  # not a list
    '[{"prompt": "p", "steered": {"text": 3, "prompt": "p", "total": 1.0}}]',  # text not a string
    '[{"prompt": "p", "steered": {"text": "t", "prompt": "p", "total": "high"}}]',
    '[{"prompt": "p", "a": {"text": "t", "prompt": "p", "total": 1}}, {"prompt": "p"}]',  # groups differ
])
def test_hand_edited_texts_json_reads_as_no_texts(tmp_path, content):
    from rlcreate.text.evaluate import evaluate_text_run
    from rlcreate.text.runs import read_text_records
    from rlcreate.train.runner import RunFolderError

    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "texts.json").write_text(content)
    assert read_text_records(tmp_path / "samples") == []
    with pytest.raises(RunFolderError, match="no readable samples/texts.json"):
        evaluate_text_run(tmp_path, SimpleNamespace(recipe=None, trainer=SimpleNamespace(produces="policy")),
                          judges=["distinct"])


def test_text_baseline_is_deterministic(tiny, tmp_path):
    root, recipe = tiny
    lm = _lm(root)
    for d in ("a", "b"):
        run_baseline(recipe, "best-of-n", tmp_path / d, budget=16, n=4, lm=lm, progress_bar=False)
    assert (tmp_path / "a/samples/texts.json").read_text() == (tmp_path / "b/samples/texts.json").read_text()


def test_text_baseline_bad_input(tiny, tmp_path):
    root, recipe = tiny
    with pytest.raises(BaselineError, match="--method = 'cma': not a baseline for rlcreate/TextTokens-v0.*'best-of-n'"):
        run_baseline(recipe, "cma", tmp_path / "x", budget=8, progress_bar=False)
    with pytest.raises(BaselineError, match="Did you mean 'best-of-n'"):
        run_baseline(recipe, "best-of", tmp_path / "x", budget=8, progress_bar=False)
    with pytest.raises(BaselineError, match="budget >= 8"):
        run_baseline(recipe, "best-of-n", tmp_path / "x", budget=4, n=8, lm=_lm(root), progress_bar=False)


# ---- the baselines: section -------------------------------------------------------------------

def test_baselines_section_validation(tiny):
    _, text_recipe = tiny
    level_recipe = load_recipe(ROOT / "rlcreate" / "recipes" / "legacy_mario_latent.yaml")
    ok = baseline_section({"descriptors": ["enemies", "leniency"], "budget": 512}, level_recipe)
    assert ok == {"descriptors": ["enemies", "leniency"], "budget": 512}
    cases = [({"descriptors": ["enemis"]}, "baselines.descriptors: unknown behaviour descriptor 'enemis'. Did you mean 'enemies'"),
             ({"descriptors": "enemies"}, "write a list"),
             ({"descriptors": ["enemies", "leniency", "gaps"]}, "drop 1"),
             ({"budget": 0}, "baselines.budget = 0: must be an integer >= 1"),
             ({"budgett": 5}, "Did you mean 'budget'"),
             ({"method": "cmaa"}, "Did you mean 'cma'"),
             ({"n": 4}, "baselines.n: does not apply to level recipes"),
             ([1, 2], "write a mapping")]
    for raw, msg in cases:
        with pytest.raises(RecipeError, match=msg.replace("(", "\\(").replace(")", "\\)")):
            baseline_section(raw, level_recipe)
    with pytest.raises(RecipeError, match="baselines.descriptors: does not apply to text recipes"):
        baseline_section({"descriptors": ["enemies"]}, text_recipe)
    with pytest.raises(RecipeError, match="temperature > 0"):
        baseline_section({"grid": [[0, 1.0]]}, text_recipe)
    # baselines.batch takes what --batch takes (best-of-n runs with 1; level searches refuse < 2 themselves)
    assert baseline_section({"batch": 1}, text_recipe) == {"batch": 1}
    with pytest.raises(RecipeError, match="baselines.batch = 0: must be an integer >= 1"):
        baseline_section({"batch": 0}, text_recipe)
    # parse_recipe accepts the section (validated here, not there)
    data = yaml.safe_load((ROOT / "rlcreate" / "recipes" / "legacy_mario_latent.yaml").read_text())
    data["baselines"] = {"descriptors": ["enemies", "leniency"]}
    assert parse_recipe(data).env_id == "rlcreate/MarioLatent-v0"


def test_level_baseline_uses_section_descriptors(tmp_path):
    import torch

    from rlcreate.levels.generators.latent import LatentLevelGenerator, LevelVAE, VAEConfig

    torch.manual_seed(0)
    LatentLevelGenerator.from_module(LevelVAE(VAEConfig(latent_dim=8, hidden=16))).save(tmp_path / "vae")
    data = yaml.safe_load((ROOT / "rlcreate" / "recipes" / "legacy_mario_latent.yaml").read_text())
    data["env"]["kwargs"].update(n_segments=2, generator=str(tmp_path / "vae"))
    data["trainer"].update(samples=4, n_envs=4)
    data["baselines"] = {"descriptors": ["enemies", "leniency"], "budget": 16}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    recipe = load_recipe(tmp_path / "r.yaml")
    section = read_baseline_section(tmp_path / "r.yaml", recipe)
    info = run_baseline(recipe, "map-elites", tmp_path / "run", section=section, progress_bar=False)
    assert info["descriptors"] == ["enemies", "leniency"] and info["evaluations"] == 16
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["baselines"]
    assert saved["descriptors"] == ["enemies", "leniency"] and saved["budget"] == 16


# ---- judges -----------------------------------------------------------------------------------

def test_text_judges_on_known_texts(tiny):
    root, _ = tiny
    ref = reference_corpus()[:8]
    new = ["purple engines hum quietly beneath frozen orchards tonight", "seven kites argue about thunder and salt",
           "a ladder of moths climbed toward the lantern", "the ferry sang to barnacles in morse code"]
    jr = run_text_judges(ref, ["ngram_novelty", "memorization", "distinct", "length"])
    jn = run_text_judges(new, ["ngram_novelty", "memorization", "distinct"])
    assert jr["ngram_novelty"]["novel_3grams"] == 0.0 and jn["ngram_novelty"]["novel_3grams"] > 0.9
    assert jr["memorization"]["copied"] == 1.0 and jn["memorization"]["copied"] == 0.0
    assert jr["memorization"]["mean_longest"] == pytest.approx(jr["length"]["mean_words"])
    rep = run_text_judges([new[0]] * 4, ["distinct", "self_bleu"])
    div = run_text_judges(new, ["distinct", "self_bleu"])
    assert rep["distinct"]["distinct_2"] == pytest.approx(0.25) and div["distinct"]["distinct_2"] == 1.0
    assert rep["self_bleu"]["self_bleu"] == pytest.approx(100.0) and div["self_bleu"]["self_bleu"] < 20


def test_perplexity_judge_prefers_the_lm_own_samples(tiny):
    from rlcreate.text.stepping import LMStepper

    root, _ = tiny
    lm = _lm(root)
    greedy = sample_texts(LMStepper(*lm, top_k=1), ["w1"] * 4, max_new_tokens=8, temperature=0.0)
    rng = np.random.default_rng(0)
    noise = [" ".join(f"w{i}" for i in rng.integers(0, 61, 8)) for _ in range(4)]
    g = run_text_judges(greedy, ["perplexity"], prompts=["w1"] * 4, lm=lm)["perplexity"]
    n = run_text_judges(noise, ["perplexity"], lm=lm)["perplexity"]
    assert g["perplexity_in_context"] < n["perplexity"] and g["fluency_standalone"] >= n["fluency_standalone"]
    assert "perplexity_in_context" not in n
    assert "skipped" in run_text_judges(noise, ["perplexity"])["perplexity"]


def test_text_judge_bad_input():
    with pytest.raises(UnknownJudgeError, match="Did you mean 'self_bleu'"):
        run_text_judges(["a b"], ["selfbleu"])
    with pytest.raises(UnknownJudgeError, match="Text judges"):
        run_text_judges(["a b"], ["tile_kl"])  # a level judge is not a text judge
    with pytest.raises(ValueError, match="2 texts but 1 prompts"):
        run_text_judges(["a", "b"], ["length"], prompts=["p"])


# ---- memorisation / collapse flags ------------------------------------------------------------

def test_level_flags():
    train = [g for g in corpus.training_windows(64, 64)[:6]]
    copied = level_flags(train)
    assert copied["memorisation"]["flag"] and copied["memorisation"]["copied_windows"] == 1.0
    flat = np.zeros((14, 64), np.int8)
    flat[12:] = 1
    same = level_flags([flat] * 5)
    assert same["collapse"]["flag"] and "one leniency x linearity cell" in same["collapse"]["reason"]
    held = []
    for b in corpus.held_out_blocks():
        g = b.grid()
        held += [g[:, s:s + 64] for s in range(0, g.shape[1] - 63, 256)]
    real = level_flags(held[:8])
    assert not real["memorisation"]["flag"] and not real["collapse"]["flag"]


def test_text_flags():
    c = reference_corpus()
    assert text_flags(c[:8])["memorisation"]["flag"]
    assert not text_flags(c[:8])["collapse"]["flag"]
    rep = text_flags(["the ferry sang to barnacles in morse code"] * 8)
    assert rep["collapse"]["flag"] and not rep["memorisation"]["flag"]


# ---- RL run: eval (judges on all groups, audit both modes) and report -------------------------

@pytest.fixture(scope="module")
def rl_run(tiny):
    from rlcreate.train.runner import train_run

    root, recipe = tiny
    run = root / "runs" / "tiny-text"
    train_run(recipe, run, progress_bar=False)
    return run


def test_text_eval_audit_and_report(rl_run, tiny, tmp_path):
    root, recipe = tiny
    res = evaluate_run(rl_run, audit_levels=4)
    assert res["domain"] == "text" and res["primary"] == "steered"
    assert set(res["groups"]) == {"steered", "plain", "lm_topk"}
    assert res["judges"]["perplexity"]["perplexity"] > 1 and "self_bleu" in res["judges"]
    assert set(res["flags"]) == {"memorisation", "collapse"}
    audit = res["audit"]
    assert audit["checkpoints"] == [48, 96] and audit["modes"] == ["stochastic", "deterministic"]
    assert audit["pairs"] == {}  # distinct_n has no judge counterpart
    assert [f["steps"] for f in audit["flag_series"]["deterministic"]] == [48, 96]
    on_disk = json.loads((rl_run / "metrics.json").read_text())
    assert on_disk["groups"]["plain"]["judges"]["length"]["mean_words"] >= 3
    run_baseline(recipe, "best-of-n", root / "bon", budget=16, n=4, lm=_lm(root), progress_bar=False)
    evaluate_run(root / "bon")
    page = write_report([rl_run, root / "bon"], tmp_path / "rep")
    text = page.read_text()
    assert "<h3>Texts</h3>" in text and "best_of_n" in text and "perplexity (standalone)" in text
    assert "baseline: best-of-n" in text and "Judges by group" in text
    first = json.loads((rl_run / "samples" / "texts.json").read_text())[0]["steered"]["text"]
    assert __import__("html").escape(first) in text
    with pytest.raises(AuditError, match="stochastic"):
        audit_run(rl_run, modes=["greedy"])


def test_text_audit_pairs_with_counterparts(rl_run, tiny, monkeypatch):
    """A recipe whose fluency term has a judge: the pair is measured in both modes at both checkpoints."""
    root, _ = tiny
    cfg = yaml.safe_load((rl_run / "config.yaml").read_text())
    cfg["rewards"]["fluency"] = {"reward": "fluency", "weight": 1.0, "args": {"lm": cfg["env"]["kwargs"]["lm"]},
                                 "transform": None}
    (rl_run / "config.yaml").write_text(yaml.safe_dump(cfg))
    try:
        audit = audit_run(rl_run, n_levels=4, write=False)
    finally:
        cfg["rewards"].pop("fluency")
        (rl_run / "config.yaml").write_text(yaml.safe_dump(cfg))
    pair = audit["pairs"]["fluency"]
    assert pair["judge_name"] == "perplexity.fluency_standalone" and set(pair["by_mode"]) == {"stochastic",
                                                                                              "deterministic"}
    for q in pair["by_mode"].values():
        assert len(q["proxy"]) == 2 and all(0 <= v <= 1 for v in q["proxy"] + q["judge"])
        assert q["verdict"] in ("ok", "stalled", "diverged")


# ---- CLI --------------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rlcreate.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_cli_text_baseline_and_eval(tiny, tmp_path):
    root, _ = tiny
    r = _cli("baseline", root / "tiny.yaml", "--method", "best-of-n", "--n", "2", "--budget", "8", "--out", tmp_path,
             "--quiet")
    assert r.returncode == 0, r.stderr
    assert "best-of-n: 8 reward evaluations" in r.stdout
    run = tmp_path / "tiny-text-best-of-n"
    r = _cli("eval", run, "--judges", "distinct,length")
    assert r.returncode == 0, r.stderr
    assert set(json.loads((run / "metrics.json").read_text())["judges"]) == {"distinct", "length"}
    r = _cli("eval", run, "--judges", "tile_kl")
    assert r.returncode == 2 and "unknown text judge 'tile_kl'" in r.stderr
    r = _cli("baseline", root / "tiny.yaml", "--out", tmp_path)
    assert r.returncode == 2 and "no --method given" in r.stderr


# ---- the shipped SmolLM2 ----------------------------------------------------------------------

@pytest.mark.slow
def test_best_of_n_on_smollm2_beats_first_of_n(tmp_path):
    """Real recipe, small budget: reranking by the recipe's own reward raises its mean composite."""
    recipe = load_recipe(ROOT / "rlcreate" / "recipes" / "text_steer.yaml")
    recipe.trainer["samples"] = 8
    info = run_baseline(recipe, "best-of-n", tmp_path / "bon", budget=64, n=4, progress_bar=False)
    m = json.loads((tmp_path / "bon" / "samples" / "metrics.json").read_text())["mean"]
    assert m["best_of_n/total"] > m["first_of_n/total"] and info["evaluations"] == 64
    res = evaluate_run(tmp_path / "bon")
    assert 1 < res["judges"]["perplexity"]["perplexity"] < 1000
