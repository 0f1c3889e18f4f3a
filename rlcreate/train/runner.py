"""Generic run orchestration: train a recipe into a run folder, restore a run, roll out a policy.

Nothing here knows a domain or a trainer: the recipe's :class:`~rlcreate.assemble.Assembly` names
both (through the registries), its trainer trains and loads, its domain writes the samples. Every
command that reads a run folder (generate, eval, audit, report) restores it through :func:`restore`,
so all of them see the same model and the same reward state.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.assemble import Assembly, assemble, check_can_finish
from rlcreate.errors import UserError
from rlcreate.recipe import Recipe, load_recipe
from rlcreate.train.checkpoint import RUN_OUTPUTS, clear_run_outputs, latest_checkpoint, load_reward_state

__all__ = [
    "RunFolderError",
    "train_run",
    "restore",
    "has_policy",
    "read_run_recipe",
    "rollout",
    "check_run_dir",
    "open_run_dir",
]


class RunFolderError(UserError):
    """A path that is not a (finished) run folder; the message says what a run folder holds."""


def train_run(
    recipe: Recipe,
    run_dir: Path,
    progress_bar: bool = True,
    asm: Assembly | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """Train the recipe with its trainer into ``run_dir`` and write its samples through its domain;
    returns the samples summary. Everything that can be wrong with the recipe fails before
    ``run_dir`` is written. A folder that holds a run is refused unless ``resume`` (continue from
    its latest checkpoint) or ``overwrite``."""
    check_run_dir(Path(run_dir), resume, overwrite)
    asm = asm or assemble(recipe)
    asm.domain.check(recipe)
    check_can_finish(asm)
    model = asm.trainer.train(asm, Path(run_dir), resume=resume, overwrite=overwrite, progress_bar=progress_bar)
    if model is None:  # a helper process of a multi-process run: the main process writes the samples
        return {}
    return asm.domain.finish_training(model, asm, Path(run_dir))


def check_run_dir(run_dir: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse to train into a folder that already holds a run unless ``resume`` or ``overwrite``."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; pick one")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{str(run_dir)!r} exists and is not a folder; pick another --out / --name")
    if resume and not (run_dir / "config.yaml").is_file():
        raise UserError(f"--resume: {str(run_dir)!r} holds no run (no config.yaml); train it first without --resume")
    if not resume and not overwrite and run_dir.is_dir() and any((run_dir / n).exists() for n in RUN_OUTPUTS):
        raise UserError(
            f"{str(run_dir)!r} already holds a run; pass --resume to continue it from its latest "
            "checkpoint, --overwrite to replace it, or another --name"
        )


def open_run_dir(recipe: Recipe, run_dir: Path, overwrite: bool = False) -> None:
    """Start writing ``run_dir`` once everything is built: with ``overwrite`` remove an earlier run's
    outputs, remove half-written checkpoints of a killed run, write ``config.yaml`` (on resume it
    records a changed budget)."""
    from rlcreate.runbox import refuse_links, remove

    run_dir = Path(run_dir)
    if run_dir.is_dir():
        refuse_links(run_dir)  # a run folder is a closed box: nothing is written or deleted through a link
    if overwrite:
        clear_run_outputs(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(run_dir.glob(".tmp-*")) + list((run_dir / "checkpoints").glob(".tmp-*")):
        remove(stale)  # half-written checkpoints of a killed run (links removed, never followed)
    recipe.dump(run_dir / "config.yaml")


def read_run_recipe(run: str | Path) -> Recipe:
    from rlcreate.runbox import refuse_links

    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise RunFolderError(
            f"{str(run)!r} is not a run folder (no config.yaml); pass a folder written by "
            "`rlcreate train` or `rlcreate baseline`, e.g. runs/mario-latent"
        )
    refuse_links(run)  # a run folder is a closed box: nothing in it is read through a link
    return load_recipe(run / "config.yaml")


def has_policy(run: str | Path) -> bool:
    """Whether the run folder holds a trained model (its final ``model/`` or a complete checkpoint)."""
    return latest_checkpoint(Path(run)) is not None


def restore(run: str | Path, checkpoint: Path | None = None, asm: Assembly | None = None) -> tuple[Assembly, Any]:
    """A run's assembly with the saved reward state loaded, and its trained model (loaded by the
    run's trainer): the final ``model/``, else the newest checkpoint of an interrupted run, or the
    given ``checkpoint`` folder. The model's ``rlcreate_source`` says which one was used."""
    run = Path(run)
    asm = asm or assemble(read_run_recipe(run))
    if checkpoint is None:
        found = latest_checkpoint(run, asm.trainer.checkpoint_files())
        if found is None:
            raise RunFolderError(
                f"{str(run)!r} has no policy (no model/ and no complete checkpoints/step_*); "
                "train it with `rlcreate train` (--resume continues an interrupted run)"
            )
        checkpoint, label = found
    else:
        label = f"checkpoint {Path(checkpoint).name}"
    model = asm.trainer.load(asm, Path(checkpoint))
    load_reward_state(checkpoint, asm.reward_set)
    model.rlcreate_source = label  # type: ignore[union-attr]  # SB3 models get the line as a new attribute
    return asm, model


def rollout(model: Any, venv: Any, n: int, deterministic: bool = True) -> list[dict]:
    """``n`` finished episodes of ``model`` (an SB3 model, or any ``obs -> actions`` callable) on
    ``venv``: each episode's final ``info`` plus ``episode_return`` and ``term_means`` (mean of every
    reward term over the episode's scored steps). Episodes are taken row by row in order, so rows
    whose episodes end sooner (short texts) are not over-represented. Masks are passed to policies
    that take them (MaskablePPO)."""
    choose = model if not hasattr(model, "predict") else _predictor(model, venv, deterministic)
    rows = venv.num_envs
    per_row = -(-n // rows)
    finished: list[list[dict]] = [[] for _ in range(rows)]
    ret = np.zeros(rows)
    sums: list[dict[str, float]] = [{} for _ in range(rows)]
    counts: list[dict[str, int]] = [{} for _ in range(rows)]
    obs = venv.reset()
    while min(len(f) for f in finished) < per_row:
        obs, rew, done, infos = venv.step(choose(obs))
        ret += rew
        for i, info in enumerate(infos):
            for k, v in (info.get("rewards") or {}).items():
                if v == v:
                    sums[i][k] = sums[i].get(k, 0.0) + v
                    counts[i][k] = counts[i].get(k, 0) + 1
        for row in np.flatnonzero(done):
            info = dict(infos[row])
            info["episode_return"] = float(ret[row])
            info["term_means"] = {k: sums[row][k] / counts[row][k] for k in sums[row]}
            finished[row].append(info)
            ret[row], sums[row], counts[row] = 0.0, {}, {}
    return [f[r] for r in range(per_row) for f in finished if len(f) > r][:n]


def _predictor(model: Any, venv: Any, deterministic: bool):
    takes_masks = "action_masks" in inspect.signature(model.predict).parameters  # MaskablePPO
    if takes_masks and hasattr(venv, "action_masks"):
        return lambda obs: model.predict(obs, deterministic=deterministic, action_masks=venv.action_masks())[0]
    return lambda obs: model.predict(obs, deterministic=deterministic)[0]
