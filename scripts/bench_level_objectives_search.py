"""Benchmark: designer objectives on the token path — PPO vs search baselines at PPO's training budget.

For each objective, the recipe ``bench_level_objectives.py`` trains (``objective_recipe``: the demo
recipe plus the objective term) is searched directly, with the budget of env steps PPO trained
with (``--budget``, default 131072 = 1,024 levels of 128 columns), by random search, CMA-ES and
MAP-Elites over genomes that pick each column as a quantile of the untrained start's offer
distribution (:mod:`rlcreate.levels.token_search`). Each search's answer set is its 64 best distinct
levels (MAP-Elites: the archive's 64 best elites). They are judged next to, in the same run:

- ``start``: the untrained start, one draw per request; ``best_of_4``: 4 start draws per request,
  the recipe's best kept (as in ``bench_level_objectives.py``);
- ``ppo``: one draw per request from the trained run in ``--runs/<objective>`` (left out, and said,
  when the run is missing);

on the objective's reward (the training signal), its held-out measure (different code), the
recipe's composite, human-likeness AUC vs TEST, the element profile, distinct 16-column segments
per 16 levels and in-level repetition. Search sets do not answer the policy's 64 requests (their
targets are drawn per candidate, as in ``rlcreate baseline``), so search-vs-PPO CIs are unpaired
bootstraps. Fairness: the search returns its best levels after spending the whole budget on
scored levels; the policy answers each request with one sample after training on the same budget.

    OMP_NUM_THREADS=1 python scripts/bench_level_objectives_search.py --runs runs/objectives_seed1 --seed 1 \\
        --out benchmarks/level_objectives_search.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_level_objectives import Config as ObjectiveConfig  # noqa: E402
from bench_level_objectives import machine, objective_recipe  # noqa: E402


@dataclass
class Config:
    objectives: str = "difficulty_ramp,style_athletic,rhythm,level_variety,sketch_match"
    """comma-separated objective reward names (rlcreate.levels.objectives)"""
    methods: str = "random,cma,map-elites"
    """comma-separated search methods (rlcreate.levels.token_search.TOKEN_METHODS)"""
    budget: int = 131072
    """env steps per search (PPO's training budget in bench_level_objectives.py)"""
    batch: int = 16
    """levels per generation (CMA-ES's population; PPO trains with 16 envs)"""
    n: int = 64
    """levels per judged set (the search's answer set; the policy's requests)"""
    descriptors: str = "enemies,gaps"
    """MAP-Elites behaviour descriptors (rlcreate.levels.qd)"""
    cells: int = 16
    """MAP-Elites grid cells per descriptor"""
    rank: str = "start"
    """what orders the offers a gene picks from: start (PPO's untrained start, control prior included)
    or lm (the column LM alone: a genome then writes the same level whatever the targets)"""
    runs: str = "runs/objectives_seed1"
    """folder of the trained PPO runs (bench_level_objectives.py --runs) compared against"""
    seed: int = 1
    """the PPO runs' seed (their requests use seed + 1); the searches use it too"""
    weight: float = 8.0
    """objective weight of the recipe (as the PPO runs were trained)"""
    profile_weight: float = 0.0
    """> 0: the recipe's element-profile weight (as the PPO runs were trained); 0 = the demo's"""
    offer_structure: int = 0
    """as the PPO runs were trained (1: per-offer objective features; the start is the same)"""
    samples: str = "runs/objectives_search"
    """folder where each search's answer set is written as level txt/png (empty: none)"""
    out: str = "benchmarks/level_objectives_search.json"
    """where the JSON result is written"""


def judge(levels: list, targets: list[dict], name: str, recipe, human) -> tuple[dict, dict]:
    """The set's judges (dict for the JSON) and its per-level arrays (for CIs)."""
    from rlcreate.levels.objective_judges import HELDOUT
    from rlcreate.levels.quality import level_repetition, set_judges
    from rlcreate.levels.share import mean_ci, recipe_scores
    from rlcreate.recipe import build_reward_set
    from rlcreate.rewards.registry import get_reward

    per = {
        "objective": np.asarray(get_reward(name)(list(levels)), np.float64),
        "heldout": np.asarray(HELDOUT[name](levels), np.float64),
        "composite": recipe_scores(lambda: build_reward_set(recipe), levels, targets),
    }
    sj = set_judges(levels, human=human)
    row = {
        "mean": float(per["objective"].mean()),
        "objective_ci": mean_ci(per["objective"])["ci"],
        "heldout": float(per["heldout"].mean()),
        "heldout_ci": mean_ci(per["heldout"])["ci"],
        "composite": float(per["composite"].mean()),
        "auc": float(sj["auc"]),
        "profile_in_band": int(sj["profile_inside"]),
        "profile": sj["profile"],
        "distinct_share": float(sj["distinct_share"]),
        "repetition": float(level_repetition(levels)["repeated_share"]),
        "n_levels": len(levels),
    }
    return row, per


def main(cfg: Config) -> dict:
    from rlcreate.assemble import assemble
    from rlcreate.levels.quality import human_reference_segments
    from rlcreate.levels.samples import write_levels
    from rlcreate.levels.share import best_of_n, recipe_scores, sample_levels, unpaired_diff, untrained_policy
    from rlcreate.levels.token_search import token_search
    from rlcreate.recipe import build_reward_set
    from rlcreate.train.runner import restore

    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    names = [s.strip() for s in cfg.objectives.split(",") if s.strip()]
    methods = [s.strip() for s in cfg.methods.split(",") if s.strip()]
    ocfg = ObjectiveConfig(
        seed=cfg.seed,
        weight=cfg.weight,
        profile_weight=cfg.profile_weight,
        offer_structure=cfg.offer_structure,
        timesteps=cfg.budget,
    )
    human, env_seed = human_reference_segments("test"), cfg.seed + 1
    base = assemble(objective_recipe(names[0], ocfg))
    start = untrained_policy(base)
    print(f"4 start draws of {cfg.n} levels ...", flush=True)
    draws = [sample_levels(start, base, cfg.n, env_seed, env_seed + 100 + k) for k in range(4)]
    targets = draws[0][1]
    result: dict = {
        "config": asdict(cfg),
        "machine": {**machine(), "load_avg_1min_at_start": load0},
        "fairness": (
            "search: its best distinct levels after spending the whole budget on scored levels (targets drawn "
            "per candidate); start / best-of-4 / ppo: one answer per request for the same 64 requests, ppo after "
            "training on the same budget; search-vs-ppo CIs are unpaired bootstraps"
        ),
        "objectives": {},
    }
    for name in names:
        recipe = objective_recipe(name, ocfg)
        asm = assemble(recipe)
        select = [recipe_scores(lambda recipe=recipe: build_reward_set(recipe), d[0], targets) for d in draws]
        sets: dict[str, tuple[list, list]] = {"start": (draws[0][0], targets)}
        sets["best_of_4"] = (best_of_n([d[0] for d in draws], select)[0], targets)
        run = Path(cfg.runs) / name
        if (run / "config.yaml").is_file():
            asm_run, model = restore(run, asm=assemble(recipe))
            ppo, t = sample_levels(model, asm_run, cfg.n, env_seed, env_seed)
            assert t == targets, "the policy answered different requests"
            sets["ppo"] = (ppo, targets)
        else:
            print(f"{name}: no trained run in {run}; the ppo row is left out", flush=True)
        info: dict = {}
        for method in methods:
            res = token_search(
                asm,
                method,
                cfg.budget,
                cfg.batch,
                cfg.seed,
                cfg.n,
                cfg.descriptors.split(","),
                cfg.cells,
                rank=cfg.rank,
            )
            sets[method] = (res.levels, res.targets)
            info[method] = {
                "evaluations": res.evaluations,
                "seconds": res.seconds,
                "archive": res.archive,
                "best_return": res.progress[-1]["best_so_far"],
                "progress": [
                    {k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()} for p in res.progress
                ],
            }
            print(
                f"  {name} {method}: {res.evaluations} env steps, {res.seconds:.0f} s, {len(res.levels)} kept",
                flush=True,
            )
            if cfg.samples:
                items = [{"level": lv, "targets": tg} for lv, tg in zip(res.levels, res.targets)]
                write_levels(items[:16], Path(cfg.samples) / name / method, asm.reward_set)
        row, per = {}, {}
        for key, (levels, tg) in sets.items():
            row[key], per[key] = judge(levels, tg, name, recipe, human)
        for method in methods:
            row[method]["search"] = info[method]
            for ref in ("ppo", "best_of_4"):
                if ref in per:
                    row[method][f"vs_{ref}"] = unpaired_diff(per[method]["objective"], per[ref]["objective"])
                    row[method][f"heldout_vs_{ref}"] = unpaired_diff(per[method]["heldout"], per[ref]["heldout"])
        result["objectives"][name] = row
        result["seconds"] = round(time.perf_counter() - t0, 1)
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(result, indent=2))  # after every objective: a long run keeps its part
        print(
            f"{name:16s} "
            + "  ".join(
                f"{k} {v['mean']:.3f}/{v['heldout']:.3f} auc {v['auc']:.2f} p{v['profile_in_band']}"
                for k, v in row.items()
            ),
            flush=True,
        )
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
