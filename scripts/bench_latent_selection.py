"""Selection on top of RL and on top of a rule, at equal decodes (MarioLatent-v1 with a choice).

The latent demo compares one PPO level (4 candidate decodes per segment) with best-of-4 whole
levels from its untrained start and with the greedy picker. Its strongest comparator is
**best-of-4 around the rule**: the same recipe started at the greedy pick (``rule_gain``), drawn
four times per request and the level the objective likes most kept, at four times PPO's decodes.
This script asks whether PPO, given the same four draws, is still ahead: per run (a trained
``candidate_action: choice`` run, e.g. ``rlcreate demo --generator latent``) and on the demo's
requests (env seed = the recipe's seed + 1, 256 per set), the rows are

- ``ppo``: the trained policy by its mode (the demo's steered set, level for level);
- ``ppo_best_of_4``: per request the best by the recipe's objective of four PPO draws (draw 0 the
  mode, draws 1-3 sampled with policy seeds env seed + 101..103, as the demo draws its start), the
  kept set scored again as one set (its batch terms see the levels kept, as in the demo);
- ``rule_best_of_4``: the same four draws from the rule-start recipe's untrained policy (draw 0 its
  mode: the greedy picker), i.e. the demo's ``best_of_4`` row of that recipe;
- ``start_best_of_4``: the same from the run's own untrained start (the demo's ``best_of_4`` row);

and the paired differences (95% bootstrap CIs, per request): ``ppo_best_of_4 - rule_best_of_4``
(equal decodes, 16 per segment), ``ppo - rule_best_of_4`` (a quarter of them), ``ppo_best_of_4 -
ppo``. Reads top to bottom: config, draws, main.

    OMP_NUM_THREADS=1 python scripts/bench_latent_selection.py --runs runs/latchoice_s0,runs/latchoice_s1 \\
        --out benchmarks/latent_choice_selection.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from rlcreate.scripting import parse_config


@dataclass
class Config:
    runs: str
    """Comma-separated MarioLatent-v1 run folders trained with ``candidate_action: choice``."""
    rule_recipe: str = "benchmarks/recipes/latent_choice_rule_start.yaml"
    """The recipe whose untrained policy is the rule (the run's recipe plus ``rule_gain``)."""
    n: int = 256
    """Requests per set (the demo's objective sets: 256)."""
    draws: int = 4
    """Draws per request for every best-of row."""
    out: str = "benchmarks/latent_choice_selection.json"
    """Output JSON."""


def fail(message: str) -> NoReturn:
    """One ``error:`` line, exit code 2 (bad input, nothing written)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def best_of(model, asm, n: int, env_seed: int, draws: int, score) -> tuple[list, np.ndarray, list]:
    """Draw 0 by the mode, draws 1.. sampled (the demo's seeds); per request the level its draw's set
    scores highest, and the picked set scored again as one set (the batch terms see the levels kept,
    as the demo scores its best-of row). Returns (the mode's levels, the picked set's scores, the
    requests' targets)."""
    from rlcreate.levels.share import best_of_n, sample_levels

    sets = [sample_levels(model, asm, n, env_seed, env_seed + 100 + k, deterministic=k == 0) for k in range(draws)]
    targets = sets[0][1]
    if any(t != targets for _, t in sets):
        raise RuntimeError("the draws answered other requests (env seeding changed)")
    picked, _ = best_of_n([levels for levels, _ in sets], [score(levels, targets) for levels, _ in sets])
    return sets[0][0], score(picked, targets), targets


def main(argv: list[str] | None = None) -> dict:
    args = parse_config(Config, argv)
    if args.n < 2 or args.draws < 1:
        fail(f"--n {args.n} / --draws {args.draws}: need n >= 2 and draws >= 1")

    from rlcreate.assemble import assemble
    from rlcreate.levels.share import mean_ci, paired_diff, recipe_scores, untrained_policy
    from rlcreate.recipe import build_reward_set, load_recipe
    from rlcreate.train.runner import restore

    result: dict = {"n_levels": args.n, "draws": args.draws, "rule_recipe": args.rule_recipe, "runs": {}}
    for run in [r for r in args.runs.split(",") if r]:
        asm, model = restore(run)
        if not getattr(asm.make_env(1, 0, "eval").core, "choice", False):
            fail(
                f"--runs {run}: not a MarioLatent-v1 run with candidate_action: choice (train mario_latent_choice.yaml)"
            )
        recipe = asm.recipe
        rule = load_recipe(args.rule_recipe)
        rule.seed = recipe.seed
        env_seed = int(recipe.seed) + 1  # the demo's requests

        def score(levels, targets, recipe=recipe):
            return recipe_scores(lambda: build_reward_set(recipe), levels, targets)

        ppo_levels, ppo_best, targets = best_of(model, asm, args.n, env_seed, args.draws, score)
        ppo = score(ppo_levels, targets)
        rule_asm = assemble(rule)
        _, rule_best, rule_targets = best_of(untrained_policy(rule_asm), rule_asm, args.n, env_seed, args.draws, score)
        _, start_best, start_targets = best_of(untrained_policy(asm), asm, args.n, env_seed, args.draws, score)
        if rule_targets != targets or start_targets != targets:
            raise RuntimeError("the rule or the start answered other requests than PPO (env seeding changed)")
        rows = {"ppo": ppo, "ppo_best_of_n": ppo_best, "rule_best_of_n": rule_best, "start_best_of_n": start_best}
        result["runs"][run] = {
            "recipe": recipe.name,
            "seed": int(recipe.seed),
            "env_steps": int(model.num_timesteps),
            "objective": {k: mean_ci(v) for k, v in rows.items()},
            "differences": {
                "ppo_best_of_n_minus_rule_best_of_n": paired_diff(ppo_best, rule_best),
                "ppo_minus_rule_best_of_n": paired_diff(ppo, rule_best),
                "ppo_best_of_n_minus_ppo": paired_diff(ppo_best, ppo),
                "ppo_best_of_n_minus_start_best_of_n": paired_diff(ppo_best, start_best),
            },
        }
        r = result["runs"][run]
        print(f"{run}: " + ", ".join(f"{k} {v['mean']:.3f}" for k, v in r["objective"].items()))
        for k, v in r["differences"].items():
            print(f"    {k}: {v['mean']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}]")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
