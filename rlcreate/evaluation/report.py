"""Evaluate runs (``rlcreate eval``) and write HTML reports over one or more runs (``rlcreate report``).

:func:`evaluate_run` computes a run's judges, composite returns, QD summary and (with checkpoints)
the reward-hacking audit, and writes ``RUN/metrics.json``. :func:`write_report` writes
``OUT/index.html`` plus the PNGs it shows (``OUT/img/``): the recipe, training curves of every
reward term (TensorBoard event files) or the search progress of a baseline, judge metrics side by
side, an expressive-range plot (leniency x linearity of the run's levels against the corpus), a
gallery of rendered levels, the audit and the comparison table. Parts a run folder lacks are
listed as missing instead of failing, so an interrupted run still gets a report.
"""

from __future__ import annotations

from rlcreate.errors import UserError

import html
import json
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["evaluate_run", "evaluate_text_run", "write_report", "load_run", "read_scalars", "RunFolderError"]


class RunFolderError(UserError):
    """A path that is not a run folder; the message says what a run folder holds."""


# ---------------------------------------------------------------------------------------------
# reading run folders


def read_scalars(tb_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """All scalar series in a run's TensorBoard folder: ``{tag: (steps, values)}``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, tuple[list[int], list[float]]] = {}
    for events in sorted({p.parent for p in Path(tb_dir).rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            steps, vals = out.setdefault(tag, ([], []))
            for e in acc.Scalars(tag):
                steps.append(int(e.step))
                vals.append(float(e.value))
    return out


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_levels(folder: Path) -> list[np.ndarray]:
    from rlcreate.levels.tiles import read_level

    return [read_level(p) for p in sorted(folder.glob("level_*.txt"))]


def load_run(run: str | Path) -> dict:
    """Everything a report can show about a run folder, and the list of what is missing."""
    import yaml

    run = Path(run)
    if not run.is_dir():
        raise RunFolderError(f"{str(run)!r} is not a folder; pass run folders written by `rlcreate train` "
                             "or `rlcreate baseline`, e.g. runs/mario-latent")
    d: dict[str, Any] = {"path": run, "name": run.name, "missing": []}
    cfg = run / "config.yaml"
    d["config_text"] = cfg.read_text() if cfg.is_file() else None
    d["config"] = yaml.safe_load(d["config_text"]) if d["config_text"] else None
    if d["config"] is None:
        d["missing"].append("config.yaml (the recipe)")
    d["baseline"] = _json(run / "baseline.json")
    d["kind"] = f"baseline: {d['baseline']['method']}" if d["baseline"] else "RL"
    d["progress"] = _json(run / "progress.json")
    d["scalars"] = read_scalars(run / "tb") if (run / "tb").is_dir() else {}
    if not d["baseline"]:
        if not d["scalars"]:
            d["missing"].append("tb/ TensorBoard logs (training curves)")
        from rlcreate.train.checkpoint import latest_checkpoint

        found = latest_checkpoint(run)
        d["policy_source"] = found[1] if found else None
        if found is None:
            d["missing"].append("model/ (final policy) and checkpoints/: no policy was saved")
        elif not found[0].name == "model":
            d["missing"].append(f"model/ (final policy: training did not finish; using the {found[1]})")
    sample_dir = run / "eval_samples" if (run / "eval_samples").is_dir() else run / "samples"
    d["sample_dir"] = sample_dir
    d["text"] = ((d["config"] or {}).get("env") or {}).get("id") == "rlcreate/TextTokens-v0"
    d["levels"] = _read_levels(sample_dir) if sample_dir.is_dir() and not d["text"] else []
    d["texts"] = (_json(sample_dir / "texts.json") or []) if d["text"] else []
    d["primary"] = (_json(sample_dir / "metrics.json") or {}).get("primary", "steered")
    if d["text"] and not d["texts"]:
        d["missing"].append("samples/ texts (texts.json)")
    elif not d["text"] and not d["levels"]:
        d["missing"].append("samples/ levels")
    d["metrics"] = _json(run / "metrics.json")
    if d["metrics"] is None:
        d["missing"].append("metrics.json (run `rlcreate eval RUN` for judges)")
    d["audit"] = _json(run / "audit.json") or (d["metrics"] or {}).get("audit")
    return d


# ---------------------------------------------------------------------------------------------
# rlcreate eval


def _policy_levels(run: Path, recipe, n: int, generator: Any = None) -> tuple[list[np.ndarray], np.ndarray]:
    from rlcreate.evaluation.audit import _rollout
    from rlcreate.evaluation.baselines import level_env
    from rlcreate.train.sb3 import load_policy, load_reward_state

    venv, reward_set = level_env(recipe, min(n, 16), recipe.seed + 1, generator=generator)
    model = load_policy(run, recipe.trainer["algo"])  # final model/ or the newest checkpoint
    load_reward_state(model.rlcreate_folder, reward_set)
    venv.set_progress(1.0)
    levels, _, returns = _rollout(model, venv, n)
    return levels, returns, model.rlcreate_source


def evaluate_run(run: str | Path, n: int | None = None, judges: Sequence[str] | None = None, astar_runs: int = 2,
                 audit: bool = True, audit_levels: int = 8, generator: Any = None,
                 audit_modes: Sequence[str] | None = None) -> dict:
    """Judge a run and write ``RUN/metrics.json`` (returns it).

    Levels: a run with a final policy is rolled out for ``n`` fresh levels (default the recipe's
    ``trainer.samples``; written to ``RUN/eval_samples/``), which also gives their composite
    returns; otherwise the levels in ``RUN/samples/`` are judged (a baseline stored their returns).
    ``judges``: default the recipe's ``judges:`` list, else all judges."""
    from rlcreate.evaluation.judges import DEFAULT_JUDGES, check_judges, run_judges
    from rlcreate.evaluation.qd import qd_summary
    from rlcreate.recipe import load_recipe

    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise RunFolderError(f"{str(run)!r} is not a run folder (no config.yaml); pass a folder written by "
                             "`rlcreate train` or `rlcreate baseline`")
    recipe = load_recipe(run / "config.yaml")
    from rlcreate.evaluation.baselines import TEXT_ENVS

    if recipe.env_id in TEXT_ENVS:
        return evaluate_text_run(run, recipe, n=n, judges=judges, audit=audit, audit_texts=audit_levels,
                                 audit_modes=audit_modes)
    names = check_judges(list(judges) if judges else (recipe.judges or list(DEFAULT_JUDGES)))
    notes: list[str] = []
    returns = None
    from rlcreate.train.checkpoint import latest_checkpoint

    if latest_checkpoint(run) is not None:
        n = n or recipe.trainer["samples"]
        levels, returns, used = _policy_levels(run, recipe, n, generator)
        notes.append(f"policy: {used}")
        from rlcreate.train.levels import write_levels

        out = run / "eval_samples"
        for old in out.glob("level_*.*"):
            old.unlink()  # a smaller --n must not leave stale levels from an earlier eval
        summary = write_levels(levels, out)
        source = f"{n} levels from the {used} (eval_samples/)"
    else:
        levels = _read_levels(run / "samples")
        if not levels:
            raise RunFolderError(f"{run}: no policy (model/ or checkpoints/) and no samples/level_*.txt; nothing to evaluate "
                                 "(train the run to the end, or write samples with `rlcreate generate`)")
        if n and n != len(levels):
            notes.append(f"--n {n} ignored: this run has no policy to generate from; judged its {len(levels)} samples")
        summary = _json(run / "samples" / "metrics.json") or {}
        stored = [m.get("episode_return") for m in summary.get("levels", [])]
        if len(stored) == len(levels) and all(r is not None for r in stored):
            returns = np.array(stored, np.float64)
        source = f"{len(levels)} levels in samples/"
    result: dict[str, Any] = {"run": run.name, "source": source, "n_levels": len(levels),
                              "judges": run_judges(levels, names, astar_runs=astar_runs)}
    if returns is not None:
        result["composite"] = {"mean": float(np.mean(returns)), "best": float(np.max(returns)),
                               "std": float(np.std(returns))}
        result["qd"] = qd_summary(levels, returns)
    else:
        notes.append("no composite returns for these levels: QD-score counts each level as 1 (coverage only)")
        result["qd"] = qd_summary(levels, np.ones(len(levels)))
    from rlcreate.evaluation.audit import MODES, audit_run, checkpoints_of, level_flags

    result["flags"] = level_flags(levels, result["judges"])
    _flag_notes(result["flags"], notes)
    baseline = _json(run / "baseline.json")
    if baseline:
        result["search"] = {k: baseline.get(k) for k in ("method", "evaluations", "best_return", "all_evaluated_qd")}
    if audit and checkpoints_of(run):
        result["audit"] = audit_run(run, n_levels=audit_levels, astar_runs=1, generator=generator,
                                    modes=audit_modes or MODES)
    result["notes"] = notes
    (run / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def _flag_notes(flags: dict, notes: list[str]) -> None:
    for kind in ("memorisation", "collapse"):
        if flags[kind]["flag"]:
            notes.append(f"FLAG {kind}: {flags[kind]['reason']}")


def evaluate_text_run(run: Path, recipe, n: int | None = None, judges: Sequence[str] | None = None,
                      audit: bool = True, audit_texts: int = 8, lm: Any = None,
                      audit_modes: Sequence[str] | None = None) -> dict:
    """Judge a text run's texts and write ``RUN/metrics.json`` (returns it).

    Texts: with ``n`` and a final policy, ``n`` fresh steered / plain / LM-top-k texts on the eval
    prompts (:func:`rlcreate.train.text.generate_texts`, written to ``RUN/eval_samples/``); otherwise
    the run's ``samples/texts.json``. Every group of texts is judged; the run's own group
    (``primary``: ``steered`` for RL, the baseline's product otherwise) gives ``judges``,
    ``composite`` and the memorisation / collapse ``flags``."""
    from rlcreate.evaluation.audit import MODES, audit_run, checkpoints_of, text_flags
    from rlcreate.evaluation.text_judges import DEFAULT_TEXT_JUDGES, check_text_judges, run_text_judges
    from rlcreate.train.text import load_text_lm, text_settings

    names = check_text_judges(list(judges) if judges else (recipe.judges or list(DEFAULT_TEXT_JUDGES)))
    notes: list[str] = []
    from rlcreate.train.checkpoint import latest_checkpoint

    if n and latest_checkpoint(run) is not None:
        from rlcreate.train.text import generate_texts

        generate_texts(run, recipe, n, run / "eval_samples")
        folder, source = run / "eval_samples", f"{n} texts per group from the final policy (eval_samples/)"
    else:
        if n:
            notes.append(f"--n {n} ignored: this run has no policy to generate from; judged its samples/")
        folder = run / "eval_samples" if (run / "eval_samples" / "texts.json").is_file() else run / "samples"
        source = f"texts in {folder.name}/"
    records = _json(folder / "texts.json")
    if not records:
        raise RunFolderError(f"{run}: no {folder.name}/texts.json; nothing to evaluate (train the run to the end, "
                             "or write texts with `rlcreate generate RUN --n 16`)")
    primary = (_json(folder / "metrics.json") or {}).get("primary", "steered")
    groups = [g for g in records[0] if g != "prompt"]
    if lm is None and ("perplexity" in names or (audit and checkpoints_of(run))):
        lm = load_text_lm(text_settings(recipe))
    result: dict[str, Any] = {"run": run.name, "domain": "text", "source": source, "n_levels": len(records),
                              "primary": primary, "groups": {}}
    for g in groups:
        texts = [r[g]["text"] for r in records]
        totals = np.array([r[g]["total"] for r in records], np.float64)
        judged = run_text_judges(texts, names, prompts=[r[g]["prompt"] for r in records], lm=lm)
        result["groups"][g] = {"judges": judged, "composite": {"mean": float(np.nanmean(totals)),
                                                               "best": float(np.nanmax(totals)),
                                                               "std": float(np.nanstd(totals))}}
    result["judges"] = result["groups"][primary]["judges"]
    result["composite"] = result["groups"][primary]["composite"]
    result["flags"] = text_flags([r[primary]["text"] for r in records], result["judges"])
    _flag_notes(result["flags"], notes)
    baseline = _json(run / "baseline.json")
    if baseline:
        result["search"] = {k: baseline.get(k) for k in ("method", "evaluations", "best_return", "primary")}
    if audit and checkpoints_of(run):
        result["audit"] = audit_run(run, n_levels=audit_texts, lm=lm, modes=audit_modes or MODES)
    result["notes"] = notes
    (run / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


# ---------------------------------------------------------------------------------------------
# figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curves_png(d: dict, path: Path) -> bool:
    plt = _plt()
    series = {k: v for k, v in d["scalars"].items() if k.startswith("rewards/") or k == "rollout/ep_rew_mean"}
    if not series and d["progress"]:
        p = d["progress"]
        ev = [x["evaluations"] for x in p]
        series = {"search/best": (ev, [x["best"] for x in p]), "search/mean": (ev, [x["mean"] for x in p]),
                  "search/best_so_far": (ev, [x["best_so_far"] for x in p])}
    if not series:
        return False
    k = len(series)
    cols = min(k, 3)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (tag, (x, y)) in zip(axes.ravel(), sorted(series.items())):
        ax.plot(x, y, lw=1.5)
        ax.set_title(tag, fontsize=9)
        ax.set_xlabel("env steps = reward evaluations", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[k:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def _corpus_leniency_linearity(width: int) -> np.ndarray:
    from rlcreate.levels import corpus
    from rlcreate.levels.metrics import leniency, linearity

    c = corpus.full_corpus()
    step = max(width // 4, 1)
    return np.array([[leniency(c[:, s:s + width]), linearity(c[:, s:s + width])]
                     for s in range(0, c.shape[1] - width + 1, step)])


def _expressive_range_png(runs: list[dict], path: Path) -> bool:
    from rlcreate.evaluation.qd import DEFAULT_GRID, describe

    runs = [d for d in runs if d["levels"]]
    if not runs:
        return False
    plt = _plt()
    (lx, hx), (ly, hy) = DEFAULT_GRID.bounds
    bins = [np.linspace(lx, hx, 29), np.linspace(ly, hy, 29)]
    corpus = _corpus_leniency_linearity(runs[0]["levels"][0].shape[1])
    panels = [("corpus windows", corpus)] + [(d["name"], describe(d["levels"], ["leniency", "linearity"])) for d in runs]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
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
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """body{font-family:sans-serif;margin:24px;max-width:1400px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-top:12px}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}pre{background:#f7f7f7;padding:8px;font-size:12px;overflow:auto}
.missing{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;margin:6px 0}
.flag{color:#b00;font-weight:bold}.ok{color:#070}img{max-width:100%;image-rendering:pixelated}
.gallery img{display:block;margin:4px 0;border:1px solid #ddd}"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, float)):
        return "—" if v != v else f"{v:.4g}"
    return _e(v)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _judge_rows(runs: list[dict]) -> list[list[Any]]:
    keys: list[tuple[str, str]] = []
    for d in runs:
        for j, vals in ((d["metrics"] or {}).get("judges") or {}).items():
            for m, v in vals.items():
                if (isinstance(v, (int, float)) or m == "skipped") and (j, m) not in keys:
                    keys.append((j, m))
    return [[f"{j}.{m}"] + [((d["metrics"] or {}).get("judges") or {}).get(j, {}).get(m, "—") for d in runs]
            for j, m in keys]


def _comparison_rows(runs: list[dict]) -> list[list[Any]]:
    rows = []
    for d in runs:
        m = d["metrics"] or {}
        comp, qd = m.get("composite") or {}, m.get("qd") or {}
        search = d["baseline"] or {}
        astar = (m.get("judges") or {}).get("astar") or {}
        rows.append([d["name"], d["kind"], search.get("evaluations", _last_step(d)), search.get("best_return", "—"),
                     comp.get("mean", "—"), comp.get("best", "—"), astar.get("win_rate", "skipped" if "skipped" in astar else "—"),
                     qd.get("coverage", "—"), qd.get("qd_score", "—"), (search.get("all_evaluated_qd") or {}).get("coverage", "—")])
    return rows


def _last_step(d: dict) -> Any:
    steps = [s[-1] for s, _ in d["scalars"].values() if s]
    return max(steps) if steps else "—"


def _audit_html(audit: dict | None) -> str:
    if not audit:
        return "<p>No audit (needs checkpoints; run <code>rlcreate eval RUN</code>).</p>"
    parts = [f"<p class='{'flag' if n.startswith('FLAG') else ''}'>{_e(n)}</p>" for n in audit.get("notes", [])]
    rows = []
    for term, p in (audit.get("pairs") or {}).items():
        for mode, q in (p.get("by_mode") or {p.get("mode", ""): p}).items():
            v = q.get("verdict")
            cls = "ok" if v in ("ok",) else "flag"
            rows.append([term, p.get("judge_name", p.get("judge", "")), _e(mode or "deterministic"),
                         f"<span class='{cls}'>{_e(v)}</span>", _e(q.get("reason", "")),
                         ", ".join(f"{x:.3f}" for x in q.get("proxy", []) if isinstance(x, float)),
                         ", ".join(f"{x:.3f}" for x in q.get("judge", []) if isinstance(x, float))])
    for mode, flags in (audit.get("flags") or {}).items():
        parts.append("<p>" + _e(mode) + " rollouts, last checkpoint: " + "; ".join(
            f"<span class='{'flag' if f['flag'] else 'ok'}'>{_e(k)}: {'FLAGGED' if f['flag'] else 'ok'}</span> "
            f"({_e(f['reason'])})" for k, f in flags.items()) + "</p>")
    head = "".join(f"<th>{h}</th>" for h in ["term", "judge", "rollouts", "verdict", "why", "proxy by checkpoint",
                                             "judge by checkpoint"])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    steps = ", ".join(str(s) for s in audit.get("checkpoints", []))
    return "".join(parts) + f"<p>checkpoints (steps): {_e(steps)}</p><table><tr>{head}</tr>{body}</table>"


def _texts_html(d: dict, limit: int) -> str:
    """The first ``limit`` prompt draws: every group's text with its composite, terms and judge scores."""
    records = d["texts"][:max(limit, 1)]
    if not records:
        return "<p class='missing'>no texts</p>"
    groups = [g for g in records[0] if g != "prompt"]
    groups.sort(key=lambda g: g != d["primary"])  # the run's own texts first
    judged = ((d["metrics"] or {}).get("groups") or {})
    terms = list(records[0][groups[0]]["terms"])
    head = ["prompt", "group", "text", "total"] + terms + ["perplexity (standalone)", "longest corpus run"]
    rows = []
    for j, r in enumerate(records):
        for g in groups:
            jg = (judged.get(g) or {}).get("judges") or {}
            nll = ((jg.get("perplexity") or {}).get("per_text_nll") or [])
            run_len = ((jg.get("memorization") or {}).get("per_text_longest") or [])
            ppl = float(np.exp(nll[j])) if j < len(nll) and nll[j] == nll[j] else "—"
            cells = [_e(r["prompt"]) if g == groups[0] else "", f"<b>{_e(g)}</b>" if g == d["primary"] else _e(g),
                     f"<div style='text-align:left;max-width:520px'>{_e(r[g]['text'])}</div>", _fmt(r[g]["total"])]
            cells += [_fmt(r[g]["terms"].get(t, "—")) for t in terms]
            cells += [_fmt(ppl), _fmt(run_len[j]) if j < len(run_len) else "—"]
            rows.append(cells)
    head_html = "".join(f"<th>{_e(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    by_group = ""
    if judged:
        keys = [(j, m) for j, vals in judged[next(iter(judged))]["judges"].items() for m, v in vals.items()
                if isinstance(v, (int, float))]
        by_group = "<p>Judges by group (bold: this run's own texts):</p>" + _table(
            ["measure"] + list(judged), [[f"{j}.{m}"] + [judged[g]["judges"].get(j, {}).get(m, "—") for g in judged]
                                         for j, m in keys] +
            [["composite mean"] + [judged[g]["composite"]["mean"] for g in judged]])
    return by_group + f"<table><tr>{head_html}</tr>{body}</table>"


def write_report(runs: Sequence[str | Path], out: str | Path, gallery: int = 6) -> Path:
    """Write ``out/index.html`` (+ ``out/img/*.png``) over one or more run folders; returns the HTML path."""
    if not runs:
        raise RunFolderError("no run folders given; pass one or more, e.g. rlcreate report runs/a runs/b")
    data = [load_run(r) for r in runs]
    names = [d["name"] for d in data]
    if len(set(names)) != len(names):  # two runs with the same folder name: disambiguate
        for i, d in enumerate(data):
            d["name"] = f"{d['name']}#{i}"
    out = Path(out)
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>rlcreate report</title><style>{_CSS}</style>"
         "</head><body>", f"<h1>rlcreate report: {_e(', '.join(d['name'] for d in data))}</h1>"]
    h.append("<h2>Comparison</h2><p>Composite = the recipe's reward summed over a level's segments. RL: policy "
             "rollouts; baselines: best found during search and the written samples. QD in a fixed "
             "leniency x linearity grid (14 x 14).</p>")
    h.append(_table(["run", "kind", "reward evaluations", "search best", "composite mean", "composite best",
                     "A* win rate", "QD coverage (samples)", "QD-score (samples)", "coverage (all evaluated)"],
                    _comparison_rows(data)))
    h.append("<h2>Judges</h2>")
    rows = _judge_rows(data)
    h.append(_table(["measure"] + [d["name"] for d in data], rows) if rows else
             "<p class='missing'>No judge metrics yet: run <code>rlcreate eval RUN</code>.</p>")
    h.append("<h2>Expressive range</h2>")
    if _expressive_range_png(data, img / "expressive_range.png"):
        h.append("<img src='img/expressive_range.png' alt='expressive range'>")
    else:
        h.append("<p class='missing'>No levels to plot.</p>")
    for i, d in enumerate(data):
        h.append(f"<h2>Run {_e(d['name'])} ({_e(d['kind'])})</h2>")
        for m in d["missing"]:
            h.append(f"<div class='missing'>missing: {_e(m)}</div>")
        for note in (d["metrics"] or {}).get("notes", []):
            h.append(f"<div class='missing'>{_e(note)}</div>")
        h.append("<h3>Recipe</h3>" + (f"<details><summary>config.yaml</summary><pre>{_e(d['config_text'])}</pre></details>"
                                      if d["config_text"] else "<p>—</p>"))
        h.append("<h3>Training curves</h3>" if not d["baseline"] else "<h3>Search progress</h3>")
        if _curves_png(d, img / f"curves_{i}.png"):
            h.append(f"<img src='img/curves_{i}.png' alt='curves {_e(d['name'])}'>")
        else:
            h.append("<p class='missing'>no curves recorded</p>")
        h.append("<h3>Audit</h3>" + _audit_html(d["audit"]))
        if d["text"]:
            h.append("<h3>Texts</h3>" + _texts_html(d, gallery))
            continue
        h.append("<h3>Gallery</h3><div class='gallery'>")
        pngs = sorted(d["sample_dir"].glob("level_*.png"))[:gallery] if d["sample_dir"].is_dir() else []
        per_level = {m.get("file"): m for m in (_json(d["sample_dir"] / "metrics.json") or {}).get("levels", [])}
        for p in pngs:
            dst = img / f"run{i}_{p.name}"
            shutil.copyfile(p, dst)
            m = per_level.get(p.with_suffix(".txt").name, {})
            label = ", ".join(f"{k}={_fmt(m[k])}" for k in ("episode_return", "leniency", "linearity", "enemies",
                                                             "solver_playable") if k in m)
            h.append(f"<p>{_e(p.name)} {_e(label)}</p><img src='img/{dst.name}' alt='{_e(p.name)}'>")
        if not pngs:
            h.append("<p class='missing'>no rendered levels</p>")
        h.append("</div>")
    h.append("</body></html>")
    page = out / "index.html"
    page.write_text("\n".join(h), encoding="utf-8")
    return page
