"""``rlcreate baseline | eval | report``: subcommands added to the main parser by :func:`register`.

rlcreate baseline RECIPE.yaml --method cma|random|map-elites|cma-me [--budget N] [--out runs]
rlcreate baseline TEXT_RECIPE.yaml --method sampling|best-of-n [--budget N] [--n 8]
rlcreate eval RUN [--n N] [--judges astar,tile_kl] [--no-audit] [--audit-modes stochastic,deterministic]
rlcreate report RUN [RUN ...] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlcreate.runbox import check_name, name_arg, out_arg, refuse_links, run_lock

__all__ = ["register"]


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_baseline(args) -> int:
    from rlcreate.evaluation.baselines import BaselineError, read_baseline_section, run_baseline
    from rlcreate.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    section = read_baseline_section(args.recipe, recipe)
    method = args.method or section.get("method")
    if not method:
        raise BaselineError(
            "no --method given and the recipe's baselines: section names none; pass e.g. "
            "--method cma (levels) or --method best-of-n (texts)"
        )
    from rlcreate.domains import domain_of
    from rlcreate.validate import check_choice

    # the method names the default run folder, so it is checked before the name is
    methods = domain_of(recipe.env_id).baseline_methods()
    check_choice("--method", method, methods, f"a baseline for {recipe.env_id}", BaselineError)
    run_dir = Path(args.out) / check_name("--name", args.name or f"{recipe.name}-{method}")
    with run_lock(run_dir, "baseline"):  # one writer per run folder
        if run_dir.is_dir():
            refuse_links(run_dir)
        info = run_baseline(
            recipe,
            method,
            run_dir,
            budget=args.budget,
            batch=args.batch,
            section=section,
            progress_bar=not args.quiet,
            **{d: getattr(args, d) for d in args.domain_options},
        )
    print(f"run written to {run_dir}")
    print(
        f"{info['method']}: {info['evaluations']} reward evaluations, best composite {info['best_return']:.3f}, "
        f"samples mean {info['samples_mean_return']:.3f}, {info['evaluations_per_second']:.1f} evaluations/s"
    )
    return 0


def cmd_eval(args) -> int:
    from rlcreate.evaluation.report import evaluate_run
    from rlcreate.train.runner import read_run_recipe

    read_run_recipe(args.run)  # a run folder (config.yaml) before anything else
    with run_lock(args.run, "eval"):  # eval writes metrics.json, audit.json and eval_samples/
        refuse_links(args.run)
        res = evaluate_run(
            args.run,
            n=args.n,
            judges=_split(args.judges),
            audit=not args.no_audit,
            audit_levels=args.audit_levels,
            audit_modes=_split(args.audit_modes),
            **{d: getattr(args, d) for d in args.domain_options},
        )
    print(f"{res['source']}: metrics written to {Path(args.run) / 'metrics.json'}")
    for judge, vals in res["judges"].items():
        if "skipped" in vals:
            print(f"  {judge}: skipped ({vals['skipped']})")
        else:
            print(f"  {judge}: " + ", ".join(f"{k}={v:.3f}" for k, v in vals.items() if isinstance(v, float)))
    if "composite" in res:
        print(f"  composite: mean={res['composite']['mean']:.3f} best={res['composite']['best']:.3f}")
    if "qd" in res:
        print(f"  qd: coverage={res['qd']['coverage']:.3f} qd_score={res['qd']['qd_score']:.3f}")
    audit: dict[str, Any] = res.get("audit") or {}
    for term, p in audit.get("pairs", {}).items():
        for mode, q in (p.get("by_mode") or {p.get("mode", "-"): p}).items():
            print(f"  audit {term} [{mode}]: {q['verdict']} ({q.get('reason', '')})")
    for note in res["notes"]:
        print(f"  note: {note}")
    return 0


def cmd_report(args) -> int:
    from rlcreate.evaluation.report import write_report

    page = write_report(args.runs, args.out, gallery=args.gallery)
    print(f"report written to {page}")
    return 0


def register(sub) -> None:
    """Add the ``baseline``, ``eval`` and ``report`` subcommands to an argparse subparsers object."""
    from rlcreate.domains import add_domain_options
    from rlcreate.validate import int_arg  # typed options: a bad value exits 2 before any work

    b = sub.add_parser(
        "baseline",
        help="baseline at the RL run's budget (levels: random, cma, map-elites, cma-me; text: sampling, best-of-n)",
    )
    b.add_argument("recipe")
    b.add_argument(
        "--method", default=None, help="a baseline of the recipe's domain (default: the recipe's baselines.method)"
    )
    b.add_argument(
        "--budget",
        type=int_arg(1, 10**10),
        default=None,
        help="reward evaluations (= env steps); default: the recipe's trainer.total_timesteps",
    )
    b.add_argument(
        "--batch",
        type=int_arg(1, 4096),
        default=None,
        help="levels per generation / texts per LM batch (default trainer.n_envs)",
    )
    b.add_argument("--out", type=out_arg, default="runs")
    b.add_argument("--name", type=name_arg, default=None, help="run folder name (default <recipe name>-<method>)")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(fn=cmd_baseline, domain_options=add_domain_options(b, "baseline"))

    e = sub.add_parser(
        "eval", help="judge a run's levels or texts (A*, tile KL, ... / n-gram novelty, perplexity, ...) and audit it"
    )
    e.add_argument("run")
    e.add_argument("--n", type=int_arg(1, 100000), default=None, help="levels to generate from the run's policy")
    e.add_argument("--judges", default=None, help="comma-separated judges (default: the recipe's judges:)")
    e.add_argument("--no-audit", action="store_true", help="skip the reward-hacking audit along checkpoints")
    e.add_argument(
        "--audit-levels",
        type=int_arg(1, 10000),
        default=8,
        help="levels (or texts) generated per checkpoint and rollout mode for the audit",
    )
    e.add_argument(
        "--audit-modes",
        default=None,
        help="audit rollouts: stochastic,deterministic (default both; the first gives the verdict)",
    )
    e.set_defaults(fn=cmd_eval, domain_options=add_domain_options(e, "eval"))

    r = sub.add_parser("report", help="HTML report (curves, judges, expressive range, gallery, audit) over runs")
    r.add_argument("runs", nargs="+")
    r.add_argument("--out", type=out_arg, default="report")
    r.add_argument("--gallery", type=int_arg(0, 1000), default=6, help="levels shown per run")
    r.set_defaults(fn=cmd_report)
