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
from tests.tiny_lm import tiny_lm_folder as _tiny_lm_folder


def train_text_recipe(recipe, run, progress_bar=False):
    return train_run(recipe, run, progress_bar=progress_bar)


def generate_texts(run, n, out, seed=None):
    asm, model = restore(run)
    return asm.domain.generate(model, asm, n, out, seed=seed)

REPO = Path(__file__).resolve().parents[1]


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
    # no run folder was written; only the run lock's sidecar (kept next to the folder) may exist
    left = sorted(p.name for p in (tmp_path / "runs").iterdir()) if (tmp_path / "runs").exists() else []
    assert all(name.startswith(".") and ".rlcreate-lock" in name for name in left), left


# --------------------------------------------------------------------------- fine-tuning (TRL)

from rlcreate.rewards.registry import register  # noqa: E402  (a dotted-path reward must be registered)


@register("test_low_word_share")
def low_word_share(samples, **context):
    """Share of words w0..w29 in a text: varies within a GRPO group, so advantages are non-zero."""
    return [sum(int(w[1:]) < 30 for w in t.split() if w[1:].isdigit()) / max(len(t.split()), 1)
            for t in samples]


FINETUNE = {"steps": 2, "num_generations": 4, "save_steps": 1, "learning_rate": 0.01,
            "lora": {"target_modules": ["c_attn"]}}
GRPO_REWARDS = {"low": {"reward": "tests.test_text_training:low_word_share", "weight": 2.0},
                "distinct": {"reward": "distinct_n"}}


def grpo_recipe_file(files, path, **kwargs):
    data = recipe_dict(files, finetune=FINETUNE, rewards=GRPO_REWARDS, trainer={"algo": "grpo", "samples": 4},
                       name="ft")
    data.update(kwargs)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def grpo_run(files):
    """GRPO + LoRA through `rlcreate train`: 2 steps, then model/ and samples/ removed (a run killed
    after its step-2 checkpoint), `generate` on the interrupted run, `train RUN --resume --steps 3`,
    then `eval` and `report` (about 60 s here, most of it importing TRL and transformers)."""
    import contextlib
    import io

    from rlcreate.cli import main

    recipe = grpo_recipe_file(files, files["root"] / "ft.yaml")
    runs = files["root"] / "runs"
    run = runs / "ft"
    out: dict = {"recipe": recipe, "run": run}

    def cli(*args):
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main([str(a) for a in args])
        assert code == 0, stderr.getvalue()[-3000:]
        return stdout.getvalue(), stderr.getvalue()

    out["check"] = cli("check", recipe)[0]
    cli("train", recipe, "--out", runs, "--quiet", "--steps", 2)
    out["first_model_steps"] = json.loads((run / "model" / "trainer_state.json").read_text())["num_timesteps"]
    out["step2_adapter"] = (run / "checkpoints" / "step_000000002" / "adapter_model.safetensors").read_bytes()
    import shutil

    shutil.rmtree(run / "model")  # as if killed after the step-2 checkpoint
    shutil.rmtree(run / "samples")
    out["generate"] = cli("generate", run, "--n", 2, "--out", files["root"] / "gen_interrupted")[0]
    out["resume"] = cli("train", run, "--resume", "--steps", 3, "--quiet")[1]
    out["eval"] = cli("eval", run, "--n", 2, "--audit-levels", 2, "--audit-modes", "stochastic")[0]
    cli("report", run, "--out", files["root"] / "report")
    return out


def test_grpo_trains_through_train_into_the_common_run_layout(grpo_run, files):
    import torch
    from transformers import AutoModelForCausalLM

    from rlcreate.recipe import load_recipe
    from rlcreate.train.checkpoint import latest_checkpoint, list_checkpoints

    run = grpo_run["run"]
    assert "trainer grpo (trl) x 2 steps" in grpo_run["check"]
    assert grpo_run["first_model_steps"] == 2
    assert [s for s, _ in list_checkpoints(run)] == [1, 2, 3]
    for _, folder in list_checkpoints(run):
        for name in ("reward_state.npz", "trainer_state.json", "adapter_model.safetensors"):
            assert (folder / name).is_file(), folder / name
    assert not (run / "checkpoints" / ".tmp-trl").exists()  # TRL's staging folder is gone
    assert latest_checkpoint(run)[0] == run / "model"
    assert json.loads((run / "model" / "trainer_state.json").read_text())["num_timesteps"] == 3

    merged = AutoModelForCausalLM.from_pretrained(run / "model")
    base = AutoModelForCausalLM.from_pretrained(files["lm"])
    assert not any("lora" in name for name, _ in merged.named_parameters())
    delta = (merged.transformer.h[0].attn.c_attn.weight - base.transformer.h[0].attn.c_attn.weight).abs().max()
    assert delta > 0  # LoRA was trained and merged into the attention projection
    assert torch.equal(merged.transformer.wte.weight, base.transformer.wte.weight)  # only LoRA targets move

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set().union(*(EventAccumulator(str(p.parent)).Reload().Tags()["scalars"]
                         for p in (run / "tb").rglob("events.out.tfevents*")))
    assert {"rewards/low", "rewards/distinct"} <= tags  # the tag every trainer writes
    assert any(t.endswith("clip_ratio/region_mean") for t in tags)  # TRL's PPO clip statistics

    saved = load_recipe(run / "config.yaml")  # the saved config reproduces the run
    assert saved.trainer.algo == "grpo" and saved.settings.steps == 3
    assert saved.settings.lora.target_modules == ["c_attn"]


