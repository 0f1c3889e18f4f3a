"""Domains as plugins: everything specific to one kind of artifact, behind one small interface.

A *domain* (Mario levels, text, a maze in the tests) owns what only it knows: its environments and
their defaults (reward terms, control targets, algorithm), how a recipe's environment is built, how
samples are written, judged, searched by baselines and shown in a report. The generic layers —
recipe, assembly, trainers, evaluation, CLI — only talk to the :class:`Domain` returned by
:func:`domain_of` for a recipe's env id; they never branch on an id and never import a domain module.

Adding a domain: subclass :class:`Domain` in your package and call :func:`register_domain` with an
instance (that also registers its Gymnasium ids). The built-in domains are listed in
:data:`BUILTIN` as lazy ``"module:attribute"`` paths, so ``import rlcreate`` registers their ids
without importing torch, numba or a model.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

if TYPE_CHECKING:  # types only: the layers above (assemble, recipe, SB3) are never imported here
    import argparse

    from stable_baselines3.common.vec_env import VecEnv

    from rlcreate.assemble import Assembly
    from rlcreate.recipe import Recipe
    from rlcreate.trainers import Model

from rlcreate.errors import UserError
from rlcreate.rewards.registry import add_reward_modules

__all__ = [
    "Domain",
    "UnsupportedError",
    "register_domain",
    "domain_of",
    "env_ids",
    "entry_points",
    "vector_factories",
    "builtin_domains",
    "BUILTIN",
    "BuiltinDomain",
    "register_envs",
    "CliOption",
    "domain_options",
    "EvalResult",
]


class UnsupportedError(UserError):
    """A command or option that this domain does not provide; the message says what it provides."""


@dataclass(frozen=True)
class CliOption:
    """An option a domain adds to a generic command (``eval``, ``baseline``). The command line adds
    every domain's options (help prefixed with the domain's name); an option given on a run of
    another domain is an error, not ignored. The parsed value reaches the domain by ``dest``."""

    flags: tuple[str, ...]
    help: str
    type: Callable[[str], Any] | None = None

    @property
    def dest(self) -> str:
        return self.flags[0].lstrip("-").replace("-", "_")


class BuiltinDomain(NamedTuple):
    """A built-in domain, named lazily so that ``import rlcreate`` imports no domain module."""

    domain: str  #: ``"module:attribute"`` of the Domain instance
    envs: dict[str, str]  #: env id -> single-env entry point
    vector_envs: dict[str, str]  #: env id -> batched factory behind its Gymnasium vector entry point
    reward_modules: tuple[str, ...] = ()  #: modules whose import registers the domain's rewards


BUILTIN: dict[str, BuiltinDomain] = {
    "levels": BuiltinDomain(
        "rlcreate.levels.domain:DOMAIN",
        {
            "rlcreate/MarioLatent-v0": "rlcreate.levels.envs:make_mario_latent",
            "rlcreate/MarioLatent-v1": "rlcreate.levels.envs:make_mario_latent_v1",
            "rlcreate/MarioTokens-v1": "rlcreate.levels.envs:make_mario_tokens",
        },
        {
            "rlcreate/MarioLatent-v0": "rlcreate.levels.envs:make_mario_latent_vec",
            "rlcreate/MarioLatent-v1": "rlcreate.levels.envs:make_mario_latent_v1_vec",
            "rlcreate/MarioTokens-v1": "rlcreate.levels.envs:make_mario_tokens_vec",
        },
        (
            "rlcreate.levels.rewards",
            "rlcreate.levels.value_rewards",
            "rlcreate.levels.objectives",
            "rlcreate.levels.engagement",
        ),
    ),
    "text": BuiltinDomain(
        "rlcreate.text.domain:DOMAIN",
        {
            "rlcreate/TextTokens-v0": "rlcreate.text.envs:make_text_tokens_env",
        },
        {
            "rlcreate/TextTokens-v0": "rlcreate.text.envs:make_text_tokens_vec_env",
        },
        ("rlcreate.text.rewards", "rlcreate.text.group_diversity", "rlcreate.text.forms"),
    ),
}
for _entry in BUILTIN.values():
    add_reward_modules(*_entry.reward_modules)


#: a baseline method: ``fn(asm, method, run_dir, budget=, batch=, section=, progress_bar=, **options) -> info``
BaselineMethod = Callable[..., dict]


class EvalResult(TypedDict, total=False):
    """What :meth:`Domain.evaluate` returns and ``RUN/metrics.json`` holds (``eval`` and ``report``
    read it). Domains may add keys; these are the ones the generic layers read."""

    source: str  #: what was judged ("fresh samples of model/", "samples/")
    judges: dict[str, dict[str, object]]  #: judge -> measure -> value ({"skipped": why} when skipped)
    composite: dict[str, float]  #: the recipe's reward on the judged samples: mean, best, ...
    flags: dict[str, dict[str, object]]  #: memorisation / collapse: {"flag": bool, "reason": str, ...}
    notes: list[str]  #: lines ``eval`` prints (FLAG ..., skipped judges)
    qd: dict[str, float]  #: quality-diversity coverage and score (levels)
    audit: dict[str, object]  #: the reward-hacking audit along checkpoints (added by eval)


class Domain:
    """The interface a domain implements. Methods a domain does not support raise
    :class:`UnsupportedError` with what it does support (a tiny domain implements only what it needs).

    ``name``: short name; ``artifact``: what its samples are (reward modules that declare an
    ``artifact`` must match it); ``envs``: Gymnasium id -> ``"module:function"`` single-env entry
    point; ``vector_envs``: id -> batched factory (``n_envs=``, SB3 VecEnv over a core) that backs
    ``gym.make_vec(id)`` (optional); ``reward_modules``: modules whose import registers the
    domain's reward modules (loaded by the reward registry on first lookup)."""

    name: str = ""
    artifact: str = ""
    envs: dict[str, str] = {}
    vector_envs: dict[str, str] = {}
    reward_modules: tuple[str, ...] = ()
    #: command -> options this domain adds to it (``{"eval": (CliOption(("--astar-runs",), ...),)}``)
    cli_options: dict[str, tuple[CliOption, ...]] = {}
    #: keys of a recipe's ``baselines:`` section this domain reads (beyond method, budget, batch)
    baseline_keys: tuple[str, ...] = ()
    #: kinds of trained model (:data:`rlcreate.trainers.MODEL_KINDS`) :meth:`generate` writes samples
    #: from: ``policy`` (acts in the domain's environment), ``generator`` (a tuned copy of its generator)
    generates_from: tuple[str, ...] = ("policy",)

    # ---------------------------------------------------------------- recipe assembly
    def default_rewards(self, env_id: str) -> dict[str, dict[str, object]]:
        """The env's default reward terms, in recipe form (term -> {reward, weight, transform, args})."""
        return {}

    def default_targets(self, env_id: str) -> dict[str, list[float]]:
        return {}

    def default_algo(self, env_id: str) -> str:
        return "ppo"

    def make_vec_env(self, asm: Assembly, n_envs: int, seed: int, purpose: str = "train") -> VecEnv:
        """The recipe's environment as a batched SB3 VecEnv holding ``asm.reward_set``. ``purpose`` is
        ``train`` or ``eval`` (a domain may draw evaluation inputs, e.g. held-out prompts, for eval).
        Default: the id's batched factory from :attr:`vector_envs`, called with the recipe's
        ``env.kwargs`` (``n_envs=, targets=, reward=, seed=`` fixed by rlcreate)."""
        path = self.vector_envs.get(asm.recipe.env_id)
        if path is None:
            raise self.unsupported(f"building {asm.recipe.env_id} (no batched factory in vector_envs)")
        module, attr = path.split(":")
        return asm.call_factory(
            getattr(importlib.import_module(module), attr),
            n_envs=n_envs,
            targets=asm.recipe.targets,
            reward=asm.reward_set,
            seed=seed,
        )

    def check(self, recipe: Recipe) -> None:
        """Domain-specific recipe checks beyond building the environment (judge names, files it
        will read)."""

    def judge_names(self) -> list[str]:
        return []

    def cannot_finish(self, produces: str = "policy") -> list[str]:
        """What a run of this domain needs and the domain does not provide (``check`` fails on it):
        a run writes samples when training ends, so :meth:`generate` is required, from the kind of
        model the run's trainer ``produces`` (:attr:`generates_from`); ``eval`` needs :meth:`evaluate`."""
        if type(self).generate is Domain.generate:
            missing = ["generate (writing samples)"]
        elif produces not in self.generates_from:
            kinds = " or ".join(self.generates_from)
            missing = [f"generate from a trained {produces} (it writes samples from a {kinds})"]
        else:
            missing = []
        if type(self).evaluate is Domain.evaluate:
            missing.append("evaluate (rlcreate eval)")
        return missing

    # ---------------------------------------------------------------- runs
    def finish_training(self, model: Model, asm: Assembly, run_dir: Path) -> dict[str, object]:
        """Write ``run_dir/samples/`` after training; returns the samples summary."""
        return self.generate(model, asm, asm.recipe.trainer["samples"], run_dir / "samples")

    def score_samples(self, asm: Assembly, episodes: list[dict[str, object]]) -> None:
        """Score finished episodes' samples the way written samples are scored (used by ``check``'s
        dry run; a domain that scores samples beyond the env's own rewards overrides it)."""

    def generate(
        self,
        model: Model,
        asm: Assembly,
        n: int,
        out: Path,
        targets: dict[str, float] | None = None,
        seed: int | None = None,
    ) -> dict[str, object]:
        """Write ``n`` samples of ``model`` (with control ``targets``) into ``out``; returns their summary."""
        raise self.unsupported("generating samples")

    def evaluate(self, run: Path, asm: Assembly, **options: object) -> EvalResult:
        """Judges of a run (the ``metrics.json`` content, written by the caller). ``options``:
        ``n`` (fresh samples), ``judges`` (names) and the domain's own ``eval`` options."""
        raise self.unsupported("evaluation")

    def baseline_methods(self) -> dict[str, BaselineMethod]:
        """Baseline method name -> ``fn(asm, method, run_dir, budget=, batch=, section=,
        progress_bar=, **options) -> info``."""
        return {}

    def check_baseline_section(self, section: dict[str, object]) -> dict[str, object]:
        """The domain's own keys of a recipe's ``baselines:`` section, validated."""
        if section:
            raise self.unsupported(f"baselines keys {sorted(section)}")
        return section

    # ---------------------------------------------------------------- audit
    #: reward module name -> (judge, measure, what the pair checks)
    counterparts: dict[str, tuple[str, str, str]] = {}

    def audit_checkpoint(
        self, asm: Assembly, model: Model, progress: float, n: int, deterministic: bool, seed: int, judges: list[str]
    ) -> tuple[dict[str, float], dict[str, dict], dict[str, dict]]:
        """Roll out ``model`` for ``n`` samples; returns (mean reward terms, judged, flags)."""
        raise self.unsupported("the reward-hacking audit")

    # ---------------------------------------------------------------- reports
    def read_samples(self, folder: Path) -> list[object]:
        """The samples a run folder's ``folder`` holds (for reports); [] when none."""
        return []

    def figures_html(self, runs: list[dict[str, object]], img_dir: Path) -> str:
        """Report figures over all runs of this domain (e.g. an expressive-range plot)."""
        return ""

    def gallery_html(self, run_data: dict[str, object], index: int, img_dir: Path, limit: int) -> str:
        """Report section showing one run's samples (rendered levels, texts)."""
        return ""

    # ---------------------------------------------------------------- command line
    def register_commands(self, sub: argparse._SubParsersAction) -> None:
        """Add the domain's own subcommands to the ``rlcreate`` argparse subparsers (optional)."""

    # ---------------------------------------------------------------- helpers
    def unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"the {self.name!r} domain does not support {what}")


