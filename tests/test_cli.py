"""The command line, run for real in subprocesses: user errors exit 2 with a readable message."""

import subprocess
import sys
from pathlib import Path

import pytest

from rlcreate.levels import corpus
from rlcreate.levels.tiles import level_to_text

RLCREATE = [sys.executable, "-m", "rlcreate.cli"]


def run(*args, cwd=None):
    return subprocess.run([*RLCREATE, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_malformed_level_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("-" * 10 + "\n" * 1 + ("-" * 10 + "\n") * 12 + "-" * 9 + "Z\n")
    proc = run("render", bad, "-o", tmp_path / "x.png")
    assert proc.returncode == 2
    assert "line 14, column 10: unknown tile 'Z'" in proc.stderr and "Traceback" not in proc.stderr
    short = tmp_path / "short.txt"
    short.write_text("---\n" * 5)
    proc = run("play", short)
    assert proc.returncode == 2 and "has 14 lines (rows), found 5" in proc.stderr


def test_render_and_play_a_corpus_level(tmp_path):
    level = tmp_path / "level.txt"
    level.write_text(level_to_text(corpus.held_out_blocks()[-1].grid()[:, :64]))
    proc = run("render", level, "-o", tmp_path / "level.png")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "level.png").stat().st_size > 1000
    proc = run("play", level, "--runs", "1")
    assert proc.returncode == 0, proc.stderr
    assert "fast solver: playable" in proc.stdout and "A* agent" in proc.stdout


@pytest.mark.parametrize("recipe_text, message", [
    ("env: {id: rlcreate/MarioLatent-v0}\nrewards: {playabilty: 1.0}\n", "unknown reward 'playabilty'. Did you mean 'playability'"),
    ("env: {id: rlcreate/MarioLatent-v9}\nrewards: {playability: 1.0}\n", "env.id = 'rlcreate/MarioLatent-v9': .*Did you mean 'rlcreate/MarioLatent-v[01]'"),
    ("env: {id: rlcreate/MarioLatent-v0}\nrewards: {playability: {weight: .nan}}\n", r"rewards.playability.weight = nan is not a finite number"),
    ("env: {id: rlcreate/MarioLatent-v0}\nrewards: {playability: 1.0}\ntrainer: {algo: ppo2}\n", "trainer.algo = 'ppo2': .*Did you mean 'ppo'"),
    ("env: {id: rlcreate/MarioLatent-v0}\nrewards: {playability: 1.0}\ntrainr: {}\n", "unknown key 'trainr'. Did you mean 'trainer'"),
    ("env: {id: rlcreate/MarioLatent-v0}\nrewards: {playability: 1.0}\ntargets: {enemies: [3, 1]}\n", r"targets.enemies = \[3, 1\]"),
    ("env: [unclosed\n", "not valid YAML"),
    # eval seeds numpy with seed + 1, which numpy refuses past 2**32 - 1: such a seed used to crash eval
    ("env: {id: rlcreate/MarioLatent-v0}\nrewards: {playability: 1.0}\nseed: 4294967295\n", r"seed = 4294967295: must be an integer in \[0, 2147483647\]"),
])
def test_recipe_errors_exit_2_with_field_value_fix(tmp_path, recipe_text, message):
    import re

    path = tmp_path / "r.yaml"
    path.write_text(recipe_text)
    proc = run("check", path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert re.search(message, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_recipe_and_run_folder(tmp_path):
    proc = run("train", tmp_path / "nope.yaml")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = run("generate", tmp_path)
    assert proc.returncode == 2 and "is not a run folder" in proc.stderr
    # a folder given as a recipe (train RUN --resume of a folder without config.yaml) is named as one
    proc = run("train", tmp_path, "--resume")
    assert proc.returncode == 2 and "is a folder, not a recipe file" in proc.stderr


def test_check_and_rewards_list():
    recipe = Path(__file__).resolve().parents[1] / "rlcreate" / "recipes" / "mario_latent.yaml"
    proc = run("check", recipe)
    assert proc.returncode == 0 and "OK" in proc.stdout
    proc = run("rewards")
    assert proc.returncode == 0 and "level_novelty" in proc.stdout and "playability" in proc.stdout


@pytest.mark.slow
def test_train_then_generate_with_targets(tmp_path):
    recipe = Path(__file__).resolve().parents[1] / "rlcreate" / "recipes" / "mario_latent.yaml"
    proc = run("train", recipe, "--timesteps", "512", "--out", tmp_path, "--name", "tiny", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "tiny"
    for f in ("config.yaml", "model/policy.safetensors", "model/reward_state.npz", "samples/metrics.json", "samples/montage.png",
              "samples/level_000.txt", "samples/level_000.png"):
        assert (run_dir / f).exists(), f
    assert list((run_dir / "tb").rglob("events.out.tfevents*"))
    proc = run("generate", run_dir, "--n", "3", "--targets", "enemies=2,gaps=0", "--out", tmp_path / "gen")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((tmp_path / "gen").glob("level_*.txt"))) == 3
    proc = run("generate", run_dir, "--n", "2", "--targets", "dragons=2")
    assert proc.returncode == 2 and "not control targets of this run" in proc.stderr
