"""Benchmark: MarioLatent-v0 env throughput vs the bare decoder doing the same decoding.

Reads top to bottom: config, seeding, build, measure both loops side by side, write JSON.
Run: .venv/bin/python scripts/bench_mario_latent.py --out bench_mario_latent.json
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from rlcreate.scripting import parse_config


@dataclass
class Config:
    n_envs: int = 64
    """Parallel levels stepped per call (one decoder call per step for all of them)."""
    n_segments: int = 8
    """Segments per level (episode length)."""
    seconds: float = 10.0
    """Wall-clock budget per measured loop."""
    seed: int = 0
    """Seed for actions and the env."""
    out: str = "bench_mario_latent.json"
    """Where the JSON result is written."""


def timed(fn, seconds: float) -> tuple[int, float]:
    fn()  # warm-up (numba compile, caches)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(Config, argv)
    from rlcreate.benchmark import environment, finish, write_json

    env = environment(asdict(cfg))
    rng = np.random.default_rng(cfg.seed)
    # One thread for torch and BLAS in both loops: the env steps its batch in lockstep in one
    # process, and on 2 shared cores extra threads only spin against each other.
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1, user_api="blas")

    from rlcreate.levels.envs import make_mario_latent_vec

    venv = make_mario_latent_vec(n_envs=cfg.n_envs, n_segments=cfg.n_segments, seed=cfg.seed)
    venv.reset()
    gen = venv.core.gen
    actions = rng.uniform(-1, 1, (cfg.n_envs, gen.latent_dim)).astype(np.float32)

    def env_step():
        venv.step(actions)

    def bare_decode():
        gen.decode(actions * gen.action_scale)

    n_env, t_env = timed(env_step, cfg.seconds)
    n_dec, t_dec = timed(bare_decode, cfg.seconds)
    env_sps = n_env * cfg.n_envs / t_env
    dec_sps = n_dec * cfg.n_envs / t_dec
    # per-term cost: time each reward module alone on one batch of segments
    segs = gen.decode(actions * gen.action_scale)
    ctx = {"position": np.full(cfg.n_envs, 0.5), "targets": {"enemies": np.ones(cfg.n_envs), "gaps": np.zeros(cfg.n_envs)},
           "seam_state": venv.core.seam.initial(cfg.n_envs)}
    per_term = {}
    for term in venv.core.reward.terms:
        n, t = timed(lambda term=term: term.module(list(segs), **ctx), min(cfg.seconds, 2.0))
        per_term[term.name] = round(t / n * 1e3, 3)
    result = {
        "config": asdict(cfg),
        "env_steps_per_s": round(env_sps, 1),
        "bare_decoder_segments_per_s": round(dec_sps, 1),
        "overhead_ratio_decoder_over_env": round(dec_sps / env_sps, 2),
        "ms_per_batch_step": round(t_env / n_env * 1e3, 3),
        "ms_per_batch_by_reward_term": per_term,
    }
    result = {**finish(env), **result}
    print(json.dumps(result, indent=2))
    write_json(cfg.out, result)


if __name__ == "__main__":
    main()
