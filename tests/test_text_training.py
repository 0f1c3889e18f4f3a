"""Text training from recipes: MaskablePPO steering over TextTokens-v0 (train, generate, comparison
files) and TRL GRPO + LoRA fine-tuning (run folder, merged model, report, resume), with a tiny random
GPT-2 saved to a folder; bad recipes, prompts and models. Real SmolLM2 runs are marked slow."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlcreate.recipe import RecipeError, parse_recipe
from rlcreate.rewards.diversity import DistinctNReward
from rlcreate.text.loading import ModelNotFoundError
from rlcreate.text.runs import resolve_prompts, text_settings
from rlcreate.train.runner import RunFolderError, restore, train_run


def train_text_recipe(recipe, run, progress_bar=False):
    return train_run(recipe, run, progress_bar=progress_bar)


def generate_texts(run, n, out, seed=None):
    asm, model = restore(run)
    return asm.domain.generate(model, asm, n, out, seed=seed)

REPO = Path(__file__).resolve().parents[1]
from tests.tiny_lm import tiny_lm_folder as _tiny_lm_folder


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_training")
    lm = _tiny_lm_folder(root / "lm")
    (root / "train.txt").write_text("w1 w2\nw3 w4 w5\nw6\n", encoding="utf-8")
    (root / "heldout.txt").write_text("w9\nw10 w11\n", encoding="utf-8")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    return {"root": root, "lm": str(lm), "train": str(root / "train.txt"), "heldout": str(root / "heldout.txt"),
            "latin1": str(root / "latin1.txt")}


def recipe_dict(files, **kwargs):
    env = {"lm": files["lm"], "prompts": files["train"], "eval_prompts": files["heldout"], "top_k": 4,
           "max_new_tokens": 6}
    env.update(kwargs.pop("env", {}))
    data = {"name": "tiny", "seed": 0, "env": {"id": "rlcreate/TextTokens-v0", "kwargs": env},
            "rewards": {"distinct": {"reward": "distinct_n", "args": {"n": 1}}},
            "trainer": {"total_timesteps": 96, "n_envs": 4, "samples": 6, "checkpoints": 2,
                        "hyper": {"n_steps": 12, "batch_size": 24, "n_epochs": 2}}}
    data.update(kwargs)
    return data


# ------------------------------------------------------------------------------- steering (SB3)

@pytest.fixture(scope="module")
def steer_run(files):
    recipe = parse_recipe(recipe_dict(files))
    run = files["root"] / "runs" / "tiny"
    summary = train_text_recipe(recipe, run, progress_bar=False)
    return recipe, run, summary


def test_train_writes_the_level_run_layout_and_a_comparison(steer_run):
    recipe, run, summary = steer_run
    for name in ("config.yaml", "model/policy.safetensors", "model/reward_state.npz", "tb", "checkpoints", "samples"):
        assert (run / name).exists(), name
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = [EventAccumulator(str(p.parent)).Reload() for p in (run / "tb").rglob("events.out.tfevents*")]
    assert any("rewards/distinct" in ea.Tags()["scalars"] for ea in events)

    records = json.loads((run / "samples" / "texts.json").read_text())
    assert len(records) == summary["n"] == recipe.trainer["samples"]
    heldout = set(resolve_prompts(recipe.env_kwargs["eval_prompts"], "eval_prompts"))
    for rec in records:
        assert rec["prompt"] in heldout and rec["steered"]["prompt"] == rec["plain"]["prompt"] == rec["prompt"]
        assert rec["lm_topk"]["prompt"] in heldout
        assert set(rec["steered"]["terms"]) == {"distinct"}
    # Totals are the recipe's reward of the written texts (distinct_n is stateless: recompute it).
    for group in ("steered", "plain", "lm_topk"):
        texts = [r[group]["text"] for r in records]
        expected = [v if v is not None else 0.0 for v in DistinctNReward(1)(texts)]
        assert [r[group]["total"] for r in records] == pytest.approx(expected)
        assert summary["mean"][f"{group}/total"] == pytest.approx(np.mean(expected))
    assert summary["mean"]["steered_minus_plain"] == pytest.approx(
        summary["mean"]["steered/total"] - summary["mean"]["plain/total"])
    md = (run / "samples" / "texts.md").read_text()
    assert "| steered |" in md and "| plain |" in md


def test_plain_group_is_seeded_ancestral_sampling_of_the_same_lm(steer_run, files):
    from rlcreate.text.loading import load_causal_lm
    from rlcreate.text.stepping import LMStepper

    recipe, run, _ = steer_run
    records = json.loads((run / "samples" / "texts.json").read_text())
    model, tok = load_causal_lm(files["lm"])
    texts = LMStepper(model, tok, top_k=4).sample([r["prompt"] for r in records], max_new_tokens=6,
                                                   temperature=1.0, seed=recipe.seed + 1)
    assert texts == [r["plain"]["text"] for r in records]


def test_generate_is_deterministic_and_keeps_the_run(steer_run, tmp_path):
    recipe, run, _ = steer_run
    before = sorted(p.name for p in run.iterdir())
    a = generate_texts(run, 5, tmp_path / "a", seed=3)
    b = generate_texts(run, 5, tmp_path / "b", seed=3)
    assert (tmp_path / "a" / "texts.json").read_text() == (tmp_path / "b" / "texts.json").read_text()
    assert a["n"] == 5 and a["mean"] == b["mean"]
    assert sorted(p.name for p in run.iterdir()) == before


def test_generate_needs_a_trained_model(files, tmp_path):
    parse_recipe(recipe_dict(files)).dump(tmp_path / "config.yaml")
    with pytest.raises(RunFolderError, match="has no policy"):
        generate_texts(tmp_path, 2, tmp_path / "out")


# -------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("env, match", [
    ({"top_kk": 4}, r"env.kwargs: unknown key 'top_kk'. Did you mean 'top_k'\?"),
    ({"min_new_tokens": 9}, r"min_new_tokens = 9: must not exceed max_new_tokens \(6\)"),
    ({"max_new_tokens": 0}, r"env.kwargs.max_new_tokens = 0: must be an integer >= 1"),
    ({"hidden_clip": -1}, r"hidden_clip = -1: must be a positive number"),
])
def test_text_settings_errors_name_field_value_and_fix(files, env, match):
    with pytest.raises(RecipeError, match=match):
        text_settings(parse_recipe(recipe_dict(files, env=env)))


def test_prompt_specs(files):
    assert resolve_prompts("heldout", "f") and resolve_prompts(files["train"], "f") == ["w1 w2", "w3 w4 w5", "w6"]
    with pytest.raises(RecipeError, match=r"env.kwargs.prompts = 'trian'.*Did you mean 'train'\?"):
        resolve_prompts("trian", "env.kwargs.prompts")
    with pytest.raises(RecipeError, match=r"env.kwargs.prompts: prompt file .*latin1.txt' is not UTF-8 .*re-save it as UTF-8"):
        resolve_prompts(files["latin1"], "env.kwargs.prompts")
    with pytest.raises(RecipeError, match=r"prompt 1 is empty"):
        resolve_prompts(["w1", "  "], "env.kwargs.prompts")


def test_over_long_prompt_and_unknown_model_fail_before_writing(files, tmp_path):
    long = parse_recipe(recipe_dict(files, env={"prompts": ["w1 " * 40], "max_prompt_tokens": 16}))
    with pytest.raises(RecipeError, match=r"env.kwargs.prompts: prompt 0 is 40 tokens long .* over the limit of 16"):
        train_text_recipe(long, tmp_path / "run", progress_bar=False)
    missing = parse_recipe(recipe_dict(files, env={"lm": "no-such-org/no-such-model"}))
    with pytest.raises(ModelNotFoundError, match=r"env.kwargs.lm = 'no-such-org/no-such-model'.*"
                                                 r"offline default 'smollm2-135m-instruct'.*local folder"):
        train_text_recipe(missing, tmp_path / "run", progress_bar=False)
    assert not (tmp_path / "run").exists()


def test_cli_train_with_non_utf8_prompt_file_exits_2(files, tmp_path, capsys):
    from rlcreate.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(files, env={"prompts": files["latin1"]})), encoding="utf-8")
    assert main(["train", str(path), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error: env.kwargs.prompts: prompt file" in err and "not UTF-8" in err
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- fine-tuning (TRL)

from rlcreate.rewards.registry import register  # noqa: E402  (a dotted-path reward must be registered)


@register("test_low_word_share")
def low_word_share(samples, **context):
    """Share of words w0..w29 in a text: varies within a GRPO group, so advantages are non-zero."""
    return [sum(int(w[1:]) < 30 for w in t.split() if w[1:].isdigit()) / max(len(t.split()), 1)
            for t in samples]


FINETUNE = {"steps": 2, "num_generations": 4, "save_steps": 1, "eval_samples_per_prompt": 2,
            "learning_rate": 0.01, "lora": {"target_modules": ["c_attn"]}}


@pytest.fixture(scope="module")
def finetune_run(files):
    """Two GRPO + LoRA steps, then a resume to step 3 (about 40 s here, mostly importing trl)."""
    from rlcreate.text.finetune import finetune_recipe

    recipe = parse_recipe(recipe_dict(files, finetune=FINETUNE, rewards={
        "low": {"reward": "tests.test_text_training:low_word_share"}, "distinct": {"reward": "distinct_n"}}))
    run = files["root"] / "runs" / "ft"
    first = finetune_recipe(recipe, FINETUNE, run, progress_bar=False)
    before_json = (run / "samples" / "before.json").read_text()
    resumed = finetune_recipe(recipe, FINETUNE, run, steps=3, resume=True, progress_bar=False)
    return recipe, run, first, resumed, before_json


def test_finetune_writes_merged_model_report_and_resumes(finetune_run, files):
    import torch
    from transformers import AutoModelForCausalLM

    from rlcreate.text.finetune import latest_checkpoint, load_finetune_recipe

    recipe, run, first, resumed, before_json = finetune_run
    assert first["steps"] == 2 and resumed["steps"] == 3
    assert latest_checkpoint(run / "trl").name == "checkpoint-3"
    assert (run / "samples" / "before.json").read_text() == before_json  # the baseline is kept on resume

    merged = AutoModelForCausalLM.from_pretrained(run / "model")
    base = AutoModelForCausalLM.from_pretrained(files["lm"])
    assert not any("lora" in name for name, _ in merged.named_parameters())
    delta = (merged.transformer.h[0].attn.c_attn.weight - base.transformer.h[0].attn.c_attn.weight).abs().max()
    assert delta > 0  # LoRA was trained and merged into the attention projection
    assert torch.equal(merged.transformer.wte.weight, base.transformer.wte.weight)  # only LoRA targets move

    report = json.loads((run / "finetune_report.json").read_text())
    for side in ("before", "after"):
        s = report[side]
        assert s["heldout_perplexity"] > 1 and 0 <= s["heldout_novelty"] <= 2 and "reward/distinct" in s
    assert report["mean"]["perplexity_ratio"] == pytest.approx(
        report["after"]["heldout_perplexity"] / report["before"]["heldout_perplexity"])
    assert report["clip_ratio_region_mean"] is not None  # TRL logged the PPO clip statistics
    assert report["settings"]["num_iterations"] == 2
    after = json.loads((run / "samples" / "after.json").read_text())
    assert len(after["samples"]) == 2 * 2 and set(after["samples"][0]["terms"]) == {"low", "distinct"}
    history = json.loads((run / "trl" / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
    assert any(e.get("grad_norm", 0) > 0 for e in history)
    assert "| heldout_perplexity |" in (run / "finetune_report.md").read_text()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set().union(*(EventAccumulator(str(p.parent)).Reload().Tags()["scalars"]
                         for p in (run / "tb").rglob("events.out.tfevents*")))
    assert any("rewards/low/mean" in t for t in tags) and any("rewards/distinct/mean" in t for t in tags)

    # The saved config reproduces the run, finetune section included.
    again, section = load_finetune_recipe(run / "config.yaml")
    assert again.name == recipe.name and section["steps"] == 3 and section["num_iterations"] == 2  # as resumed


def test_finetune_refuses_to_overwrite_and_to_resume_nothing(finetune_run, files, tmp_path):
    from rlcreate.text.finetune import finetune_recipe

    recipe, run, *_ = finetune_run
    with pytest.raises(RecipeError, match="already holds a finetune run; pass --resume"):
        finetune_recipe(recipe, FINETUNE, run, progress_bar=False)
    with pytest.raises(RecipeError, match="holds no checkpoint"):
        finetune_recipe(recipe, FINETUNE, tmp_path / "empty", resume=True, progress_bar=False)
    assert (run / "model" / "config.json").is_file()


@pytest.mark.parametrize("section, match", [
    ({"stepz": 3}, r"finetune: unknown key 'stepz'. Did you mean 'steps'\?"),
    ({"num_generations": 1}, r"finetune.num_generations = 1: must be an integer >= 2"),
    ({"epsilon": 0}, r"finetune.epsilon = 0: must be a number > 0"),
    ({"lora": {"rank": 8}}, r"finetune.lora: unknown key 'rank'"),
    ({"lora": {"target_modules": "q_proj"}, "eval_prompts": "trian"}, r"Did you mean 'train'"),
])
def test_finetune_section_errors(files, tmp_path, section, match):
    from rlcreate.text.finetune import finetune_recipe

    recipe = parse_recipe(recipe_dict(files, finetune=section))
    with pytest.raises(RecipeError, match=match):
        finetune_recipe(recipe, section, tmp_path / "run", progress_bar=False)
    assert not (tmp_path / "run").exists()


def test_finetune_unknown_lora_target_lists_the_model_layers(files, tmp_path):
    from rlcreate.text.finetune import finetune_recipe

    section = {"lora": {"target_modules": ["q_proj", "v_proj"]}}
    recipe = parse_recipe(recipe_dict(files, finetune=section))
    with pytest.raises(RecipeError, match=r"no layer named \['q_proj', 'v_proj'\]; its linear layers are .*c_attn"):
        finetune_recipe(recipe, section, tmp_path / "run", progress_bar=False)
    assert not (tmp_path / "run").exists()


def test_cli_finetune_recipe_error_exits_2(files, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(files, finetune={"steps": 0})), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "rlcreate.cli", "finetune", str(path), "--out",
                          str(tmp_path / "runs"), "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "error: finetune.steps = 0: must be an integer >= 1" in res.stderr


# ------------------------------------------------------------------------ real SmolLM2 (slow)

@pytest.mark.slow
def test_shipped_text_recipes_run_for_real_with_a_tiny_budget(tmp_path):
    """The shipped recipes on the offline SmolLM2: train 1 PPO update + generate; 2 GRPO steps."""
    def cli(*args):
        res = subprocess.run([sys.executable, "-m", "rlcreate.cli", *args], capture_output=True, text=True,
                             cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        return res.stdout

    steer = REPO / "rlcreate" / "recipes" / "text_steer.yaml"
    out = cli("train", str(steer), "--out", str(tmp_path), "--timesteps", "768", "--quiet")
    assert "steered/total" in out
    cli("generate", str(tmp_path / "text-steer"), "--n", "4")
    assert len(json.loads((tmp_path / "text-steer" / "generated" / "texts.json").read_text())) == 4

    ft = REPO / "rlcreate" / "recipes" / "text_finetune.yaml"
    out = cli("finetune", str(ft), "--out", str(tmp_path), "--steps", "2", "--quiet")
    assert "held-out novelty" in out
    from transformers import AutoModelForCausalLM
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "text-finetune" / "model") is not None
