"""Evaluate runs (``rlcreate eval``) and write HTML reports over one or more runs (``rlcreate report``).

:func:`evaluate_run` asks the run's domain for its judges, composite returns, QD summary and flags,
adds the reward-hacking audit along checkpoints, and writes ``RUN/metrics.json``.
:func:`write_report` writes ``OUT/index.html`` plus the PNGs it shows (``OUT/img/``): the recipe,
training curves of every reward term (TensorBoard event files) or the search progress of a
baseline, judge metrics side by side, the domains' figures and galleries (expressive range and
rendered levels; texts side by side), the audit and the comparison table. Parts a run folder
lacks are listed as missing instead of failing, so an interrupted run still gets a report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from rlcreate.domains import EvalResult, domain_options
from rlcreate.errors import UserError
from rlcreate.evaluation.html import esc as _e
from rlcreate.evaluation.html import plt as _plt
from rlcreate.evaluation.html import table as _table
from rlcreate.evaluation.summary import read_json
from rlcreate.runbox import atomic_target, read_regular, refuse_links, write_text
from rlcreate.safe_io import MAX_YAML_BYTES, loads_yaml
from rlcreate.train.runner import RunFolderError

__all__ = ["evaluate_run", "write_report", "load_run", "read_scalars", "RunFolderError"]


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


def _domain(config: Any):
    """The domain of a run's config (None when the config names no known environment)."""
    from rlcreate.domains import domain_of, env_ids

    env = ((config or {}).get("env") or {}) if isinstance(config, dict) else {}
    env_id = env.get("id") if isinstance(env, dict) else env
    return domain_of(env_id) if env_id in env_ids() else None


def load_run(run: str | Path) -> dict:
    """Everything a report can show about a run folder, and the list of what is missing."""
    run = Path(run)
    if not run.is_dir():
        raise RunFolderError(
            f"{str(run)!r} is not a folder; pass run folders written by `rlcreate train` "
            "or `rlcreate baseline`, e.g. runs/mario-latent"
        )
    if not (run / "config.yaml").is_file():
        raise RunFolderError(
            f"{str(run)!r} is not a run folder (no config.yaml); pass run folders written by "
            "`rlcreate train` or `rlcreate baseline`, e.g. runs/mario-latent"
        )
    refuse_links(run)  # a report embeds only the run's own files
    d: dict[str, Any] = {"path": run, "name": run.name, "missing": []}
    d["config_text"] = read_regular(run / "config.yaml", run, MAX_YAML_BYTES).decode("utf-8", "replace")
    try:
        d["config"] = loads_yaml(d["config_text"], str(run / "config.yaml"))
    except (yaml.YAMLError, UserError):
        d["config"] = None
    if d["config"] is None:
        d["missing"].append("config.yaml (the recipe)")
    d["baseline"] = _read_checked(run, "baseline.json", _baseline_ok, d["missing"])
    d["kind"] = f"baseline: {d['baseline']['method']}" if d["baseline"] else "RL"
    d["progress"] = _read_checked(run, "progress.json", _progress_ok, d["missing"])
    d["scalars"] = read_scalars(run / "tb") if (run / "tb").is_dir() else {}
    if not d["baseline"]:
        if not d["scalars"]:
            d["missing"].append("tb/ TensorBoard logs (training curves)")
        from rlcreate.train.checkpoint import latest_checkpoint

        found = latest_checkpoint(run)
        d["policy_source"] = found[1] if found else None
        if found is None:
            d["missing"].append("model/ (final model) and checkpoints/: no model was saved")
        elif not found[0].name == "model":
            d["missing"].append(f"model/ (final model: training did not finish; using the {found[1]})")
    sample_dir = run / "eval_samples" if (run / "eval_samples").is_dir() else run / "samples"
    d["sample_dir"] = sample_dir
    d["domain"] = _domain(d["config"])
    d["samples"] = d["domain"].read_samples(sample_dir) if d["domain"] else []
    if not d["samples"]:
        d["missing"].append(f"{sample_dir.name}/ {d['domain'].artifact if d['domain'] else 'sample'}s")
    d["metrics"] = _read_checked(run, "metrics.json", _metrics_ok, d["missing"])
    if not (run / "metrics.json").is_file():
        d["missing"].append("metrics.json (run `rlcreate eval RUN` for judges)")
    d["audit"] = _read_checked(run, "audit.json", _audit_ok, d["missing"]) or (d["metrics"] or {}).get("audit")
    return d


# The JSON files a report shows come from a folder that may come from someone else: one that is not
# valid JSON or not shaped like what rlcreate writes is listed as unreadable, never a traceback
# halfway through the page.


def _read_checked(run: Path, name: str, ok: Callable[[Any], bool], missing: list[str]) -> Any:
    """``run/name`` parsed, or None: absent, or listed in ``missing`` when ``ok`` refuses it."""
    path = run / name
    value = read_json(path)
    if path.is_file() and (value is None or not ok(value)):
        missing.append(f"{name}: not what rlcreate writes (damaged or hand-edited); ignored")
        return None
    return value


