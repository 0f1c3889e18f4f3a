"""Scripts parse their config dataclass with one helper (rlcreate.scripting.parse_config, tyro):
flags from field names, --help from field docstrings, JSON dicts, positional arguments, bad values
exit 2 naming the flag in one ``error:`` line. The --help of the converted scripts runs for real in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rlcreate.scripting import JsonDict, Positional, parse_config

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Cfg:  # defined here as a script defines its Config: --help starts with this module's docstring
    out: Positional[Path]
    """where the JSON goes"""
    n_envs: int = 4
    """rows of the batched env"""
    env_kwargs: JsonDict = field(default_factory=lambda: {"n_segments": 4})
    """keyword arguments of the environment"""
    cache: bool = True
    """reuse cached results"""
    timer: int | None = None
    """seconds per play; default: width-dependent"""


def test_flags_come_from_field_names_and_keep_their_types():
    cfg = parse_config(Cfg, ["o.json", "--n-envs", "8", "--env-kwargs", '{"reward": {"a": {"weight": 1}}}',
                             "--no-cache", "--timer", "30"])
    assert cfg == Cfg(Path("o.json"), 8, {"reward": {"a": {"weight": 1}}}, False, 30)
    assert parse_config(Cfg, ["o.json"]) == Cfg(Path("o.json"))
    assert parse_config(Cfg, ["o.json", "--n_envs", "2"]).n_envs == 2  # the underscore spelling still works


def test_help_shows_the_script_docstring_and_every_field_docstring(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(Cfg, ["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Scripts parse their config dataclass with one helper" in text  # this module's docstring
    for flag, doc in [("--n-envs", "rows of the batched env"), ("--env-kwargs", "keyword arguments of the environment"),
                      ("--no-cache", "reuse cached results"), ("OUT", "where the JSON goes")]:
        assert flag in text and doc in text, (flag, doc)


@pytest.mark.parametrize("argv, flag, words", [
    (["o.json", "--n-envs", "many"], "--n-envs", "many"),
    (["o.json", "--env-kwargs", "{bad"], "--env-kwargs", "not JSON"),
    (["o.json", "--env-kwargs", "[1, 2]"], "--env-kwargs", "not a JSON object"),
    ([], "OUT", "Missing"),
])
def test_bad_values_exit_2_and_name_the_flag(capsys, argv, flag, words):
    with pytest.raises(SystemExit) as exit_:
        parse_config(Cfg, argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, as every user error
    assert flag in err and words in err and "--help" in err, err


def _help(script: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, f"scripts/{script}", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return " ".join(proc.stdout.replace("│", " ").split())  # tyro wraps help text in a box


# script -> (a flag and a phrase of its field docstring); the scripts that import torch at the top
# take 5-10 s each to show --help on a shared 2-core machine, so they run in the slow tier
FAST_HELP = {
    "cleanrl_ppo.py": ("--env-kwargs", "keyword arguments of the environment"),
    "playability_agreement.py": ("--no-cache", "reuse cached A* results"),
    "check_report_chromium.py": ("HTML", "the report page to render"),
    "bench_astar_harness.py": ("--n-corpus", "Human windows from training blocks played too"),
    "bench_astar_stall.py": ("--stall-ticks", "The cut compared with playing to the timer"),
    "bench_mario_latent.py": ("--n-envs", "Parallel levels stepped per call"),
    "bench_text_steer.py": ("--timesteps", "override trainer.total_timesteps"),
    "bench_scaleout.py": ("--train-iterations", "measured PPO iterations per trainer"),
    "rllib_ppo.py": ("--no-checkpoint", "save the final algorithm checkpoint"),
    "gen_reference.py": ("--check", "Compare instead of writing"),
    "bench_hostile.py": ("--timeout-s", "Seconds per case"),
    "bench_level_objectives.py": ("--timesteps", "PPO env steps per objective"),
    "bench_level_engagement.py": ("--candidates", "column-LM levels drawn per request"),
    "bench_level_engagement_ppo.py": ("--timesteps", "PPO env steps per curve"),
    "pool_engagement_separation.py": ("--files", "comma-separated bench_level_engagement_ppo.py JSONs"),
    "calibrate_engagement.py": ("--stride", "columns between window starts"),
    "calibrate_engagement_gen.py": ("--env-seed", "the first policy's env seed"),
    "bench_engagement_model.py": ("--boot", "bootstrap draws over spans"),
    "bench_level_tokens_speed.py": ("--batches", "comma-separated batch sizes"),
    "bench_level_quality.py": ("--astar-runs", "A* plays per level"),
    "bench_text_creativity.py": ("--answers-per-call", "answers asked for in one reply by the prompt baseline"),
    "bench_text_forms.py": ("--stage", "base (base model and baselines), tuned (GRPO models), report, or all"),
    "train_text_forms.py": ("--resume", "continue each seed from its latest checkpoint"),
    "bench_latent_generator.py": ("--no-sampled", "Also judge the trained policy acting by samples"),
    "bench_latent_control.py": ("--seeds", "Comma-separated env seeds"),
    "bench_latent_candidates.py": ("--n-judge", "The first this many levels of each set go to the judges"),
    "bench_latent_demo.py": ("--objective-levels", "Levels per set for the objective and PPO's share"),
    "latent_rule_agreement.py": ("--runs", "Comma-separated MarioLatent-v1 run folders"),
    "bench_latent_selection.py": ("--rule-recipe", "whose untrained policy is the rule"),
    "bench_level_objectives_search.py": ("--budget", "env steps per search"),
    "bench_profile_sets.py": ("--sets", "sets per policy"),
    "bench_tokens_learning_speed.py": ("--recipes", "the first is the reference the others are compared with"),
}
SLOW_HELP = {
    "bench_generators.py": ("--vae-calls", "Decode calls per VAE repetition"),
    "bench_text_tokens.py": ("--steps-per-round", "batch-steps timed per round"),
    "train_column_lm.py": ("--n-quality-levels", "Sampled 100-column levels"),
    "train_level_vae.py": ("--eval-only", "Skip training: reload the model"),
    "bench_text_forms_steer.py": ("--k-steered", "samples per prompt of the trained policy"),
    "train_level_gan.py": ("--p-null", "Probability of dropping the condition of a training window"),
}


@pytest.mark.parametrize("script", sorted(FAST_HELP))
def test_script_help_shows_field_docstrings(script):
    flag, doc = FAST_HELP[script]
    text = _help(script)
    assert flag in text and doc in text, text[:3000]


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SLOW_HELP))
def test_script_help_shows_field_docstrings_slow(script):
    flag, doc = SLOW_HELP[script]
    text = _help(script)
    assert flag in text and doc in text, text[:3000]


def test_every_script_with_a_config_uses_the_one_helper():
    """No script builds its own argparse parser; each parses its dataclass with parse_config."""
    scripts = sorted((ROOT / "scripts").glob("*.py"))
    covered = set(FAST_HELP) | set(SLOW_HELP)
    for path in scripts:
        text = path.read_text()
        assert "argparse" not in text, f"{path.name} still uses argparse; use rlcreate.scripting.parse_config"
        if "parse_config(" in text:
            assert path.name in covered, f"{path.name}: add its --help to FAST_HELP or SLOW_HELP"
