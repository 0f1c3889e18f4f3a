"""Level search baselines on a latent-space recipe, at the same budget of reward evaluations as RL.

One *evaluation* = one decoded segment scored by the recipe's reward set = one environment step, so
a whole level (a *candidate*: ``n_segments x latent_dim`` actions in [-1, 1]) costs ``n_segments``
evaluations. Candidates are scored by running them through the environment's batched core
(:class:`rlcreate.envs.latent_level.LatentLevelCore`) with the recipe's reward set: the objective
is the composite episode return, exactly what the RL policy maximises. Control targets are drawn
per level from the recipe's ranges with the search's RNG, as they are for the policy (a static
latent cannot adapt to them; that is the advantage a target-conditioned policy should show).

Methods (the field's libraries, not re-implementations):

* ``random``: latents from the generator's N(0, I) prior (actions ``z / action_scale``, clipped).
* ``cma``: CMA-ES (the ``cma`` package), population = ``batch``, box-bounded to [-1, 1].
* ``map-elites``: MAP-Elites with Gaussian mutation (``ribs`` GaussianEmitter).
* ``cma-me``: CMA-ME (``ribs`` EvolutionStrategyEmitter with improvement ranking).
  Both QD methods keep their archive in the behaviour grid named by ``descriptors``.

:func:`run_search` (``rlcreate baseline``, :mod:`rlcreate.evaluation.baselines`) writes a run folder in the format of ``rlcreate train``: ``config.yaml``,
``samples/`` (levels txt + png, ``metrics.json``), plus ``baseline.json`` (method, budget, best)
and ``progress.json`` (best / mean composite per generation, evaluations so far).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.evaluation.baselines import BaselineError
from rlcreate.recipe import RecipeError
from rlcreate.runbox import write_text  # exclusive temp file + rename: never through a link

__all__ = ["METHODS", "LevelEvaluator", "run_search", "SearchResult", "check_search_section"]

METHODS = ("random", "cma", "map-elites", "cma-me")


def check_search_section(section: dict) -> dict:
    """The level keys of a recipe's ``baselines:`` section (``descriptors``), validated."""
    from rlcreate.levels.qd import DescriptorError, check_descriptors

    out = dict(section)
    for key in out:
        if key != "descriptors":
            raise RecipeError(f"baselines.{key}: does not apply to level recipes; remove it")
    if "descriptors" in out:
        d = out["descriptors"]
        if isinstance(d, str) or not isinstance(d, list):
            raise RecipeError(
                f"baselines.descriptors = {d!r}: write a list of one or two descriptor names, e.g. [enemies, leniency]"
            )
        if len(d) > 2:
            raise RecipeError(
                f"baselines.descriptors = {d!r}: the QD grid takes one or two descriptors; drop {len(d) - 2} of them"
            )
        try:
            check_descriptors(d)
        except DescriptorError as err:
            raise RecipeError(f"baselines.descriptors: {err}") from None
    return out


class LevelEvaluator:
    """Scores whole-level candidates through the environment's batched core.

    ``__call__(X)`` with ``X`` of shape ``(batch, n_segments * latent_dim)`` in [-1, 1] returns the
    composite episode returns ``(batch,)`` and the levels ``(batch, 14, W)``; it counts
    ``batch * n_segments`` evaluations. Weight schedules see ``progress = evaluations / budget``,
    as they see training progress in an RL run."""

    def __init__(self, asm: Any, batch: int, budget: int, seed: int = 0):
        self.venv, self.reward_set = asm.make_env(batch, seed), asm.reward_set
        self.core = self.venv.core
        if not hasattr(self.core, "gen"):
            raise BaselineError(
                f"env.id = {asm.recipe.env_id!r}: search baselines need a latent-space "
                "environment such as rlcreate/MarioLatent-v0"
            )
        if getattr(self.core, "choice", False):
            raise BaselineError(
                f"env.id = {asm.recipe.env_id!r} with candidate_action: choice: CMA-ES and MAP-Elites search "
                "Box actions; set candidate_action: box for them (best-of-n needs neither)"
            )
        self.batch, self.budget = int(batch), int(budget)
        self.n_segments, self.latent_dim = self.core.n_segments, int(self.core.action_space.shape[0])
        self.dim = self.n_segments * self.latent_dim
        self.rng = np.random.default_rng(seed)
        self.evaluations = 0

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        X = np.asarray(X, np.float32)
        if X.shape != (self.batch, self.dim):
            raise BaselineError(
                f"candidates have shape {X.shape}; expected ({self.batch}, {self.dim}) = "
                f"(batch, n_segments x latent_dim)"
            )
        self.core.progress = min(self.evaluations / max(self.budget, 1), 1.0)
        self.core.reset(self.rng)
        returns = np.zeros(self.batch)
        term_sums: dict[str, np.ndarray] = {}
        for t in range(self.n_segments):
            _, rew, _, infos = self.core.step(X[:, t * self.latent_dim : (t + 1) * self.latent_dim])
            returns += rew
            for name in infos[0].get("rewards", {}):  # a core scoring whole levels rewards only the last step
                vals = np.array([info["rewards"][name] for info in infos])
                term_sums[name] = term_sums.get(name, 0.0) + np.nan_to_num(vals)
        self.evaluations += self.batch * self.n_segments
        terms = {k: v / self.n_segments for k, v in term_sums.items()}
        return returns, self.core.levels.copy(), terms