def _maps(x: Any) -> bool:
    """A dict whose values are all dicts."""
    return isinstance(x, dict) and all(isinstance(v, dict) for v in x.values())


def _number_list(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, (int, float)) for v in x)


def _baseline_ok(b: Any) -> bool:
    return (
        isinstance(b, dict) and isinstance(b.get("method"), str) and isinstance(b.get("all_evaluated_qd") or {}, dict)
    )


def _progress_ok(p: Any) -> bool:
    keys = ("evaluations", "best", "mean", "best_so_far")
    return isinstance(p, list) and all(isinstance(x, dict) and _number_list([x.get(k) for k in keys]) for x in p)


def _metrics_ok(m: Any) -> bool:
    return (
        isinstance(m, dict)
        and _maps(m.get("judges") or {})
        and isinstance(m.get("composite") or {}, dict)
        and isinstance(m.get("qd") or {}, dict)
        and isinstance(m.get("notes") or [], list)
        and (m.get("audit") is None or _audit_ok(m["audit"]))
    )


def _audit_ok(a: Any) -> bool:
    if not (isinstance(a, dict) and _maps(a.get("pairs") or {}) and _maps(a.get("flags") or {})):
        return False
    pairs, flags = (a.get("pairs") or {}).values(), (a.get("flags") or {}).values()
    if not all(_maps(p.get("by_mode") or {}) for p in pairs):
        return False
    rows = [q for p in pairs for q in [p, *(p.get("by_mode") or {}).values()]]
    return (
        all(isinstance(n, str) for n in a.get("notes") or [])
        and _number_list(a.get("checkpoints") or [])
        and all(_number_list(q.get("proxy") or []) and isinstance(q.get("judge") or [], (list, str)) for q in rows)
        and all(isinstance(f, dict) and "flag" in f and "reason" in f for by_kind in flags for f in by_kind.values())
    )


# ---------------------------------------------------------------------------------------------
# rlcreate eval


def evaluate_run(
    run: str | Path,
    n: int | None = None,
    judges: Sequence[str] | None = None,
    audit: bool = True,
    audit_levels: int = 8,
    audit_modes: Sequence[str] | None = None,
    **options: Any,
) -> EvalResult:
    """Judge a run through its domain, audit it along its checkpoints, write ``RUN/metrics.json``
    (returns it). ``n``: fresh samples from the run's policy (default the recipe's
    ``trainer.samples``); ``judges``: default the recipe's ``judges:`` list, else the domain's."""
    from rlcreate.assemble import assemble
    from rlcreate.evaluation.audit import MODES, audit_run, checkpoints_of
    from rlcreate.train.runner import read_run_recipe

    run = Path(run)
    asm = assemble(read_run_recipe(run))
    options = domain_options("eval", options, asm.domain)  # e.g. levels: astar_runs
    result = asm.domain.evaluate(run, asm, n=n, judges=judges, **options)
    notes = result.setdefault("notes", [])
    for kind in ("memorisation", "collapse"):
        flag = (result.get("flags") or {}).get(kind) or {}
        if flag.get("flag"):
            notes.append(f"FLAG {kind}: {flag['reason']}")
    if audit and checkpoints_of(run, asm.trainer.checkpoint_files()):
        result["audit"] = audit_run(run, n_levels=audit_levels, modes=audit_modes or MODES, asm=asm)
    write_text(run / "metrics.json", json.dumps(result, indent=2))  # never through a link
    return result


# ---------------------------------------------------------------------------------------------
# figures


def _curves_png(d: dict, path: Path) -> bool:
    plt = _plt()
    series = {
        k: v
        for k, v in d["scalars"].items()  # train/kl*: KL to the reference and its coefficient beta
        if k.startswith(("rewards/", "train/kl")) or k == "rollout/ep_rew_mean"
    }
    if not series and d["progress"]:
        p = d["progress"]
        ev = [x["evaluations"] for x in p]
        series = {
            "search/best": (ev, [x["best"] for x in p]),
            "search/mean": (ev, [x["mean"] for x in p]),
            "search/best_so_far": (ev, [x["best_so_far"] for x in p]),
        }
    if not series:
        return False
    k = len(series)
    cols = min(k, 3)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (tag, (x, y)) in zip(axes.ravel(), sorted(series.items())):
        ax.plot(x, y, lw=1.5, marker="." if len(x) < 20 else None)  # a short run: one point per rollout
        ax.set_title(tag, fontsize=9)
        # SB3 logs at env steps, TRL at optimiser steps, a baseline's progress.json at evaluations
        ax.set_xlabel("reward evaluations" if d["baseline"] else "training steps", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[k:]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=80)
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


