"""Benchmark: does MaskablePPO steering of frozen SmolLM2 beat plain sampling, on TEST prompts?

Reads top to bottom: config, train ``rlcreate/recipes/text_steer.yaml`` (or reuse a finished run),
write ``n`` steered / plain / LM-top-k texts on the TEST prompts (never used for tuning) with the
recipe's reward terms, and summarise with paired standard errors computed here. Writes JSON with
machine, versions and load (``rlcreate.benchmark``).

The recipe reward is the training objective, so this says whether steering optimised it off the
training prompts; it is not a judge of quality (``rlcreate eval`` and the creativity benchmark are).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_text_steer.py`` (about 10 min here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlcreate.scripting import parse_config


@dataclass
class Config:
    recipe: str = "rlcreate/recipes/text_steer.yaml"
    """the steering recipe"""
    run: str = "runs/bench_text_steer"
    """run folder (reused when it holds a finished policy)"""
    timesteps: int = 0
    """override trainer.total_timesteps (0 = the recipe's; smoke runs use a few hundred)"""
    n: int = 96
    """texts per group on the TEST prompts"""
    seed: int = 7
    """sampling seed of the comparison"""
    out: str = "benchmarks/text_steer.json"
    """where the JSON result is written"""


def paired(records: list[dict], a: str, b: str) -> dict:
    """Mean of per-draw differences a - b of the total reward, with its standard error."""
    d = np.array([r[a]["total"] - r[b]["total"] for r in records], np.float64)
    d = d[np.isfinite(d)]
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))), "n": int(len(d))}


def main(cfg: Config) -> dict:
    from rlcreate.benchmark import environment, finish, write_json
    from rlcreate.recipe import load_recipe
    from rlcreate.train.runner import has_policy, restore, train_run

    env = environment(dataclasses.asdict(cfg))
    recipe = load_recipe(cfg.recipe)
    if cfg.timesteps:
        recipe.trainer.total_timesteps = cfg.timesteps
    run = Path(cfg.run)
    if not has_policy(run):
        train_run(recipe, run, progress_bar=False, overwrite=run.exists())
    asm, model = restore(run)
    asm.recipe.env.kwargs["eval_prompts"] = "test"  # report on prompts no recipe was tuned on
    summary = asm.domain.generate(model, asm, cfg.n, run / "test_samples", seed=cfg.seed)
    import json

    records = json.loads((run / "test_samples" / "texts.json").read_text())
    groups = ("steered", "plain", "lm_topk")
    result = {
        "prompts": "test",
        "policy": model.rlcreate_source,
        "mean": {g: {k.split("/", 1)[1]: v for k, v in summary["mean"].items() if k.startswith(g + "/")}
                 for g in groups},
        "steered_minus_plain": paired(records, "steered", "plain"),
        "steered_minus_lm_topk": paired(records, "steered", "lm_topk"),
        "lm_topk_minus_plain": paired(records, "lm_topk", "plain"),
    }
    result = {**finish(env), **result}
    write_json(cfg.out, result)
    print(json.dumps({k: result[k] for k in ("mean", "steered_minus_plain", "steered_minus_lm_topk")}, indent=2))
    return result


if __name__ == "__main__":
    main(parse_config(Config))
