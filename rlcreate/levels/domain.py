"""The levels domain (Super Mario Bros): what the generic layers need to know about level runs.

Envs: :mod:`rlcreate.levels.envs`; samples: :mod:`rlcreate.levels.samples`; judges:
:mod:`rlcreate.levels.judges`; QD descriptors: :mod:`rlcreate.levels.qd`; search baselines:
:mod:`rlcreate.levels.search`; evaluation and report sections: :mod:`rlcreate.levels.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from rlcreate.domains import BUILTIN, CliOption, Domain, EvalResult
from rlcreate.validate import int_arg

__all__ = ["LevelsDomain", "DOMAIN"]


class LevelsDomain(Domain):
    name = "levels"
    artifact = "level"
    envs = BUILTIN["levels"].envs
    vector_envs = BUILTIN["levels"].vector_envs
    reward_modules = BUILTIN["levels"].reward_modules
    cli_options = {
        "eval": (
            CliOption(("--astar-runs",), "A* plays per level (default 2)", int_arg(1, 100)),
            CliOption(
                ("--astar-levels",),
                "the A* agent plays only the first N judged levels (default all)",
                int_arg(1, 100000),
            ),
        ),
        "baseline": (
            CliOption(
                ("--descriptors",),
                "QD behaviour descriptors, comma-separated (default leniency,linearity)",
                lambda text: [t.strip() for t in text.split(",") if t.strip()],
            ),
        ),
    }
    baseline_keys = ("descriptors",)
    counterparts = {
        "playability": ("astar", "win_rate", "fast-solver playability vs the real A* agent's win rate"),
        "level_novelty": (
            "novelty",
            "heldout_distance",
            "novelty (training windows + own archive) vs distance to held-out corpus windows",
        ),
        "style_coherence": ("tile_kl", "coherence_3x3", "exp(-KL) with 2x2 patterns vs exp(-KL) with 3x3 patterns"),
        "tension_curve": (
            "engagement",
            "request_fit",
            "the requested curve met in a model of play vs met in the A* agent's play",
        ),
    }

    def default_rewards(self, env_id: str) -> dict[str, dict]:
        from rlcreate.levels.envs import DEFAULT_REWARDS

        return {k: dict(v) for k, v in DEFAULT_REWARDS.items()}

    def default_targets(self, env_id: str) -> dict[str, list[float]]:
        from rlcreate.levels.envs import DEFAULT_TARGETS

        return {k: list(v) for k, v in DEFAULT_TARGETS.items()}

    def default_algo(self, env_id: str) -> str:
        return "maskable_ppo" if env_id == "rlcreate/MarioTokens-v1" else "ppo"

    @staticmethod
    def sampled(asm: Any) -> bool:
        """Whether samples come from the policy's distribution (seeded) rather than its mode: token
        policies' modes collapse to the LM's most likely column (flat floors), so they are sampled."""
        return asm.recipe.env_id == "rlcreate/MarioTokens-v1"

    def judge_names(self) -> list[str]:
        from rlcreate.levels.judges import JUDGES

        return sorted(JUDGES)

    def check(self, recipe: Any) -> None:
        from rlcreate.levels.judges import check_judges
        from rlcreate.levels.rewards import TARGET_MEASURES
        from rlcreate.recipe import RecipeError
        from rlcreate.validate import check_choice

        check_judges(recipe.judges)
        for name, (low, high) in recipe.targets.items():  # a misspelt target trained until target_match raised
            check_choice(f"targets.{name}", name, sorted(TARGET_MEASURES), "a control target", RecipeError)
            # targets count per 16 columns of 14 rows: more than that window holds cannot be measured
            most = 8 if name == "gaps" else 14 * 16
            if not 0 <= low <= high <= most:
                raise RecipeError(f"targets.{name} = {[low, high]}: counts per 16 columns must lie in [0, {most}]")

    # ---------------------------------------------------------------- runs
    def generate(
        self, model: Any, asm: Any, n: int, out: Path, targets: dict | None = None, seed: int | None = None
    ) -> dict:
        from rlcreate.assemble import Assembly
        from rlcreate.levels.samples import write_levels
        from rlcreate.train.runner import rollout

        if targets:  # same reward set (and state), recipe with the targets pinned
            asm = Assembly(asm.recipe.with_targets(targets), self, asm.reward_set, asm.shared)
            self.check(asm.recipe)
        seed = asm.recipe.seed + 1 if seed is None else seed
        venv = asm.make_env(min(n, 16), seed, purpose="eval")
        model.set_random_seed(seed)
        episodes = rollout(model, venv, n, deterministic=not self.sampled(asm))
        return write_levels(
            [{"level": e["level"], "targets": e.get("targets", {})} for e in episodes], Path(out), asm.reward_set
        )

    def score_samples(self, asm: Any, episodes: list[dict]) -> None:
        from rlcreate.levels.samples import summarise_levels

        summarise_levels([e["level"] for e in episodes], asm.reward_set)  # whole levels, as write_levels

    def evaluate(self, run: Path, asm: Any, **options: Any) -> EvalResult:
        from rlcreate.levels.evaluate import evaluate_level_run

        return cast(EvalResult, evaluate_level_run(run, asm, **options))

    def baseline_methods(self) -> dict[str, Any]:
        from rlcreate.levels.search import METHODS, run_search

        return {m: run_search for m in METHODS}

    def check_baseline_section(self, section: dict) -> dict:
        from rlcreate.levels.search import check_search_section

        return check_search_section(section)

    def audit_checkpoint(
        self, asm: Any, model: Any, progress: float, n: int, deterministic: bool, seed: int, judges: list[str]
    ) -> tuple[dict, dict, dict]:
        from rlcreate.levels.evaluate import audit_levels

        return audit_levels(asm, model, progress, n, deterministic, seed, judges)

    def register_commands(self, sub: Any) -> None:
        from rlcreate.levels.cli import register

        register(sub)

    # ---------------------------------------------------------------- reports
    def read_samples(self, folder: Path) -> list:
        from rlcreate.levels.evaluate import read_levels

        return read_levels(folder) if Path(folder).is_dir() else []

    def figures_html(self, runs: list[dict], img_dir: Path) -> str:
        from rlcreate.levels.evaluate import figures_html

        return figures_html(runs, img_dir)

    def gallery_html(self, run_data: dict, index: int, img_dir: Path, limit: int) -> str:
        from rlcreate.levels.evaluate import gallery_html

        return gallery_html(run_data, index, img_dir, limit)


DOMAIN = LevelsDomain()
