"""SB3 algorithms from recipe data: ``PPO`` / ``MaskablePPO`` with validated hyper-parameters.

:func:`validate_hyper` checks ``trainer.hyper`` against the algorithm's signature and value ranges
before any work; :func:`build_algo` builds the algorithm on an environment (to train) or from saved
spaces (to predict); :func:`make_algo` is what ``train`` and ``check`` build for a recipe.
"""

from __future__ import annotations

import difflib
import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.utils import LinearSchedule

from rlcreate.recipe import Recipe, RecipeError
from rlcreate.sb3.kl_control import validate_kl_control
from rlcreate.sb3.policies import POLICIES, resolve_policy
from rlcreate.validate import check_device, check_int, check_number

__all__ = [
    "algo_class",
    "validate_hyper",
    "build_algo",
    "check_rollout_size",
    "make_algo",
    "ALGOS",
    "MAX_ROLLOUT_BYTES",
]

#: ``trainer.algo`` values this trainer runs
ALGOS = ("ppo", "maskable_ppo")
_ALGO_FIXED = ("self", "policy", "env", "seed", "verbose", "device", "tensorboard_log", "_init_setup_model")
# Hyper-parameters that are numbers: (low, high, low is exclusive); None = unbounded.
_HYPER_RANGES = {
    "learning_rate": (0.0, None, True),
    "gamma": (0.0, 1.0, False),
    "gae_lambda": (0.0, 1.0, False),
    "clip_range": (0.0, None, True),
    "ent_coef": (0.0, None, False),
    "vf_coef": (0.0, None, False),
    "max_grad_norm": (0.0, None, True),
}
# Integers: (low, high). The highs are far beyond any useful run; they stop a typo (2**40 steps per
# rollout, 10**12 epochs) from allocating petabytes or never finishing.
_HYPER_INTS = {
    "n_steps": (1, 2**20),
    "batch_size": (2, 2**24),
    "n_epochs": (1, 10_000),
    "stats_window_size": (1, 10**6),
    "sde_sample_freq": (-1, 10**6),
}
#: Largest rollout buffer a recipe may ask for (n_steps x n_envs x observation size, float32).
MAX_ROLLOUT_BYTES = 4 * 2**30
#: the largest MLP layer a recipe's ``net_arch`` may ask for
MAX_LAYER_UNITS = 65536
_POLICY_KWARGS_OK = (
    "net_arch",
    "ortho_init",
    "log_std_init",
    "full_std",
    "use_expln",
    "squash_output",
    "share_features_extractor",
    "normalize_images",
    "optimizer_kwargs",
    "prior_start",
    "kl_to_prior",
    "offer_features",
    "offer_guidance",
    "offer_structure",
    "candidate_width",
    "rule_gain",
    "rule_entries",
)


def algo_class(algo: str):
    """The SB3 class of a recipe's ``trainer.algo``."""
    if algo == "maskable_ppo":
        return MaskablePPO
    if algo == "ppo":
        return PPO
    raise RecipeError(f"trainer.algo = {algo!r}: use ppo or maskable_ppo")