_DOMAINS: dict[str, Domain] = {}  # loaded or registered instances by name
_ENV_DOMAIN: dict[str, str] = {env: name for name, entry in BUILTIN.items() for env in entry.envs}


def register_domain(domain: Domain) -> Domain:
    """Add a domain (e.g. from your package or a test) and register its Gymnasium ids."""
    if not domain.name or not domain.envs:
        raise UserError(f"domain {type(domain).__name__}: set `name` and `envs` (id -> 'module:function')")
    _DOMAINS[domain.name] = domain
    add_reward_modules(*domain.reward_modules)
    for env_id in domain.envs:
        _ENV_DOMAIN[env_id] = domain.name
    if "gymnasium" in sys.modules:  # else registration happens when gymnasium is imported
        register_envs()
    return domain


def env_ids() -> list[str]:
    """Every environment id of every known domain."""
    return sorted(_ENV_DOMAIN)


def entry_points() -> dict[str, str]:
    """Env id -> single-env entry point, for Gymnasium registration (imports no domain module)."""
    out = {env: ep for entry in BUILTIN.values() for env, ep in entry.envs.items()}
    for d in _DOMAINS.values():
        out.update(d.envs)
    return out


def vector_factories() -> dict[str, str]:
    """Env id -> batched factory behind its Gymnasium vector entry point."""
    out = {env: f for entry in BUILTIN.values() for env, f in entry.vector_envs.items()}
    for d in _DOMAINS.values():
        out.update(d.vector_envs)
    return out


