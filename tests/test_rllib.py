"""scripts/rllib_ppo.py: one tiny RLlib PPO iteration with a remote env runner stepping rlcreate's
batched core through the vector entry point. Needs ray[rllib] (the ``ray`` extra, its own
environment); skipped where ray is not installed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray.rllib")
pytestmark = pytest.mark.ray

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "rllib_ppo.py"


def test_rllib_ppo_one_iteration_on_the_batched_core(tmp_path):
    out = tmp_path / "run"
    env_kwargs = {"n_segments": 2, "reward": {"structure": {"reward": "validity", "weight": 1.0}}}
    done = subprocess.run([sys.executable, str(SCRIPT), "--env-runners", "1", "--envs-per-runner", "4",
                           "--iterations", "1", "--train-batch", "64", "--minibatch", "32", "--epochs", "1",
                           "--num-cpus", "2", "--env-kwargs", json.dumps(env_kwargs), "--no-checkpoint",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runner_envs"] == ["CoreVectorEnv(num_envs=4)"]  # the batched core, not a SyncVectorEnv
    it = metrics["history"][0]
    assert it["env_steps"] >= 64 and it["episodes"] > 0
    assert it["episode_return_mean"] == it["episode_return_mean"]  # a number, not NaN
