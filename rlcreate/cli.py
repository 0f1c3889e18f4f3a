"""The ``rlcreate`` command line.

    rlcreate demo                      the main job (levels domain): train, write levels + a summary
    rlcreate train RECIPE.yaml         train a recipe into runs/<name>/ (SB3 PPO / MaskablePPO, TRL GRPO)
    rlcreate generate RUN --n N        write levels (or texts) from a trained run
    rlcreate calibrate RUN             fit a trained column-LM run's element rates to human levels
    rlcreate check RECIPE.yaml         validate a recipe without running it
    rlcreate rewards                   list registered reward modules
    rlcreate play LEVEL.txt            fast-solver and A* verdicts for a level file
    rlcreate render LEVEL.txt -o X.png render a level file
    rlcreate finetune RECIPE.yaml      alias of train with trainer.algo: grpo (GRPO + LoRA on the LM itself)
    rlcreate baseline RECIPE.yaml      search baselines at the RL run's budget
    rlcreate eval RUN                  judges + reward-hacking audit -> RUN/metrics.json
    rlcreate report RUN [RUN ...]      self-contained HTML report

User mistakes (bad recipe, malformed level, unknown reward, missing optional tool) print one
``error:`` line naming the value and the fix and exit with code 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from contextlib import ExitStack, nullcontext
from pathlib import Path

from rlcreate.errors import UserError
from rlcreate.recipe import MAX_SEED, load_recipe
from rlcreate.runbox import (
    GENERATED_MARKER,
    check_replaceable,
    describe_os_error,
    name_arg,
    out_arg,
    refuse_links,
    replace_folder,
    run_lock,
    write_text,
)
from rlcreate.trainers import process_rank, trainer_for
from rlcreate.validate import int_arg

__all__ = ["main", "build_parser", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2


def _parse_targets(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep:
            raise UserError(f"--targets {text!r}: {part!r} has no '='; write e.g. enemies=2")
        try:
            number = float(value)
        except ValueError:
            raise UserError(
                f"--targets {text!r}: write name=value pairs separated by commas, e.g. --targets enemies=2,gaps=1"
            ) from None
        if not math.isfinite(number) or number < 0:
            raise UserError(f"--targets {name.strip()}={value.strip()}: a target must be a finite number >= 0")
        out[name.strip()] = number
    return out


def cmd_train(args) -> int:
    from rlcreate.train.runner import train_run

    algo = getattr(args, "algo", None)  # `rlcreate finetune` runs the recipe with trainer.algo: grpo
    given = Path(args.recipe)
    if given.is_dir() and (given / "config.yaml").is_file():  # `train RUN --resume`
        if not args.resume:
            raise UserError(f"{args.recipe!r} is a run folder; pass --resume to continue it, or give a recipe file")
        if args.name or args.out or args.seed is not None:
            flag = "--name" if args.name else "--out" if args.out else "--seed"
            raise UserError(
                f"{flag}: `train {args.recipe} --resume` continues that run folder in place; drop {flag}, "
                "or train the run's config.yaml into a new folder with --out/--name"
            )
        run_dir = given
    else:
        recipe = load_recipe(args.recipe, algo)
        if args.seed is not None:  # the same recipe under other seeds, without copies of the file
            recipe.seed = args.seed
        run_dir = Path(args.out or "runs") / (args.name or recipe.name)
    # one writer per run folder (the main process of a multi-process launch holds the lock; helper
    # ranks only train); the checks below then see a folder no other command is changing
    with run_lock(run_dir, "train") if process_is_main() else nullcontext():
        if run_dir.is_dir():
            refuse_links(run_dir)
        if run_dir == given:
            recipe = load_recipe(given / "config.yaml", algo)
        elif args.resume and (run_dir / "config.yaml").is_file():
            saved = load_recipe(run_dir / "config.yaml")
            if _comparable(saved) != _comparable(recipe):
                raise UserError(
                    f"--resume: {args.recipe} differs from the recipe {run_dir}/config.yaml was trained "
                    f"with; resume with `rlcreate train {run_dir} --resume`, or train a new --name"
                )
            recipe = saved
        if args.steps:
            trainer_for(recipe.trainer.algo).set_budget(recipe, args.steps)
        summary = train_run(recipe, run_dir, progress_bar=not args.quiet, resume=args.resume, overwrite=args.overwrite)
    if summary or process_is_main():
        print(f"run written to {run_dir}")
        _print_means(summary)
    return 0


def process_is_main() -> bool:
    """False in the helper processes of a multi-process launch (``torchrun`` sets ``RANK``)."""
    return process_rank()[0] == 0


def _comparable(recipe) -> dict:
    """The recipe without its training budget (a resumed run may be given a larger one)."""
    recipe = copy.deepcopy(recipe)
    trainer_for(recipe.trainer.algo).set_budget(recipe, 1)
    return recipe.to_dict()


def cmd_generate(args) -> int:
    from rlcreate.train.runner import read_run_recipe, restore

    run = Path(args.run)
    targets = _parse_targets(args.targets)
    read_run_recipe(run).with_targets(targets)  # a run folder (config.yaml), its target names, before any loading
    out = Path(args.out) if args.out else run / "generated"
    check_replaceable(out)  # never replaces a folder generate did not write (a run, someone's files)
    with ExitStack() as stack:
        stack.enter_context(run_lock(run, "generate"))
        if run.resolve() not in out.resolve().parents:  # an --out elsewhere gets its own lock
            stack.enter_context(run_lock(out, "generate"))
        refuse_links(run)
        check_replaceable(out)
        asm, model = restore(run)
        print(f"policy: {model.rlcreate_source}")
        with replace_folder(out) as tmp:  # older samples are replaced as a whole, never mixed
            summary = asm.domain.generate(model, asm, args.n, tmp, targets=targets, seed=args.seed)
            write_text(tmp / GENERATED_MARKER, "written by rlcreate generate; replaced as a whole by the next one\n")
    print(f"{args.n} samples written to {out}")
    _print_means(summary)
    return 0


def cmd_check(args) -> int:
    from rlcreate.assemble import check_recipe

    recipe = load_recipe(args.recipe)
    asm = check_recipe(recipe)
    print(
        f"{args.recipe}: OK — env {recipe.env_id} (domain {asm.domain.name}, built), rewards "
        f"{asm.reward_set.names}, targets {sorted(recipe.targets)}, trainer {recipe.trainer.algo} "
        f"({asm.trainer.name}) x {asm.trainer.budget(recipe)} steps"
    )
    return 0


def cmd_rewards(args) -> int:
    from rlcreate.rewards.registry import _REGISTRY, available_rewards

    for name in available_rewards():
        obj = _REGISTRY[name]
        doc = (getattr(obj, "__doc__", "") or "").strip().split("\n")[0]
        print(f"{name:22s} {getattr(obj, 'artifact', None) or 'any':6s} {doc}")
    return 0


def _print_means(summary: dict) -> None:
    means = summary.get("mean") or {}
    if means:
        print("means over samples: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(means.items())))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rlcreate", description="Steer pretrained generators with RL toward creative objectives."
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", required=True)

    for command, helptext, algo in (
        ("train", "train a recipe with its trainer (PPO / MaskablePPO / GRPO) into runs/<name>/", None),
        ("finetune", "alias of train with trainer.algo: grpo (TRL GRPO + LoRA on the LM itself)", "grpo"),
    ):
        t = sub.add_parser(command, help=helptext)
        t.add_argument("recipe", help="recipe YAML (or, with --resume, a run folder)")
        t.add_argument("--out", type=out_arg, default=None, help="folder of run folders (default: runs)")
        t.add_argument("--name", type=name_arg, default=None, help="run folder name (default: the recipe's name)")
        t.add_argument("--seed", type=int_arg(0, 2**31 - 1), default=None, help="override the recipe's seed")
        t.add_argument(
            "--steps",
            "--timesteps",
            dest="steps",
            type=int_arg(1, 10**10),
            default=None,
            help="override the training budget: trainer.total_timesteps (SB3, env steps) or "
            "finetune.steps (GRPO, optimiser steps)",
        )
        t.add_argument(
            "--resume",
            action="store_true",
            help="continue a killed or finished run from its latest checkpoint (weights, optimizer, reward state)",
        )
        t.add_argument("--overwrite", action="store_true", help="replace the run already in the run folder")
        t.add_argument("--quiet", action="store_true")
        t.set_defaults(fn=cmd_train, algo=algo)

    g = sub.add_parser("generate", help="write samples from a trained run")
    g.add_argument("run")
    g.add_argument("--n", type=int_arg(1, 100000), default=8)
    g.add_argument("--targets", default=None, help="fixed control targets, e.g. enemies=2,gaps=1")
    g.add_argument(
        "--out",
        type=out_arg,
        default=None,
        help="folder for the samples (default RUN/generated); an earlier generate's output is replaced",
    )
    g.add_argument("--seed", type=int_arg(0, MAX_SEED), default=None)
    g.set_defaults(fn=cmd_generate)

    c = sub.add_parser("check", help="validate a recipe")
    c.add_argument("recipe")
    c.set_defaults(fn=cmd_check)

    r = sub.add_parser("rewards", help="list registered reward modules")
    r.set_defaults(fn=cmd_rewards)

    from rlcreate.domains import builtin_domains

    for domain in builtin_domains():  # commands a domain adds (levels: demo, play, render)
        domain.register_commands(sub)
    from rlcreate.evaluation.cli import register as register_evaluation  # baseline, eval, report

    register_evaluation(sub)
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
    except OSError as exc:  # disk full, permissions, a name too long: one line, what was saved stays saved
        if args.debug:
            raise
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; files written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