def _judge_rows(runs: list[dict]) -> list[list[Any]]:
    keys: list[tuple[str, str]] = []
    for d in runs:
        for j, vals in ((d["metrics"] or {}).get("judges") or {}).items():
            for m, v in vals.items():
                if (isinstance(v, (int, float)) or m == "skipped") and (j, m) not in keys:
                    keys.append((j, m))
    return [
        [f"{j}.{m}"] + [((d["metrics"] or {}).get("judges") or {}).get(j, {}).get(m, "—") for d in runs]
        for j, m in keys
    ]


def _comparison_rows(runs: list[dict]) -> list[list[Any]]:
    rows = []
    for d in runs:
        m = d["metrics"] or {}
        comp, qd = m.get("composite") or {}, m.get("qd") or {}
        search = d["baseline"] or {}
        rows.append(
            [
                d["name"],
                d["kind"],
                search.get("evaluations", _last_step(d)),
                search.get("best_return", "—"),
                comp.get("mean", "—"),
                comp.get("best", "—"),
                qd.get("coverage", "—"),
                qd.get("qd_score", "—"),
                (search.get("all_evaluated_qd") or {}).get("coverage", "—"),
            ]
        )
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
            rows.append(
                [
                    term,
                    p.get("judge_name", p.get("judge", "")),  # "judge": a skipped pair of older audits
                    _e(mode or "deterministic"),
                    f"<span class='{cls}'>{_e(v)}</span>",
                    _e(q.get("reason", "")),
                    ", ".join(f"{x:.3f}" for x in q.get("proxy", []) if isinstance(x, float)),
                    ", ".join(f"{x:.3f}" for x in q.get("judge", []) if isinstance(x, float)),
                ]
            )
    for mode, flags in (audit.get("flags") or {}).items():
        parts.append(
            "<p>"
            + _e(mode)
            + " rollouts, last checkpoint: "
            + "; ".join(
                f"<span class='{'flag' if f['flag'] else 'ok'}'>{_e(k)}: {'FLAGGED' if f['flag'] else 'ok'}</span> "
                f"({_e(f['reason'])})"
                for k, f in flags.items()
            )
            + "</p>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ["term", "judge", "rollouts", "verdict", "why", "proxy by checkpoint", "judge by checkpoint"]
    )
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    steps = ", ".join(str(s) for s in audit.get("checkpoints", []))
    return "".join(parts) + f"<p>checkpoints (steps): {_e(steps)}</p><table><tr>{head}</tr>{body}</table>"


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
    h = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>rlcreate report</title><style>{_CSS}</style>"
        "</head><body>",
        f"<h1>rlcreate report: {_e(', '.join(d['name'] for d in data))}</h1>",
    ]
    h.append(
        "<h2>Comparison</h2><p>Composite = the recipe's reward summed over an episode. RL: policy "
        "rollouts; baselines: best found during search and the written samples. QD in the domain's "
        "fixed behaviour grid.</p>"
    )
    h.append(
        _table(
            [
                "run",
                "kind",
                "reward evaluations",
                "search best",
                "composite mean",
                "composite best",
                "QD coverage (samples)",
                "QD-score (samples)",
                "coverage (all evaluated)",
            ],
            _comparison_rows(data),
        )
    )
    h.append("<h2>Judges</h2>")
    rows = _judge_rows(data)
    h.append(
        _table(["measure"] + [d["name"] for d in data], rows)
        if rows
        else "<p class='missing'>No judge metrics yet: run <code>rlcreate eval RUN</code>.</p>"
    )
    for domain in {id(d["domain"]): d["domain"] for d in data if d["domain"]}.values():
        h.append(domain.figures_html([d for d in data if d["domain"] is domain], img))
    for i, d in enumerate(data):
        h.append(f"<h2>Run {_e(d['name'])} ({_e(d['kind'])})</h2>")
        for m in d["missing"]:
            h.append(f"<div class='missing'>missing: {_e(m)}</div>")
        for note in (d["metrics"] or {}).get("notes", []):
            h.append(f"<div class='missing'>{_e(note)}</div>")
        h.append(
            "<h3>Recipe</h3>"
            + (
                f"<details><summary>config.yaml</summary><pre>{_e(d['config_text'])}</pre></details>"
                if d["config_text"]
                else "<p>—</p>"
            )
        )
        h.append("<h3>Training curves</h3>" if not d["baseline"] else "<h3>Search progress</h3>")
        if _curves_png(d, img / f"curves_{i}.png"):
            h.append(f"<img src='img/curves_{i}.png' alt='curves {_e(d['name'])}'>")
        else:
            h.append("<p class='missing'>no curves recorded</p>")
        h.append("<h3>Audit</h3>" + _audit_html(d["audit"]))
        if d["domain"]:
            h.append(d["domain"].gallery_html(d, i, img, gallery))
    h.append("</body></html>")
    page = out / "index.html"
    write_text(page, "\n".join(h))
    return page
