"""Judges of generated Mario levels that a reward cannot satisfy with noise or flat ground.

Three measures, each compared with human levels:

- **Element profile** (:func:`element_profile`, :func:`human_band`, :func:`profile_report`): per
  level, the counts of pipes, question blocks, enemies, coins and gaps per 128 columns
  (:func:`rlcreate.levels.metrics.element_counts`). A set of ``n`` levels is *inside the human band*
  for an element when its mean lies within the 5th-95th percentile of the means of ``n`` random
  human windows of the same width (drawn from the whole corpus: a description of human levels,
  not a training target).
- **Human-likeness** (:func:`human_likeness`): a classifier two-sample test. Two classifiers
  (logistic regression on one-hot tiles, gradient boosting on column/row summaries) try to tell
  16-column segments of the generated set from human segments; the judge is the larger of their
  cross-validated ROC AUCs (0.5 = indistinguishable, 1.0 = always told apart). Folds are grouped
  by level / corpus block, so overlapping windows never sit on both sides of a fold. For reports
  the human side is the TEST split (:func:`rlcreate.levels.corpus.test_windows`); tune on DEV.
- **Set diversity** (:func:`set_diversity`): the share of the set's 16-column segments that differ
  from *every* other segment of the set in at least 5% of tiles, and the mean pairwise tile
  distance. Both grow with fewer segments, so sets are compared at an equal segment count
  (``n_segments``, averaged over random subsets).

:func:`copy_share` gives the share of segments within copy distance of a training window;
:func:`level_repetition` the share of a level's own segments that nearly repeat another of its segments.
Structure: :func:`malformed_pipe_share` (pipes cut, uncapped or floating) and :func:`solid_block_share`
(walls of solid tiles).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from rlcreate.levels.tiles import IS_SOLID, TILES

__all__ = [
    "ELEMENTS",
    "SEGMENT",
    "element_profile",
    "human_band",
    "human_sets_inside",
    "profile_report",
    "level_segments",
    "segment_features",
    "human_likeness",
    "human_reference_segments",
    "set_diversity",
    "copy_share",
    "level_repetition",
    "distinct_tiles",
    "malformed_pipe_share",
    "solid_block_share",
    "astar_interleaved",
    "quality_table",
    "format_table",
    "judge_human_likeness",
    "AUC_FLAG",
]

#: elements of the profile (keys of :func:`rlcreate.levels.metrics.element_counts`)
ELEMENTS = ("pipes", "question_blocks", "enemies", "coins", "gaps")
SEGMENT = 16
PER = 128  # profile counts are per this many columns


def _grids(levels) -> list[np.ndarray]:
    return [np.asarray(g) for g in levels]


def element_profile(levels: Sequence[np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
    """Per level, counts of each of :data:`ELEMENTS` scaled to 128 columns: ``{name: (n,)}``."""
    from rlcreate.levels.metrics import element_counts

    grids = _grids(levels)
    if len(grids) > 1 and all(g.shape == grids[0].shape for g in grids):
        return _stack_profile(np.stack(grids))
    rows = [element_counts(g) for g in grids]
    return {e: np.array([r[e] * PER / g.shape[1] for r, g in zip(rows, grids)], np.float64) for e in ELEMENTS}


def _stack_profile(g: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`element_profile` of a stack of same-width levels in whole-array operations (the same
    counts as :func:`rlcreate.levels.metrics.element_counts` per level). Why: the latent env scores
    every candidate's level so far per step; one call per level was a tenth of its step time."""
    from rlcreate.levels import tiles as T
    from rlcreate.levels.validity import check_grids

    g = check_grids(g)
    tl, tr = g == T.PIPE_TL, g == T.PIPE_TR
    tr_alone = tr.copy()
    tr_alone[:, :, 1:] &= ~tl[:, :, :-1]
    hole = ~T.IS_SOLID[g[:, -1].astype(np.intp)]  # a gap column: no solid tile in the bottom row
    counts = {
        "pipes": tl.sum(axis=(1, 2)) + tr_alone.sum(axis=(1, 2)),
        "question_blocks": np.isin(g, (T.QUESTION, T.QCOIN)).sum(axis=(1, 2)),
        "enemies": (g == T.ENEMY).sum(axis=(1, 2)),
        "coins": (g == T.COIN).sum(axis=(1, 2)),
        "gaps": (hole[:, 1:] & ~hole[:, :-1]).sum(axis=1) + hole[:, 0],
    }
    return {e: counts[e].astype(np.int64) * PER / g.shape[2] for e in ELEMENTS}


