"""Recipes: one experiment = one YAML file, validated on load.

```yaml
name: mario-latent-demo          # run folder name under runs/
seed: 0
env:
  id: rlcreate/MarioLatent-v0    # a registered rlcreate id (`rlcreate envs` lists them)
  kwargs: {n_segments: 8}        # passed to the environment (checked when `rlcreate check` builds it)
rewards:                         # optional: default = the environment's default terms
  playability: {weight: 1.0}     # term name -> spec; `reward` defaults to the term name
  novelty: {weight: 0.5, reward: level_novelty, transform: {sweet_spot: {target: 0.3, width: 0.15}}}
targets:                         # control targets sampled per episode: name -> [low, high]
  enemies: [0, 2]
trainer:
  algo: ppo                      # ppo | maskable_ppo | grpo (default: the environment's)
  total_timesteps: 20000
```

Each section is a dataclass below with a docstring per field (CleanRL's ``Args`` style). A
trainer may own one more top-level section (GRPO: ``finetune:``, :mod:`rlcreate.trl.grpo`),
parsed by that trainer into its own dataclass (:attr:`Recipe.settings`); ``baselines:`` belongs to
the baseline command, which validates it. Errors raise :class:`RecipeError` naming the field, the
value, the rule and the fix.
A reward given as ``package.module:Name`` imports that module: such a recipe is code, trust it as code.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from rlcreate.domains import domain_of, env_ids
from rlcreate.errors import UserError
from rlcreate.rewards.base import NONFINITE_POLICIES
from rlcreate.rewards.compose import RewardSet, Term
from rlcreate.rewards.registry import get_reward
from rlcreate.rewards.transforms import RecipeValueError, make_transform, make_weight
from rlcreate.runbox import check_name
from rlcreate.safe_io import load_yaml
from rlcreate.trainers import section_algo, trainer_for
from rlcreate.trainers import sections as trainer_sections
from rlcreate.validate import check_choice, check_device, check_int, check_keys, check_number, fail

__all__ = [
    "Recipe",
    "RecipeError",
    "EnvSection",
    "TermSection",
    "TrainerSection",
    "load_recipe",
    "parse_recipe",
    "build_reward_set",
    "checkpoint_every",
]


class RecipeError(RecipeValueError):
    """A recipe is invalid; the message names the field, the value and the fix."""


class _Section:
    """Dict-style access (``trainer["algo"]``) on a dataclass section, for code that reads recipes
    as mappings; attribute access is the typed form."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def keys(self):
        return [f.name for f in fields(self)]

    def update(self, values: dict | None = None, **more: Any) -> None:
        for key, value in {**(values or {}), **more}.items():
            if key not in self.keys():
                raise AttributeError(f"{type(self).__name__} has no field {key!r}")
            setattr(self, key, value)


@dataclass
class EnvSection(_Section):
    id: str = ""
    """Registered rlcreate environment id, e.g. rlcreate/MarioLatent-v0."""
    kwargs: dict = field(default_factory=dict)
    """Keyword arguments of the environment (see its docstring card); checked by building it."""


@dataclass
class TermSection(_Section):
    reward: str = ""
    """Registered reward name (`rlcreate rewards`) or `package.module:Name` (imports code)."""
    weight: Any = 1.0
    """A number, or a schedule over training progress {schedule: linear|cosine|step, start, end}."""
    transform: Any = None
    """Optional per-term transform: normalize, clip or sweet_spot {target, width}."""
    args: dict = field(default_factory=dict)
    """Keyword arguments of the reward module."""


@dataclass
class TrainerSection(_Section):
    algo: str = "ppo"
    """ppo | maskable_ppo (SB3) | grpo (TRL, settings in the finetune: section). Default: grpo when the
    recipe has a finetune: section, else the environment's (token environments use maskable_ppo)."""
    total_timesteps: int = 20000
    """Environment steps to train for (SB3; GRPO counts optimiser steps in finetune.steps)."""
    n_envs: int = 16
    """Parallel environments stepped in one batch (one decoder / LM call per step)."""
    hyper: dict = field(default_factory=dict)
    """Keyword arguments of the algorithm (learning_rate, n_steps, ...; policy: MlpPolicy | lm_prior |
    candidate_scorer).
    ``learning_rate`` is a number or ``{start: 0.0003, end: 0.0}``, annealed linearly over the run."""
    checkpoints: int = 4
    """Checkpoints saved during training, evenly spaced (0 = none)."""
    checkpoint_every: Any = None
    """Instead: a checkpoint every N env steps, or {steps: N, minutes: M} (resume loses at most one)."""
    samples: int = 16
    """Samples written at the end of training."""
    device: str = "cpu"
    """torch device of the policy."""
    kl_target: Any = None
    """KL to the LM (nats per step) for Ziegler et al.'s adaptive beta; None = fixed beta = hyper.ent_coef.
    Needs policy lm_prior with policy_kwargs {kl_to_prior: true} (rlcreate.sb3.kl_control)."""
    kl_horizon: int = 10000
    """Env steps over which the adaptive beta moves by at most a factor e^0.2 (Ziegler et al.'s horizon)."""


