"""Level runs: build the recipe's environment, train, and write sampled levels with their metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.recipe import Recipe, RecipeError, build_reward_set

__all__ = ["build_level_env", "train_level_recipe", "generate_levels", "write_levels", "summarise_levels"]


def build_level_env(recipe: Recipe, n_envs: int | None = None, seed: int | None = None, reward_set=None):
    """The recipe's level environment as a batched SB3 VecEnv (and its reward set)."""
    reward_set = reward_set or build_reward_set(recipe)
    n = n_envs or recipe.trainer["n_envs"]
    seed = recipe.seed if seed is None else seed
    kwargs = dict(recipe.env_kwargs)
    if recipe.env_id == "rlcreate/MarioLatent-v0":
        from rlcreate.envs.mario import make_mario_latent_vec

        venv = make_mario_latent_vec(n_envs=n, targets=recipe.targets, reward=reward_set, seed=seed, **kwargs)
    elif recipe.env_id == "rlcreate/MarioTokens-v0":
        from rlcreate.envs.column_tokens import make_mario_tokens_vec

        venv = make_mario_tokens_vec(n_envs=n, targets=recipe.targets, reward=reward_set, seed=seed, **kwargs)
    else:
        raise ValueError(f"{recipe.env_id} is not a level environment")
    venv.seed(seed)
    return venv, reward_set


def train_level_recipe(recipe: Recipe, run_dir: Path, progress_bar: bool = True,
                       total_timesteps: int | None = None) -> dict:
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.train.sb3 import train_recipe

    venv, reward_set = build_level_env(recipe)
    model = train_recipe(recipe, VecMonitor(venv), reward_set, run_dir, progress_bar, total_timesteps)
    levels = generate_levels(model, recipe, recipe.trainer["samples"], reward_set=reward_set)
    return write_levels(levels, run_dir / "samples", reward_set)


def generate_levels(model, recipe: Recipe, n: int, targets: dict[str, float] | None = None,
                    reward_set=None, seed: int | None = None, deterministic: bool = True) -> list[dict]:
    """Roll out the policy for ``n`` complete levels. ``targets`` fixes control targets (a value
    per name) instead of sampling them. Returns dicts with ``level`` and ``targets``."""
    from rlcreate.train.sb3 import rollout_levels

    if targets:
        unknown = sorted(set(targets) - set(recipe.targets))
        if unknown:
            raise RecipeError(f"--targets names {unknown} are not control targets of this run; "
                             f"its targets are {sorted(recipe.targets)}")
        recipe = Recipe(**{**recipe.__dict__, "targets": {**recipe.targets,
                                                          **{k: [v, v] for k, v in targets.items()}}})
    venv, _ = build_level_env(recipe, n_envs=min(n, 16), seed=(recipe.seed + 1) if seed is None else seed,
                              reward_set=reward_set)
    infos = rollout_levels(model, venv, n, deterministic=deterministic)
    return [{"level": info["level"], "targets": info.get("targets", {})} for info in infos]


def summarise_levels(levels: list[np.ndarray], reward_set=None) -> list[dict[str, Any]]:
    """Per-level metrics (and whole-level reward terms when a reward set is given)."""
    from rlcreate.levels.metrics import level_metrics
    from rlcreate.levels.solver import solve
    from rlcreate.levels.validity import is_valid
    from rlcreate.rewards.levels import corpus_neighbours, corpus_pattern_kl

    rows = []
    terms = None
    if reward_set is not None:
        terms = reward_set(levels, progress=1.0).terms
    for i, g in enumerate(levels):
        m = {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
             for k, v in level_metrics(g, kl=corpus_pattern_kl(2), neighbours=corpus_neighbours(16)).items()}
        res = solve(g)
        m["solver_playable"] = bool(res.reached_end)
        m["valid"] = bool(is_valid(g))
        if terms is not None:
            m["reward_terms"] = {k: float(v[i]) for k, v in terms.items()}
        rows.append(m)
    return rows


def write_levels(levels: list[dict] | list[np.ndarray], folder: Path, reward_set=None) -> dict:
    """Write ``level_XXX.txt`` / ``.png``, a montage and ``metrics.json``; returns the summary."""
    from rlcreate.levels.render import render_level, render_montage
    from rlcreate.levels.tiles import write_level

    folder.mkdir(parents=True, exist_ok=True)
    items = [x if isinstance(x, dict) else {"level": x, "targets": {}} for x in levels]
    grids = [x["level"] for x in items]
    per_level = summarise_levels(grids, reward_set)
    for i, (item, m) in enumerate(zip(items, per_level)):
        write_level(item["level"], folder / f"level_{i:03d}.txt")
        render_level(item["level"], folder / f"level_{i:03d}.png")
        m["file"] = f"level_{i:03d}.txt"
        m["targets"] = {k: float(v) for k, v in item["targets"].items()}
    render_montage(grids[:16], folder / "montage.png", ncols=2, labels=[f"level_{i:03d}" for i in range(len(grids[:16]))])
    summary = {"n": len(grids), "levels": per_level,
               "mean": {k: float(np.mean([m[k] for m in per_level]))
                        for k, v in per_level[0].items() if isinstance(v, (int, float, bool))}}
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary
