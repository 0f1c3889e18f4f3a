"""Thin SB3 adapter: train a recipe's environment with PPO / MaskablePPO into a run folder.

Run folder layout (``runs/<name>/``)::

    config.yaml          the resolved recipe (reproduces the run)
    tb/                  TensorBoard logs: rollout/*, train/*, rewards/<term> for every reward term
    checkpoints/step_<N>/  resumable checkpoints (see rlcreate.train.checkpoint), written atomically
    model/               the final policy: policy.json + policy.safetensors, optimizer, reward_state.npz
    samples/             generated artifacts (txt + png for levels) and samples/metrics.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from rlcreate.errors import UserError
from rlcreate.recipe import Recipe, RecipeError

__all__ = ["RewardTermsLogger", "CheckpointWithRewardState", "train_recipe", "load_policy", "make_algo",
           "build_algo", "algo_class", "validate_hyper", "check_run_dir", "export_sb3_zip", "load_model",
           "load_reward_state", "trainer_extra", "training_callbacks",
           "DEFAULT_CHECKPOINT_MINUTES"]

#: Wall-time checkpoint interval when the recipe sets no ``trainer.checkpoint_every``.
DEFAULT_CHECKPOINT_MINUTES = 10.0


class RewardTermsLogger(BaseCallback):
    """Logs the mean of every reward term (``info["rewards"]``) as ``rewards/<name>``, the fraction
    of actions the env replaced because they were outside its mask (``info["action_replaced"]``) as
    ``rollout/actions_replaced``, and feeds training progress to the environment (weight schedules)."""

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
        self.training_env.env_method("set_progress", min(self.num_timesteps / self.total, 1.0))
        return True

    def _on_rollout_end(self) -> None:
        for k, s in self._sums.items():
            self.logger.record(f"rewards/{k}", s / max(self._counts[k], 1))
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

    def __init__(self, folder: Path, every: int | None, reward_set: Any, hyper: dict, algo: str,
                 minutes: float | None = None, start_steps: int = 0):
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
        from rlcreate.train.checkpoint import save_checkpoint

        save_checkpoint(self.folder / f"step_{self.num_timesteps:09d}", self.model, self.reward_set,
                        self.hyper, self.algo, venv=self.training_env, extra=trainer_extra(self.model))
        if self.every:
            self._next = (self.num_timesteps // self.every + 1) * self.every
        self._last = time.monotonic()

    def _on_step(self) -> bool:
        return True


_ALGO_FIXED = ("self", "policy", "env", "seed", "verbose", "device", "tensorboard_log", "_init_setup_model")
# Hyper-parameters that are numbers: (low, high, low is exclusive); None = unbounded.
_HYPER_RANGES = {"learning_rate": (0.0, None, True), "gamma": (0.0, 1.0, False), "gae_lambda": (0.0, 1.0, False),
                 "clip_range": (0.0, None, True), "ent_coef": (0.0, None, False), "vf_coef": (0.0, None, False),
                 "max_grad_norm": (0.0, None, True)}
# Integers: (low, high). The highs are far beyond any useful run; they stop a typo (2**40 steps per
# rollout, 10**12 epochs) from allocating petabytes or never finishing.
_HYPER_INTS = {"n_steps": (1, 2**20), "batch_size": (2, 2**24), "n_epochs": (1, 10_000),
               "stats_window_size": (1, 10**6), "sde_sample_freq": (-1, 10**6)}
#: Largest rollout buffer a recipe may ask for (n_steps x n_envs x observation size, float32).
MAX_ROLLOUT_BYTES = 4 * 2**30
_POLICY_KWARGS_OK = ("net_arch", "ortho_init", "log_std_init", "full_std", "use_expln", "squash_output",
                     "share_features_extractor", "normalize_images", "optimizer_kwargs", "prior_start",
                     "kl_to_prior", "offer_features", "offer_guidance")


def algo_class(algo: str):
    """The SB3 class of a recipe's ``trainer.algo``."""
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO
    raise RecipeError(f"trainer.algo = {algo!r}: use ppo or maskable_ppo")