def test_grpo_samples_are_tuned_next_to_base_scored_by_the_recipe_rewards(grpo_run):
    run = grpo_run["run"]
    records = json.loads((run / "samples" / "texts.json").read_text())
    assert len(records) == 4 and {"tuned", "base"} <= set(records[0])
    metrics = json.loads((run / "samples" / "metrics.json").read_text())
    assert metrics["primary"] == "tuned"
    for group in ("tuned", "base"):
        texts = [r[group]["text"] for r in records]
        low = low_word_share(texts)
        assert [r[group]["terms"]["low"] for r in records] == pytest.approx(low)
        assert [r[group]["total"] for r in records] == pytest.approx(
            [2 * lo + r[group]["terms"]["distinct"] for lo, r in zip(low, records)])
    assert any(r["tuned"]["text"] != r["base"]["text"] for r in records)


def test_grpo_resumes_from_its_checkpoint_and_generate_reads_an_interrupted_run(grpo_run, files):
    run = grpo_run["run"]
    assert "policy: latest checkpoint (checkpoints/step_000000002, 2 steps): training did not finish" \
        in grpo_run["generate"]
    assert len(json.loads((files["root"] / "gen_interrupted" / "texts.json").read_text())) == 2
    assert "resuming from the latest checkpoint (checkpoints/step_000000002" in grpo_run["resume"]
    # the step-2 checkpoint is kept as it was, and step 3 continued TRL's own state from it
    assert (run / "checkpoints" / "step_000000002" / "adapter_model.safetensors").read_bytes() == \
        grpo_run["step2_adapter"]
    history = json.loads((run / "checkpoints" / "step_000000003" / "trainer_state.json").read_text())
    assert history["global_step"] == 3 and [e["step"] for e in history["log_history"] if "loss" in e] == [1, 2, 3]


