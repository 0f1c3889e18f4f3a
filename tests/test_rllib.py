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


def test_bench_scaleout_smoke(tmp_path):
    out = tmp_path / "scaleout.json"
    script = SCRIPT.parent / "bench_scaleout.py"
    done = subprocess.run([sys.executable, str(script), "--seconds", "0.5", "--num-envs", "2", "--n-segments", "2",
                           "--train-batch", "64", "--train-iterations", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    stepping, training = report["results"]["env_stepping"], report["results"]["training"]
    assert set(stepping) == {"gymnasium_single_env", "gymnasium_sync_vector_x2", "gym_make_vec_entry_point_x2",
                             "sb3_batched_vecenv_x2"}
    assert set(training) == {"sb3_ppo_batched_vecenv", "rllib_ppo_1_runner", "rllib_ppo_2_runners"}
    assert all(r["steps_per_s"] > 0 and r["transitions"] > 0 for r in [*stepping.values(), *training.values()])
    assert training["rllib_ppo_2_runners"]["runner_envs"] == ["CoreVectorEnv", "CoreVectorEnv"]
    assert report["versions"]["ray"] and report["machine"]["cpus"]
