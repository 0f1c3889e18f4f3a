"""Baselines at the RL run's budget: ``rlcreate baseline RECIPE --method M``.

Each domain provides its methods (:meth:`rlcreate.domains.Domain.baseline_methods`): the levels
domain searches the latent space (random, CMA-ES, MAP-Elites, CMA-ME; :mod:`rlcreate.levels.search`),
the text domain samples the LM (sampling grid, best-of-n; :mod:`rlcreate.text.baselines`).
Every method writes a run folder in the format of ``rlcreate train`` plus ``baseline.json``.

A recipe may carry defaults in an optional top-level ``baselines:`` section (command-line flags win)::

    baselines:
      method: map-elites                 # default for --method
      budget: 4096                       # reward evaluations (default: the RL run's)
      batch: 16                          # candidates per generation / texts per LM batch
      descriptors: [enemies, leniency]   # levels: QD behaviour grid
      n: 8                               # text: best-of-n candidates per prompt
      grid: [[0.7, 0.9], [1.0, 1.0]]     # text: sampling (temperature, top_p) pairs
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlcreate.errors import UserError
from rlcreate.recipe import Recipe, RecipeError
from rlcreate.validate import check_choice, check_int, check_keys, fail

__all__ = [
    "BaselineError",
    "GENERIC_KEYS",
    "baseline_section",
    "read_baseline_section",
    "run_baseline",
]

GENERIC_KEYS = ("method", "budget", "batch")


class BaselineError(UserError):
    """A baseline cannot run with these settings; the message names the value and the fix."""


def baseline_section(raw: Any, recipe: Recipe | None = None) -> dict:
    """Validate a recipe's ``baselines:`` section (generic keys here, domain keys by the recipe's
    domain). Returns the section with only the keys given (``{}`` for none)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail("baselines", raw, "write a mapping, e.g. baselines: {method: cma, budget: 4096}", RecipeError)
    from rlcreate.domains import builtin_domains

    # generic keys and every domain's own; the recipe's domain then rejects the others by name
    known = GENERIC_KEYS + tuple(dict.fromkeys(k for d in builtin_domains() for k in d.baseline_keys))
    check_keys("baselines", raw, known, RecipeError)
    out = dict(raw)
    for key in ("budget", "batch"):  # >= 1 as --budget / --batch; a method needing more says so
        if key in out:
            check_int(f"baselines.{key}", out[key], 1, error=RecipeError)
    if recipe is None:
        return out
    from rlcreate.domains import domain_of

    domain = domain_of(recipe.env_id)
    if "method" in out:
        check_choice(
            "baselines.method", out["method"], domain.baseline_methods(), f"a baseline of {recipe.env_id}", RecipeError
        )
    extra = {k: v for k, v in out.items() if k not in GENERIC_KEYS}
    return {**{k: v for k, v in out.items() if k in GENERIC_KEYS}, **domain.check_baseline_section(extra)}


def read_baseline_section(path: str | Path, recipe: Recipe | None = None) -> dict:
    """The validated ``baselines:`` section of a recipe file (``{}`` when absent)."""
    from rlcreate.safe_io import load_yaml

    raw = load_yaml(path, "recipe")
    return baseline_section(raw.get("baselines") if isinstance(raw, dict) else None, recipe)


def run_baseline(
    recipe: Recipe,
    method: str,
    run_dir: Path,
    budget: int | None = None,
    batch: int | None = None,
    section: dict | None = None,
    progress_bar: bool = True,
    **options: Any,
) -> dict:
    """Run the recipe domain's baseline ``method`` with ``budget`` reward evaluations (default: the
    recipe's ``trainer.total_timesteps``) into ``run_dir``; returns ``baseline.json``'s content.
    ``options`` are the method's own (``descriptors`` for level searches, ``n`` for best-of-n, ...)."""
    from rlcreate.assemble import assemble
    from rlcreate.domains import domain_options

    asm = assemble(recipe)
    options = domain_options("baseline", options, asm.domain)
    methods = asm.domain.baseline_methods()
    check_choice("--method", method, methods, f"a baseline for {recipe.env_id}", BaselineError)
    section = baseline_section(section, recipe)
    budget = budget if budget is not None else section.get("budget")
    batch = batch if batch is not None else section.get("batch")
    if budget is not None:
        check_int("--budget", budget, 1, error=BaselineError)
    options = {**{k: section[k] for k in asm.domain.baseline_keys if k in section}, **options}
    return methods[method](
        asm, method, Path(run_dir), budget=budget, batch=batch, section=section, progress_bar=progress_bar, **options
    )
