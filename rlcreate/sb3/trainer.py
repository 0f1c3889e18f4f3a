"""Thin SB3 adapter: train a recipe's environment with PPO / MaskablePPO into a run folder.

The run folder is the layout every trainer writes (:mod:`rlcreate.trainers`); here
``checkpoints/step_<N>/`` count environment steps and every checkpoint and ``model/`` is an SB3
policy folder (:mod:`rlcreate.sb3.io`: policy.json + safetensors weights and optimizer,
reward_state.npz, trainer_state.json + rng.safetensors). TensorBoard gets rollout/*, train/* and
rewards/<term> for every reward term.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from rlcreate.errors import UserError
from rlcreate.recipe import Recipe, RecipeError
from rlcreate.sb3.algo import algo_class, make_algo
from rlcreate.sb3.io import POLICY_FILES, load_policy_folder, restore_trainer_state, save_checkpoint
from rlcreate.sb3.kl_control import kl_controller_for, validate_kl_control
from rlcreate.train.checkpoint import StateFormatError, latest_checkpoint, load_reward_state, load_tree
from rlcreate.train.runner import check_run_dir, open_run_dir
from rlcreate.validate import check_device

__all__ = [
    "RewardTermsLogger",
    "CheckpointWithRewardState",
    "train_recipe",
    "load_policy",
    "export_sb3_zip",
    "load_model",
    "load_reward_state_file",
    "trainer_extra",
    "training_callbacks",
    "DEFAULT_CHECKPOINT_MINUTES",
]

#: Wall-time checkpoint interval when the recipe sets no ``trainer.checkpoint_every``.
DEFAULT_CHECKPOINT_MINUTES = 10.0


class RewardTermsLogger(BaseCallback):
    """Logs the mean of every reward term (``info["rewards"]``) as ``rewards/<name>``, the fraction
    of actions the env replaced because they were outside its mask (``info["action_replaced"]``) as
    ``rollout/actions_replaced``, latent envs' action statistics (``info["latent"]``: share of
    saturated actions, latent norm) as ``latent/<name>``, and feeds training progress to the
    environment (weight schedules)."""

    def __init__(self, total_timesteps: int):
        super().__init__()
        self.total = max(int(total_timesteps), 1)
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._replaced = [0, 0]  # actions replaced, actions taken (envs that report it)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "action_replaced" in info:
                self._replaced[0] += bool(info["action_replaced"])
                self._replaced[1] += 1
            for k, v in (info.get("rewards") or {}).items():
                if v == v:  # skip NaN (term not applicable)
                    self._sums[k] = self._sums.get(k, 0.0) + v
                    self._counts[k] = self._counts.get(k, 0) + 1
            for k, v in (info.get("latent") or {}).items():  # latent envs: saturated share, latent norm
                key = f"latent:{k}"
                self._sums[key] = self._sums.get(key, 0.0) + v
                self._counts[key] = self._counts.get(key, 0) + 1
        self.training_env.env_method("set_progress", min(self.num_timesteps / self.total, 1.0))
        return True

    def _on_rollout_end(self) -> None:
        for k, s in self._sums.items():
            tag = f"latent/{k[7:]}" if k.startswith("latent:") else f"rewards/{k}"
            self.logger.record(tag, s / max(self._counts[k], 1))
        if self._replaced[1]:
            self.logger.record("rollout/actions_replaced", self._replaced[0] / self._replaced[1])
        self._sums.clear()
        self._counts.clear()
        self._replaced = [0, 0]


class CheckpointWithRewardState(BaseCallback):
    """Writes a resumable checkpoint (:func:`rlcreate.train.checkpoint.save_checkpoint`: policy,
    optimizer, reward-set state, RNG streams) into ``folder/step_<N>/`` every ``every`` env steps
    and every ``minutes`` of wall time, at the first rollout boundary after the interval (so a
    resumed run starts a fresh rollout exactly where the saved one would have)."""

    def __init__(
        self,
        folder: Path,
        every: int | None,
        reward_set: Any,
        hyper: dict,
        algo: str,
        minutes: float | None = None,
        start_steps: int = 0,
    ):
        super().__init__()
        self.folder, self.reward_set, self.hyper, self.algo = Path(folder), reward_set, hyper, algo
        self.every = max(int(every), 1) if every else None
        self.seconds = float(minutes) * 60 if minutes else None
        self._next = (start_steps // self.every + 1) * self.every if self.every else None
        self._last = time.monotonic()

    def _due(self) -> bool:
        if self._next is not None and self.num_timesteps >= self._next:
            return True
        return self.seconds is not None and time.monotonic() - self._last >= self.seconds

    def _on_rollout_start(self) -> None:
        if self.num_timesteps > 0 and self._due():
            self.save()

    def save(self) -> None:
        save_checkpoint(
            self.folder / f"step_{self.num_timesteps:09d}",
            self.model,
            self.reward_set,
            self.hyper,
            self.algo,
            venv=self.training_env,
            extra=trainer_extra(self.model),
        )
        if self.every:
            self._next = (self.num_timesteps // self.every + 1) * self.every
        self._last = time.monotonic()

    def _on_step(self) -> bool:
        return True


def _checkpoint_schedule(recipe: Recipe, total: int) -> tuple[int | None, float | None]:
    every = recipe.trainer.get("checkpoint_every")
    if every:
        return every.get("steps"), every.get("minutes")
    n = recipe.trainer["checkpoints"]
    if not n:  # checkpoints: 0 asks for none (such a run cannot be resumed after a kill)
        return None, None
    return max(total // n, 1), DEFAULT_CHECKPOINT_MINUTES


def train_recipe(
    recipe: Recipe,
    venv,
    run_dir: Path,
    progress_bar: bool = True,
    total_timesteps: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
):
    """Train PPO/MaskablePPO on ``venv``; writes config, TensorBoard logs, checkpoints, ``model/``.
    The reward set whose state the checkpoints save is the one the environment holds (one owner).

    The algorithm is built (hyper-parameters validated) before ``run_dir`` is touched. A folder
    that already holds a run is refused unless ``resume`` (continue from its latest checkpoint:
    weights, optimizer, reward state, RNG streams) or ``overwrite`` (remove its earlier outputs)."""
    run_dir = Path(run_dir)
    reward_set = venv.get_attr("reward")[0]
    check_run_dir(run_dir, resume, overwrite)
    validate_kl_control(recipe.trainer)
    check_device("trainer.device", recipe.trainer["device"], error=RecipeError)  # exists on this machine
    total = int(total_timesteps or recipe.trainer["total_timesteps"])
    hyper, algo = dict(recipe.trainer["hyper"]), recipe.trainer["algo"]
    source = latest_checkpoint(run_dir, POLICY_FILES) if resume else None
    if source is not None:
        folder, label = source
        model = load_policy_folder(
            folder, venv=venv, optimizer=True, tb_dir=run_dir / "tb", seed=recipe.seed, device=recipe.trainer["device"]
        )
        load_reward_state(folder, reward_set)
        meta = restore_trainer_state(folder, model, venv)
        if "ent_coef" in meta:  # the KL controller's current beta (rlcreate.sb3.kl_control)
            model.ent_coef = float(meta["ent_coef"])
        print(f"resuming from the {label}", file=sys.stderr)
    else:
        model = make_algo(recipe, venv, run_dir / "tb")
        if resume:
            print(f"{run_dir}: no complete checkpoint to resume from; starting at step 0", file=sys.stderr)
    open_run_dir(recipe, run_dir, overwrite=overwrite and source is None)  # validated by now
    done = int(model.num_timesteps)
    every, minutes = _checkpoint_schedule(recipe, total)
    callbacks = training_callbacks(recipe, total)
    if every or minutes:
        callbacks.append(
            CheckpointWithRewardState(
                run_dir / "checkpoints", every, reward_set, hyper, algo, minutes=minutes, start_steps=done
            )
        )
    if done < total:
        model.learn(
            total_timesteps=total - done,
            callback=CallbackList(callbacks),
            tb_log_name="train",
            progress_bar=progress_bar,
            reset_num_timesteps=source is None,
        )
    save_checkpoint(run_dir / "model", model, reward_set, hyper, algo, venv=venv, extra=trainer_extra(model))
    return model


def training_callbacks(recipe: Recipe, total: int) -> list[BaseCallback]:
    """What every training run logs: the reward terms, and for ``lm_prior`` + ``kl_to_prior`` the KL
    to the reference (adapting beta when the recipe sets ``kl_target``)."""
    kl = kl_controller_for(recipe.trainer)
    return [RewardTermsLogger(total), *([kl] if kl is not None else [])]


def trainer_extra(model) -> dict:
    """Trainer state a checkpoint keeps besides counters and RNGs: the current ``ent_coef`` (the KL
    coefficient beta, which :class:`rlcreate.sb3.kl_control.KLController` changes during training)."""
    return {"ent_coef": float(model.ent_coef)}


def load_policy(run_dir: Path, algo: str | None = None, venv=None):
    """The policy of a run folder: its final ``model/``, or the newest checkpoint of an interrupted
    run. Rebuilt from ``policy.json`` + safetensors weights (nothing is unpickled). The returned
    model's ``rlcreate_source`` says which checkpoint was used (``rlcreate_folder``: its folder)."""
    found = latest_checkpoint(Path(run_dir), POLICY_FILES)
    if found is None:
        legacy = (
            " (it has an SB3 model.zip from an older rlcreate: those unpickle on load and are not read)"
            if (Path(run_dir) / "model.zip").exists()
            else ""
        )
        raise UserError(
            f"{str(run_dir)!r} has no trained policy (no model/ and no complete checkpoints/step_*)"
            f"{legacy}; train it with `rlcreate train`, or resume an interrupted run with --resume"
        )
    folder, label = found
    model = load_policy_folder(folder, venv=venv)
    model.rlcreate_source, model.rlcreate_folder = label, folder
    return model


