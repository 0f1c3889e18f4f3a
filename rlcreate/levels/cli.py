"""Commands the levels domain adds to ``rlcreate``: ``demo`` (the main job), ``calibrate`` a
trained column-LM run's element rates, ``play`` and ``render`` a level file."""

from __future__ import annotations

from pathlib import Path

from rlcreate.runbox import out_arg
from rlcreate.validate import int_arg

__all__ = ["register"]


def cmd_play(args) -> int:
    from rlcreate.levels.solver import solve
    from rlcreate.levels.tiles import read_level

    grid = read_level(args.level)
    res = solve(grid)
    print(
        f"fast solver: {'playable' if res.reached_end else 'not playable'} "
        f"(furthest column {res.furthest_col + 1}/{grid.shape[1]})"
    )
    from rlcreate.levels.astar import astar_or_none

    summary = astar_or_none([grid], runs=args.runs)
    if summary is None:
        print("A* agent: skipped (java not found; install a Java 17 runtime to enable it)")
    else:
        s = summary[0]
        print(f"A* agent: win rate {s.win_rate:.2f} over {args.runs} runs, mean completion {s.mean_completion:.2f}")
    return 0


def cmd_render(args) -> int:
    from rlcreate.levels.render import render_level
    from rlcreate.levels.tiles import read_level

    render_level(read_level(args.level), args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_demo(args) -> int:
    import os

    import torch

    from rlcreate.levels.demo import run_demo

    # Training rounds differently with another number of torch threads (2e-6 in the weights after
    # 8k steps, then another policy), so unless the user chose, the demo runs single-threaded like
    # the benches: its table then reproduces benchmarks/demo_summary.json on any core count here.
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    if args.quiet:  # the models' loading bars too
        import transformers

        transformers.utils.logging.disable_progress_bar()

    run_demo(
        Path(args.out),
        timesteps=args.timesteps,
        progress_bar=not args.quiet,
        best_of=args.best_of,
        resume=args.resume,
        overwrite=args.overwrite,
        seed=args.seed,
        evaluate=False if args.no_eval else (True if args.eval else None),
        generator=args.generator,
        calibrate=False if args.no_calibrate else True if args.calibrate else None,
        calibration_method=args.calibration_method,
        recipe_path=args.recipe,
        astar_levels=args.astar_levels,
    )
    return 0


def cmd_calibrate(args) -> int:
    from rlcreate.levels.calibrate import calibrate_run
    from rlcreate.runbox import run_lock
    from rlcreate.train.runner import read_run_recipe

    read_run_recipe(args.run)  # a run folder, before any lock file is made beside it
    with run_lock(Path(args.run), "calibrate"):
        fit = calibrate_run(args.run, levels=args.levels, rounds=args.rounds)
    chosen = fit["rounds"][fit["chosen_round"]]
    print(
        "offsets "
        + ", ".join(f"{e} {b:+.2f}" for e, b in fit["element_bias"].items())
        + f" (round {fit['chosen_round'] + 1} of {len(fit['rounds'])}, {fit['levels']} selection levels): "
        + ", ".join(f"{e} {chosen['means'][e]:.2f} (human {fit['target'][e]:.2f})" for e in fit["target"])
        + " per 128 columns"
    )
    print(f"written to {args.run}/config.yaml (fits: calibration.json); samples/ redrawn with them")
    return 0


def register(sub) -> None:
    d = sub.add_parser(
        "demo",
        help="steer the column LM (mario_tokens_variety.yaml) for a fixed step budget; compare its "
        "levels with the LM's own samples and human levels",
    )
    d.add_argument("--out", type=out_arg, default="runs/demo")
    d.add_argument(
        "--timesteps",
        type=int_arg(1, 10**10),
        default=None,
        help="env steps (default: the recipe's trainer.total_timesteps; --generator latent: 24576, a quarter of its "
        "recipe's, where PPO beats best-of-4 from its start in two seeds, ~4-5 min here)",
    )
    d.add_argument(
        "--best-of",
        type=int_arg(0, 64),
        default=4,
        help="n of the best-of-n set drawn from the untrained start (0: skip)",
    )
    d.add_argument("--seed", type=int_arg(0, 2**31 - 1), default=None, help="training seed (default: the recipe's)")
    d.add_argument(
        "--astar-levels",
        type=int_arg(0, 64),
        default=None,
        help="levels per set the A* agent plays (0: none; default 8, --generator latent: 0 to fit ~5 min)",
    )
    d.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    d.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    d.add_argument("--no-eval", action="store_true", help="skip writing metrics.json (judges and the checkpoint audit)")
    d.add_argument(
        "--eval", action="store_true", help="write metrics.json even where it is off by default (--generator latent)"
    )
    d.add_argument("--quiet", action="store_true")
    cal = d.add_mutually_exclusive_group()
    cal.add_argument(
        "--no-calibrate",
        action="store_true",
        help="sample the policy, its start and the rule as trained (default: fit their pipe, ?-block and coin rates "
        "to human levels after training; --generator latent: off)",
    )
    cal.add_argument(
        "--calibrate",
        action="store_true",
        help="fit those rates where it is off by default (--generator latent: the column LM's offsets)",
    )
    d.add_argument(
        "--calibration-method",
        choices=("closest", "fit"),
        default="closest",
        help="closest: damped steps, the measured round closest to the human rates; fit: a line fitted to the "
        "policy's response, its fitted offsets measured last (BENCHMARKS.md, 'Calibration that fits the policy's response')",
    )
    d.add_argument(
        "--generator",
        choices=("tokens", "latent"),
        default="tokens",
        help="tokens: the column LM's token path (mario_tokens_variety.yaml); latent: MarioLatent-v1 "
        "(mario_latent_choice.yaml)",
    )
    d.add_argument(
        "--recipe",
        default=None,
        help="another recipe of the --generator's env: a path or a shipped recipe name (e.g. "
        "mario_latent_candidates_terms.yaml, the latent demo's recipe before mario_latent_choice.yaml)",
    )
    d.set_defaults(fn=cmd_demo)

    cb = sub.add_parser(
        "calibrate",
        help="fit a trained column-LM run's (MarioTokens-v1, MarioLatent-v1) pipe, ?-block and coin rates to human "
        "levels (writes its config.yaml)",
    )
    cb.add_argument("run", help="run folder of a trained column-LM recipe (rlcreate train / demo)")
    cb.add_argument("--levels", type=int_arg(16, 100000), default=192, help="selection levels per round")
    cb.add_argument("--rounds", type=int_arg(1, 20), default=3, help="fitting rounds (the best measured one is kept)")
    cb.set_defaults(fn=cmd_calibrate)

    pl = sub.add_parser("play", help="fast-solver and A* verdicts for a level file")
    pl.add_argument("level")
    pl.add_argument("--runs", type=int_arg(1, 100), default=3)
    pl.set_defaults(fn=cmd_play)

    rd = sub.add_parser("render", help="render a level file to PNG")
    rd.add_argument("level")
    rd.add_argument("-o", "--output", required=True)
    rd.set_defaults(fn=cmd_render)
