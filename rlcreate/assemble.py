"""One way to turn a recipe into what runs: ``recipe -> (domain, trainer, reward set, env factory)``.

Every command (check, train, generate, demo, baseline, eval, audit) builds its environment through
:func:`assemble`, so a recipe that ``rlcreate check`` accepts is exactly what ``train`` will run, and
``generate`` and ``eval`` see the same environment and reward state as training did.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlcreate.domains import Domain, domain_of
from rlcreate.errors import UserError
from rlcreate.recipe import Recipe, RecipeError, build_reward_set
from rlcreate.trainers import Trainer, trainer_for
from rlcreate.validate import suggest

__all__ = ["Assembly", "assemble", "check_recipe", "check_can_finish", "dry_run", "call_env_factory"]


@dataclass
class Assembly:
    """A recipe put together: its domain, its trainer, its reward set (the one the environments
    hold and the checkpoints save) and a factory for its batched environment. ``shared`` holds
    objects a domain loads once per assembly (a language model) and reuses in every environment it
    builds."""

    recipe: Recipe
    domain: Domain
    reward_set: Any
    shared: dict = field(default_factory=dict)

    def call_factory(self, factory: Callable, **fixed: Any):
        """``factory(**fixed, **env.kwargs)`` with the recipe's ``env.kwargs`` checked by name
        (:func:`call_env_factory`): what a domain's ``make_vec_env`` calls."""
        return call_env_factory(factory, self.recipe.env_kwargs, **fixed)

    @property
    def trainer(self) -> Trainer:
        """The trainer of the recipe's ``trainer.algo`` (from the trainer registry)."""
        return trainer_for(self.recipe.trainer.algo, RecipeError)

    def make_env(self, n_envs: int | None = None, seed: int | None = None, purpose: str = "train"):
        """The recipe's batched SB3 VecEnv holding :attr:`reward_set`: ``n_envs`` (default
        ``trainer.n_envs``) rows, seeded (default the recipe's seed); ``purpose`` train | eval."""
        n = int(n_envs or self.recipe.trainer.n_envs)
        seed = self.recipe.seed if seed is None else int(seed)
        venv = self.domain.make_vec_env(self, n, seed, purpose)
        venv.seed(seed)
        return venv


def assemble(recipe: Recipe) -> Assembly:
    """The recipe's domain and reward set (reward names, arguments and kinds checked here)."""
    return Assembly(recipe, domain_of(recipe.env_id), build_reward_set(recipe))


def check_recipe(recipe: Recipe) -> Assembly:
    """Everything ``train`` will build, built once: domain checks (files it will read), that the
    domain can write samples from what the trainer makes and evaluate them, then what the trainer
    builds (environment and algorithm, or model and adapters) with a dry run of the rewards.
    Raises a :class:`UserError` naming the field on the first problem."""
    asm = assemble(recipe)
    check_can_finish(asm)
    asm.domain.check(recipe)
    asm.trainer.check(asm)
    return asm


def check_can_finish(asm: Assembly) -> None:
    """Refuse a recipe whose run could not be finished: the domain must write samples from what the
    trainer makes (a policy, or a tuned generator) and evaluate them (``rlcreate eval``)."""
    trainer = asm.trainer
    missing = asm.domain.cannot_finish(trainer.produces)
    if missing:
        raise RecipeError(
            f"env.id = {asm.recipe.env_id!r} with trainer.algo = {asm.recipe.trainer.algo!r}: the "
            f"{asm.domain.name!r} domain cannot finish a run: it does not implement "
            f"{', '.join(missing)}; add it to the domain, or use a trainer.algo whose model it can use"
        )


def call_env_factory(factory: Callable, kwargs: dict, **fixed: Any):
    """``factory(**fixed, **kwargs)`` where ``kwargs`` are the recipe's ``env.kwargs``: unknown names
    and invalid values become a :class:`RecipeError` naming ``env.kwargs.<name>``."""
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    known = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD]
    for key in kwargs:
        if key in fixed:
            raise RecipeError(
                f"env.kwargs.{key}: set by rlcreate from the recipe (trainer / targets / "
                "rewards sections); remove it from env.kwargs"
            )
        if not takes_any and key not in known:
            allowed = sorted(set(known) - set(fixed))
            raise RecipeError(f"env.kwargs: unknown key {key!r}.{suggest(key, allowed)} Known keys: {allowed}")
    try:
        return factory(**fixed, **kwargs)
    except TypeError as exc:
        m = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if not m:  # a value of the wrong type (min_prob: "abc"): a recipe mistake, not a crash
            raise RecipeError(
                f"env.kwargs = {kwargs!r}: {exc}; see the environment's docstring for its arguments and their types"
            ) from None
        raise RecipeError(
            f"env.kwargs: unknown key {m.group(1)!r}.{suggest(m.group(1), known)} "
            f"See the environment's docstring for its arguments"
        ) from None
    except UserError as exc:
        if str(exc).startswith("env.kwargs"):
            raise
        raise RecipeError(f"env.kwargs: {exc}") from None


def dry_run(asm: Assembly, max_steps: int = 10_000) -> None:
    """One episode on one row with random allowed actions, then the domain's scoring of the finished
    sample, so every reward term runs on what training really feeds it (a reward that cannot score
    these artifacts fails here, in ``check``, not at the end of ``train``). The reward state is
    restored afterwards."""
    state = copy.deepcopy(asm.reward_set.state_dict())
    venv = asm.make_env(n_envs=1, purpose="eval")
    rng = np.random.default_rng(asm.recipe.seed)
    venv.action_space.seed(asm.recipe.seed)  # the same recipe checks the same episode every time
    try:
        venv.reset()
        for _ in range(max_steps):
            if hasattr(venv.action_space, "n"):  # discrete: pick an allowed slot
                action = np.array([rng.choice(np.flatnonzero(venv.action_masks()[0]))])
            else:
                action = np.array([venv.action_space.sample()])
            _, _, done, infos = venv.step(action)
            if done[0]:
                asm.domain.score_samples(asm, [infos[0]])
                return
    except UserError as exc:
        raise RecipeError(f"rewards: a dry-run episode of {asm.recipe.env_id} failed: {exc}") from None
    except Exception as exc:  # a reward or env that cannot run this recipe: say which, don't crash
        raise RecipeError(
            f"rewards: a dry-run episode of {asm.recipe.env_id} failed ({type(exc).__name__}: "
            f"{exc}); check that every term's reward scores this environment's artifacts "
            f"(`rlcreate rewards` lists them by kind)"
        ) from None
    finally:
        venv.close()
        asm.reward_set.load_state_dict(state)
