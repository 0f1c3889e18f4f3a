"""Evaluation of level runs: judges, composite returns, QD summary, flags, audit rollouts and the
report's level sections (expressive range, gallery). Called through the levels domain."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.errors import UserError
from rlcreate.evaluation.html import esc, fmt, plt
from rlcreate.evaluation.summary import composite, dict_rows, read_json, read_mapping
from rlcreate.runbox import atomic_target, read_regular, write_bytes

__all__ = [
    "read_levels",
    "evaluate_level_run",
    "level_flags",
    "audit_levels",
    "figures_html",
    "side_by_side_html",
    "expressive_range_html",
    "gallery_html",
    "COPIED_WINDOWS_FLAG",
    "PAIRWISE_FLAG",
]

COPIED_WINDOWS_FLAG = 0.5
PAIRWISE_FLAG = 0.02


def read_levels(folder: Path) -> list[np.ndarray]:
    from rlcreate.levels.tiles import read_level

    return [read_level(p) for p in sorted(Path(folder).glob("level_*.txt"))]


def level_flags(levels: Sequence[np.ndarray], judged: dict | None = None) -> dict:
    """Memorisation and collapse flags of a level set (thresholds in :mod:`rlcreate.evaluation.audit`)."""
    from rlcreate.levels.judges import run_judges
    from rlcreate.levels.qd import qd_summary

    judged = dict(judged or {})
    need = [j for j in ("novelty", "diversity") if j not in judged]
    if need:
        judged.update(run_judges(levels, need))
    copied = float(judged["novelty"]["copied_windows"])
    cells = int(qd_summary(levels, np.ones(len(levels)))["filled"])
    pairwise = judged["diversity"].get("pairwise_tile_distance", float("nan"))
    reasons = []
    if len(levels) >= 4 and cells == 1:
        reasons.append(f"all {len(levels)} samples fall in one leniency x linearity cell")
    if pairwise == pairwise and pairwise < PAIRWISE_FLAG:
        reasons.append(f"mean pairwise tile distance {pairwise:.3f} < {PAIRWISE_FLAG}")
    return {
        "memorisation": {
            "flag": copied > COPIED_WINDOWS_FLAG,
            "copied_windows": copied,
            "threshold": COPIED_WINDOWS_FLAG,
            "heldout_corpus": 0.10,
            "reason": f"{copied:.0%} of 16-column windows copy a training window",
        },
        "collapse": {
            "flag": bool(reasons),
            "cells": cells,
            "pairwise_tile_distance": pairwise,
            "distinct_columns": judged["diversity"].get("distinct_columns"),
            "reason": "; ".join(reasons) or f"{cells} cells, pairwise distance {pairwise:.3f}",
        },
    }


def evaluate_level_run(
    run: Path,
    asm: Any,
    n: int | None = None,
    judges: Sequence[str] | None = None,
    astar_runs: int = 2,
    astar_levels: int | None = None,
    **_: Any,
) -> dict:
    """Judge a level run: a run with a final policy is rolled out for ``n`` fresh levels (default the
    recipe's ``trainer.samples``; written to ``RUN/eval_samples/``), which also gives their composite
    returns; otherwise the levels in ``RUN/samples/`` are judged (a baseline stored their returns).
    The A* agent plays the first ``astar_levels`` of them (default all)."""
    from rlcreate.levels.judges import DEFAULT_JUDGES, check_judges, run_judges, tension_request
    from rlcreate.levels.qd import qd_summary
    from rlcreate.levels.samples import write_levels
    from rlcreate.train.runner import RunFolderError, has_policy, restore, rollout

    recipe = asm.recipe
    names = check_judges(list(judges) if judges else (recipe.judges or list(DEFAULT_JUDGES)))
    notes: list[str] = []
    returns = None
    if has_policy(run):
        n = n or recipe.trainer.samples
        asm, model = restore(run, asm=asm)
        notes.append(f"policy: {model.rlcreate_source}")
        venv = asm.make_env(min(n, 16), recipe.seed + 1, purpose="eval")
        venv.set_progress(1.0)
        model.set_random_seed(recipe.seed + 1)
        episodes = rollout(model, venv, n, deterministic=not asm.domain.sampled(asm))
        levels = [e["level"] for e in episodes]
        returns = np.array([e["episode_return"] for e in episodes])
        out = run / "eval_samples"
        for old in out.glob("level_*.*"):
            old.unlink()  # a smaller --n must not leave stale levels from an earlier eval
        write_levels(levels, out)
        source = f"{n} levels from the {model.rlcreate_source} (eval_samples/)"
    else:
        levels = read_levels(run / "samples")
        if not levels:
            raise RunFolderError(
                f"{run}: no policy (model/ or checkpoints/) and no samples/level_*.txt; nothing to evaluate "
                "(train the run to the end, or write samples with `rlcreate generate`)"
            )
        if n and n != len(levels):
            notes.append(f"--n {n} ignored: this run has no policy to generate from; judged its {len(levels)} samples")
        rows = dict_rows(read_mapping(run / "samples" / "metrics.json").get("levels"))
        stored = [m.get("episode_return") for m in rows]
        if len(stored) == len(levels) and all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in stored):
            returns = np.array(stored, np.float64)
        source = f"{len(levels)} levels in samples/"
    result: dict[str, Any] = {
        "run": run.name,
        "source": source,
        "n_levels": len(levels),
        "judges": run_judges(
            levels, names, astar_runs=astar_runs, astar_levels=astar_levels, tension_request=tension_request(recipe)
        ),
    }
    if returns is not None:
        result["composite"] = composite(returns)
        result["qd"] = qd_summary(levels, returns)
    else:
        notes.append("no composite returns for these levels: QD-score counts each level as 1 (coverage only)")
        result["qd"] = qd_summary(levels, np.ones(len(levels)))
    result["flags"] = level_flags(levels, result["judges"])
    human = result["judges"].get("human_likeness") or {}
    if human.get("flagged"):
        notes.append(
            f"FLAG not human-like: a classifier tells these levels from held-out human levels with "
            f"AUC {human['auc']:.3f} (> 0.70)"
        )
    baseline = read_mapping(run / "baseline.json")
    if baseline:
        result["search"] = {k: baseline.get(k) for k in ("method", "evaluations", "best_return", "all_evaluated_qd")}
    result["notes"] = notes
    return result


def audit_levels(
    asm: Any,
    model: Any,
    progress: float,
    n: int,
    deterministic: bool,
    seed: int,
    judges: list[str],
    astar_runs: int = 1,
) -> tuple[dict, dict, dict]:
    """One audit point: ``n`` levels of ``model`` -> (mean reward terms, judged, flags)."""
    from rlcreate.levels.judges import run_judges, tension_request
    from rlcreate.train.runner import rollout

    # 16 rows whatever n, as eval's rollout of its default 16 levels: the last checkpoint's stochastic
    # audit then writes eval's first n levels, whose A* plays are already in the cache
    venv = asm.make_env(16, seed, purpose="eval")
    venv.set_progress(progress)
    model.set_random_seed(seed)  # stochastic mode: the same action draws on every audit
    episodes = rollout(model, venv, n, deterministic=deterministic)
    levels = [e["level"] for e in episodes]
    terms = {
        k: float(np.mean([e["term_means"][k] for e in episodes if k in e["term_means"]]))
        for k in episodes[0]["term_means"]
    }
    names = sorted(set(judges) | {"novelty", "diversity"})
    judged = run_judges(levels, names, astar_runs=astar_runs, tension_request=tension_request(asm.recipe))
    return terms, judged, level_flags(levels, judged)


# ---------------------------------------------------------------------------------------- report


def _corpus_leniency_linearity(width: int) -> np.ndarray:
    from rlcreate.levels import corpus
    from rlcreate.levels.metrics import leniency, linearity

    c = corpus.full_corpus()
    step = max(width // 4, 1)
    return np.array(
        [
            [leniency(c[:, s : s + width]), linearity(c[:, s : s + width])]
            for s in range(0, c.shape[1] - width + 1, step)
        ]
    )


def figures_html(runs: list[dict], img_dir: Path) -> str:
    """The report's level sections over all runs: each demo-style run's side-by-side table (its
    ``summary.json``: every set judged with the human column, PPO's share), then the expressive range."""
    parts = []
    for d in runs:
        table = side_by_side_html(read_json(Path(d["path"]) / "summary.json"))
        if table:
            parts.append(f"<h2>{esc(d['name'])}: steered vs its start, best-of-n, the LM and human levels</h2>" + table)
        parts.append(engagement_html(d["name"], ((d["metrics"] or {}).get("judges") or {}).get("engagement")))
    return "".join(parts) + expressive_range_html(runs, img_dir)


def engagement_html(name: str, judged: dict | None) -> str:
    """The ``engagement`` judge segment by segment: the requested tension (when the recipe has a
    ``tension_curve`` term), the tension the A* agent's play shows, and its effort, next to the
    held-out human windows' bands. '' when the run has no such judgement."""
    from rlcreate.evaluation.html import table

    if not isinstance(judged, dict) or not isinstance(judged.get("tension_profile"), list):
        return ""

    def column(key: str) -> list:  # a hand-edited metrics.json may hold anything: a list, or dashes
        values = judged.get(key)
        values = values if isinstance(values, list) else []
        return [values[j] if j < len(values) else "—" for j in range(len(judged["tension_profile"]))]

    keys = ("tension_request", "tension_profile", "effort_profile", "effort_profile_drop")
    rows = [[f"{16 * j}-{16 * j + 15}", *cells] for j, cells in enumerate(zip(*(column(k) for k in keys)))]
    bands = "; ".join(
        f"{label} [{', '.join(fmt(v) for v in judged[key])}]"
        for label, key in (
            ("effort per segment", "human_effort_per_segment_band"),
            ("slope", "human_effort_slope_band"),
        )
        if isinstance(judged.get(key), list)
    )
    mine = (
        f"this set: effort per segment {fmt(judged.get('effort_per_segment'))}, slope {fmt(judged.get('effort_slope'))}"
    )
    match = (
        f"; distance to the request {fmt(judged.get('request_distance'))}, Spearman {fmt(judged.get('request_spearman'))}"
        if "request_distance" in judged
        else ""
    )
    return (
        f"<h2>{esc(name)}: engagement by play (A* agent, {fmt(judged.get('levels'))} levels and "
        f"{fmt(judged.get('human_windows'))} held-out human windows)</h2>"
        f"<p>Played tension: the share of held-out human segments the agent found easier (0.5 = the human "
        f"median), the scale the tension_curve reward asks in. {esc(mine)}{esc(match)}. Human bands (5th-95th "
        f"percentile over resampled sets of this size, penalty reading): {esc(bands)}.</p>"
        + table(["columns", "requested tension", "played tension", "effort (penalty)", "effort (drop)"], rows)
    )


def expressive_range_html(runs: list[dict], img_dir: Path) -> str:
    """Leniency x linearity of every run's levels against corpus windows (one panel each)."""
    from rlcreate.levels.qd import DEFAULT_GRID, describe

    runs = [d for d in runs if d["samples"]]
    if not runs:
        return "<p class='missing'>No levels to plot.</p>"
    pyplot = plt()
    (lx, hx), (ly, hy) = DEFAULT_GRID.bounds
    bins = [np.linspace(lx, hx, 29), np.linspace(ly, hy, 29)]
    corpus = _corpus_leniency_linearity(runs[0]["samples"][0].shape[1])
    panels = [("corpus windows", corpus)] + [
        (d["name"], describe(d["samples"], ["leniency", "linearity"])) for d in runs
    ]
    fig, axes = pyplot.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
    for ax, (title, pts) in zip(axes.ravel(), panels):
        ax.hist2d(np.clip(pts[:, 0], lx, hx), np.clip(pts[:, 1], ly, hy), bins=bins, cmap="viridis", cmin=1)
        if title != "corpus windows":  # corpus as faint dots, the run's own levels as crosses on top
            ax.scatter(corpus[:, 0], corpus[:, 1], s=2, c="red", alpha=0.15)
            ax.scatter(np.clip(pts[:, 0], lx, hx), np.clip(pts[:, 1], ly, hy), s=14, c="black", marker="x")
        ax.set_title(f"{title} (n={len(pts)})", fontsize=9)
        ax.set_xlabel("leniency", fontsize=8)
        ax.set_ylabel("linearity", fontsize=8)
        ax.set_xlim(lx, hx)
        ax.set_ylim(ly, hy)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    with atomic_target(img_dir / "expressive_range.png") as tmp:
        fig.savefig(tmp, dpi=80)
    pyplot.close(fig)
    return "<h2>Expressive range</h2><img src='img/expressive_range.png' alt='expressive range'>"


def side_by_side_html(summary: dict | None) -> str:
    """The demo's table (``RUN/summary.json``): every set judged side by side with the human column,
    control, the recipe's objective and PPO's share (steered minus its untrained start and minus
    best-of-n from that start, paired per request, 95% CIs). '' for runs without one."""
    from rlcreate.evaluation.html import table
    from rlcreate.levels.quality import ELEMENTS, SOLID_BLOCK

    if not summary or "groups" not in summary:
        return ""
    g = summary["groups"]
    names = list(g)

    def cell(fn):
        out = []
        for n in names:
            try:
                out.append(fn(n))
            except (KeyError, TypeError, IndexError):
                out.append("—")
        return out

    def band(n: str, e: str) -> str:
        el = g[n]["profile"]["elements"][e]
        return f"{el['mean']:.1f} [{el['low']:.1f}, {el['high']:.1f}]" + ("" if el["inside"] else " *")

    rows = [[f"{e} per 128 cols [human band]"] + cell(lambda n, e=e: band(n, e)) for e in ELEMENTS]
    rows += [
        ["elements inside the human band"] + cell(lambda n: f"{g[n]['profile']['inside']}/{g[n]['profile']['of']}"),
        ["distinct 16-col segments (share, per 40)"] + cell(lambda n: f"{g[n]['diversity']['distinct_share']:.2f}"),
        ["repetition inside a level"] + cell(lambda n: f"{g[n]['repetition']['repeated_share']:.2f}"),
        [f"human-likeness AUC vs {summary.get('human_split', 'test')} (0.5 = indistinguishable)"]
        + cell(lambda n: f"{g[n]['human_likeness']['auc']:.3f}"),
        ["novelty (NN distance to training windows)"] + cell(lambda n: f"{g[n]['copies']['novelty_mean']:.3f}"),
        ["segments within copy distance"] + cell(lambda n: f"{g[n]['copies']['copy_share']:.0%}"),
        ["levels with a malformed pipe"] + cell(lambda n: f"{g[n]['structure']['malformed_pipe_share']:.0%}"),
        [f"levels with a {SOLID_BLOCK}x{SOLID_BLOCK} solid block (a wall)"]
        + cell(lambda n: f"{g[n]['structure']['solid_block_share']:.0%}"),
        ["A* agent: levels beaten"] + cell(lambda n: f"{g[n]['astar']['beaten']:.0%} of {g[n]['astar']['levels']}"),
    ]
    for t in sorted({t for c in (summary.get("control") or {}).values() for t in c}):
        rows.append(
            [f"control {t}: corr asked/got (MAE)"]
            + cell(
                lambda n, t=t: "{:+.2f} ({:.2f})".format(
                    summary["control"][n][t]["corr"], summary["control"][n][t]["mae"]
                )
            )
        )
    rows.append(
        ["recipe objective per level [95% CI]"]
        + cell(
            lambda n: "{:.3f} [{:.3f}, {:.3f}]".format(summary["objective"][n]["mean"], *summary["objective"][n]["ci"])
        )
    )
    n_obj = summary.get("objective_levels")
    more = f"; control and the objective on {n_obj}" if n_obj else ""
    h = [
        f"<h3>Side by side: {summary.get('n_levels')} levels of {summary.get('width')} columns per set{more}</h3>",
        "<p>" + esc(summary.get("sampling", "")) + ". Human = held-out DEV windows; the AUC's human side is the "
        "TEST split. * = outside the 5th–95th percentile band of human set means.</p>",
        table(["measure"] + names, rows),
    ]
    h += _calibration_html(summary.get("calibration"))
    share = summary.get("share") or {}
    if share:
        h.append(
            "<h3>PPO's share</h3><p>The steered policy's recipe objective minus each set's, paired per "
            "request (same control targets), mean and 95% bootstrap CI. A CI above 0 is what RL added.</p>"
        )
        h.append(
            table(
                ["steered minus", "mean", "95% CI"],
                [
                    [k.removeprefix("steered_minus_"), f"{v['mean']:+.3f}", f"[{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}]"]
                    for k, v in share.items()
                ],
            )
        )
    return "".join(h)


def _calibration_html(fits: Any) -> list[str]:
    """The element-rate offsets the demo fitted after training (:mod:`rlcreate.levels.calibrate`),
    per calibrated set, with the rates they gave on the selection requests; [] without any."""
    from rlcreate.evaluation.html import table

    rows = []
    for name, fit in (fits or {}).items() if isinstance(fits, dict) else ():
        try:
            chosen = fit["rounds"][fit["chosen_round"]]["means"]
            rows += [
                [str(name), str(e), f"{b:+.2f}", f"{chosen[e]:.2f}", f"{fit['target'][e]:.2f}"]
                for e, b in fit["element_bias"].items()
            ]
        except (KeyError, TypeError, IndexError, ValueError):
            rows.append([str(name), "—", "—", "—", "—"])
    if not rows:
        return []
    return [
        "<h3>Calibrated element rates</h3><p>After training, each policy's logit offsets for the columns holding "
        "pipes, ?-blocks and coins were fitted on selection requests (not the sets above) toward the human "
        "training windows' rate per 128 columns; the policy's offsets are in the run's config.yaml.</p>",
        table(["set", "element", "offset", "rate on selection requests", "human rate"], rows),
    ]


def gallery_html(d: dict, index: int, img_dir: Path, limit: int) -> str:
    """Rendered levels of one run with their metrics."""
    h = ["<h3>Gallery</h3><div class='gallery'>"]
    folder = d["sample_dir"]
    pngs = sorted(folder.glob("level_*.png"))[:limit] if folder.is_dir() else []
    per_level = {m.get("file"): m for m in dict_rows(read_mapping(folder / "metrics.json").get("levels"))}
    for p in pngs:
        dst = img_dir / f"run{index}_{p.name}"
        try:  # only regular files inside the run are embedded (no links, devices or hard links)
            write_bytes(dst, read_regular(p, d["path"]), fsync=False)
        except (UserError, OSError):
            continue
        m = per_level.get(p.with_suffix(".txt").name, {})
        label = ", ".join(
            f"{k}={fmt(m[k])}"
            for k in ("episode_return", "leniency", "linearity", "enemies", "solver_playable")
            if k in m
        )
        h.append(f"<p>{esc(p.name)} {esc(label)}</p><img src='img/{dst.name}' alt='{esc(p.name)}'>")
    if not pngs:
        h.append("<p class='missing'>no rendered levels</p>")
    h.append("</div>")
    return "".join(h)