def validate_hyper(algo: str, hyper: dict) -> dict:
    """Check ``trainer.hyper`` against the algorithm's signature and value ranges, before any work.

    Names must be arguments of the algorithm (``policy`` aside: ``MlpPolicy`` or ``lm_prior``);
    numbers must be finite and in range; ``policy_kwargs`` may hold only plain-data options (no
    classes: a recipe cannot name code here). Returns ``hyper`` unchanged; raises
    :class:`RecipeError` naming ``trainer.hyper.<name>``, the value and the rule."""
    import difflib
    import inspect
    import math

    from rlcreate.validate import check_int, check_number

    if not isinstance(hyper, dict):
        raise RecipeError(f"trainer.hyper = {hyper!r}: write a mapping, e.g. {{learning_rate: 0.0003}}")
    Algo = algo_class(algo)
    known = [n for n in inspect.signature(Algo.__init__).parameters if n not in _ALGO_FIXED]
    for key, value in hyper.items():
        field = f"trainer.hyper.{key}"
        if key == "policy":
            from rlcreate.train.policies import POLICIES

            names = ["MlpPolicy", *POLICIES]
            if value not in names:
                close = difflib.get_close_matches(str(value), names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise RecipeError(f"{field} = {value!r}: not a policy.{hint} Use one of {names}")
            continue
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RecipeError(f"trainer.hyper: unknown key {key!r} for {Algo.__name__}.{hint} Known: {sorted(known)}")
        if key in ("rollout_buffer_class", "rollout_buffer_kwargs"):
            raise RecipeError(f"{field}: not settable from a recipe (it names code); remove it")
        if key in _HYPER_RANGES:
            low, high, open_ = _HYPER_RANGES[key]
            check_number(field, value, low, high, low_open=open_, error=RecipeError)
        elif key in _HYPER_INTS:
            check_int(field, value, *_HYPER_INTS[key], error=RecipeError)
        elif key in ("normalize_advantage", "use_sde"):
            if not isinstance(value, bool):
                raise RecipeError(f"{field} = {value!r}: must be true or false")
        elif key in ("clip_range_vf", "target_kl"):
            if value is not None:
                check_number(field, value, 0.0, None, low_open=True, error=RecipeError)
        elif key == "policy_kwargs":
            if not isinstance(value, dict):
                raise RecipeError(f"{field} = {value!r}: write a mapping, e.g. {{net_arch: [64, 64]}}")
            for k, v in value.items():
                if k not in _POLICY_KWARGS_OK:
                    close = difflib.get_close_matches(str(k), _POLICY_KWARGS_OK, n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise RecipeError(f"{field}: unknown or unsupported key {k!r}.{hint} Supported: "
                                      f"{list(_POLICY_KWARGS_OK)}")
            arch = value.get("net_arch")
            if arch is not None:
                layers = list(arch.values()) if isinstance(arch, dict) else [arch]
                if not all(isinstance(l, list) and all(isinstance(u, int) and not isinstance(u, bool)
                                                       and 1 <= u <= 65536 for u in l) for l in layers):
                    raise RecipeError(f"{field}.net_arch = {arch!r}: write a list of layer sizes (integers "
                                      "1..65536), e.g. [64, 64], or {pi: [64], vf: [64]}")
            if "log_std_init" in value:
                check_number(f"{field}.log_std_init", value["log_std_init"], -20.0, 20.0, error=RecipeError)
            if "optimizer_kwargs" in value and not isinstance(value["optimizer_kwargs"], dict):
                raise RecipeError(f"{field}.optimizer_kwargs = {value['optimizer_kwargs']!r}: write a mapping")
    if algo == "ppo" and hyper.get("normalize_advantage", True) and hyper.get("batch_size", 64) < 2:
        raise RecipeError("trainer.hyper.batch_size: must be >= 2 with normalize_advantage")
    for key in ("learning_rate", "clip_range"):
        v = hyper.get(key)
        if isinstance(v, float) and not math.isfinite(v):
            raise RecipeError(f"trainer.hyper.{key} = {v!r}: must be finite")
    return hyper


def _policy_and_kwargs(algo: str, hyper: dict) -> tuple[Any, dict]:
    hyper = dict(hyper)
    policy = hyper.pop("policy", "MlpPolicy")
    if policy == "lm_prior":  # our policy names -> classes (rlcreate.train.policies)
        from rlcreate.train.policies import resolve_policy

        if algo != "maskable_ppo":
            raise RecipeError(f"trainer.hyper.policy = 'lm_prior' with trainer.algo = {algo!r}: "
                              "the lm_prior policy is a MaskablePPO policy; set trainer.algo: maskable_ppo")
        policy = resolve_policy(policy)
    return policy, hyper


def build_algo(algo: str, hyper: dict, venv=None, spaces: tuple | None = None, device: str = "cpu",
               tb_dir: Path | None = None, seed: int | None = None):
    """``PPO`` / ``MaskablePPO`` from plain data: on ``venv`` (to train), or without an environment
    from ``spaces = (observation_space, action_space)`` (to predict from a saved policy)."""
    validate_hyper(algo, hyper)
    Algo = algo_class(algo)
    policy, kwargs = _policy_and_kwargs(algo, hyper)
    if venv is not None:
        check_rollout_size(hyper, venv.num_envs, venv.observation_space)
    try:
        if venv is not None:
            return Algo(policy, venv, seed=seed, verbose=0, device=device,
                        tensorboard_log=str(tb_dir) if tb_dir else None, **kwargs)
        model = Algo(policy, None, seed=seed, verbose=0, device=device, _init_setup_model=False, **kwargs)
        model.observation_space, model.action_space = spaces
        model.n_envs = 1
        model._setup_model()
        return model
    except (TypeError, ValueError, AssertionError) as exc:
        raise RecipeError(f"trainer.hyper = {hyper!r}: {exc}; see the {Algo.__name__} documentation "
                          "for valid arguments") from None


def check_rollout_size(hyper: dict, n_envs: int, observation_space) -> None:
    """Refuse a rollout buffer over :data:`MAX_ROLLOUT_BYTES` (n_steps x n_envs observations)."""
    n_steps = int(hyper.get("n_steps", 2048))
    size = n_steps * int(n_envs) * (int(np.prod(observation_space.shape or (1,))) + 8) * 4
    if size > MAX_ROLLOUT_BYTES:
        raise RecipeError(f"trainer.hyper.n_steps = {n_steps} with trainer.n_envs = {n_envs} needs a "
                          f"{size / 2**30:.1f} GiB rollout buffer (at most {MAX_ROLLOUT_BYTES // 2**30} GiB); "
                          "lower n_steps or n_envs")


def make_algo(recipe: Recipe, venv, tb_dir: Path | None):
    """The recipe's algorithm on ``venv`` (hyper-parameters validated first, the rollout buffer
    sized for ``trainer.n_envs`` even when ``venv`` is the one-row env of ``check``)."""
    from rlcreate.train.kl_control import validate_kl_control

    validate_hyper(recipe.trainer["algo"], dict(recipe.trainer["hyper"]))
    validate_kl_control(recipe.trainer)
    check_rollout_size(dict(recipe.trainer["hyper"]), recipe.trainer["n_envs"], venv.observation_space)
    return build_algo(recipe.trainer["algo"], dict(recipe.trainer["hyper"]), venv=venv,
                      device=recipe.trainer["device"], tb_dir=tb_dir, seed=recipe.seed)


def _checkpoint_schedule(recipe: Recipe, total: int) -> tuple[int | None, float | None]:
    every = recipe.trainer.get("checkpoint_every")
    if every:
        return every.get("steps"), every.get("minutes")
    n = recipe.trainer["checkpoints"]
    if not n:  # checkpoints: 0 asks for none (such a run cannot be resumed after a kill)
        return None, None
    return max(total // n, 1), DEFAULT_CHECKPOINT_MINUTES


def train_recipe(recipe: Recipe, venv, run_dir: Path, progress_bar: bool = True,
                 total_timesteps: int | None = None, resume: bool = False, overwrite: bool = False):
    """Train PPO/MaskablePPO on ``venv``; writes config, TensorBoard logs, checkpoints, ``model/``.
    The reward set whose state the checkpoints save is the one the environment holds (one owner).

    The algorithm is built (hyper-parameters validated) before ``run_dir`` is touched. A folder
    that already holds a run is refused unless ``resume`` (continue from its latest checkpoint:
    weights, optimizer, reward state, RNG streams) or ``overwrite`` (remove its earlier outputs)."""
    import shutil

    from rlcreate.train.checkpoint import (clear_run_outputs, latest_checkpoint, load_policy_folder,
                                           load_reward_state, restore_trainer_state, save_checkpoint)
    from rlcreate.train.kl_control import validate_kl_control

    run_dir = Path(run_dir)
    reward_set = venv.get_attr("reward")[0]
    check_run_dir(run_dir, resume, overwrite)
    validate_kl_control(recipe.trainer)
    total = int(total_timesteps or recipe.trainer["total_timesteps"])
    hyper, algo = dict(recipe.trainer["hyper"]), recipe.trainer["algo"]
    source = latest_checkpoint(run_dir) if resume else None
    if source is not None:
        folder, label = source
        model = load_policy_folder(folder, venv=venv, optimizer=True, tb_dir=run_dir / "tb", seed=recipe.seed,
                                   device=recipe.trainer["device"])
        load_reward_state(folder, reward_set)
        meta = restore_trainer_state(folder, model, venv)
        if "ent_coef" in meta:  # the KL controller's current beta (rlcreate.train.kl_control)
            model.ent_coef = float(meta["ent_coef"])
        print(f"resuming from the {label}", file=sys.stderr)
    else:
        model = make_algo(recipe, venv, run_dir / "tb")
        if resume:
            print(f"{run_dir}: no complete checkpoint to resume from; starting at step 0", file=sys.stderr)
        if overwrite:
            clear_run_outputs(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(run_dir.glob(".tmp-*")) + list((run_dir / "checkpoints").glob(".tmp-*")):
        shutil.rmtree(stale, ignore_errors=True)  # half-written checkpoints of a killed run
    recipe.dump(run_dir / "config.yaml")  # validated by now; on resume it records a changed --timesteps
    done = int(model.num_timesteps)
    every, minutes = _checkpoint_schedule(recipe, total)
    callbacks = training_callbacks(recipe, total)
    if every or minutes:
        callbacks.append(CheckpointWithRewardState(run_dir / "checkpoints", every, reward_set, hyper, algo,
                                                   minutes=minutes, start_steps=done))
    if done < total:
        model.learn(total_timesteps=total - done, callback=CallbackList(callbacks), tb_log_name="train",
                    progress_bar=progress_bar, reset_num_timesteps=source is None)
    save_checkpoint(run_dir / "model", model, reward_set, hyper, algo, venv=venv, extra=trainer_extra(model))
    return model


def training_callbacks(recipe: Recipe, total: int) -> list[BaseCallback]:
    """What every training run logs: the reward terms, and for ``lm_prior`` + ``kl_to_prior`` the KL
    to the reference (adapting beta when the recipe sets ``kl_target``)."""
    from rlcreate.train.kl_control import kl_controller_for

    kl = kl_controller_for(recipe.trainer)
    return [RewardTermsLogger(total), *([kl] if kl is not None else [])]


def trainer_extra(model) -> dict:
    """Trainer state a checkpoint keeps besides counters and RNGs: the current ``ent_coef`` (the KL
    coefficient beta, which :class:`rlcreate.train.kl_control.KLController` changes during training)."""
    return {"ent_coef": float(model.ent_coef)}


def check_run_dir(run_dir: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse to train into a folder that already holds a run unless ``resume`` or ``overwrite``."""
    from rlcreate.train.checkpoint import RUN_OUTPUTS

    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; pick one")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{str(run_dir)!r} exists and is not a folder; pick another --out / --name")
    if resume and not (run_dir / "config.yaml").is_file():
        raise UserError(f"--resume: {str(run_dir)!r} holds no run (no config.yaml); train it first without --resume")
    if not resume and not overwrite and run_dir.is_dir() and any((run_dir / n).exists() for n in RUN_OUTPUTS):
        raise UserError(f"{str(run_dir)!r} already holds a run; pass --resume to continue it from its latest "
                        "checkpoint, --overwrite to replace it, or another --name")


def load_policy(run_dir: Path, algo: str | None = None, venv=None):
    """The policy of a run folder: its final ``model/``, or the newest checkpoint of an interrupted
    run. Rebuilt from ``policy.json`` + safetensors weights (nothing is unpickled). The returned
    model's ``rlcreate_source`` says which checkpoint was used (``rlcreate_folder``: its folder)."""
    from rlcreate.train.checkpoint import latest_checkpoint, load_policy_folder

    found = latest_checkpoint(Path(run_dir))
    if found is None:
        legacy = " (it has an SB3 model.zip from an older rlcreate: those unpickle on load and are not read)" \
            if (Path(run_dir) / "model.zip").exists() else ""
        raise UserError(f"{str(run_dir)!r} has no trained policy (no model/ and no complete checkpoints/step_*)"
                        f"{legacy}; train it with `rlcreate train`, or resume an interrupted run with --resume")
    folder, label = found
    model = load_policy_folder(folder, venv=venv)
    model.rlcreate_source, model.rlcreate_folder = label, folder
    return model


def load_model(folder: Path, algo: str | None = None, venv=None):
    """The policy saved in a checkpoint folder (``RUN/model/`` or ``RUN/checkpoints/step_<N>/``),
    rebuilt from ``policy.json`` + safetensors. ``algo`` is checked against the description."""
    from rlcreate.train.checkpoint import StateFormatError, load_policy_folder

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{str(folder)!r} is not a checkpoint folder (policy.json + policy.safetensors); "
                        "rlcreate does not read SB3 .zip files, which unpickle on load")
    model = load_policy_folder(folder, venv=venv)
    if algo is not None and algo_class(algo) is not type(model):
        raise StateFormatError(f"{folder}: holds a {type(model).__name__} policy but the run's recipe says {algo!r}")
    return model


def load_reward_state(path: Path, reward_set) -> bool:
    """Load a saved reward-set state (a checkpoint folder or its ``reward_state.npz``) into
    ``reward_set``; False when there is none. Read with ``allow_pickle=False``."""
    from rlcreate.train.checkpoint import load_reward_state as _load

    path = Path(path)
    if path.is_file():
        from rlcreate.train.checkpoint import load_tree

        reward_set.load_state_dict(load_tree(path))
        return True
    return _load(path, reward_set)


def export_sb3_zip(run_dir: Path, path: Path) -> Path:
    """Explicit export of a run's policy as SB3's own ``.zip`` (for plain ``PPO.load``).

    SB3 zips hold pickled objects and run code when loaded: share them only with people who trust
    you, and never load one you did not make. rlcreate itself never reads them."""
    model = load_policy(run_dir)
    model.save(Path(path))
    return Path(path) if str(path).endswith(".zip") else Path(str(path) + ".zip")
