"""Search baselines on a latent-space level recipe, at the same budget of reward evaluations as RL.

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

Token recipes (``rlcreate/TextTokens-v0``) take ``sampling`` and ``best-of-n`` instead
(:mod:`rlcreate.evaluation.text_baselines`); :func:`run_baseline` dispatches on the recipe.

A recipe may carry defaults in an optional top-level ``baselines:`` section (validated by
:func:`baseline_section`; command-line flags win)::

    baselines:
      method: map-elites                 # default for --method
      descriptors: [enemies, leniency]   # QD behaviour grid (level recipes)
      budget: 4096                       # reward evaluations (default: the RL run's)
      batch: 16                          # candidates per generation / texts per LM batch
      n: 8                               # best-of-n candidates per prompt (token recipes)
      grid: [[0.7, 0.9], [1.0, 1.0]]     # sampling (temperature, top_p) pairs (token recipes)

:func:`run_baseline` writes a run folder in the format of ``rlcreate train``: ``config.yaml``,
``samples/`` (levels txt + png, ``metrics.json``), plus ``baseline.json`` (method, budget, best)
and ``progress.json`` (best / mean composite per generation, evaluations so far).
"""

from __future__ import annotations

from rlcreate.errors import UserError

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.recipe import Recipe, build_reward_set

__all__ = ["METHODS", "ALL_METHODS", "BaselineError", "LevelEvaluator", "level_env", "run_baseline", "SearchResult",
           "baseline_section", "read_baseline_section", "BASELINE_KEYS"]

METHODS = ("random", "cma", "map-elites", "cma-me")
TEXT_ENVS = ("rlcreate/TextTokens-v0",)
LATENT_ENVS = ("rlcreate/MarioLatent-v0",)
BASELINE_KEYS = ("method", "descriptors", "budget", "batch", "n", "grid")


class BaselineError(UserError):
    """A baseline cannot run with these settings; the message names the value and the fix."""


def _all_methods() -> tuple[str, ...]:
    from rlcreate.evaluation.text_baselines import TEXT_METHODS

    return METHODS + TEXT_METHODS


ALL_METHODS = METHODS + ("sampling", "best-of-n")  # level searches + text baselines (CLI help)