@dataclass
class SearchResult:
    """What a search kept: its best levels, its QD archive levels (QD methods) and its progress."""

    method: str
    evaluations: int
    progress: list[dict] = field(default_factory=list)
    top: list[tuple[float, np.ndarray, dict]] = field(default_factory=list)  # (return, level, targets)
    all_grid: dict = field(default_factory=dict)

    def keep(self, returns: np.ndarray, levels: np.ndarray, targets: list[dict], k: int) -> None:
        """Keep the ``k`` best levels seen so far."""
        self.top.extend((float(r), lv, t) for r, lv, t in zip(returns, levels, targets))
        self.top.sort(key=lambda x: -x[0])
        del self.top[k:]


def _targets_of(core) -> list[dict]:
    return [{s.name: float(core.target_values[i, j]) for j, s in enumerate(core.targets)} for i in range(core.n)]


def _optimizer(method: str, ev: LevelEvaluator, seed: int, descriptors: list[str], prior_sigma: float):
    """``(cma_es, ribs_scheduler)`` for the method (both None for random search)."""
    from rlcreate.levels.qd import BehaviourGrid

    if method == "cma":
        import cma

        return cma.CMAEvolutionStrategy(
            np.zeros(ev.dim), prior_sigma, {"popsize": ev.batch, "bounds": [-1, 1], "seed": seed + 1, "verbose": -9}
        ), None
    if method not in ("map-elites", "cma-me"):
        return None, None
    from ribs.emitters import EvolutionStrategyEmitter, GaussianEmitter
    from ribs.schedulers import Scheduler

    archive = BehaviourGrid(tuple(descriptors), (14,) * len(descriptors)).archive(solution_dim=ev.dim, seed=seed)
    bounds = [(-1.0, 1.0)] * ev.dim
    n_em = 4 if ev.batch % 4 == 0 and ev.batch >= 8 else 1
    if method == "map-elites":
        emitters = [
            GaussianEmitter(
                archive,
                sigma=prior_sigma / 2,
                x0=np.zeros(ev.dim),
                bounds=bounds,
                batch_size=ev.batch // n_em,
                seed=seed + i,
            )
            for i in range(n_em)
        ]
    else:
        emitters = [
            EvolutionStrategyEmitter(
                archive,
                x0=np.zeros(ev.dim),
                sigma0=prior_sigma,
                ranker="2imp",
                bounds=bounds,
                batch_size=ev.batch // n_em,
                seed=seed + i,
            )
            for i in range(n_em)
        ]
    return None, Scheduler(archive, emitters)


def _search(
    method: str, ev: LevelEvaluator, generations: int, seed: int, descriptors: list[str], keep: int, progress_bar: bool
) -> tuple[SearchResult, list]:
    from tqdm.auto import tqdm

    from rlcreate.levels.qd import DEFAULT_GRID, describe

    result = SearchResult(method, 0)
    fixed = DEFAULT_GRID.archive(solution_dim=1)  # every evaluated level, in the fixed report grid
    prior_sigma = 1.0 / ev.core.gen.action_scale  # N(0, I) prior expressed in action units
    rng = np.random.default_rng(seed)
    es, scheduler = _optimizer(method, ev, seed, descriptors, prior_sigma)
    best = -math.inf
    for gen in tqdm(range(generations), desc=method, disable=not progress_bar):
        if method == "random":
            X = np.clip(rng.standard_normal((ev.batch, ev.dim)) * prior_sigma, -1, 1)
        elif method == "cma":
            X = np.asarray(es.ask(), np.float64)
        else:
            X = scheduler.ask()
        returns, levels, _ = ev(X)
        desc_fixed = describe(levels, DEFAULT_GRID.names)
        fixed.add(np.zeros((len(levels), 1)), np.maximum(returns, 0.0), desc_fixed)
        if method == "cma":
            es.tell(list(X), list(-returns))  # cma minimises
        elif scheduler is not None:
            meas = desc_fixed if tuple(descriptors) == DEFAULT_GRID.names else describe(levels, descriptors)
            scheduler.tell(returns, meas)
        result.keep(returns, levels, _targets_of(ev.core), keep)
        best = max(best, float(returns.max()))
        result.progress.append(
            {
                "generation": gen,
                "evaluations": ev.evaluations,
                "best": float(returns.max()),
                "mean": float(returns.mean()),
                "best_so_far": best,
                "coverage_all": float(fixed.stats.coverage),
            }
        )
    result.evaluations = ev.evaluations
    result.all_grid = {
        "coverage": float(fixed.stats.coverage),
        "qd_score": float(fixed.stats.qd_score),
        "filled": int(fixed.stats.num_elites),
    }
    elites = []
    if scheduler is not None:
        data = scheduler.archive.data()
        elites = [(float(o), np.asarray(s, np.float32)) for o, s in zip(data["objective"], data["solution"])]
    return result, elites


