"""Benchmark: how often does a policy's set of levels land inside the human element band?

The element profile of one 64-level set is a noisy test: even sets of random human windows are
inside the 5th-95th percentile band on all five elements only ~62% of the time. A single set per
training seed therefore says little about a policy; this script draws ``sets`` sets of ``n`` levels
(each answering other requests: env seeds ``seed .. seed + sets - 1``) from each policy and reports
per element the mean count and the share of sets inside the band, and the share of sets inside on
all five / on at least four, next to the same shares for random human sets.

Policies: trained token runs (``--runs``, comma-separated run folders: their final model, sampled)
and the token demo recipe's untrained start (the policy before training; with ``--element_bias``
also a calibrated start: the env's ``element_bias`` offsets).

    OMP_NUM_THREADS=1 python scripts/bench_profile_sets.py --runs runs/demo,runs/demo_s1 \\
        --element_bias coins=0.3,pipes=0.2,question_blocks=0.08 --out benchmarks/profile_sets.json
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class Config:
    runs: str = ""
    """comma-separated run folders whose final policy is sampled ("" = none)"""
    starts: str = "tokens"
    """"tokens": also sample the untrained start of the token demo's recipe (mario_tokens.yaml); "" = no"""
    element_bias: str = ""
    """also sample each start with these env logit offsets, e.g. "coins=0.3,pipes=0.2" ("" = no)"""
    sets: int = 6
    """sets per policy (each with its own env seed, i.e. its own requests)"""
    n: int = 64
    """levels per set (the demo's)"""
    seed: int = 100
    """first env seed (away from the demo's and the benches' seeds)"""
    out: str = "benchmarks/profile_sets.json"
    """where the JSON result is written"""


def parse_bias(text: str) -> dict[str, float]:
    try:
        return {k.strip(): float(v) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise SystemExit(f"error: --element_bias {text!r}: write name=offset pairs, e.g. coins=0.3,pipes=0.2") from None


def profile_sets(model, asm, cfg: Config) -> dict:
    """``cfg.sets`` sets of ``cfg.n`` levels from ``model``: per-set profiles and the shares inside."""
    from rlcreate.levels.quality import ELEMENTS, profile_report
    from rlcreate.levels.share import sample_levels

    reports = []
    for k in range(cfg.sets):
        levels, _ = sample_levels(model, asm, cfg.n, cfg.seed + k, cfg.seed + k)
        reports.append(profile_report(levels))
    inside = np.array([r["inside"] for r in reports])
    return {
        "per_set_inside": inside.tolist(),
        "all_inside": float((inside == len(ELEMENTS)).mean()),
        "all_but_one_inside": float((inside >= len(ELEMENTS) - 1).mean()),
        "elements": {
            e: {
                "set_means": [round(r["elements"][e]["mean"], 3) for r in reports],
                "mean": float(np.mean([r["elements"][e]["mean"] for r in reports])),
                "inside_share": float(np.mean([r["elements"][e]["inside"] for r in reports])),
                "band": [reports[0]["elements"][e]["low"], reports[0]["elements"][e]["high"]],
            }
            for e in ELEMENTS
        },
    }


def main(cfg: Config) -> dict:
    import sklearn
    import stable_baselines3
    import torch

    from rlcreate.assemble import assemble
    from rlcreate.levels.demo import demo_recipe_path
    from rlcreate.levels.quality import human_sets_inside
    from rlcreate.levels.share import untrained_policy
    from rlcreate.recipe import load_recipe
    from rlcreate.train.runner import restore

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    result: dict = {
        "config": asdict(cfg),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sb3": stable_baselines3.__version__,
            "sklearn": sklearn.__version__,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_avg_1min_at_start": load0,
        },
        "human_sets": human_sets_inside(128, cfg.n),
        "policies": {},
    }
    for run in [r for r in cfg.runs.split(",") if r]:
        if not Path(run).is_dir():
            raise SystemExit(f"error: --runs {run!r}: not a run folder; train one with `rlcreate demo --out {run}`")
        asm, model = restore(run)
        print(f"{run}: sampling {cfg.sets} x {cfg.n} levels ...", flush=True)
        result["policies"][run] = {"kind": "trained", "policy": model.rlcreate_source, **profile_sets(model, asm, cfg)}
    for name in [s for s in cfg.starts.split(",") if s]:
        if name != "tokens":
            raise SystemExit(f'error: --starts {name!r}: use tokens (the token demo\'s recipe) or ""')
        variants = {"start": None}
        if cfg.element_bias:
            variants["calibrated start"] = parse_bias(cfg.element_bias)
        for label, bias in variants.items():
            recipe = load_recipe(demo_recipe_path(name))
            if bias:
                recipe.env["kwargs"]["element_bias"] = bias
            asm = assemble(recipe)
            print(f"{name} {label}: sampling {cfg.sets} x {cfg.n} levels ...", flush=True)
            result["policies"][f"{name} {label}"] = {
                "kind": "untrained",
                "element_bias": bias,
                **profile_sets(untrained_policy(asm), asm, cfg),
            }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["machine"]["load_avg_1min"] = os.getloadavg()[0]
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(result, indent=2))
    h = result["human_sets"]
    print(f"human sets: all five inside {h['all']:.0%}, at least four {h['all_but_one']:.0%}")
    for k, v in result["policies"].items():
        means = ", ".join(f"{e} {x['mean']:.2f} ({x['inside_share']:.0%})" for e, x in v["elements"].items())
        print(f"{k}: all five {v['all_inside']:.0%}, at least four {v['all_but_one_inside']:.0%}; {means}")
    print(f"wrote {cfg.out}")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
