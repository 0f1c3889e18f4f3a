"""Level samples: per-level metrics and the files a run writes (``level_XXX.txt|png``, montage,
``metrics.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_levels", "summarise_levels", "write_search_run"]


def summarise_levels(levels: list[np.ndarray], reward_set=None) -> list[dict[str, Any]]:
    """Per-level metrics (and whole-level reward terms when a reward set is given)."""
    from rlcreate.levels.metrics import level_metrics
    from rlcreate.levels.rewards import corpus_neighbours, corpus_pattern_kl
    from rlcreate.levels.solver import solve
    from rlcreate.levels.validity import is_valid

    rows = []
    terms = None
    if reward_set is not None:
        terms = reward_set(levels, progress=1.0).terms
    for i, g in enumerate(levels):
        m: dict[str, Any] = {
            k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v)
            for k, v in level_metrics(g, kl=corpus_pattern_kl(2), neighbours=corpus_neighbours(16)).items()
        }
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
    from rlcreate.runbox import write_text

    folder.mkdir(parents=True, exist_ok=True)
    items: list[dict[str, Any]] = [x if isinstance(x, dict) else {"level": x, "targets": {}} for x in levels]
    grids = [x["level"] for x in items]
    per_level = summarise_levels(grids, reward_set)
    for i, (item, m) in enumerate(zip(items, per_level)):
        write_level(item["level"], folder / f"level_{i:03d}.txt")
        render_level(item["level"], folder / f"level_{i:03d}.png")
        m["file"] = f"level_{i:03d}.txt"
        m["targets"] = {k: float(v) for k, v in item["targets"].items()}
    render_montage(
        grids[:16], folder / "montage.png", ncols=2, labels=[f"level_{i:03d}" for i in range(len(grids[:16]))]
    )
    summary = {
        "n": len(grids),
        "levels": per_level,
        "mean": {
            k: float(np.mean([m[k] for m in per_level]))
            for k, v in per_level[0].items()
            if isinstance(v, (int, float, bool))
        },
    }
    write_text(folder / "metrics.json", json.dumps(summary, indent=2))
    return summary


def write_search_run(
    run_dir: Path, recipe: Any, baselines: dict, items: list, returns: list, reward_set: Any, progress: list
) -> None:
    """A search's run folder in the format of ``rlcreate train``: ``config.yaml`` (the recipe with
    the resolved ``baselines:`` section, so the folder reproduces the search), ``samples/`` (levels,
    their reward terms and each one's episode return) and ``progress.json``; the caller adds
    ``baseline.json``. Shared by the latent and the token searches."""
    import yaml

    from rlcreate.runbox import write_text  # exclusive temp file + rename: never through a link

    run_dir.mkdir(parents=True, exist_ok=True)
    config = recipe.to_dict()
    config["baselines"] = baselines
    write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    summary = write_levels(items, run_dir / "samples", reward_set)
    for m, r in zip(summary["levels"], returns):
        m["episode_return"] = float(r)
    summary["mean"]["episode_return"] = float(np.mean(returns))
    write_text(run_dir / "samples" / "metrics.json", json.dumps(summary, indent=2))
    write_text(run_dir / "progress.json", json.dumps(progress, indent=1))