def _products(result: SearchResult, elites: list, ev: LevelEvaluator, n: int, seed: int) -> tuple[list, list]:
    """The search's written samples and their returns: the best levels found, or for QD methods
    (whose product is the archive) elites drawn across the archive and re-scored through the env."""
    if not elites:
        return [{"level": lv, "targets": tg} for _, lv, tg in result.top], [r for r, _, _ in result.top]
    pick = np.random.default_rng(seed).permutation(len(elites))[:n]
    X = np.stack([elites[i][1] for i in pick])
    X = np.concatenate([X, np.zeros((-len(X) % ev.batch, ev.dim), np.float32)])
    items, returns = [], []
    for s in range(0, len(pick), ev.batch):
        r, lv, _ = ev(X[s : s + ev.batch])
        tg = _targets_of(ev.core)
        take = min(ev.batch, len(pick) - s)
        items += [{"level": lv[i], "targets": tg[i]} for i in range(take)]
        returns += [float(x) for x in r[:take]]
    return items, returns


def run_search(
    asm: Any,
    method: str,
    run_dir: Path,
    budget: int | None = None,
    batch: int | None = None,
    section: dict | None = None,
    progress_bar: bool = True,
    descriptors: list[str] | None = None,
    **unused: Any,
) -> dict:
    """Run one level search ``method`` with ``budget`` reward evaluations (default: the recipe's
    ``trainer.total_timesteps``, the RL run's budget) and write ``run_dir``. Returns ``baseline.json``'s
    content. ``batch``: candidates per generation (default ``trainer.n_envs``; CMA-ES's population
    size). ``descriptors``: behaviour descriptors of the QD archive (default leniency, linearity).
    Token recipes (``rlcreate/MarioTokens-v1``) go to :func:`rlcreate.levels.token_search.run_token_search`."""
    from rlcreate.levels.qd import check_descriptors
    from rlcreate.levels.samples import write_search_run

    if asm.recipe.env_id.startswith("rlcreate/MarioTokens"):  # discrete offers: the token path's genome
        from rlcreate.levels.token_search import run_token_search

        return run_token_search(asm, method, run_dir, budget, batch, section, progress_bar, descriptors, **unused)
    for key, value in unused.items():
        if value is not None:
            raise BaselineError(f"--{key} does not apply to level search baselines; remove it")
    recipe, section = asm.recipe, section or {}
    descriptors = check_descriptors(descriptors or section.get("descriptors") or ["leniency", "linearity"])
    budget = int(budget if budget is not None else recipe.trainer["total_timesteps"])
    batch = int(batch or recipe.trainer["n_envs"])
    if batch < 2:
        raise BaselineError(f"batch = {batch}: CMA-ES and MAP-Elites need at least 2 candidates per generation")
    ev = LevelEvaluator(asm, batch, budget, seed=recipe.seed)
    per_gen = batch * ev.n_segments
    if budget < per_gen:
        raise BaselineError(
            f"--budget {budget}: one generation of {batch} levels x {ev.n_segments} segments "
            f"costs {per_gen} evaluations; give --budget >= {per_gen} or a smaller --batch"
        )
    generations = budget // per_gen  # whole generations only, so evaluations <= budget
    n_samples = recipe.trainer["samples"]
    t0 = time.perf_counter()
    result, elites = _search(method, ev, generations, recipe.seed, descriptors, n_samples, progress_bar)
    seconds = time.perf_counter() - t0

    items, returns = _products(result, elites, ev, n_samples, recipe.seed)
    baselines = {**section, "method": method, "budget": budget, "batch": batch, "descriptors": descriptors}
    write_search_run(run_dir, recipe, baselines, items, returns, ev.reward_set, result.progress)
    info = {
        "method": method,
        "budget": budget,
        "evaluations": result.evaluations,
        "generations": generations,
        "batch": batch,
        "n_segments": ev.n_segments,
        "descriptors": descriptors,
        "best_return": max(p["best_so_far"] for p in result.progress),
        "final_mean_return": result.progress[-1]["mean"],
        "samples_mean_return": float(np.mean(returns)),
        "all_evaluated_qd": result.all_grid,
        "seconds": round(seconds, 2),
        "evaluations_per_second": round(result.evaluations / max(seconds, 1e-9), 1),
    }
    write_text(run_dir / "baseline.json", json.dumps(info, indent=2))
    return info
