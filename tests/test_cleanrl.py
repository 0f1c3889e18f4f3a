"""scripts/cleanrl_ppo.py runs for real (tiny budget) on gym.make_vec's batched env: continuous
latents (MarioLatent) and masked discrete columns (MarioTokens)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "cleanrl_ppo.py"
CHEAP_REWARD = {"structure": {"reward": "validity", "weight": 1.0}}


@pytest.mark.parametrize("env_id, env_kwargs", [
    ("rlcreate/MarioLatent-v0", {"n_segments": 2, "reward": CHEAP_REWARD}),
    ("rlcreate/MarioTokens-v1", {"n_columns": 4, "reward": CHEAP_REWARD}),
])
@pytest.mark.slow
def test_cleanrl_ppo_trains_and_saves(tmp_path, env_id, env_kwargs):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, str(SCRIPT), "--env-id", env_id, "--env-kwargs", json.dumps(env_kwargs),
                           "--num-envs", "4", "--num-steps", "8", "--total-timesteps", "64", "--update-epochs", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2  # 64 steps / (4 envs x 8 steps)
    # NEXT_STEP: the reset-only step after each episode end is not a training transition
    assert 0 < metrics["env_steps"] < 64
    assert sum(h["episodes"] for h in metrics["history"]) > 0
    assert all(h["mean_return"] is None or h["mean_return"] == h["mean_return"] for h in metrics["history"])
    assert (out / "policy.safetensors").stat().st_size > 0