def baseline_section(raw: Any, recipe: Recipe | None = None) -> dict:
    """Validate a recipe's ``baselines:`` section; :class:`rlcreate.recipe.RecipeError` names field,
    value and fix. Returns the section with only the keys given (``{}`` for none)."""
    import difflib

    from rlcreate.recipe import RecipeError

    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RecipeError(f"baselines = {raw!r}: write a mapping, e.g. baselines: {{descriptors: [enemies, leniency], "
                          "budget: 4096}")
    for key in raw:
        if key not in BASELINE_KEYS:
            close = difflib.get_close_matches(str(key), BASELINE_KEYS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RecipeError(f"baselines: unknown key {key!r}.{hint} Known keys: {sorted(BASELINE_KEYS)}")
    out = dict(raw)
    for key, low in (("budget", 1), ("batch", 2), ("n", 2)):
        if key in out and (isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < low):
            raise RecipeError(f"baselines.{key} = {out[key]!r}: must be an integer >= {low}")
    if "method" in out and out["method"] not in _all_methods():
        close = difflib.get_close_matches(str(out["method"]), _all_methods(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RecipeError(f"baselines.method = {out['method']!r}: not a baseline.{hint} Use one of {_all_methods()}")
    if "descriptors" in out:
        from rlcreate.evaluation.qd import DescriptorError, check_descriptors

        d = out["descriptors"]
        if isinstance(d, str) or not isinstance(d, list):
            raise RecipeError(f"baselines.descriptors = {d!r}: write a list of one or two descriptor names, "
                              "e.g. [enemies, leniency]")
        if len(d) > 2:
            raise RecipeError(f"baselines.descriptors = {d!r}: the QD grid takes one or two descriptors; drop "
                              f"{len(d) - 2} of them")
        try:
            check_descriptors(d)
        except DescriptorError as err:
            raise RecipeError(f"baselines.descriptors: {err}") from None
    if "grid" in out:
        from rlcreate.evaluation.text_baselines import _check_grid

        if not isinstance(out["grid"], list):
            raise RecipeError(f"baselines.grid = {out['grid']!r}: write a list of [temperature, top_p] pairs")
        try:
            out["grid"] = [list(g) for g in _check_grid(out["grid"])]
        except BaselineError as err:
            raise RecipeError(str(err)) from None
    if recipe is not None:
        text = recipe.env_id in TEXT_ENVS
        for key in (("descriptors",) if text else ("n", "grid")):
            if key in out:
                kind = "token" if text else "latent-space level"
                raise RecipeError(f"baselines.{key}: does not apply to {kind} recipes ({recipe.env_id}); remove it")
    return out


def read_baseline_section(path: str | Path, recipe: Recipe | None = None) -> dict:
    """The validated ``baselines:`` section of a recipe file (``{}`` when absent)."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return baseline_section(raw.get("baselines") if isinstance(raw, dict) else None, recipe)


def _resolve_generator(generator: Any, env_kwargs: dict) -> Any:
    """An explicit generator object wins; a ``generator:`` path in the recipe's env kwargs loads a
    level-VAE folder; otherwise the environment's default (the shipped VAE)."""
    if generator is not None:
        return generator
    spec = env_kwargs.get("generator")
    if isinstance(spec, (str, Path)):
        from rlcreate.generators.latent import LatentLevelGenerator

        return LatentLevelGenerator.load(spec)
    return spec


def level_env(recipe: Recipe, n_envs: int, seed: int, reward_set=None, generator: Any = None):
    """The recipe's latent level VecEnv with ``n_envs`` levels per step (generator overridable).

    Returns ``(venv, reward_set)``. Only latent-space recipes are supported."""
    if recipe.env_id not in LATENT_ENVS:
        raise BaselineError(f"env.id = {recipe.env_id!r}: search baselines need a latent-space environment "
                            f"{LATENT_ENVS}; token recipes take --method sampling or best-of-n")
    from rlcreate.envs.mario import make_mario_latent_vec

    reward_set = reward_set if reward_set is not None else build_reward_set(recipe)
    kwargs = dict(recipe.env_kwargs)
    gen = _resolve_generator(generator, kwargs)
    kwargs.pop("generator", None)
    venv = make_mario_latent_vec(n_envs=n_envs, targets=recipe.targets, reward=reward_set, generator=gen,
                                 seed=seed, **kwargs)
    venv.seed(seed)
    return venv, reward_set


class LevelEvaluator:
    """Scores whole-level candidates through the environment's batched core.

    ``__call__(X)`` with ``X`` of shape ``(batch, n_segments * latent_dim)`` in [-1, 1] returns the
    composite episode returns ``(batch,)`` and the levels ``(batch, 14, W)``; it counts
    ``batch * n_segments`` evaluations. Weight schedules see ``progress = evaluations / budget``,
    as they see training progress in an RL run."""

    def __init__(self, recipe: Recipe, batch: int, budget: int, seed: int = 0, generator: Any = None):
        self.venv, self.reward_set = level_env(recipe, batch, seed, generator=generator)
        self.core = self.venv.core
        self.batch, self.budget = int(batch), int(budget)
        self.n_segments, self.latent_dim = self.core.n_segments, int(self.core.action_space.shape[0])
        self.dim = self.n_segments * self.latent_dim
        self.rng = np.random.default_rng(seed)
        self.evaluations = 0

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        X = np.asarray(X, np.float32)
        if X.shape != (self.batch, self.dim):
            raise BaselineError(f"candidates have shape {X.shape}; expected ({self.batch}, {self.dim}) = "
                                f"(batch, n_segments x latent_dim)")
        self.core.progress = min(self.evaluations / max(self.budget, 1), 1.0)
        self.core.reset(self.rng)
        returns = np.zeros(self.batch)
        term_sums: dict[str, np.ndarray] = {}
        for t in range(self.n_segments):
            _, rew, _, infos = self.core.step(X[:, t * self.latent_dim:(t + 1) * self.latent_dim])
            returns += rew
            for name in infos[0]["rewards"]:
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


def _search(method: str, ev: LevelEvaluator, generations: int, seed: int, descriptors: list[str],
            keep: int, progress_bar: bool) -> tuple[SearchResult, list]:
    from tqdm.auto import tqdm

    from rlcreate.evaluation.qd import DEFAULT_GRID, BehaviourGrid, describe

    result = SearchResult(method, 0)
    fixed = DEFAULT_GRID.archive(solution_dim=1)  # every evaluated level, in the fixed report grid
    prior_sigma = 1.0 / ev.core.gen.action_scale  # N(0, I) prior expressed in action units
    rng = np.random.default_rng(seed)
    es = scheduler = None
    qd_grid = BehaviourGrid(tuple(descriptors), (14,) * len(descriptors)) if method in ("map-elites", "cma-me") else None
    if method == "cma":
        import cma

        es = cma.CMAEvolutionStrategy(np.zeros(ev.dim), prior_sigma,
                                      {"popsize": ev.batch, "bounds": [-1, 1], "seed": seed + 1, "verbose": -9})
    elif qd_grid is not None:
        from ribs.emitters import EvolutionStrategyEmitter, GaussianEmitter
        from ribs.schedulers import Scheduler

        archive = qd_grid.archive(solution_dim=ev.dim, seed=seed)
        bounds = [(-1.0, 1.0)] * ev.dim
        n_em = 4 if ev.batch % 4 == 0 and ev.batch >= 8 else 1
        if method == "map-elites":
            emitters = [GaussianEmitter(archive, sigma=prior_sigma / 2, x0=np.zeros(ev.dim), bounds=bounds,
                                        batch_size=ev.batch // n_em, seed=seed + i) for i in range(n_em)]
        else:
            emitters = [EvolutionStrategyEmitter(archive, x0=np.zeros(ev.dim), sigma0=prior_sigma, ranker="2imp",
                                                 bounds=bounds, batch_size=ev.batch // n_em, seed=seed + i)
                        for i in range(n_em)]
        scheduler = Scheduler(archive, emitters)
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
        result.progress.append({"generation": gen, "evaluations": ev.evaluations, "best": float(returns.max()),
                                "mean": float(returns.mean()), "best_so_far": best,
                                "coverage_all": float(fixed.stats.coverage)})
    result.evaluations = ev.evaluations
    result.all_grid = {"coverage": float(fixed.stats.coverage), "qd_score": float(fixed.stats.qd_score),
                       "filled": int(fixed.stats.num_elites)}
    elites = []
    if scheduler is not None:
        data = scheduler.archive.data()
        elites = [(float(o), np.asarray(s, np.float32)) for o, s in zip(data["objective"], data["solution"])]
    return result, elites


def run_baseline(recipe: Recipe, method: str, run_dir: Path, budget: int | None = None, batch: int | None = None,
                 descriptors: list[str] | None = None, generator: Any = None, progress_bar: bool = True,
                 section: dict | None = None, lm: Any = None, n: int | None = None) -> dict:
    """Run one search baseline with ``budget`` reward evaluations (default: the recipe's
    ``trainer.total_timesteps``, the RL run's budget) and write ``run_dir``. Returns ``baseline.json``'s
    content.

    ``batch``: candidates per generation (default ``trainer.n_envs``; CMA-ES's population size).
    ``descriptors``: behaviour descriptors of the QD archive (default leniency, linearity).
    ``section``: the recipe's validated ``baselines:`` section; its values fill what the arguments
    leave as ``None`` and it is saved in ``config.yaml``. Token recipes go to
    :func:`rlcreate.evaluation.text_baselines.run_text_baseline` (``lm``, ``n`` apply there)."""
    from rlcreate.evaluation.qd import check_descriptors
    from rlcreate.train.levels import write_levels

    text = recipe.env_id in TEXT_ENVS
    allowed = _all_methods()[len(METHODS):] if text else METHODS
    if method not in allowed:
        import difflib

        close = difflib.get_close_matches(str(method), allowed, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        kind = "token" if text else "latent-space level"
        other = f" ({method!r} is for {'level' if text else 'token'} recipes)" if method in _all_methods() else ""
        raise BaselineError(f"--method {method!r} is not a baseline for {kind} recipes{other}.{hint} "
                            f"Use one of {allowed}")
    section = baseline_section(section, recipe)
    budget = budget if budget is not None else section.get("budget")
    batch = batch if batch is not None else section.get("batch")
    if text:
        from rlcreate.evaluation.text_baselines import run_text_baseline

        return run_text_baseline(recipe, method, run_dir, budget=budget, batch=batch,
                                 n=n if n is not None else section.get("n"), grid=section.get("grid"), lm=lm,
                                 section=section, progress_bar=progress_bar)
    descriptors = check_descriptors(descriptors or section.get("descriptors") or ["leniency", "linearity"])
    budget = int(budget if budget is not None else recipe.trainer["total_timesteps"])
    batch = int(batch or recipe.trainer["n_envs"])
    if batch < 2:
        raise BaselineError(f"batch = {batch}: CMA-ES and MAP-Elites need at least 2 candidates per generation")
    ev = LevelEvaluator(recipe, batch, budget, seed=recipe.seed, generator=generator)
    per_gen = batch * ev.n_segments
    if budget < per_gen:
        raise BaselineError(f"--budget {budget}: one generation of {batch} levels x {ev.n_segments} segments "
                            f"costs {per_gen} evaluations; give --budget >= {per_gen} or a smaller --batch")
    generations = budget // per_gen  # whole generations only, so evaluations <= budget
    n_samples = recipe.trainer["samples"]
    t0 = time.perf_counter()
    result, elites = _search(method, ev, generations, recipe.seed, descriptors, n_samples, progress_bar)
    seconds = time.perf_counter() - t0

    run_dir.mkdir(parents=True, exist_ok=True)
    import yaml

    config = recipe.to_dict()  # the resolved baselines: section makes the folder reproduce this search
    config["baselines"] = {**section, "method": method, "budget": budget, "batch": batch, "descriptors": descriptors}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if elites:
        # QD methods: their product is the archive, so the samples are elites drawn across it
        # (re-scored through the same env core), not only the top of the objective.
        pick = np.random.default_rng(recipe.seed).permutation(len(elites))[:n_samples]
        X = np.stack([elites[i][1] for i in pick])
        X = np.concatenate([X, np.zeros((-len(X) % batch, ev.dim), np.float32)])
        items, returns = [], []
        for s in range(0, len(pick), batch):
            r, lv, _ = ev(X[s:s + batch])
            tg = _targets_of(ev.core)
            take = min(batch, len(pick) - s)
            items += [{"level": lv[i], "targets": tg[i]} for i in range(take)]
            returns += [float(x) for x in r[:take]]
    else:
        items = [{"level": lv, "targets": tg} for _, lv, tg in result.top]
        returns = [r for r, _, _ in result.top]
    summary = write_levels(items, run_dir / "samples", ev.reward_set)
    for m, r in zip(summary["levels"], returns):
        m["episode_return"] = float(r)
    summary["mean"]["episode_return"] = float(np.mean(returns))
    (run_dir / "samples" / "metrics.json").write_text(json.dumps(summary, indent=2))
    (run_dir / "progress.json").write_text(json.dumps(result.progress, indent=1))
    info = {"method": method, "budget": budget, "evaluations": result.evaluations, "generations": generations,
            "batch": batch, "n_segments": ev.n_segments, "descriptors": descriptors,
            "best_return": max(p["best_so_far"] for p in result.progress),
            "final_mean_return": result.progress[-1]["mean"], "samples_mean_return": float(np.mean(returns)),
            "all_evaluated_qd": result.all_grid, "seconds": round(seconds, 2),
            "evaluations_per_second": round(result.evaluations / max(seconds, 1e-9), 1)}
    (run_dir / "baseline.json").write_text(json.dumps(info, indent=2))
    return info