#: largest seed a recipe or --seed takes (offsets such as seed + 1 stay valid numpy seeds)
MAX_SEED = 2**31 - 1
# plus every trainer's own section (rlcreate.trainers.sections()); baselines: rlcreate.evaluation.baselines
TOP_KEYS = {"name", "seed", "env", "rewards", "targets", "trainer", "nonfinite", "judges", "description", "baselines"}


@dataclass
class Recipe:
    name: str
    """Run folder name under runs/ (letters, digits, '-', '_', '.')."""
    seed: int
    """Seed of environments, policy and samples (0 to 2**31 - 1)."""
    env: EnvSection
    rewards: dict[str, TermSection]
    """Reward terms by name; default: the environment's default terms."""
    targets: dict[str, list[float]]
    """Control targets sampled per episode: name -> [low, high]."""
    trainer: TrainerSection
    nonfinite: str = "raise"
    """What a non-finite reward does: raise (default), clip or zero."""
    judges: list[str] = field(default_factory=list)
    """Judges `rlcreate eval` runs by default (default: the domain's)."""
    source: str = "<recipe>"
    settings: Any = None
    """Not a YAML key: the trainer's own top-level section parsed into its dataclass (GRPO: finetune:,
    see FinetuneSection); None for trainers without one."""
    description: str = ""
    """What the recipe is for, in words; kept in the run's config.yaml."""

    @property
    def env_id(self) -> str:
        return self.env.id

    @property
    def env_kwargs(self) -> dict:
        return self.env.kwargs

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "env": asdict(self.env),
            "rewards": {k: asdict(v) for k, v in self.rewards.items()},
            "targets": copy.deepcopy(self.targets),
            "trainer": asdict(self.trainer),
            "nonfinite": self.nonfinite,
            "judges": list(self.judges),
            **({"description": self.description} if self.description else {}),
            **self._settings_dict(),
        }

    def _settings_dict(self) -> dict:
        """The trainer's own section (e.g. ``finetune:``), when it has one."""
        if self.settings is None:
            return {}
        return {trainer_for(self.trainer.algo).section: asdict(self.settings)}

    def dump(self, path: str | Path) -> None:
        """Write the resolved recipe atomically (a kill never leaves half a config.yaml)."""
        from rlcreate.runbox import write_text

        write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))  # exclusive temp file + rename

    def with_targets(self, fixed: dict[str, float]) -> Recipe:
        """A copy whose targets named in ``fixed`` are pinned to one value each."""
        unknown = sorted(set(fixed) - set(self.targets))
        if unknown:
            raise RecipeError(
                f"--targets names {unknown} are not control targets of this run; its targets are {sorted(self.targets)}"
            )
        out = copy.deepcopy(self)
        out.targets.update({k: [float(v), float(v)] for k, v in fixed.items()})
        return out


def load_recipe(path: str | Path, algo: str | None = None) -> Recipe:
    """The validated recipe of a YAML file; ``algo`` overrides its ``trainer.algo``."""
    path = Path(path)
    if path.is_dir():
        raise RecipeError(
            f"{str(path)!r} is a folder, not a recipe file; pass a YAML file such as "
            "rlcreate/recipes/mario_latent.yaml (a run folder's recipe is its config.yaml)"
        )
    if not path.is_file():
        raise RecipeError(
            f"recipe file {str(path)!r} does not exist; pass a YAML file such as "
            "rlcreate/recipes/mario_latent.yaml (the shipped recipes live there)"
        )
    data = load_yaml(path, "recipe")  # size, alias, depth and duplicate-key budgets (rlcreate.safe_io)
    if algo is not None and isinstance(data, dict):
        trainer = data.get("trainer")
        data = {**data, "trainer": {**(trainer if isinstance(trainer, dict) else {}), "algo": algo}}
    return parse_recipe(data, source=str(path))


