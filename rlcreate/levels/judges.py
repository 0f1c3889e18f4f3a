"""Judges: evaluation measures of a level set that are distinct from the training reward.

A recipe names them in ``judges:``; :func:`run_judges` computes them on a list of level grids and
returns ``{judge: {measure: value}}``. Each judge is independent of the reward terms it audits:

``astar``
    the real A* agent (Mario AI Framework): ``win_rate`` (mean over levels of the per-level win
    fraction over ``astar_runs`` plays), ``completion``, ``jumps``. Skipped with a message (the
    result holds ``skipped``) when Java is absent.
``tile_kl``
    tile-pattern KL divergence (Lucas & Volz) to the training corpus with 2x2 *and* 3x3 patterns
    (the ``style_coherence`` reward uses 2x2 only), and ``coherence_3x3 = exp(-KL_3x3)``.
``expressive_range``
    mean and std of leniency, linearity and density (Smith & Whitehead).
``novelty``
    nearest-neighbour normalised Hamming distance of the levels' 16-column windows to the training
    windows (``train_distance``) and to the held-out windows (``heldout_distance``), the fraction of
    windows that copy a training window exactly (``copied_windows``: memorisation), and, for
    reference, the median distance of held-out corpus pieces of the same width to the training
    windows (``heldout_reference_median``).
``validity``
    fraction of structurally valid levels (pipes, cannons, no enemies inside solids).
``solver``
    fraction of levels the fast grid solver crosses (the proxy the playability reward uses; kept as
    a judge so reports can show it next to A*).
``diversity``
    distinct columns and mean pairwise tile distance within the set (how different the levels are
    from each other, which no per-level reward measures).
``human_likeness``
    classifier two-sample AUC of the set's 16-column segments against the held-out TEST blocks,
    element profile against the human band, distinct-segment share; ``flagged`` above AUC 0.70
    (:func:`rlcreate.levels.quality.judge_human_likeness`).
``engagement``
    the A* agent's traced play of every level and of the held-out human windows: effort per
    16-column segment and its slope along the level, the human band, and the *played* tension per
    segment next to the recipe's requested curve when it has a ``tension_curve`` term
    (:mod:`rlcreate.levels.play_judge`). Not a default judge: it plays every level once more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from rlcreate.evaluation import UnknownJudgeError
from rlcreate.validate import suggest

__all__ = ["JUDGES", "UnknownJudgeError", "check_judges", "run_judges", "tension_request", "DEFAULT_JUDGES"]

DEFAULT_JUDGES = ("astar", "tile_kl", "expressive_range", "novelty", "validity", "solver", "diversity")


@functools.lru_cache(maxsize=4)
def _kl(size: int):
    from rlcreate.levels import corpus
    from rlcreate.levels.metrics import TilePatternKL

    return TilePatternKL([b.grid() for b in corpus.training_blocks()], size=size)


@functools.lru_cache(maxsize=2)
def _neighbours(which: str):
    from rlcreate.levels import corpus
    from rlcreate.levels.metrics import CorpusNeighbours

    windows = corpus.training_windows(16) if which == "train" else corpus.held_out_windows(16)
    return CorpusNeighbours(windows)


@functools.lru_cache(maxsize=8)
def _heldout_reference_median(width: int) -> float:
    from rlcreate.levels import corpus

    nn = _neighbours("train")
    vals = []
    for b in corpus.held_out_blocks():
        g = b.grid()
        for s in range(0, g.shape[1] - width + 1, width):
            vals.append(nn.level_distance(g[:, s : s + width]))
    return float(np.median(vals)) if vals else float("nan")


def _windows16(levels: Sequence[np.ndarray]) -> np.ndarray:
    out = [g[:, s : s + 16] for g in levels for s in range(0, g.shape[1] - 15, 16)]
    return np.stack(out)


def judge_astar(levels, astar_runs: int = 2, workers: int = 2, astar_levels: int | None = None, **_) -> dict:
    """The A* agent's plays of the first ``astar_levels`` levels (all when None): plays dominate a
    judgement's time, and the demo's eval needs only the ones its table already played."""
    from rlcreate.levels.astar import java_available, run_astar

    if not java_available():
        return {
            "skipped": "java not found: install a Java 17 runtime (apt-get install openjdk-17-jdk-headless) "
            "to judge playability with the A* agent"
        }
    played = list(levels)[:astar_levels] if astar_levels else list(levels)
    summaries = run_astar(played, runs=astar_runs, workers=workers)
    return {
        "levels": len(played),
        "win_rate": float(np.mean([s.win_rate for s in summaries])),
        "beaten": float(np.mean([s.win_rate >= 0.5 for s in summaries])),
        "completion": float(np.mean([s.mean_completion for s in summaries])),
        "jumps": float(np.mean([np.mean([r.jumps for r in s.results]) for s in summaries])),
        "runs_per_level": int(astar_runs),
        "per_level_win_rate": [float(s.win_rate) for s in summaries],
    }


def judge_tile_kl(levels, **_) -> dict:
    stack = _same_width(levels)
    kl2 = _kl(2).batch(stack) if stack is not None else np.array([_kl(2)(g) for g in levels])
    kl3 = _kl(3).batch(stack) if stack is not None else np.array([_kl(3)(g) for g in levels])
    return {
        "kl_2x2": float(kl2.mean()),
        "kl_3x3": float(kl3.mean()),
        "coherence_3x3": float(np.exp(-kl3).mean()),
        "per_level_kl_3x3": kl3.tolist(),
    }


def judge_expressive_range(levels, **_) -> dict:
    from rlcreate.levels.metrics import density, leniency, linearity

    out: dict = {}
    for name, fn in (("leniency", leniency), ("linearity", linearity), ("density", density)):
        vals = np.array([fn(g) for g in levels])
        out[name] = float(vals.mean())
        out[f"{name}_std"] = float(vals.std())
    return out


def judge_novelty(levels, **_) -> dict:
    widths = {g.shape[1] for g in levels}
    train = np.array([_neighbours("train").level_distance(g) for g in levels])
    held = np.array([_neighbours("heldout").level_distance(g) for g in levels])
    copies = float((_neighbours("train").distance(_windows16(levels)) == 0).mean())
    return {
        "train_distance": float(train.mean()),
        "heldout_distance": float(held.mean()),
        "copied_windows": copies,
        "heldout_reference_median": _heldout_reference_median(max(widths)) if len(widths) == 1 else float("nan"),
        "per_level_train_distance": train.tolist(),
    }


def judge_validity(levels, **_) -> dict:
    from rlcreate.levels.validity import is_valid

    return {"valid": float(np.mean([is_valid(g) for g in levels]))}


def judge_solver(levels, **_) -> dict:
    from rlcreate.levels.solver import solve

    res = [solve(g) for g in levels]
    return {
        "playable": float(np.mean([r.reached_end for r in res])),
        "completion": float(np.mean([(r.furthest_col + 1) / g.shape[1] for r, g in zip(res, levels)])),
    }


def judge_diversity(levels, **_) -> dict:
    from scipy.spatial.distance import pdist

    stack = _same_width(levels)
    cols = np.concatenate([g.T for g in levels])
    out = {"distinct_columns": float(len(np.unique(cols, axis=0)) / len(cols))}
    if stack is not None and len(stack) > 1:
        out["pairwise_tile_distance"] = float(pdist(stack.reshape(len(stack), -1), metric="hamming").mean())
    return out


def judge_human_likeness(levels, **_) -> dict:
    from rlcreate.levels.quality import judge_human_likeness as judge

    return judge(levels)


def judge_engagement(levels, workers: int = 2, tension_request=None, **_) -> dict:
    from rlcreate.levels.play_judge import judge_engagement as judge

    return judge(levels, workers=workers, tension_request=tension_request)


def _same_width(levels) -> np.ndarray | None:
    return np.stack(levels) if len({g.shape for g in levels}) == 1 else None


JUDGES: dict[str, Callable[..., dict]] = {
    "astar": judge_astar,
    "tile_kl": judge_tile_kl,
    "expressive_range": judge_expressive_range,
    "novelty": judge_novelty,
    "validity": judge_validity,
    "solver": judge_solver,
    "diversity": judge_diversity,
    "human_likeness": judge_human_likeness,
    "engagement": judge_engagement,
}


def check_judges(names: Sequence[str]) -> list[str]:
    """Validate judge names; unknown ones raise :class:`UnknownJudgeError` with a suggestion."""
    for n in names:
        if n not in JUDGES:
            raise UnknownJudgeError(f"judges: unknown judge {n!r}.{suggest(n, JUDGES)} Known judges: {sorted(JUDGES)}")
    return list(names)


def run_judges(
    levels: Sequence[np.ndarray],
    names: Sequence[str] = DEFAULT_JUDGES,
    astar_runs: int = 2,
    workers: int = 2,
    astar_levels: int | None = None,
    tension_request: str | Sequence[float] | None = None,
) -> dict[str, dict]:
    """Compute the named judges on level grids ``(14, W)``; ``{judge: {measure: value}}``. The A*
    agent plays the first ``astar_levels`` (default all); ``tension_request``: the curve a recipe's
    ``tension_curve`` term asks for (:func:`tension_request`), which ``engagement`` compares with play."""
    names = check_judges(names)
    levels = [np.asarray(g) for g in levels]
    if not levels:
        raise ValueError("no levels to judge; generate some first (rlcreate eval RUN --n 16)")
    options = dict(astar_runs=astar_runs, workers=workers, astar_levels=astar_levels, tension_request=tension_request)
    return {n: JUDGES[n](levels, **options) for n in names}


def tension_request(recipe) -> str | list[float] | None:
    """The curve of the recipe's first ``tension_curve`` term (its default, "rising", when it names
    none), or None without such a term."""
    for term in recipe.rewards.values():
        if term.reward == "tension_curve":
            return term.args.get("curve", "rising")
    return None
