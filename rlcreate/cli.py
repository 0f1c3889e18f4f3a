"""The ``rlcreate`` command line.

    rlcreate demo                      the main job: train a MarioLatent policy, write levels + summary
    rlcreate train RECIPE.yaml         train a recipe into runs/<name>/
    rlcreate generate RUN --n N        write levels (or texts) from a trained run
    rlcreate check RECIPE.yaml         validate a recipe without running it
    rlcreate rewards                   list registered reward modules
    rlcreate play LEVEL.txt            fast-solver and A* verdicts for a level file
    rlcreate render LEVEL.txt -o X.png render a level file
    rlcreate finetune RECIPE.yaml      GRPO + LoRA fine-tuning of the LM itself (TRL)
    rlcreate baseline RECIPE.yaml      search baselines at the RL run's budget
    rlcreate eval RUN                  judges + reward-hacking audit -> RUN/metrics.json
    rlcreate report RUN [RUN ...]      self-contained HTML report

User mistakes (bad recipe, malformed level, unknown reward, missing optional tool) print one
``error:`` line naming the value and the fix and exit with code 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlcreate.errors import UserError
from rlcreate.recipe import load_recipe

EXIT_USER_ERROR = 2


def _run_dir(arg: str) -> Path:
    run = Path(arg)
    if not (run / "config.yaml").is_file():
        raise UserError(f"{arg!r} is not a run folder (no config.yaml); pass a folder written by "
                        "`rlcreate train`, e.g. runs/mario-latent-demo")
    return run


def _parse_targets(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"--targets {text!r}: write name=value pairs separated by commas, "
                            "e.g. --targets enemies=2,gaps=1") from None
        if not sep:
            raise UserError(f"--targets {text!r}: {part!r} has no '='; write e.g. enemies=2")
    return out


def cmd_train(args) -> int:
    recipe = load_recipe(args.recipe)
    run_dir = Path(args.out) / (args.name or recipe.name)
    if args.timesteps:
        recipe.trainer["total_timesteps"] = args.timesteps
    if recipe.env_id == "rlcreate/TextTokens-v0":
        from rlcreate.train.text import train_text_recipe

        summary = train_text_recipe(recipe, run_dir, progress_bar=not args.quiet)
    else:
        from rlcreate.train.levels import train_level_recipe

        summary = train_level_recipe(recipe, run_dir, progress_bar=not args.quiet)
    print(f"run written to {run_dir}")
    _print_means(summary)
    return 0


def cmd_generate(args) -> int:
    from rlcreate.recipe import load_recipe as load

    run = _run_dir(args.run)
    recipe = load(run / "config.yaml")
    out = Path(args.out) if args.out else run / "generated"
    if args.n < 1:
        raise UserError(f"--n {args.n}: ask for at least one sample")
    if recipe.env_id == "rlcreate/TextTokens-v0":
        from rlcreate.train.text import generate_texts

        summary = generate_texts(run, recipe, args.n, out)
    else:
        from rlcreate.recipe import build_reward_set
        from rlcreate.train.levels import generate_levels, write_levels
        from rlcreate.train.sb3 import load_policy

        model = load_policy(run, recipe.trainer["algo"])
        reward_set = build_reward_set(recipe)
        levels = generate_levels(model, recipe, args.n, targets=_parse_targets(args.targets),
                                 reward_set=reward_set, seed=args.seed)
        summary = write_levels(levels, out, reward_set)
    print(f"{args.n} samples written to {out}")
    _print_means(summary)
    return 0


def cmd_check(args) -> int:
    recipe = load_recipe(args.recipe)
    from rlcreate.recipe import build_reward_set

    rs = build_reward_set(recipe)
    print(f"{args.recipe}: OK — env {recipe.env_id}, rewards {rs.names}, targets {sorted(recipe.targets)}, "
          f"trainer {recipe.trainer['algo']} x {recipe.trainer['total_timesteps']} steps")
    return 0


def cmd_rewards(args) -> int:
    from rlcreate.rewards.registry import _REGISTRY, available_rewards

    for name in available_rewards():
        doc = (getattr(_REGISTRY[name], "__doc__", "") or "").strip().split("\n")[0]
        print(f"{name:22s} {doc}")
    return 0


def cmd_play(args) -> int:
    from rlcreate.levels.solver import solve
    from rlcreate.levels.tiles import read_level

    grid = read_level(args.level)
    res = solve(grid)
    print(f"fast solver: {'playable' if res.reached_end else 'not playable'} "
          f"(furthest column {res.furthest_col + 1}/{grid.shape[1]})")
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
    from rlcreate.demo import run_demo

    run_demo(Path(args.out), minutes=args.minutes, timesteps=args.timesteps, progress_bar=not args.quiet)
    return 0


def _print_means(summary: dict) -> None:
    means = summary.get("mean") or {}
    if means:
        print("means over samples: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(means.items())))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlcreate", description="Steer pretrained generators with RL "
                                "toward creative objectives.")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="train a MarioLatent policy for a few minutes and write levels + a summary")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--minutes", type=float, default=3.0, help="training time budget (default 3)")
    d.add_argument("--timesteps", type=int, default=None, help="fixed number of env steps instead of --minutes")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(fn=cmd_demo)

    t = sub.add_parser("train", help="train a recipe (PPO / MaskablePPO) into runs/<name>/")
    t.add_argument("recipe")
    t.add_argument("--out", default="runs")
    t.add_argument("--name", default=None, help="run folder name (default: the recipe's name)")
    t.add_argument("--timesteps", type=int, default=None, help="override trainer.total_timesteps")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(fn=cmd_train)

    g = sub.add_parser("generate", help="write samples from a trained run")
    g.add_argument("run")
    g.add_argument("--n", type=int, default=8)
    g.add_argument("--targets", default=None, help="fixed control targets, e.g. enemies=2,gaps=1")
    g.add_argument("--out", default=None)
    g.add_argument("--seed", type=int, default=None)
    g.set_defaults(fn=cmd_generate)

    c = sub.add_parser("check", help="validate a recipe")
    c.add_argument("recipe")
    c.set_defaults(fn=cmd_check)

    r = sub.add_parser("rewards", help="list registered reward modules")
    r.set_defaults(fn=cmd_rewards)

    pl = sub.add_parser("play", help="fast-solver and A* verdicts for a level file")
    pl.add_argument("level")
    pl.add_argument("--runs", type=int, default=3)
    pl.set_defaults(fn=cmd_play)

    rd = sub.add_parser("render", help="render a level file to PNG")
    rd.add_argument("level")
    rd.add_argument("-o", "--output", required=True)
    rd.set_defaults(fn=cmd_render)

    from rlcreate.evaluation.cli import register as register_evaluation  # baseline, eval, report
    from rlcreate.train.finetune import register as register_finetune

    register_evaluation(sub)
    register_finetune(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except FileNotFoundError as exc:
        if args.debug:
            raise
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; files written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