def _section(cls, where: str, raw: Any) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail(where, raw, f"must be a mapping with keys {[f.name for f in fields(cls)]}", RecipeError)
    check_keys(where, raw, [f.name for f in fields(cls)], RecipeError)
    return dict(raw)


def _mapping(where: str, value: Any, example: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(where, value, f"must be a mapping, e.g. {example}", RecipeError)
    return dict(value)


def parse_recipe(data: Any, source: str = "<recipe>") -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(
            f"{source}: a recipe is a YAML mapping (name:, env:, rewards:, trainer:), got {type(data).__name__}"
        )
    owned = trainer_sections()  # section -> trainer name
    check_keys(source, data, TOP_KEYS | set(owned), RecipeError)
    name = data.get("name") or (Path(source).stem if source != "<recipe>" else "run")
    try:
        check_name("name", name)  # the run folder's name: one plain path component (rlcreate.runbox)
    except UserError as exc:
        raise RecipeError(str(exc)) from None
    # < 2**31: commands derive seeds as seed + k, and numpy's legacy seeding (SB3) stops at 2**32 - 1
    seed = check_int("seed", data.get("seed", 0), 0, MAX_SEED, RecipeError)

    env_raw = {"id": data["env"]} if isinstance(data.get("env"), str) else data.get("env")
    env = EnvSection(**_section(EnvSection, "env", env_raw))
    check_choice("env.id", env.id, env_ids(), "an rlcreate environment", RecipeError)
    env.kwargs = _mapping("env.kwargs", env.kwargs, "{n_segments: 8}")
    domain = domain_of(env.id)

    raw_rewards = data.get("rewards")
    if raw_rewards is None:
        raw_rewards = domain.default_rewards(env.id)
    if not isinstance(raw_rewards, dict) or not raw_rewards:
        raise fail(
            "rewards",
            raw_rewards,
            "write at least one reward term, e.g. rewards: {playability: "
            "{weight: 1.0}}, or leave rewards: out for the environment's defaults",
            RecipeError,
        )
    rewards = {str(term): _term(str(term), spec) for term, spec in raw_rewards.items()}

    raw_targets = data.get("targets")
    targets_raw = (
        domain.default_targets(env.id) if raw_targets is None else _mapping("targets", raw_targets, "{enemies: [0, 2]}")
    )
    targets = {str(k): _target(str(k), v) for k, v in targets_raw.items()}

    trainer_raw = _section(TrainerSection, "trainer", data.get("trainer"))
    given = [s for s in owned if data.get(s) is not None]
    default_algo = section_algo(given[0]) if given else domain.default_algo(env.id)
    trainer = TrainerSection(**{"algo": default_algo, **trainer_raw})
    plugin = trainer_for(trainer.algo, RecipeError)
    for s in given:
        if s != plugin.section:
            raise RecipeError(
                f"{s}: holds the settings of another trainer than trainer.algo = {trainer.algo!r} "
                f"({plugin.name}); set trainer.algo: {section_algo(s)} to use it, or remove the section"
            )
    check_int("trainer.total_timesteps", trainer.total_timesteps, 1, error=RecipeError)
    check_int("trainer.n_envs", trainer.n_envs, 1, 4096, RecipeError)
    check_int("trainer.checkpoints", trainer.checkpoints, 0, 1000, RecipeError)
    check_int("trainer.samples", trainer.samples, 1, 100000, RecipeError)
    trainer.hyper = _mapping("trainer.hyper", trainer.hyper, "{learning_rate: 0.0003}")
    trainer.checkpoint_every = checkpoint_every(trainer.checkpoint_every)
    if not isinstance(trainer.device, str):
        raise fail("trainer.device", trainer.device, "write a torch device name such as cpu", RecipeError)
    # the name must parse here; that the device exists is checked where it is used (check, train),
    # so a run trained on a GPU can still be read on a CPU-only machine
    check_device("trainer.device", trainer.device, available=False, error=RecipeError)
    if trainer.kl_target is not None:
        check_number("trainer.kl_target", trainer.kl_target, 0.0, None, low_open=True, error=RecipeError)
    check_int("trainer.kl_horizon", trainer.kl_horizon, 1, 10**12, RecipeError)

    nonfinite = check_choice("nonfinite", data.get("nonfinite", "raise"), NONFINITE_POLICIES, "a policy", RecipeError)
    judges = data.get("judges") or []
    if not isinstance(judges, list) or not all(isinstance(j, str) for j in judges):
        raise fail("judges", judges, "write a list of judge names, e.g. [astar, tile_kl]", RecipeError)
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise fail("description", description, "write the description as one text (quote it in YAML)", RecipeError)
    settings = plugin.parse_section(data.get(plugin.section)) if plugin.section else None
    recipe = Recipe(
        name, seed, env, rewards, targets, trainer, nonfinite, list(judges), source, settings, description=description
    )
    plugin.validate(recipe)
    return recipe


def _term(term: str, spec: Any) -> TermSection:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = {"weight": spec}
    spec = _section(TermSection, f"rewards.{term}", spec)
    out = TermSection(**{"reward": term, **spec})
    if not isinstance(out.reward, str) or not out.reward:
        raise fail(f"rewards.{term}.reward", out.reward, "write a reward name (`rlcreate rewards`)", RecipeError)
    make_weight(out.weight, field=f"rewards.{term}.weight")  # validate now
    make_transform(out.transform, field=f"rewards.{term}.transform")
    out.args = _mapping(f"rewards.{term}.args", out.args, "{k: 5}")
    return out


def _target(name: str, rng: Any) -> list[float]:
    ok = (
        isinstance(rng, (list, tuple))
        and len(rng) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in rng)
        and 0 <= rng[0] <= rng[1]
    )
    if not ok:
        raise fail(f"targets.{name}", rng, "write [low, high] with finite numbers, 0 <= low <= high", RecipeError)
    return [float(rng[0]), float(rng[1])]