def domain_of(env_id: str) -> Domain:
    """The domain that owns ``env_id`` (loaded on first use)."""
    from rlcreate.validate import check_choice

    check_choice("env.id", env_id, env_ids(), what="an rlcreate environment")
    name = _ENV_DOMAIN[env_id]
    if name not in _DOMAINS:
        module, attr = BUILTIN[name].domain.split(":")
        _DOMAINS[name] = getattr(importlib.import_module(module), attr)
    return _DOMAINS[name]


def builtin_domains() -> list[Domain]:
    """The built-in domains (loaded) and every registered one."""
    for entry in BUILTIN.values():
        domain_of(next(iter(entry.envs)))
    return list(_DOMAINS.values())


def domain_options(command: str, given: dict[str, Any], domain: Domain) -> dict[str, Any]:
    """The options of ``command`` that were given (value not None), checked against the domain that
    will run them: a command-line option of another domain is an :class:`UnsupportedError`."""
    own = {o.dest for o in domain.cli_options.get(command, ())}
    out = {}
    for dest, value in given.items():
        if value is None:
            continue
        owners = sorted(
            d.name for d in builtin_domains() if any(o.dest == dest for o in d.cli_options.get(command, ()))
        )
        if owners and dest not in own:  # other keywords are the Python API's own (e.g. a loaded LM)
            flag = "--" + dest.replace("_", "-")
            raise UnsupportedError(
                f"{command} {flag}: an option of the {' / '.join(owners)} domain; "
                f"this run is a {domain.name!r} run, so remove {flag}"
            )
        out[dest] = value
    return out