def human_band(
    width: int = 128, n_levels: int = 64, draws: int = 2000, seed: int = 0, quantiles: tuple[float, float] = (5.0, 95.0)
) -> dict[str, dict[str, float]]:
    """5th-95th percentile band of the set mean of each element (per 128 columns) over ``draws``
    sets of ``n_levels`` random human windows of ``width`` columns (whole corpus, stride 1)."""
    from rlcreate.levels.corpus import corpus_windows

    windows = corpus_windows(width, stride=1)
    prof = element_profile(windows)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(windows), size=(draws, n_levels))
    out = {}
    for e in ELEMENTS:
        means = prof[e][pick].mean(axis=1)
        lo, hi = np.percentile(means, quantiles)
        out[e] = {"low": float(lo), "high": float(hi), "human_mean": float(prof[e].mean())}
    return out


@functools.lru_cache(maxsize=8)
def human_sets_inside(
    width: int = 128, n_levels: int = 64, draws: int = 4000, seed: int = 1, source: str = "corpus"
) -> dict[str, float]:
    """How often a set of ``n_levels`` random human windows (drawn as :func:`human_band` draws, with
    another seed) has all of :data:`ELEMENTS` inside the band, and at least all but one: the bar
    human material itself clears. Each element is inside ~90% of the time by the band's
    construction, so all five together (they are nearly independent) only ~60%: "5/5" is a strict
    test that a human set fails four times in ten. ``source="train"`` draws the sets from the
    TRAINING windows only: the bar for a generator that writes the training split's rates exactly
    (what :mod:`rlcreate.levels.calibrate` aims at), lower because the training split's means sit
    off the whole corpus's (coins 6.4 against 7.0 per 128 columns)."""
    from rlcreate.levels.corpus import corpus_windows, training_windows

    if source not in ("corpus", "train"):
        raise ValueError(f"source = {source!r}: write corpus or train")
    band = human_band(width=width, n_levels=n_levels)
    windows = corpus_windows(width, stride=1) if source == "corpus" else training_windows(width, stride=1)
    prof = element_profile(windows)
    pick = np.random.default_rng(seed).integers(0, len(windows), size=(draws, n_levels))
    inside = sum(
        ((prof[e][pick].mean(axis=1) >= band[e]["low"]) & (prof[e][pick].mean(axis=1) <= band[e]["high"])).astype(int)
        for e in ELEMENTS
    )
    return {"all": float((inside == len(ELEMENTS)).mean()), "all_but_one": float((inside >= len(ELEMENTS) - 1).mean())}


def profile_report(levels: Sequence[np.ndarray], band: dict | None = None) -> dict:
    """Set means per 128 columns, the human band for this set size and width, and which are inside;
    with the default band also ``human_sets``: how often random human sets of this size are inside
    (:func:`human_sets_inside`), and ``human_train_sets``: the same for sets of training windows."""
    grids = _grids(levels)
    default = band is None
    band = band or human_band(width=grids[0].shape[1], n_levels=len(grids))
    prof = element_profile(grids)
    per = {}
    for e in ELEMENTS:
        m = float(prof[e].mean())
        per[e] = {
            "mean": m,
            "low": band[e]["low"],
            "high": band[e]["high"],
            "inside": bool(band[e]["low"] <= m <= band[e]["high"]),
        }
    out = {"elements": per, "inside": int(sum(v["inside"] for v in per.values())), "of": len(ELEMENTS)}
    if default:
        out["human_sets"] = human_sets_inside(int(grids[0].shape[1]), len(grids))
        out["human_train_sets"] = human_sets_inside(int(grids[0].shape[1]), len(grids), source="train")
    return out