def build_reward_set(recipe: Recipe) -> RewardSet:
    """Instantiate the recipe's reward terms (registry names or dotted paths) into a RewardSet.

    A reward that declares the artifacts it scores (``artifact = "level"``) must match the
    environment's domain; bad reward arguments raise :class:`RecipeError` naming the term."""
    artifact = domain_of(recipe.env_id).artifact
    terms = []
    for name, spec in recipe.rewards.items():
        try:
            module = get_reward(spec.reward, **spec.args)
        except TypeError as exc:
            raise fail(f"rewards.{name}.args", spec.args, f"{exc}", RecipeError) from None
        except UserError as exc:
            raise RecipeError(f"rewards.{name}: {exc}") from None
        except (ValueError, KeyError) as exc:  # a reward's own argument checks
            raise fail(f"rewards.{name}.args", spec.args, str(exc).strip("'\""), RecipeError) from None
        wants = getattr(module, "artifact", None)
        if wants and artifact and wants != artifact:
            raise fail(
                f"rewards.{name}.reward",
                spec.reward,
                f"scores {wants}s but {recipe.env_id} makes {artifact}s; use a {artifact} reward "
                "(`rlcreate rewards` lists them by kind)",
                RecipeError,
            )
        terms.append(Term(name, module, spec.weight, spec.transform))
    return RewardSet(terms, nonfinite=recipe.nonfinite)


def checkpoint_every(value: Any) -> dict | None:
    """Validate ``trainer.checkpoint_every``: steps (an integer) or ``{steps: N, minutes: M}``.

    ``None`` keeps the default (``trainer.checkpoints`` evenly spaced checkpoints, and one every
    10 minutes of wall time). A checkpoint is taken at the first rollout boundary after the interval."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"steps": value}
    if not isinstance(value, dict) or not value or set(value) - {"steps", "minutes"}:
        raise RecipeError(
            f"trainer.checkpoint_every = {value!r}: write a number of env steps (e.g. 5000) "
            "or a mapping {steps: 5000, minutes: 10}"
        )
    out: dict[str, Any] = {"steps": None, "minutes": None}
    steps = value.get("steps")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise RecipeError(f"trainer.checkpoint_every.steps = {steps!r}: must be an integer >= 1")
        out["steps"] = steps
    minutes = value.get("minutes")
    if minutes is not None:
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, (int, float))
            or not math.isfinite(minutes)
            or minutes <= 0
        ):
            raise RecipeError(f"trainer.checkpoint_every.minutes = {minutes!r}: must be a positive number")
        out["minutes"] = float(minutes)
    if out["steps"] is None and out["minutes"] is None:  # else no checkpoint at all, silently
        raise RecipeError(
            f"trainer.checkpoint_every = {value!r}: give steps or minutes (or both), e.g. {{steps: 5000}}; "
            "for no checkpoints set trainer.checkpoints: 0 and leave checkpoint_every out"
        )
    return out
