"""Search baselines on the token env (``rlcreate/MarioTokens-v1``) at the RL run's budget of env steps.

The latent-path baselines (:mod:`rlcreate.levels.search`) search a continuous action space; the
token env's action is a discrete pick among the column LM's top-k offers, so a search needs a
*genome* that decodes to a level. Here a genome is a vector ``x`` in ``[-1, 1]^n_columns``: at
column ``t`` the allowed offers are ranked by a reference policy's probability (the recipe's
untrained start: the LM plus its control prior, masks applied) and gene ``x_t`` picks the offer at
quantile ``u = (x_t + 1) / 2`` of that distribution (inverse-CDF sampling). Why this genome:

* a uniform genome is exactly one draw from PPO's start, so the search begins where PPO begins,
  random search over genomes *is* best-of-n from the start, and every level the start can write
  (and only those: masks and top-k hold) is reachable;
* the env's LM is deterministic given the actions, so genome + control targets fix the level;
* it is the column LM's own noise decoding (one quantile per column), as MarioLatent-v1's
  ``ColumnLMLatent`` decodes uniform noise.

Its weakness: 128 dimensions and a context-dependent decoding (a changed gene changes what every
later gene means), which is hard for CMA-ES with ~64 generations.

One *evaluation* = one env step (one column), so a candidate level costs ``n_columns`` of the
budget, as a PPO episode does. The fitness is the env's episode return under the recipe's reward
set (the composite PPO maximises, without PPO's KL-to-start penalty); control targets are drawn per
candidate with the env's RNG, as :mod:`rlcreate.levels.search` does. Methods (the field's libraries):
``random`` (uniform genomes), ``cma`` (``cma``'s CMA-ES, population = batch, box [-1, 1]) and
``map-elites`` (``ribs``: grid archive over two behaviour descriptors, Gaussian mutation, seeded with
uniform genomes). The answer set is the ``keep`` best *distinct* levels evaluated (random, CMA-ES)
or the archive's ``keep`` best elites (MAP-Elites), each with the targets it was written for.
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

__all__ = [
    "TOKEN_METHODS",
    "quantile_actions",
    "TokenLevelEvaluator",
    "TokenSearchResult",
    "token_search",
    "run_token_search",
]

TOKEN_METHODS = ("random", "cma", "map-elites")
RANKS = ("start", "lm")  # what orders the offers a gene picks from (TokenLevelEvaluator)
UNIFORM_STD = 1.0 / math.sqrt(3.0)  # std of U[-1, 1]: CMA-ES's initial step size in genome units


def quantile_actions(probs: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """Per row, the slot at quantile ``(gene + 1) / 2`` of ``probs`` with slots ranked by
    probability (highest first; zero-probability, i.e. masked, slots are never picked unless all are)."""
    probs = np.asarray(probs, np.float64)
    order = np.argsort(-probs, axis=1, kind="stable")
    cum = np.cumsum(np.take_along_axis(probs, order, 1), axis=1)
    total = cum[:, -1:]
    u = np.clip((np.asarray(genes, np.float64) + 1.0) / 2.0, 0.0, 1.0)[:, None] * total
    pos = (cum <= u).sum(1)  # first slot whose cumulative mass exceeds u
    n_pos = (probs > 0).sum(1)
    pos = np.minimum(pos, np.maximum(n_pos - 1, 0))
    return order[np.arange(len(probs)), pos]


class TokenLevelEvaluator:
    """Writes a batch of genomes into levels through the recipe's token env and scores them.

    ``__call__(X)``, ``X`` of shape ``(batch, n_columns)`` in [-1, 1], returns the episode returns
    ``(batch,)``, the levels ``(batch, 14, n_columns)`` and each level's control targets; it counts
    ``batch * n_columns`` evaluations. Weight schedules see ``progress = evaluations / budget``, as
    they see training progress in an RL run. ``policy``: the reference ranking the offers (an SB3
    maskable policy; default the recipe's untrained start). ``rank="lm"`` ranks by the LM's own
    top-k probabilities instead (masked; the policy's ``lm_logits``): the control prior then does not
    enter the decoding, so a genome writes the same level whatever the targets (they change only its
    reward), at the price that a uniform genome is an LM draw rather than a draw from PPO's start."""

    def __init__(self, asm: Any, batch: int, budget: int, seed: int = 0, policy: Any = None, rank: str = "start"):
        import torch as th

        if rank not in RANKS:
            raise BaselineError(f"rank = {rank!r}: use one of {', '.join(RANKS)}")
        self.rank = rank

        self.venv = asm.make_env(batch, seed)
        core = self.venv.core
        if not hasattr(core, "offered_columns"):
            raise BaselineError(
                f"env.id = {asm.recipe.env_id!r}: token search needs a column-token environment such as "
                "rlcreate/MarioTokens-v1 (latent envs: rlcreate baseline)"
            )
        if policy is None:
            from rlcreate.levels.share import untrained_policy

            policy = untrained_policy(asm)
        self.policy = policy.policy if hasattr(policy, "policy") else policy
        self.th = th
        self.batch, self.budget, self.n_columns = int(batch), int(budget), int(core.n_columns)
        self.dim = self.n_columns
        self.evaluations = 0
        self._obs = self.venv.reset()

    def probs(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The reference policy's masked action probabilities, ``(batch, k)``."""
        with self.th.no_grad():
            tensor = self.policy.obs_to_tensor(obs)[0]
            if self.rank == "lm":
                logits = self.policy.lm_logits(tensor).cpu().numpy().astype(np.float64)
                logits = np.where(masks, logits, -np.inf)
                p = np.exp(logits - logits.max(1, keepdims=True))
                return p / p.sum(1, keepdims=True)
            dist = self.policy.get_distribution(tensor, action_masks=masks)
            return dist.distribution.probs.cpu().numpy()

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        X = np.asarray(X, np.float64)
        if X.shape != (self.batch, self.dim):
            raise BaselineError(
                f"genomes have shape {X.shape}; expected ({self.batch}, {self.dim}) = (batch, n_columns)"
            )
        self.venv.set_progress(min(self.evaluations / max(self.budget, 1), 1.0))
        obs, returns = self._obs, np.zeros(self.batch)
        for t in range(self.n_columns):
            actions = quantile_actions(self.probs(obs, self.venv.action_masks()), X[:, t])
            obs, rew, done, infos = self.venv.step(actions)
            returns += rew
        if not done.all():
            raise BaselineError(
                f"the env's episodes are not {self.n_columns} columns long; token search needs fixed widths"
            )
        levels = np.stack([info["level"] for info in infos])
        targets = [dict(info.get("targets", {})) for info in infos]
        self._obs = obs  # already the next episodes' first observation (SB3 auto-reset)
        self.evaluations += self.batch * self.n_columns
        return returns, levels, targets


@dataclass
class TokenSearchResult:
    """What a search kept: its answer set (best first) and its progress per generation."""

    method: str
    evaluations: int = 0
    seconds: float = 0.0
    levels: list[np.ndarray] = field(default_factory=list)
    targets: list[dict] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    progress: list[dict] = field(default_factory=list)
    archive: dict = field(default_factory=dict)


def _optimizer(method: str, dim: int, batch: int, seed: int, descriptors: list[str], cells: int):
    """``(cma_es, ribs_scheduler)`` for the method (both None for random search)."""
    if method == "cma":
        import cma

        opts = {"popsize": batch, "bounds": [-1, 1], "seed": seed + 1, "verbose": -9}
        return cma.CMAEvolutionStrategy(np.zeros(dim), UNIFORM_STD, opts), None
    if method != "map-elites":
        return None, None
    from ribs.emitters import GaussianEmitter
    from ribs.schedulers import Scheduler

    from rlcreate.levels.qd import BehaviourGrid

    archive = BehaviourGrid(tuple(descriptors), (cells,) * len(descriptors)).archive(solution_dim=dim, seed=seed)
    rng = np.random.default_rng(seed)
    emitter = GaussianEmitter(
        archive,
        sigma=UNIFORM_STD / 2,
        initial_solutions=rng.uniform(-1, 1, (batch, dim)),  # the first generation: draws from the start
        bounds=[(-1.0, 1.0)] * dim,
        batch_size=batch,
        seed=seed,
    )
    return None, Scheduler(archive, [emitter])


def token_search(
    asm: Any,
    method: str,
    budget: int,
    batch: int = 16,
    seed: int = 0,
    keep: int = 64,
    descriptors: tuple[str, ...] | list[str] = ("enemies", "gaps"),
    cells: int = 16,
    policy: Any = None,
    rank: str = "start",
) -> TokenSearchResult:
    """Run ``method`` with ``budget`` env steps (whole generations of ``batch`` levels only, so the
    evaluations never exceed it) on the recipe ``asm``'s token env; return the answer set."""
    from rlcreate.levels.qd import check_descriptors, describe

    if method not in TOKEN_METHODS:
        raise BaselineError(f"method = {method!r}: use one of {', '.join(TOKEN_METHODS)}")
    if batch < 2:
        raise BaselineError(f"batch = {batch}: CMA-ES and MAP-Elites need at least 2 candidates per generation")
    descriptors = check_descriptors(descriptors)
    ev = TokenLevelEvaluator(asm, batch, budget, seed, policy, rank)
    generations = int(budget) // (batch * ev.n_columns)
    if generations < 1:
        raise BaselineError(
            f"budget = {budget}: one generation of {batch} levels x {ev.n_columns} columns costs "
            f"{batch * ev.n_columns} env steps; give a budget >= that or a smaller batch"
        )
    es, scheduler = _optimizer(method, ev.dim, batch, seed, descriptors, cells)
    rng = np.random.default_rng(seed)
    seen: dict[bytes, tuple[float, np.ndarray, dict]] = {}  # distinct levels -> best return, level, targets
    by_genome: dict[bytes, bytes] = {}  # MAP-Elites: archive solution -> its level's key
    result, best, t0 = TokenSearchResult(method), -math.inf, time.perf_counter()
    for gen in range(generations):
        if method == "random":
            X = rng.uniform(-1, 1, (batch, ev.dim))
        elif es is not None:
            X = np.asarray(es.ask(), np.float64)
        else:
            X = np.asarray(scheduler.ask(), np.float64)
        returns, levels, targets = ev(X)
        for x, r, lv, tg in zip(X, returns, levels, targets):
            key = lv.tobytes()
            if key not in seen or r > seen[key][0]:
                seen[key] = (float(r), lv, tg)
            by_genome[x.tobytes()] = key
        if es is not None:
            es.tell(list(X), list(-returns))  # cma minimises
        elif scheduler is not None:
            scheduler.tell(returns, describe(levels, descriptors))
        best = max(best, float(returns.max()))
        result.progress.append(
            {"generation": gen, "evaluations": ev.evaluations, "mean": float(returns.mean()), "best_so_far": best}
        )
    if scheduler is not None:
        data = scheduler.archive.data(["solution", "objective"])
        order = np.argsort(-np.asarray(data["objective"]))
        keys = list(dict.fromkeys(by_genome[np.asarray(data["solution"][i], np.float64).tobytes()] for i in order))
        pool = [seen[k] for k in keys]
        stats = scheduler.archive.stats
        result.archive = {"coverage": float(stats.coverage), "filled": int(stats.num_elites), "cells": cells**2}
    else:
        pool = sorted(seen.values(), key=lambda c: -c[0])
    pool = pool[:keep]
    result.levels = [c[1] for c in pool]
    result.targets = [c[2] for c in pool]
    result.returns = [c[0] for c in pool]
    result.evaluations, result.seconds = ev.evaluations, round(time.perf_counter() - t0, 2)
    return result


def run_token_search(
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
    """``rlcreate baseline`` on a token recipe: :func:`token_search` with ``budget`` env steps (default
    the recipe's ``trainer.total_timesteps``), ``batch`` levels per generation (default
    ``trainer.n_envs``), written like :func:`rlcreate.levels.search.run_search`'s run folder
    (``config.yaml``, ``samples/``, ``progress.json``, ``baseline.json``). ``descriptors``: the
    MAP-Elites grid (default enemies, gaps)."""
    from rlcreate.levels.samples import write_search_run
    from rlcreate.runbox import write_text

    for key, value in unused.items():
        if value is not None:
            raise BaselineError(f"--{key} does not apply to level search baselines; remove it")
    recipe, section = asm.recipe, section or {}
    descriptors = list(descriptors or section.get("descriptors") or ["enemies", "gaps"])
    budget = int(budget if budget is not None else recipe.trainer["total_timesteps"])
    batch = int(batch or recipe.trainer["n_envs"])
    res = token_search(asm, method, budget, batch, recipe.seed, recipe.trainer["samples"], descriptors)
    items = [{"level": lv, "targets": tg} for lv, tg in zip(res.levels, res.targets)]
    baselines = {**section, "method": method, "budget": budget, "batch": batch, "descriptors": descriptors}
    write_search_run(run_dir, recipe, baselines, items, res.returns, asm.reward_set, res.progress)
    info = {
        "method": method,
        "budget": budget,
        "evaluations": res.evaluations,
        "generations": len(res.progress),
        "batch": batch,
        "n_columns": int(res.levels[0].shape[1]),
        "genome": "one gene per column: the quantile of the untrained start's offer distribution",
        "descriptors": descriptors,
        "best_return": res.progress[-1]["best_so_far"],
        "final_mean_return": res.progress[-1]["mean"],
        "samples_mean_return": float(np.mean(res.returns)),
        "archive": res.archive,
        "seconds": res.seconds,
        "evaluations_per_second": round(res.evaluations / max(res.seconds, 1e-9), 1),
    }
    write_text(run_dir / "baseline.json", json.dumps(info, indent=2))
    return info
