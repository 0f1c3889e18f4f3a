"""One way to turn a recipe into what runs: ``recipe -> (domain, reward set, env factory)``.

Every command (check, train, generate, demo, baseline, eval, audit) builds its environment through
:func:`assemble`, so a recipe that ``rlcreate check`` accepts is exactly what ``train`` will run, and
``generate`` and ``eval`` see the same environment and reward state as training did.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from rlcreate.domains import Domain, domain_of
from rlcreate.errors import UserError
from rlcreate.recipe import Recipe, RecipeError, build_reward_set
from rlcreate.validate import suggest

__all__ = ["Assembly", "assemble", "check_recipe", "dry_run", "call_env_factory"]


@dataclass
class Assembly:
    """A recipe put together: its domain, its reward set (the one the environments hold and the
    checkpoints save) and a factory for its batched environment. ``shared`` holds objects a domain
    loads once per assembly (a language model) and reuses in every environment it builds."""

    recipe: Recipe
    domain: Domain
    reward_set: Any
    shared: dict = field(default_factory=dict)

    def call_factory(self, factory: Callable, **fixed: Any):
        """``factory(**fixed, **env.kwargs)`` with the recipe's ``env.kwargs`` checked by name
        (:func:`call_env_factory`): what a domain's ``make_vec_env`` calls."""
        return call_env_factory(factory, self.recipe.env_kwargs, **fixed)

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
    """Everything ``train`` will build, built once: domain checks (files it will read), the
    environment and the algorithm with its hyper-parameters. Raises a :class:`UserError`
    naming the field on the first problem."""
    from rlcreate.train.sb3 import make_algo

    asm = assemble(recipe)
    missing = asm.domain.cannot_finish()
    if missing:
        raise RecipeError(f"env.id = {recipe.env_id!r}: the {asm.domain.name!r} domain cannot finish a run: it "
                          f"does not implement {', '.join(missing)}; add it to the domain")
    asm.domain.check(recipe)
    venv = asm.make_env()
    try:
        make_algo(recipe, venv, None)
        dry_run(asm)
    finally:
        venv.close()
    return asm


def call_env_factory(factory: Callable, kwargs: dict, **fixed: Any):
    """``factory(**fixed, **kwargs)`` where ``kwargs`` are the recipe's ``env.kwargs``: unknown names
    and invalid values become a :class:`RecipeError` naming ``env.kwargs.<name>``."""
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    known = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD]
    for key in kwargs:
        if key in fixed:
            raise RecipeError(f"env.kwargs.{key}: set by rlcreate from the recipe (trainer / targets / "
                              "rewards sections); remove it from env.kwargs")
        if not takes_any and key not in known:
            allowed = sorted(set(known) - set(fixed))
            raise RecipeError(f"env.kwargs: unknown key {key!r}.{suggest(key, allowed)} Known keys: {allowed}")
    try:
        return factory(**fixed, **kwargs)
    except TypeError as exc:
        m = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if not m:  # a value of the wrong type (min_prob: "abc"): a recipe mistake, not a crash
            raise RecipeError(f"env.kwargs = {kwargs!r}: {exc}; see the environment's docstring for its "
                              "arguments and their types") from None
        raise RecipeError(f"env.kwargs: unknown key {m.group(1)!r}.{suggest(m.group(1), known)} "
                          f"See the environment's docstring for its arguments") from None
    except UserError as exc:
        if str(exc).startswith("env.kwargs"):
            raise
        raise RecipeError(f"env.kwargs: {exc}") from None


def dry_run(asm: Assembly, max_steps: int = 10_000) -> None:
    """One episode on one row with random allowed actions, then the domain's scoring of the finished
    sample, so every reward term runs on what training really feeds it (a reward that cannot score
    these artifacts fails here, in ``check``, not at the end of ``train``). The reward state is
    restored afterwards."""
    import copy

    import numpy as np

    from rlcreate.errors import UserError

    state = copy.deepcopy(asm.reward_set.state_dict())
    venv = asm.make_env(n_envs=1, purpose="eval")
    rng = np.random.default_rng(asm.recipe.seed)
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
        raise RecipeError(f"rewards: a dry-run episode of {asm.recipe.env_id} failed ({type(exc).__name__}: "
                          f"{exc}); check that every term's reward scores this environment's artifacts "
                          f"(`rlcreate rewards` lists them by kind)") from None
    finally:
        venv.close()
        asm.reward_set.load_state_dict(state)