def distinct_tiles(levels: Sequence[np.ndarray]) -> np.ndarray:
    """Number of distinct tile types per level."""
    return np.array([len(np.unique(g)) for g in _grids(levels)], np.float64)


def level_segments(levels: Sequence[np.ndarray] | np.ndarray, width: int = SEGMENT) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping ``width``-column segments of every level and the index of the level each came from."""
    segs, owner = [], []
    for i, g in enumerate(_grids(levels)):
        for s in range(0, g.shape[1] - width + 1, width):
            segs.append(g[:, s : s + width])
            owner.append(i)
    return np.stack(segs).astype(np.int8), np.array(owner)


def segment_features(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two views of ``(n, 14, w)`` segments: one-hot tiles ``(n, 14*w*13)`` for the linear model and
    summaries for the tree model: tile-type counts, per-row solid counts, per-column ground height
    and highest solid tile, per-row counts of each non-empty tile type."""
    g = np.asarray(segments).astype(np.intp)
    n, h, w = g.shape
    onehot = np.eye(len(TILES), dtype=np.float32)[g].reshape(n, -1)
    solid = IS_SOLID[g]
    counts = np.stack([(g == t).sum(axis=(1, 2)) for t in range(len(TILES))], 1)
    row_solid = solid.sum(axis=2)
    ground = np.cumprod(solid[:, ::-1], axis=1).sum(axis=1)
    top = np.where(solid.any(axis=1), h - solid.argmax(axis=1), 0)
    row_type = np.stack([(g == t).sum(axis=2) for t in range(1, len(TILES))], 1).reshape(n, -1)
    summary = np.concatenate([counts, row_solid, ground, top, row_type], 1).astype(np.float32)
    return onehot, summary