def validate_hyper(algo: str, hyper: dict) -> dict:
    """Check ``trainer.hyper`` against the algorithm's signature and value ranges, before any work.

    Names must be arguments of the algorithm (``policy`` aside: ``MlpPolicy`` or ``lm_prior``);
    numbers must be finite and in range; ``policy_kwargs`` may hold only plain-data options (no
    classes: a recipe cannot name code here). Returns ``hyper`` unchanged; raises
    :class:`RecipeError` naming ``trainer.hyper.<name>``, the value and the rule."""
    if not isinstance(hyper, dict):
        raise RecipeError(f"trainer.hyper = {hyper!r}: write a mapping, e.g. {{learning_rate: 0.0003}}")
    Algo = algo_class(algo)
    known = [n for n in inspect.signature(Algo.__init__).parameters if n not in _ALGO_FIXED]
    for key, value in hyper.items():
        field = f"trainer.hyper.{key}"
        if key == "policy":
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
        if key == "learning_rate" and isinstance(value, dict):
            _check_linear_schedule(field, value)
        elif key in _HYPER_RANGES:
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
            for k in value:
                if k not in _POLICY_KWARGS_OK:
                    close = difflib.get_close_matches(str(k), _POLICY_KWARGS_OK, n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise RecipeError(
                        f"{field}: unknown or unsupported key {k!r}.{hint} Supported: {list(_POLICY_KWARGS_OK)}"
                    )
            arch = value.get("net_arch")
            if arch is not None:
                layers = list(arch.values()) if isinstance(arch, dict) else [arch]
                if not all(
                    isinstance(layer, list)
                    and all(isinstance(u, int) and not isinstance(u, bool) and 1 <= u <= MAX_LAYER_UNITS for u in layer)
                    for layer in layers
                ):
                    raise RecipeError(
                        f"{field}.net_arch = {arch!r}: write a list of layer sizes (integers "
                        f"1..{MAX_LAYER_UNITS}), e.g. [64, 64], or {{pi: [64], vf: [64]}}"
                    )
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


def _check_linear_schedule(field: str, value: dict) -> None:
    """``{start: x, end: y}``: a learning rate annealed linearly from x to y over the run."""
    if set(value) != {"start", "end"}:
        raise RecipeError(
            f"{field} = {value!r}: write a number, or {{start: 0.0003, end: 0.0}} for a rate annealed "
            "linearly over the run"
        )
    check_number(f"{field}.start", value["start"], 0.0, None, low_open=True, error=RecipeError)
    check_number(f"{field}.end", value["end"], 0.0, None, error=RecipeError)


def _policy_and_kwargs(algo: str, hyper: dict) -> tuple[Any, dict]:
    hyper = dict(hyper)
    lr = hyper.get("learning_rate")
    if isinstance(lr, dict):  # annealed: SB3 calls it with the share of the run still to go
        hyper["learning_rate"] = LinearSchedule(float(lr["start"]), float(lr["end"]), 1.0)
    policy = hyper.pop("policy", "MlpPolicy")
    if policy == "lm_prior":  # our policy names -> classes (rlcreate.sb3.policies)
        if algo != "maskable_ppo":
            raise RecipeError(
                f"trainer.hyper.policy = 'lm_prior' with trainer.algo = {algo!r}: "
                "the lm_prior policy is a MaskablePPO policy; set trainer.algo: maskable_ppo"
            )
        policy = resolve_policy(policy)
    elif policy == "candidate_scorer":
        if algo != "ppo":
            raise RecipeError(
                f"trainer.hyper.policy = 'candidate_scorer' with trainer.algo = {algo!r}: "
                "it is a PPO policy over Box actions; set trainer.algo: ppo"
            )
        policy = resolve_policy(policy)
    return policy, hyper


def build_algo(
    algo: str,
    hyper: dict,
    venv=None,
    spaces: tuple | None = None,
    device: str = "cpu",
    tb_dir: Path | None = None,
    seed: int | None = None,
):
    """``PPO`` / ``MaskablePPO`` from plain data: on ``venv`` (to train), or without an environment
    from ``spaces = (observation_space, action_space)`` (to predict from a saved policy)."""
    validate_hyper(algo, hyper)
    Algo = algo_class(algo)
    policy, kwargs = _policy_and_kwargs(algo, hyper)
    if venv is not None:
        obs_space, act_space = venv.observation_space, venv.action_space
    elif spaces is not None:
        obs_space, act_space = spaces
    else:
        raise TypeError("build_algo() needs venv= (to train) or spaces= (to predict)")
    check_policy_size(hyper, obs_space, act_space)
    if venv is not None:
        check_rollout_size(hyper, venv.num_envs, venv.observation_space)
    try:
        if venv is not None:
            return Algo(
                policy,
                venv,
                seed=seed,
                verbose=0,
                device=device,
                tensorboard_log=str(tb_dir) if tb_dir else None,
                **kwargs,
            )
        model = Algo(policy, None, seed=seed, verbose=0, device=device, _init_setup_model=False, **kwargs)
        model.observation_space, model.action_space = obs_space, act_space
        model.n_envs = 1
        model._setup_model()
        return model
    except (TypeError, ValueError, AssertionError) as exc:
        raise RecipeError(
            f"trainer.hyper = {hyper!r}: {exc}; see the {Algo.__name__} documentation for valid arguments"
        ) from None


def _space_width(space) -> int:
    """Inputs (observation) or outputs (action head) SB3 gives a space: one-hot for discrete spaces."""
    from gymnasium import spaces as gs

    if isinstance(space, gs.Discrete):
        return int(space.n)
    if isinstance(space, gs.MultiDiscrete):
        return int(np.sum(space.nvec))
    return int(np.prod(space.shape or (1,)))


def check_policy_size(hyper: dict, observation_space, action_space) -> int:
    """Refuse a policy over :data:`rlcreate.safe_io.MAX_POLICY_PARAMS` parameters (actor and critic
    MLPs, action and value heads) before SB3 allocates it; returns the count."""
    from rlcreate.safe_io import check_param_budget

    arch = (hyper.get("policy_kwargs") or {}).get("net_arch")
    arch = [64, 64] if arch is None else arch
    pi, vf = (arch.get("pi", []), arch.get("vf", [])) if isinstance(arch, dict) else (arch, arch)
    n_in, n_out = _space_width(observation_space), _space_width(action_space)

    def mlp(layers) -> tuple[int, int]:
        count, width = 0, n_in
        for units in layers:
            count, width = count + (width + 1) * int(units), int(units)
        return count, width

    (pi_count, pi_last), (vf_count, vf_last) = mlp(pi), mlp(vf)
    total = pi_count + vf_count + (pi_last + 1) * n_out + n_out + vf_last + 1
    return check_param_budget(
        total,
        f"trainer.hyper.policy_kwargs.net_arch = {arch!r} on observations of {n_in} inputs and {n_out} action outputs",
    )


def check_rollout_size(hyper: dict, n_envs: int, observation_space) -> None:
    """Refuse a rollout buffer over :data:`MAX_ROLLOUT_BYTES` (n_steps x n_envs observations)."""
    n_steps = int(hyper.get("n_steps", 2048))
    size = n_steps * int(n_envs) * (int(np.prod(observation_space.shape or (1,))) + 8) * 4
    if size > MAX_ROLLOUT_BYTES:
        raise RecipeError(
            f"trainer.hyper.n_steps = {n_steps} with trainer.n_envs = {n_envs} needs a "
            f"{size / 2**30:.1f} GiB rollout buffer (at most {MAX_ROLLOUT_BYTES // 2**30} GiB); "
            "lower n_steps or n_envs"
        )


def make_algo(recipe: Recipe, venv, tb_dir: Path | None):
    """The recipe's algorithm on ``venv`` (hyper-parameters validated first, the rollout buffer
    sized for ``trainer.n_envs`` even when ``venv`` is the one-row env of ``check``)."""
    validate_hyper(recipe.trainer["algo"], dict(recipe.trainer["hyper"]))
    validate_kl_control(recipe.trainer)
    check_device("trainer.device", recipe.trainer["device"], error=RecipeError)  # exists on this machine
    check_policy_size(dict(recipe.trainer["hyper"]), venv.observation_space, venv.action_space)
    check_rollout_size(dict(recipe.trainer["hyper"]), recipe.trainer["n_envs"], venv.observation_space)
    return build_algo(
        recipe.trainer["algo"],
        dict(recipe.trainer["hyper"]),
        venv=venv,
        device=recipe.trainer["device"],
        tb_dir=tb_dir,
        seed=recipe.seed,
    )
