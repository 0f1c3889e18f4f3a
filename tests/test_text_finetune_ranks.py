"""GRPO on several processes (`rlcreate finetune`, the alias of `train` with trainer.algo: grpo): a
real 2-rank gloo run under torchrun on CPU with the tiny GPT-2 (every rank trains; only rank 0
writes the run folder and merges), then a resume of its checkpoint with ONE process."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.tiny_lm import tiny_lm_folder

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


def _recipe(root: Path) -> Path:
    lm = tiny_lm_folder(root / "lm")
    (root / "train.txt").write_text("w1 w2\nw3 w4 w5\nw6\nw7 w8\n", encoding="utf-8")
    (root / "dev.txt").write_text("w9\nw10 w11\n", encoding="utf-8")
    recipe = {"name": "ranks", "seed": 0,
              "env": {"id": "rlcreate/TextTokens-v0",
                      "kwargs": {"lm": str(lm), "prompts": str(root / "train.txt"),
                                 "eval_prompts": str(root / "dev.txt"), "max_new_tokens": 6}},
              "rewards": {"distinct": {"reward": "distinct_n", "args": {"n": 1}},
                          "diversity": {"reward": "group_diversity", "args": {"equivalence": "lexical"}}},
              "trainer": {"samples": 2},
              "finetune": {"steps": 2, "num_generations": 2, "save_steps": 1,
                           "learning_rate": 0.01, "beta": 0.04, "lora": {"target_modules": ["c_attn"]}}}
    path = root / "ranks.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


@pytest.mark.slow
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not installed")
def test_two_rank_finetune_trains_on_both_and_writes_once_then_resumes_on_one(tmp_path):
    recipe = _recipe(tmp_path)
    out = tmp_path / "runs"
    cmd = [TORCHRUN, "--nproc_per_node", "2", "--master_port", "29517", "-m", "rlcreate.cli", "finetune",
           str(recipe), "--out", str(out), "--quiet"]
    res = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("run written to") == 1  # rank 0 alone reports
    run = out / "ranks"
    state = json.loads((run / "model" / "trainer_state.json").read_text())
    assert state["timing"]["world_size"] == 2 and state["num_timesteps"] == 2
    assert 0 < state["timing"]["reward_share"] < 1 and state["timing"]["reward_calls"] >= 2
    assert len(list((run / "tb").glob("events.*"))) == 1  # one TensorBoard writer, rank 0's
    assert (run / "model" / "config.json").is_file() and (run / "samples" / "texts.json").is_file()
    assert "rank 1 of 2: trained 2 steps" in res.stdout  # the other rank trained in step with rank 0
    step2 = run / "checkpoints" / "step_000000002"
    assert (step2 / "trainer_state.json").is_file() and (step2 / "rng_state_1.pth").is_file()  # both ranks

    resumed = subprocess.run([sys.executable, "-m", "rlcreate.cli", "finetune", str(recipe), "--out", str(out),
                              "--resume", "--steps", "3", "--quiet"], cwd=tmp_path, env=_env(),
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    again = json.loads((run / "model" / "trainer_state.json").read_text())
    assert again["num_timesteps"] == 3 and again["timing"]["world_size"] == 1