def test_grpo_run_is_evaluated_audited_and_reported(grpo_run):
    run = grpo_run["run"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["primary"] == "tuned" and set(metrics["groups"]) == {"base", "tuned"}
    assert metrics["audit"]["checkpoints"] == [1, 2, 3] and "stochastic" in metrics["audit"]["flags"]
    assert (run / "eval_test" / "paired_samples.json").is_file()
    page = (grpo_run["recipe"].parent / "report" / "index.html").read_text()
    assert "missing:" not in page  # model/, samples, curves, metrics and the audit are all found
    assert "<h3>Texts</h3>" in page and "img/curves_0.png" in page and "tuned" in page


def test_grpo_refuses_to_overwrite_a_run_and_a_domain_without_a_causal_lm(grpo_run, files, tmp_path, capsys):
    from rlcreate.cli import main

    assert main(["train", str(grpo_run["recipe"]), "--out", str(grpo_run["run"].parent), "--quiet"]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    levels = tmp_path / "levels.yaml"
    levels.write_text("env: {id: rlcreate/MarioLatent-v0}\ntrainer: {algo: grpo}\n")
    assert main(["check", str(levels)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: env.id = 'rlcreate/MarioLatent-v0' with trainer.algo = 'grpo': the 'levels' domain "
                          "cannot finish a run") and \
        "generate from a trained generator (it writes samples from a policy)" in err and err.count("\n") == 1


@pytest.mark.parametrize("section, match", [
    ({"stepz": 3}, r"finetune: unknown key 'stepz'. Did you mean 'steps'\?"),
    ({"num_generations": 1}, r"finetune.num_generations = 1: must be an integer >= 2"),
    ({"epsilon": 0}, r"finetune.epsilon = 0: must be > 0"),
    ({"lora": {"rank": 8}}, r"finetune.lora: unknown key 'rank'"),
    ({"steps": 0}, r"finetune.steps = 0: must be an integer >= 1"),
])
def test_finetune_section_is_validated_with_the_recipe(files, section, match):
    with pytest.raises(RecipeError, match=match):
        parse_recipe(recipe_dict(files, finetune=section))


def test_finetune_section_defaults_grpo_and_belongs_to_grpo(files):
    assert parse_recipe(recipe_dict(files, finetune={"steps": 2}, trainer={})).trainer.algo == "grpo"
    with pytest.raises(RecipeError, match=r"finetune: holds the settings of another trainer than "
                                          r"trainer.algo = 'maskable_ppo' \(sb3\); set trainer.algo: grpo"):
        parse_recipe(recipe_dict(files, finetune={"steps": 2}, trainer={"algo": "maskable_ppo"}))
    with pytest.raises(RecipeError, match=r"trainer.hyper / trainer.kl_target are SB3 settings"):
        parse_recipe(recipe_dict(files, finetune={"steps": 2}, trainer={"algo": "grpo", "hyper": {"n_steps": 8}}))


def test_grpo_prompts_and_lora_targets_fail_in_check_before_writing(files, tmp_path):
    from rlcreate.assemble import check_recipe

    bad = parse_recipe(recipe_dict(files, finetune={"eval_prompts": "trian"}, trainer={"algo": "grpo"}))
    with pytest.raises(RecipeError, match=r"finetune.eval_prompts = 'trian'.*Did you mean 'train'"):
        check_recipe(bad)
    lora = parse_recipe(recipe_dict(files, finetune={"lora": {"target_modules": ["q_proj", "v_proj"]}},
                                    trainer={"algo": "grpo"}))
    with pytest.raises(RecipeError, match=r"no layer named \['q_proj', 'v_proj'\]; its linear layers are .*c_attn"):
        check_recipe(lora)
    with pytest.raises(RecipeError, match=r"no layer named"):
        train_run(lora, tmp_path / "run", progress_bar=False)
    assert not (tmp_path / "run").exists()


def test_cli_finetune_is_an_alias_of_train_with_grpo(files, tmp_path, capsys):
    from rlcreate.cli import main

    path = tmp_path / "bad.yaml"
    data = recipe_dict(files, finetune={"steps": 0})
    data["trainer"] = {"algo": "maskable_ppo"}  # the alias runs the recipe with trainer.algo: grpo
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["finetune", str(path), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == "error: finetune.steps = 0: must be an integer >= 1\n"
    assert main(["train", str(path), "--out", str(tmp_path / "runs"), "--quiet"]) == 2  # train keeps the algo
    assert "finetune: holds the settings of another trainer" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_grpo_run_killed_with_sigkill_resumes_from_its_last_checkpoint(files, tmp_path):
    """A real `rlcreate train` GRPO process killed (SIGKILL) after its first checkpoints: only complete
    checkpoints remain, each loads, and `train RUN --resume` continues from the newest one."""
    import signal
    import time

    from rlcreate.assemble import assemble
    from rlcreate.recipe import load_recipe
    from rlcreate.train.checkpoint import list_checkpoints

    recipe = grpo_recipe_file(files, tmp_path / "kill.yaml", finetune={**FINETUNE, "steps": 200}, name="kill")
    run = tmp_path / "runs" / "kill"
    cmd = [sys.executable, "-m", "rlcreate.cli", "train", str(recipe), "--out", str(tmp_path / "runs"), "--quiet"]
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}  # the recipe's reward lives in tests/
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while len(list_checkpoints(run)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps = [s for s, _ in list_checkpoints(run)]
    assert len(steps) >= 2 and steps == list(range(1, steps[-1] + 1)) and not (run / "model").exists()
    asm = assemble(load_recipe(run / "config.yaml"))
    for _, folder in list_checkpoints(run):  # every checkpoint left behind is whole
        assert asm.trainer.load(asm, folder).model is not None
    last = steps[-1]
    res = subprocess.run(cmd[:4] + [str(run), "--resume", "--steps", str(last + 2), "--quiet"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming from the latest checkpoint (checkpoints/step_{last:09d}" in res.stderr
    assert json.loads((run / "model" / "trainer_state.json").read_text())["num_timesteps"] == last + 2


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
    out = cli("train", str(ft), "--out", str(tmp_path), "--steps", "2", "--quiet")
    assert "tuned/total" in out and "base/total" in out
    from transformers import AutoModelForCausalLM
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "text-finetune" / "model") is not None
