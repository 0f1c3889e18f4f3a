"""Benchmark: scale-out paths for rlcreate/MarioLatent-v0, measured in one run.

Two groups, same env (default reward, ``n_segments`` 8), same process, interleaved in time:

- **env stepping** (random actions, no learning), env transitions per second: one Gymnasium env;
  Gymnasium's ``SyncVectorEnv`` over ``num_envs`` single envs (one decoder call per env);
  ``gym.make_vec`` through rlcreate's vector entry point (one decoder call for all rows); the SB3
  batched VecEnv (the same core).
- **PPO training**, env transitions per second including learning: SB3 PPO on the batched VecEnv
  (one process) and Ray RLlib PPO with 1 and 2 env runners, each runner stepping the batched core
  (``num_envs`` rows) through the vector entry point.

Needs ray[rllib] (the ``ray`` extra, its own environment). Reads top to bottom: config, build and
measure each path, write JSON with machine, versions and load average::

    /tmp/rayvenv/bin/python scripts/bench_scaleout.py --out benchmarks/scaleout.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcreate.scripting import parse_config


@dataclass
class Config:
    num_envs: int = 16
    """rows per batched env (per RLlib runner too) and envs of the SyncVectorEnv"""
    n_segments: int = 8
    """segments per level (episode length)"""
    seconds: float = 15.0
    """wall-clock budget per env-stepping loop"""
    train_batch: int = 2048
    """env steps per PPO iteration / rollout (SB3 and RLlib alike)"""
    train_iterations: int = 3
    """measured PPO iterations per trainer (after one warm-up iteration)"""
    seed: int = 0
    """seeds actions, envs and trainers"""
    out: str = "benchmarks/scaleout.json"
    """output JSON"""


def load() -> float:
    return round(os.getloadavg()[0], 2)


def step_vector_env(env, seconds: float, seed: int) -> dict:
    """Random actions on a Gymnasium VectorEnv (NEXT_STEP autoreset): transitions per second, not
    counting the reset-only step after each episode end."""
    env.action_space.seed(seed)
    env.reset(seed=seed)
    resetting = np.zeros(env.num_envs, bool)
    env.step(env.action_space.sample())  # warm-up (numba compile, caches)
    n, load0, t0 = 0, load(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        n += int((~resetting).sum())
        resetting = term | trunc
    dt = time.perf_counter() - t0
    return {"steps_per_s": n / dt, "transitions": n, "seconds": dt, "load_avg": [load0, load()]}


def step_single_env(env, seconds: float, seed: int) -> dict:
    env.action_space.seed(seed)
    env.reset(seed=seed)
    env.step(env.action_space.sample())  # warm-up (numba compile, caches)
    n, load0, t0 = 0, load(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        n += 1
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t0
    return {"steps_per_s": n / dt, "transitions": n, "seconds": dt, "load_avg": [load0, load()]}


def step_sb3_vecenv(venv, seconds: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    venv.reset()
    shape = (venv.num_envs, *venv.action_space.shape)
    venv.step(rng.uniform(-1, 1, shape).astype(np.float32))
    n, load0, t0 = 0, load(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        venv.step(rng.uniform(-1, 1, shape).astype(np.float32))
        n += venv.num_envs
    dt = time.perf_counter() - t0
    return {"steps_per_s": n / dt, "transitions": n, "seconds": dt, "load_avg": [load0, load()]}


def train_sb3(cfg: Config) -> dict:
    from stable_baselines3 import PPO

    from rlcreate.levels.envs import make_mario_latent_vec

    venv = make_mario_latent_vec(n_envs=cfg.num_envs, n_segments=cfg.n_segments, seed=cfg.seed)
    n_steps = cfg.train_batch // cfg.num_envs
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=min(256, cfg.train_batch), n_epochs=4, seed=cfg.seed, device="cpu")
    model.learn(total_timesteps=cfg.train_batch)  # warm-up rollout + update
    load0, t0 = load(), time.perf_counter()
    model.learn(total_timesteps=cfg.train_batch * cfg.train_iterations, reset_num_timesteps=False)
    dt = time.perf_counter() - t0
    n = cfg.train_batch * cfg.train_iterations
    return {"steps_per_s": n / dt, "transitions": n, "seconds": dt, "load_avg": [load0, load()],
            "setup": f"SB3 PPO, one process, VecEnv of {cfg.num_envs} rows, n_steps={n_steps}, 4 epochs"}


def train_rllib(cfg: Config, runners: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from rllib_ppo import Config as RllibConfig
    from rllib_ppo import build_algo

    rcfg = RllibConfig(env_runners=runners, envs_per_runner=cfg.num_envs, train_batch=cfg.train_batch,
                       minibatch=min(256, cfg.train_batch), epochs=4, seed=cfg.seed, env_kwargs={"n_segments": cfg.n_segments},
                       checkpoint=False)
    algo = build_algo(rcfg)
    envs = algo.env_runner_group.foreach_env_runner(lambda r: type(r.env.unwrapped).__name__, local_env_runner=False)
    algo.train()  # warm-up iteration
    n, load0, t0 = 0, load(), time.perf_counter()
    for _ in range(cfg.train_iterations):
        n += int(algo.train()["env_runners"]["num_env_steps_sampled"])
    dt = time.perf_counter() - t0
    algo.stop()
    return {"steps_per_s": n / dt, "transitions": n, "seconds": dt, "load_avg": [load0, load()],
            "runner_envs": envs,
            "setup": f"RLlib PPO, {runners} env runner(s) x {cfg.num_envs} rows (vector entry point), 4 epochs"}


def versions() -> dict:
    import gymnasium
    import ray
    import stable_baselines3
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "gymnasium": gymnasium.__version__,
            "ray": ray.__version__, "stable_baselines3": stable_baselines3.__version__, "numpy": np.__version__}


if __name__ == "__main__":
    cfg = parse_config(Config)
    import gymnasium as gym
    import ray
    import torch

    torch.set_num_threads(1)
    env_id = "rlcreate:rlcreate/MarioLatent-v0"
    kw = {"n_segments": cfg.n_segments}
    results: dict = {"env_stepping": {}, "training": {}}

    # ------------------------------------------------------------------ env stepping, one process
    stepping = results["env_stepping"]
    stepping["gymnasium_single_env"] = step_single_env(gym.make(env_id, **kw), cfg.seconds, cfg.seed)
    stepping[f"gymnasium_sync_vector_x{cfg.num_envs}"] = step_vector_env(
        gym.make_vec(env_id, num_envs=cfg.num_envs, vectorization_mode="sync", **kw), cfg.seconds, cfg.seed)
    stepping[f"gym_make_vec_entry_point_x{cfg.num_envs}"] = step_vector_env(
        gym.make_vec(env_id, num_envs=cfg.num_envs, **kw), cfg.seconds, cfg.seed)
    from rlcreate.levels.envs import make_mario_latent_vec

    stepping[f"sb3_batched_vecenv_x{cfg.num_envs}"] = step_sb3_vecenv(
        make_mario_latent_vec(n_envs=cfg.num_envs, seed=cfg.seed, **kw), cfg.seconds, cfg.seed)
    for name, r in stepping.items():
        print(f"{name:40s} {r['steps_per_s']:8.0f} steps/s  load {r['load_avg']}")

    # ------------------------------------------------------------------ PPO training
    training = results["training"]
    training["sb3_ppo_batched_vecenv"] = train_sb3(cfg)
    ray.init(include_dashboard=False, log_to_driver=False)
    for runners in (1, 2):
        training[f"rllib_ppo_{runners}_runner{'s' if runners > 1 else ''}"] = train_rllib(cfg, runners)
    ray.shutdown()
    for name, r in training.items():
        print(f"{name:40s} {r['steps_per_s']:8.0f} steps/s  load {r['load_avg']}")

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "scale-out paths for rlcreate/MarioLatent-v0 (default reward), one run",
        "command": "/tmp/rayvenv/bin/python scripts/bench_scaleout.py " + " ".join(sys.argv[1:]),
        "config": dataclasses.asdict(cfg),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "processor": platform.processor()},
        "versions": versions(), "results": results}, indent=2))
    print("wrote", out)
