"""Recipes: one experiment = one YAML file, validated on load.

```yaml
name: mario-latent-demo          # run folder name under runs/
seed: 0
env:
  id: rlcreate/MarioLatent-v0    # a registered rlcreate id
  kwargs: {n_segments: 8}        # passed to the environment
rewards:                         # term name -> spec; `reward` defaults to the term name
  playability: {weight: 1.0}
  novelty: {weight: 0.5, transform: {sweet_spot: {target: 0.3, width: 0.15}}, args: {k: 5}}
targets:                         # control targets sampled per episode: name -> [low, high]
  enemies: [0, 2]
trainer:
  algo: ppo                      # ppo | maskable_ppo
  total_timesteps: 20000
  n_envs: 16
  hyper: {learning_rate: 0.0003, n_steps: 64}
  checkpoints: 4                 # checkpoints saved during training
  samples: 16                    # levels / texts written at the end
```

Errors raise :class:`RecipeError`, whose message names the field, the value, the rule and the fix
(with "Did you mean ...?" for misspelt keys).
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlcreate.rewards.compose import RewardSet, Term
from rlcreate.rewards.registry import get_reward
from rlcreate.rewards.transforms import RecipeValueError, make_transform, make_weight

__all__ = ["Recipe", "RecipeError", "load_recipe", "parse_recipe", "build_reward_set"]

ALGOS = ("ppo", "maskable_ppo")
TOP_KEYS = {"name", "seed", "env", "rewards", "targets", "trainer", "nonfinite", "judges", "description",
            "finetune", "baselines"}  # finetune: rlcreate.train.finetune; baselines: rlcreate.evaluation.baselines
ENV_KEYS = {"id", "kwargs"}
TERM_KEYS = {"reward", "weight", "transform", "args"}
TRAINER_KEYS = {"algo", "total_timesteps", "n_envs", "hyper", "checkpoints", "samples", "device"}


class RecipeError(RecipeValueError):
    """A recipe is invalid; the message names the field, the value and the fix."""


@dataclass
class Recipe:
    name: str
    seed: int
    env_id: str
    env_kwargs: dict
    rewards: dict[str, dict]
    targets: dict[str, list[float]]
    trainer: dict
    nonfinite: str = "raise"
    judges: list[str] = field(default_factory=list)
    source: str = "<recipe>"

    def to_dict(self) -> dict:
        return {"name": self.name, "seed": self.seed,
                "env": {"id": self.env_id, "kwargs": copy.deepcopy(self.env_kwargs)},
                "rewards": copy.deepcopy(self.rewards), "targets": copy.deepcopy(self.targets),
                "trainer": copy.deepcopy(self.trainer), "nonfinite": self.nonfinite,
                "judges": list(self.judges)}

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def _unknown_keys(where: str, got: dict, known: set[str]) -> None:
    for key in got:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RecipeError(f"{where}: unknown key {key!r}.{hint} Known keys: {sorted(known)}")


def _int(field_: str, value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RecipeError(f"{field_} = {value!r}: must be an integer >= {low}")
    return value


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file {str(path)!r} does not exist; pass a YAML file such as "
                          "recipes/mario_latent.yaml (see `rlcreate recipes`)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise RecipeError(f"{path}: not UTF-8 text; save the recipe as UTF-8") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from None
    return parse_recipe(data, source=str(path))


def parse_recipe(data: Any, source: str = "<recipe>") -> Recipe:
    from rlcreate.envs.registration import ENV_IDS

    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping (name:, env:, rewards:, trainer:), "
                          f"got {type(data).__name__}")
    _unknown_keys(source, data, TOP_KEYS)
    name = data.get("name") or (Path(source).stem if source != "<recipe>" else "run")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise RecipeError(f"name = {name!r}: use letters, digits, '-', '_' or '.' (it names the run folder)")
    seed = _int("seed", data.get("seed", 0))

    env = data.get("env") or {}
    if isinstance(env, str):
        env = {"id": env}
    if not isinstance(env, dict):
        raise RecipeError(f"env = {env!r}: write env: {{id: rlcreate/MarioLatent-v0, kwargs: {{...}}}}")
    _unknown_keys("env", env, ENV_KEYS)
    env_id = env.get("id")
    if env_id not in ENV_IDS:
        close = difflib.get_close_matches(str(env_id), ENV_IDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RecipeError(f"env.id = {env_id!r} is not an rlcreate environment.{hint} Known: {sorted(ENV_IDS)}")
    env_kwargs = env.get("kwargs") or {}
    if not isinstance(env_kwargs, dict):
        raise RecipeError(f"env.kwargs = {env_kwargs!r}: must be a mapping of argument names to values")

    rewards = data.get("rewards")
    if not isinstance(rewards, dict) or not rewards:
        raise RecipeError("rewards: a recipe needs at least one reward term, e.g. "
                          "rewards: {playability: {weight: 1.0}}")
    norm_rewards = {}
    for term, spec in rewards.items():
        spec = {"weight": spec} if isinstance(spec, (int, float)) and not isinstance(spec, bool) else spec
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            raise RecipeError(f"rewards.{term} = {spec!r}: write a number (the weight) or a mapping "
                              "with weight/transform/args")
        _unknown_keys(f"rewards.{term}", spec, TERM_KEYS)
        make_weight(spec.get("weight", 1.0), field=f"rewards.{term}.weight")  # validate now
        make_transform(spec.get("transform"), field=f"rewards.{term}.transform")
        if not isinstance(spec.get("args", {}) or {}, dict):
            raise RecipeError(f"rewards.{term}.args = {spec['args']!r}: must be a mapping")
        norm_rewards[str(term)] = {"reward": spec.get("reward", term), "weight": spec.get("weight", 1.0),
                                   "transform": spec.get("transform"), "args": dict(spec.get("args") or {})}

    targets = data.get("targets") or {}
    if not isinstance(targets, dict):
        raise RecipeError(f"targets = {targets!r}: write a mapping name -> [low, high]")
    norm_targets = {}
    for tname, rng in targets.items():
        ok = (isinstance(rng, (list, tuple)) and len(rng) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in rng)
              and rng[0] <= rng[1])
        if not ok:
            raise RecipeError(f"targets.{tname} = {rng!r}: write [low, high] with finite numbers, low <= high")
        norm_targets[str(tname)] = [float(rng[0]), float(rng[1])]

    trainer = dict(data.get("trainer") or {})
    _unknown_keys("trainer", trainer, TRAINER_KEYS)
    algo = trainer.get("algo", "maskable_ppo" if "Tokens" in env_id else "ppo")
    if algo not in ALGOS:
        close = difflib.get_close_matches(str(algo), ALGOS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RecipeError(f"trainer.algo = {algo!r}.{hint} Use one of {ALGOS}")
    norm_trainer = {
        "algo": algo,
        "total_timesteps": _int("trainer.total_timesteps", trainer.get("total_timesteps", 20000), 1),
        "n_envs": _int("trainer.n_envs", trainer.get("n_envs", 16), 1),
        "hyper": dict(trainer.get("hyper") or {}),
        "checkpoints": _int("trainer.checkpoints", trainer.get("checkpoints", 4), 0),
        "samples": _int("trainer.samples", trainer.get("samples", 16), 1),
        "device": trainer.get("device", "cpu"),
    }
    nonfinite = data.get("nonfinite", "raise")
    if nonfinite not in ("raise", "clip", "zero"):
        raise RecipeError(f"nonfinite = {nonfinite!r}: use raise, clip or zero")
    judges = data.get("judges") or []
    if not isinstance(judges, list):
        raise RecipeError(f"judges = {judges!r}: write a list of judge names")
    return Recipe(name, seed, env_id, dict(env_kwargs), norm_rewards, norm_targets, norm_trainer,
                  nonfinite, [str(j) for j in judges], source)


def build_reward_set(recipe: Recipe) -> RewardSet:
    """Instantiate the recipe's reward terms (registry names or dotted paths) into a RewardSet."""
    terms = []
    for name, spec in recipe.rewards.items():
        try:
            module = get_reward(spec["reward"], **spec["args"])
        except TypeError as exc:
            raise RecipeError(f"rewards.{name}.args = {spec['args']!r}: {exc}") from None
        terms.append(Term(name, module, spec["weight"], spec["transform"]))
    return RewardSet(terms, nonfinite=recipe.nonfinite)