def human_reference_segments(split: str = "test", stride: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """16-column human segments of a corpus split (``"test"``, ``"dev"`` or ``"train"``), with the
    block index of each (for grouped cross-validation)."""
    from rlcreate.levels import corpus

    blocks = {"test": corpus.test_blocks, "dev": corpus.dev_blocks, "train": corpus.training_blocks}[split]()
    segs, groups = [], []
    for i, b in enumerate(blocks):
        g = b.grid()
        for s in range(0, g.shape[1] - SEGMENT + 1, stride):
            segs.append(g[:, s : s + SEGMENT])
            groups.append(i)
    return np.stack(segs).astype(np.int8), np.array(groups)


def human_likeness(
    levels: Sequence[np.ndarray] | None = None,
    human: tuple[np.ndarray, np.ndarray] | None = None,
    generated_segments: tuple[np.ndarray, np.ndarray] | None = None,
    n_splits: int = 5,
    seed: int = 0,
    max_generated: int = 600,
) -> dict:
    """Classifier two-sample test: cross-validated ROC AUC of telling generated 16-column segments
    from human ones. Returns ``{"auc", "auc_logreg", "auc_boost", "n_generated", "n_human"}``;
    ``auc`` is the larger of the two classifiers' (the stricter judge).

    ``levels``: generated levels (cut into non-overlapping segments, grouped by level), or
    ``generated_segments = (segments, groups)``. ``human = (segments, groups)``; default the TEST
    split at stride 4 (:func:`human_reference_segments`). Out-of-fold probabilities of all folds
    are pooled into one AUC. At most ``max_generated`` generated segments are used (random subset).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    if generated_segments is None:
        if levels is None:
            raise ValueError("pass levels or generated_segments")
        generated_segments = level_segments(levels)
    gen, gen_groups = generated_segments
    hum, hum_groups = human if human is not None else human_reference_segments("test")
    rng = np.random.default_rng(seed)
    if len(gen) > max_generated:
        keep = np.sort(rng.choice(len(gen), max_generated, replace=False))
        gen, gen_groups = gen[keep], gen_groups[keep]
    x = np.concatenate([gen, hum])
    y = np.concatenate([np.ones(len(gen)), np.zeros(len(hum))])
    groups = np.concatenate([np.asarray(gen_groups), np.asarray(hum_groups) + int(np.max(gen_groups)) + 1])
    n_splits = int(min(n_splits, len(np.unique(hum_groups)), len(np.unique(gen_groups))))
    if n_splits < 2:
        raise ValueError("human_likeness needs at least 2 groups (levels / blocks) on each side")
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    onehot, summary = segment_features(x)
    models = {
        "auc_logreg": (LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"), onehot),
        "auc_boost": (
            HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, class_weight="balanced", random_state=seed),
            summary,
        ),
    }
    out = {}
    for name, (model, feats) in models.items():
        proba = cross_val_predict(model, feats, y, groups=groups, cv=cv, method="predict_proba")[:, 1]
        out[name] = float(roc_auc_score(y, proba))
    out["auc"] = max(out["auc_logreg"], out["auc_boost"])
    out.update(n_generated=int(len(gen)), n_human=int(len(hum)))
    return out


def _min_other_distance(flat: np.ndarray) -> tuple[np.ndarray, float]:
    """Per segment, the smallest tile distance to another segment; and the mean pairwise distance."""
    n = len(flat)
    diff = (flat[:, None, :] != flat[None, :, :]).mean(axis=2)
    np.fill_diagonal(diff, np.inf)
    mean_pair = float(diff[np.isfinite(diff)].mean()) if n > 1 else 0.0
    return diff.min(axis=1), mean_pair


def set_diversity(
    levels: Sequence[np.ndarray] | None = None,
    segments: np.ndarray | None = None,
    threshold: float = 0.05,
    n_segments: int | None = 40,
    draws: int = 20,
    seed: int = 0,
) -> dict:
    """Diversity of a set of levels from its non-overlapping 16-column segments.

    ``distinct_share``: share of segments that differ from every other segment of the set in at
    least ``threshold`` of their tiles; ``mean_pairwise``: mean tile distance between segments.
    With ``n_segments``, both are averaged over ``draws`` random subsets of that many segments (sets
    of different sizes are then comparable); ``*_full`` give the whole set's values.
    """
    if segments is None:
        if levels is None:
            raise ValueError("set_diversity needs levels or segments")
        segments, _ = level_segments(levels)
    flat = np.asarray(segments).reshape(len(segments), -1)
    mins, pair = _min_other_distance(flat)
    out = {
        "distinct_share_full": float((mins >= threshold).mean()),
        "mean_pairwise_full": pair,
        "n_segments_full": int(len(flat)),
    }
    if n_segments is not None and len(flat) >= n_segments:
        rng = np.random.default_rng(seed)
        shares, pairs = [], []
        for _ in range(draws):
            sub = flat[rng.choice(len(flat), n_segments, replace=False)]
            m, p = _min_other_distance(sub)
            shares.append(float((m >= threshold).mean()))
            pairs.append(p)
        out.update(distinct_share=float(np.mean(shares)), mean_pairwise=float(np.mean(pairs)), n_segments=n_segments)
    else:
        out.update(distinct_share=out["distinct_share_full"], mean_pairwise=pair, n_segments=int(len(flat)))
    return out


def level_repetition(levels: Sequence[np.ndarray], threshold: float = 0.05) -> dict:
    """Repetition inside a level: per level, the share of its aligned 16-column segments that lie
    within ``threshold`` (fraction of tiles) of another segment of the *same* level; the mean over
    levels (``repeated_share``; 0 = no segment repeats, 1 = every segment has a near twin)."""
    shares = []
    for g in _grids(levels):
        segs, _ = level_segments([g])
        if len(segs) < 2:
            continue
        mins, _ = _min_other_distance(segs.reshape(len(segs), -1))
        shares.append(float((mins < threshold).mean()))
    return {"repeated_share": float(np.mean(shares)) if shares else float("nan"), "levels": len(shares)}


def copy_share(levels: Sequence[np.ndarray], max_distance: float = 0.02) -> dict:
    """Share of the levels' 16-column segments within ``max_distance`` (fraction of tiles; 0.02 =
    at most 4 of 224 tiles differ) of their nearest training window (exact search), and the mean
    nearest-window distance (novelty against the training corpus)."""
    from rlcreate.levels.rewards import corpus_neighbours

    segs, _ = level_segments(levels)
    d = corpus_neighbours(SEGMENT).distance(segs)
    return {
        "copy_share": float((d <= max_distance).mean()),
        "novelty_mean": float(d.mean()),
        "exact_copy_share": float((d == 0).mean()),
    }


def astar_interleaved(
    groups: dict[str, Sequence[np.ndarray]], n_per_group: int = 16, runs: int = 3, workers: int = 2, **harness
) -> dict[str, dict] | None:
    """Play the first ``n_per_group`` levels of every group with the A* agent in ONE call, the groups
    interleaved level by level (compare groups only within one run: with a wall-clock search budget
    outcomes depend on machine load). ``beaten``: share of levels won at least once in ``runs``
    plays; ``win_rate``: share of plays won; ``harness``: the settings played with (``harness``
    keywords go to :func:`rlcreate.levels.astar.run_astar`: ``budget_nodes``, ``budget_ms``,
    ``start_pad``; by default a deterministic node budget and a 3-column entry platform, applied to
    every group alike, so repeated plays agree). None when java is missing. Under a node budget a
    play repeats exactly, so plays already in the A* cache (same level, settings and runner) are
    reused; a wall-clock budget plays every level afresh in this run."""
    from rlcreate.levels.astar import astar_or_none, harness_settings

    settings = harness_settings(**harness)
    picked = {k: _grids(v)[:n_per_group] for k, v in groups.items()}
    order = [(k, i) for i in range(max(len(v) for v in picked.values())) for k, v in picked.items() if i < len(v)]
    levels = [picked[k][i] for k, i in order]
    res = astar_or_none(levels, runs=runs, workers=workers, cache=settings["deterministic"], **harness)
    if res is None:
        return None
    out: dict[str, dict] = {}
    for k in picked:
        s = [r for (g, _), r in zip(order, res) if g == k]
        out[k] = {
            "levels": len(s),
            "runs_per_level": runs,
            "beaten": float(np.mean([r.win_rate > 0 for r in s])),
            "win_rate": float(np.mean([r.win_rate for r in s])),
            "completion": float(np.mean([r.mean_completion for r in s])),
            "harness": settings,
        }
    return out


def quality_table(
    groups: dict[str, Sequence[np.ndarray]],
    human_split: str = "test",
    seed: int = 0,
    astar_levels: int = 0,
    astar_runs: int = 3,
    diversity_segments: int = 40,
) -> dict:
    """The issue-9 table for named sets of levels: element profile (per 128 columns, with the human
    band for the set's size and width), distinct tiles, set diversity, human-likeness AUC against
    the ``human_split`` segments, copy share / novelty against training windows, and (when
    ``astar_levels`` > 0 and java exists) the A* agent's verdict, all groups in one interleaved run."""
    human = human_reference_segments(human_split)
    rows: dict[str, dict] = {}
    for name, levels in groups.items():
        grids = _grids(levels)
        rows[name] = {
            "n_levels": len(grids),
            "width": int(grids[0].shape[1]),
            "profile": profile_report(grids),
            "distinct_tiles": float(distinct_tiles(grids).mean()),
            "diversity": set_diversity(grids, n_segments=diversity_segments, seed=seed),
            "repetition": level_repetition(grids),
            "human_likeness": human_likeness(grids, human=human, seed=seed),
            "copies": copy_share(grids),
            "structure": {
                "malformed_pipe_share": malformed_pipe_share(grids),
                "solid_block_share": solid_block_share(grids),
            },
        }
    astar = astar_interleaved(groups, astar_levels, astar_runs) if astar_levels > 0 else None
    for name in rows:
        rows[name]["astar"] = None if astar is None else astar[name]
    return {"human_split": human_split, "groups": rows}


def format_table(table: dict) -> str:
    """The table as aligned text, one column per group."""
    groups = table["groups"]
    names = list(groups)
    lines = [f"{'per 128 columns':<34}" + "".join(f"{n[:18]:>20}" for n in names)]

    def row(label, fn):
        cells = []
        for n in names:
            try:
                cells.append(fn(groups[n]))
            except (TypeError, KeyError):
                cells.append("-")
        lines.append(f"{label:<34}" + "".join(f"{c:>20}" for c in cells))

    for e in ELEMENTS:
        row(
            f"{e} (human band)",
            lambda g, e=e: "{:.1f} [{:.1f},{:.1f}]{}".format(
                g["profile"]["elements"][e]["mean"],
                g["profile"]["elements"][e]["low"],
                g["profile"]["elements"][e]["high"],
                "" if g["profile"]["elements"][e]["inside"] else "*",
            ),
        )
    row("inside human band", lambda g: f"{g['profile']['inside']}/{g['profile']['of']}")
    chance = next((g["profile"].get("human_sets") for g in groups.values() if g["profile"].get("human_sets")), None)
    train_chance = next(
        (g["profile"].get("human_train_sets") for g in groups.values() if g["profile"].get("human_train_sets")), None
    )
    row("distinct tile types", lambda g: f"{g['distinct_tiles']:.1f}")
    row("segments distinct (>=5%)", lambda g: f"{g['diversity']['distinct_share']:.0%}")
    row("repetition inside a level", lambda g: f"{g['repetition']['repeated_share']:.0%}")
    row("mean pairwise tile distance", lambda g: f"{g['diversity']['mean_pairwise']:.3f}")
    row(f"human-likeness AUC vs {table['human_split']}", lambda g: f"{g['human_likeness']['auc']:.3f}")
    row("novelty (NN dist. to train)", lambda g: f"{g['copies']['novelty_mean']:.3f}")
    row("segments within copy distance", lambda g: f"{g['copies']['copy_share']:.0%}")
    row("levels with a malformed pipe", lambda g: f"{g['structure']['malformed_pipe_share']:.0%}")
    row(
        f"levels with a {SOLID_BLOCK}x{SOLID_BLOCK} solid block", lambda g: f"{g['structure']['solid_block_share']:.0%}"
    )
    row("A* beaten", lambda g: f"{g['astar']['beaten']:.0%} of {g['astar']['levels']} x{g['astar']['runs_per_level']}")
    note = "\n(* = outside the 5th-95th percentile band of human set means"
    if chance:
        note += (
            f"; a set of random human windows of the first set's size is inside on all {len(ELEMENTS)} "
            f"elements {chance['all']:.0%} of the time, on all but one {chance['all_but_one']:.0%}"
        )
    if train_chance:
        note += (
            f"; a set of random human TRAINING windows (the rates calibration aims at) "
            f"{train_chance['all']:.0%} and {train_chance['all_but_one']:.0%}"
        )
    return "\n".join(lines) + note + ")"


#: human-likeness AUC above which a set is flagged as told apart from human levels (the level-quality target)
AUC_FLAG = 0.70


def judge_human_likeness(levels: Sequence[np.ndarray], **_) -> dict:
    """Judge for ``rlcreate eval`` (name ``human_likeness``): the classifier two-sample AUC against
    the TEST blocks, the element profile against the human band and the set's distinct-segment
    share. ``flagged`` when the AUC exceeds :data:`AUC_FLAG` (the set is told apart from human
    levels: gamed or off-style, as the old default recipes' levels were)."""
    grids = _grids(levels)
    if len(grids) < 2 or min(g.shape[1] for g in grids) < SEGMENT:
        return {"skipped": f"needs at least 2 levels of >= {SEGMENT} columns"}
    hl = human_likeness(grids)
    same = len({g.shape for g in grids}) == 1
    out = {
        "auc": hl["auc"],
        "auc_logreg": hl["auc_logreg"],
        "auc_boost": hl["auc_boost"],
        "distinct_share": set_diversity(grids)["distinct_share"],
        "flagged": bool(hl["auc"] > AUC_FLAG),
    }
    if same:
        prof = profile_report(grids)
        out["profile_inside"] = prof["inside"]
        out.update({f"{e}_per_128": v["mean"] for e, v in prof["elements"].items()})
    return out


PIPE_RULES = ("pipe_pairs", "pipe_capped", "pipe_anchored")


def malformed_pipe_share(levels: Sequence[np.ndarray]) -> float:
    """Share of levels (each checked as one grid, seams included) with a pipe that breaks a rule of
    :data:`PIPE_RULES` (cut in half, without a top, floating); human 128-column windows: 0-6%."""
    from rlcreate.levels.validity import rule_masks

    grids = _grids(levels)
    bad = np.zeros(len(grids), bool)
    for shape in {g.shape for g in grids}:
        ix = [i for i, g in enumerate(grids) if g.shape == shape]
        masks = rule_masks(np.stack([grids[i] for i in ix]))
        bad[ix] = ~np.logical_and.reduce([masks[r] for r in PIPE_RULES])
    return float(bad.mean())


#: side of the square of solid tiles :func:`solid_block_share` looks for
SOLID_BLOCK = 6


def solid_block_share(levels: Sequence[np.ndarray], size: int = SOLID_BLOCK) -> float:
    """Share of levels holding a ``size`` x ``size`` square of solid tiles above the bottom row: a
    wall of ground blocks, or the bulk of a tall staircase (none of the other judges names it). Human
    128-column windows: 2 of the 46 training windows, none of the 10 held-out ones."""
    found = []
    for g in _grids(levels):
        solid = IS_SOLID[g[:-1]].astype(np.int32)
        # summed-area table: the solid count of every size x size square in O(cells)
        sat = np.pad(solid.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        squares = sat[size:, size:] - sat[:-size, size:] - sat[size:, :-size] + sat[:-size, :-size]
        found.append(bool((squares == size * size).any()))
    return float(np.mean(found)) if found else 0.0


def set_judges(
    levels: Sequence[np.ndarray], human: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0, per_set: int = 16
) -> dict:
    """The generator judges of a set of equal-width levels in one dict: human-likeness AUC (against
    ``human`` segments, default TEST), element profile inside the human band (``profile_inside`` of
    5), the share of distinct 16-column segments per ``per_set`` levels (``distinct_share``,
    averaged over random subsets of ``per_set * width / 16`` segments) and the malformed-pipe share."""
    grids = _grids(levels)
    hl = human_likeness(grids, human=human, seed=seed)
    prof = profile_report(grids)
    n_seg = per_set * (grids[0].shape[1] // SEGMENT)
    div = set_diversity(grids, n_segments=n_seg, seed=seed)
    return {
        "auc": hl["auc"],
        "auc_logreg": hl["auc_logreg"],
        "auc_boost": hl["auc_boost"],
        "profile_inside": prof["inside"],
        "profile": {e: round(v["mean"], 2) for e, v in prof["elements"].items()},
        "distinct_share": div["distinct_share"],
        "mean_pairwise": div["mean_pairwise"],
        "malformed_pipe_share": malformed_pipe_share(grids),
        "n_levels": len(grids),
    }
