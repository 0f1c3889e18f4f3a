"""How far a trained MarioLatent-v1 candidate policy departs from the env's greedy picker.

For each run folder (``rlcreate train`` / ``rlcreate demo --generator latent``, an env with
``candidates`` and ``candidate_terms``), the trained policy and its untrained start act by their mean
on the demo's requests (env seed = the recipe's seed + 1, progress 1); at every step the script
compares the candidate the policy writes with the one ``LatentLevelCore.greedy_action`` would write
on the same observation, and counts saturated action entries (|a| > 0.99, as
bench_latent_generator.py counts them) and mean-action entries outside the box [-1, 1] (clipped).
At the same observations it also draws one action from the policy's Gaussian (mean + std * noise
from a generator of its own, so the levels written stay those of the mean actions) and counts how
often that sampled action, as PPO's rollouts would act, picks greedy's candidate.
A policy started at the rule (``policy_kwargs.rule_gain``) agrees with it at every step before
training; the share it still agrees on afterwards says how much PPO changed.

    OMP_NUM_THREADS=1 python scripts/latent_rule_agreement.py --runs runs/latrule_s0,runs/latrule_s1 \\
        --out benchmarks/demo_latent_rule_start_agreement.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcreate.envs.latent_level import candidate_pick
from rlcreate.scripting import parse_config


@dataclass
class Config:
    runs: str
    """Comma-separated MarioLatent-v1 run folders trained with ``candidates`` and ``candidate_terms``."""
    n: int = 256
    """Levels per policy (the demo's objective sets: 256)."""
    out: str = "benchmarks/demo_latent_rule_start_agreement.json"
    """Output JSON."""


def agreement(model, asm, n: int, env_seed: int) -> dict:
    """Per step of ``n`` levels: the policy's (mean action) pick vs greedy_action's pick."""
    import torch

    from rlcreate.train.runner import rollout

    venv = asm.make_env(min(n, 16), env_seed, "eval")
    venv.set_progress(1.0)
    model.set_random_seed(env_seed)
    k = venv.core.n_cand
    mine: list[np.ndarray] = []
    rule: list[np.ndarray] = []
    acts: list[np.ndarray] = []

    raw: list[np.ndarray] = []
    sampled: list[np.ndarray] = []
    gen = torch.Generator().manual_seed(env_seed)  # own noise: the global RNG, hence the levels, untouched

    def act(obs):
        a = model.predict(obs, deterministic=True)[0]
        with torch.no_grad():  # the mean before SB3's clip to the box
            obs_t = model.policy.obs_to_tensor(obs)[0]
            dist = model.policy.get_distribution(obs_t).distribution
            mean, std = dist.mean.cpu(), dist.stddev.cpu()
            raw.append(mean.numpy())
            draw = mean + std * torch.randn(mean.shape, generator=gen, dtype=mean.dtype)
            sampled.append(candidate_pick(np.clip(draw.numpy(), -1.0, 1.0)))
        mine.append(candidate_pick(a))
        rule.append(candidate_pick(venv.core.greedy_action(obs)))
        acts.append(np.asarray(a))
        return a

    rollout(act, venv, n)
    p, g, a = np.concatenate(mine), np.concatenate(rule), np.concatenate(acts)
    return {
        "steps": int(len(p)),
        "agree_share": float((p == g).mean()),
        "sampled_agree_share": float((np.concatenate(sampled) == g).mean()),
        "picks": np.bincount(p, minlength=k).tolist(),
        "greedy_picks": np.bincount(g, minlength=k).tolist(),
        "saturated_share": float((np.abs(a) > 0.99).mean()),
        "outside_box_share": float((np.abs(np.concatenate(raw)) > 1.0).mean()),
        "mean_abs_action": float(np.abs(a).mean()),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_config(Config, argv)
    if args.n < 1:
        raise SystemExit("error: --n must be >= 1")

    from rlcreate.levels.share import untrained_policy
    from rlcreate.train.runner import restore

    result: dict = {"n_levels": args.n, "runs": {}}
    for run in [r for r in args.runs.split(",") if r]:
        asm, model = restore(run)
        env_seed = int(asm.recipe.seed) + 1  # the demo's requests
        result["runs"][run] = {
            "recipe": asm.recipe.name,
            "policy_kwargs": asm.recipe.trainer.hyper.get("policy_kwargs", {}),
            "env_steps": int(model.num_timesteps),
            "steered": agreement(model, asm, args.n, env_seed),
            "untrained_start": agreement(untrained_policy(asm), asm, args.n, env_seed),
        }
        r = result["runs"][run]
        print(
            f"{run}: steered agrees with greedy on {r['steered']['agree_share']:.3f} of steps "
            f"(start {r['untrained_start']['agree_share']:.3f}; sampled actions: steered "
            f"{r['steered']['sampled_agree_share']:.3f}, start {r['untrained_start']['sampled_agree_share']:.3f}); picks {r['steered']['picks']} vs greedy "
            f"{r['steered']['greedy_picks']}; saturated {r['steered']['saturated_share']:.3f}, "
            f"outside the box {r['steered']['outside_box_share']:.3f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