def load_model(folder: Path, algo: str | None = None, venv=None):
    """The policy saved in a checkpoint folder (``RUN/model/`` or ``RUN/checkpoints/step_<N>/``),
    rebuilt from ``policy.json`` + safetensors. ``algo`` is checked against the description."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(
            f"{str(folder)!r} is not a checkpoint folder (policy.json + policy.safetensors); "
            "rlcreate does not read SB3 .zip files, which unpickle on load"
        )
    model = load_policy_folder(folder, venv=venv)
    if algo is not None and algo_class(algo) is not type(model):
        raise StateFormatError(f"{folder}: holds a {type(model).__name__} policy but the run's recipe says {algo!r}")
    return model


def load_reward_state_file(path: Path, reward_set) -> bool:
    """Load a saved reward-set state (a checkpoint folder or its ``reward_state.npz``) into
    ``reward_set``; False when there is none. Read with ``allow_pickle=False``."""
    path = Path(path)
    if path.is_file():
        reward_set.load_state_dict(load_tree(path))
        return True
    return load_reward_state(path, reward_set)


def export_sb3_zip(run_dir: Path, path: Path) -> Path:
    """Explicit export of a run's policy as SB3's own ``.zip`` (for plain ``PPO.load``).

    SB3 zips hold pickled objects and run code when loaded: share them only with people who trust
    you, and never load one you did not make. rlcreate itself never reads them."""
    model = load_policy(run_dir)
    model.save(Path(path))
    return Path(path) if str(path).endswith(".zip") else Path(str(path) + ".zip")
