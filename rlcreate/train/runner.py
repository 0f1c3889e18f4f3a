"""Generic run orchestration: train a recipe into a run folder, restore a run, roll out a policy.

Nothing here knows a domain: the recipe's :class:`~rlcreate.assemble.Assembly` builds the
environment and its domain writes the samples. Every command that reads a run folder (generate,
eval, audit, report) restores it through :func:`restore`, so all of them see the same policy and the
same reward state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rlcreate.assemble import Assembly, assemble
from rlcreate.errors import UserError
from rlcreate.recipe import Recipe, load_recipe

__all__ = ["RunFolderError", "train_run", "restore", "has_policy", "read_run_recipe", "rollout"]


class RunFolderError(UserError):
    """A path that is not a (finished) run folder; the message says what a run folder holds."""


def train_run(recipe: Recipe, run_dir: Path, progress_bar: bool = True, asm: Assembly | None = None,
              resume: bool = False, overwrite: bool = False) -> dict:
    """Train the recipe's policy into ``run_dir`` and write its samples; returns the samples summary.
    Everything that can be wrong with the recipe fails before ``run_dir`` is written. A folder that
    holds a run is refused unless ``resume`` (continue from its latest checkpoint) or ``overwrite``."""
    from stable_baselines3.common.vec_env import VecMonitor

    from rlcreate.train.sb3 import check_run_dir, train_recipe

    check_run_dir(Path(run_dir), resume, overwrite)
    asm = asm or assemble(recipe)
    asm.domain.check(recipe)
    venv = VecMonitor(asm.make_env())
    model = train_recipe(recipe, venv, Path(run_dir), progress_bar, resume=resume,
                         overwrite=overwrite)
    return asm.domain.finish_training(model, asm, Path(run_dir))


def read_run_recipe(run: str | Path) -> Recipe:
    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise RunFolderError(f"{str(run)!r} is not a run folder (no config.yaml); pass a folder written by "
                             "`rlcreate train` or `rlcreate baseline`, e.g. runs/mario-latent")
    return load_recipe(run / "config.yaml")


def has_policy(run: str | Path) -> bool:
    """Whether the run folder holds a policy (its final ``model/`` or a complete checkpoint)."""
    from rlcreate.train.checkpoint import latest_checkpoint

    return latest_checkpoint(Path(run)) is not None


def restore(run: str | Path, checkpoint: Path | None = None, asm: Assembly | None = None) -> tuple[Assembly, Any]:
    """A run's assembly with the saved reward state loaded, and its policy: the final ``model/``,
    else the newest checkpoint of an interrupted run, or the given ``checkpoint`` folder. The
    model's ``rlcreate_source`` says which one was used."""
    from rlcreate.train.checkpoint import latest_checkpoint
    from rlcreate.train.sb3 import load_model, load_reward_state

    run = Path(run)
    asm = asm or assemble(read_run_recipe(run))
    if checkpoint is None:
        found = latest_checkpoint(run)
        if found is None:
            raise RunFolderError(f"{str(run)!r} has no policy (no model/ and no complete checkpoints/step_*); "
                                 "train it with `rlcreate train` (--resume continues an interrupted run)")
        checkpoint, label = found
    else:
        label = f"checkpoint {Path(checkpoint).name}"
    model = load_model(checkpoint, asm.recipe.trainer.algo)
    load_reward_state(checkpoint, asm.reward_set)
    model.rlcreate_source = label
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
        for i in np.flatnonzero(done):
            info = dict(infos[i])
            info["episode_return"] = float(ret[i])
            info["term_means"] = {k: sums[i][k] / counts[i][k] for k in sums[i]}
            finished[i].append(info)
            ret[i], sums[i], counts[i] = 0.0, {}, {}
    return [f[r] for r in range(per_row) for f in finished if len(f) > r][:n]


def _predictor(model: Any, venv: Any, deterministic: bool):
    from sb3_contrib import MaskablePPO

    if isinstance(model, MaskablePPO) and hasattr(venv, "action_masks"):
        return lambda obs: model.predict(obs, deterministic=deterministic, action_masks=venv.action_masks())[0]
    return lambda obs: model.predict(obs, deterministic=deterministic)[0]