def add_domain_options(parser: Any, command: str) -> list[str]:
    """Add every domain's options for ``command`` to an argparse parser (default None = not
    given); returns their ``dest`` names."""
    seen: dict[str, CliOption] = {}
    for domain in builtin_domains():
        for opt in domain.cli_options.get(command, ()):
            if opt.dest in seen:  # two domains share an option: added once
                continue
            seen[opt.dest] = opt
            parser.add_argument(
                *opt.flags, dest=opt.dest, type=opt.type, default=None, help=f"[{domain.name}] {opt.help}"
            )
    return list(seen)


def register_envs() -> None:
    """Register every domain's Gymnasium ids and their vector entry points; safe to call again after
    a domain is added. ``import rlcreate`` calls it once gymnasium is imported."""
    import dataclasses
    from functools import partial

    # deferred: gymnasium is optional for reward-only users (rewards with TRL never load it)
    from gymnasium.envs.registration import register, registry

    from rlcreate.envs.gym_vector import make_vector_env

    for env_id, entry_point in entry_points().items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point)
    for env_id, batched in vector_factories().items():
        spec = registry.get(env_id)
        if spec is not None and spec.vector_entry_point is None:
            registry[env_id] = dataclasses.replace(spec, vector_entry_point=partial(make_vector_env, batched))
