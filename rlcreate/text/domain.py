"""The text domain: steering a causal LM token by token (``rlcreate/TextTokens-v0``).

Env settings, prompts and the steered-vs-plain comparison: :mod:`rlcreate.text.runs`; evaluation,
flags and the report section: :mod:`rlcreate.text.evaluate`; judges:
:mod:`rlcreate.text.judges`; baselines: :mod:`rlcreate.text.baselines`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from rlcreate.domains import BUILTIN, CliOption, Domain, EvalResult
from rlcreate.text.evaluate import base_lm
from rlcreate.validate import int_arg

__all__ = ["TextDomain", "DOMAIN"]

#: default reward terms of TextTokens-v0 (term -> recipe spec): the one definition
DEFAULT_TEXT_REWARDS: dict[str, dict] = {
    "novelty": {"reward": "text_novelty", "weight": 1.0},
    "fluency": {"reward": "fluency", "weight": 1.0},
    "relevance": {"reward": "relevance", "weight": 0.5},
    "memorization": {"reward": "memorization", "weight": 0.5},
}


class TextDomain(Domain):
    name = "text"
    artifact = "text"
    envs = BUILTIN["text"].envs
    vector_envs = BUILTIN["text"].vector_envs
    reward_modules = BUILTIN["text"].reward_modules
    cli_options = {
        "baseline": (
            CliOption(
                ("--n",),
                "best-of-n: candidates per prompt (default 8); several-answers: answers per reply (default 4)",
                int_arg(1, 10000),
            ),
        ),
    }
    baseline_keys = ("n", "grid")
    generates_from = ("policy", "generator")  # a steering policy, or the LM itself fine-tuned (GRPO)
    counterparts = {
        "text_novelty": (
            "ngram_novelty",
            "novel_3grams",
            "MiniLM embedding novelty vs share of word 3-grams not in the reference corpus",
        ),
        "fluency": (
            "perplexity",
            "fluency_standalone",
            "in-context (chat-templated prompt) likelihood vs likelihood of the text read standalone",
        ),
    }

    def default_rewards(self, env_id: str) -> dict[str, dict]:
        return {k: dict(v) for k, v in DEFAULT_TEXT_REWARDS.items()}

    def default_algo(self, env_id: str) -> str:
        return "maskable_ppo"

    def make_vec_env(self, asm: Any, n_envs: int, seed: int, purpose: str = "train") -> Any:
        from rlcreate.text.evaluate import shared_lm
        from rlcreate.text.runs import build_text_env

        field = "prompts" if purpose == "train" else "eval_prompts"
        return build_text_env(
            asm.recipe, lm=shared_lm(asm), reward=asm.reward_set, prompts_field=field, n_envs=n_envs, seed=seed
        )

    def judge_names(self) -> list[str]:
        from rlcreate.text.judges import TEXT_JUDGES

        return sorted(TEXT_JUDGES)

    def check(self, recipe: Any) -> None:
        from rlcreate.text.judges import check_text_judges
        from rlcreate.text.runs import resolve_prompts, text_settings

        settings = text_settings(recipe)
        for field in ("prompts", "eval_prompts"):  # both files are read before anything is written
            resolve_prompts(settings[field], f"env.kwargs.{field}")
        check_text_judges(recipe.judges)

    # ---------------------------------------------------------------- runs
    def generate(
        self, model: Any, asm: Any, n: int, out: Path, targets: dict | None = None, seed: int | None = None
    ) -> dict:
        from rlcreate.text.evaluate import shared_lm
        from rlcreate.text.runs import compare_with_plain
        from rlcreate.text.tuned import compare_with_base
        from rlcreate.trainers import TunedGenerator

        if targets:
            raise self.unsupported("--targets (text recipes have no control targets)")
        seed = asm.recipe.seed + 1 if seed is None else seed
        if isinstance(model, TunedGenerator):  # the LM itself was fine-tuned: tuned vs base samples
            return compare_with_base(model, asm.recipe, base_lm(asm, model), asm.reward_set, n, Path(out), seed)
        return compare_with_plain(model, asm.recipe, shared_lm(asm), asm.reward_set, n, Path(out), seed=seed)

    def evaluate(self, run: Path, asm: Any, **options: Any) -> EvalResult:
        from rlcreate.text.evaluate import evaluate_text_run

        # a plain dict: it carries text-only keys (groups, primary) that EvalResult cannot declare
        return cast(EvalResult, evaluate_text_run(run, asm, **options))

    def baseline_methods(self) -> dict[str, Any]:
        from rlcreate.text.baselines import TEXT_METHODS, run_text_baseline

        def run(
            asm, method, run_dir, budget=None, batch=None, section=None, progress_bar=True, n=None, grid=None, lm=None
        ):
            section = section or {}
            return run_text_baseline(
                asm.recipe,
                method,
                run_dir,
                budget=budget,
                batch=batch,
                n=n if n is not None else section.get("n"),
                grid=grid if grid is not None else section.get("grid"),
                lm=lm or asm.shared.get("lm"),
                section=section,
                progress_bar=progress_bar,
            )

        return {m: run for m in TEXT_METHODS}

    def check_baseline_section(self, section: dict) -> dict:
        from rlcreate.evaluation.baselines import BaselineError
        from rlcreate.recipe import RecipeError
        from rlcreate.text.baselines import _check_grid
        from rlcreate.validate import check_int

        out = dict(section)
        for key in out:
            if key not in ("n", "grid"):
                raise RecipeError(f"baselines.{key}: does not apply to text recipes; remove it")
        if "n" in out:
            check_int("baselines.n", out["n"], 2, error=RecipeError)
        if "grid" in out:
            if not isinstance(out["grid"], list):
                raise RecipeError(f"baselines.grid = {out['grid']!r}: write a list of [temperature, top_p] pairs")
            try:
                out["grid"] = [list(g) for g in _check_grid(out["grid"])]
            except BaselineError as err:
                raise RecipeError(str(err)) from None
        return out

    def audit_checkpoint(
        self, asm: Any, model: Any, progress: float, n: int, deterministic: bool, seed: int, judges: list[str]
    ) -> tuple[dict, dict, dict]:
        from rlcreate.text.evaluate import audit_texts

        return audit_texts(asm, model, progress, n, deterministic, seed, judges)

    # ---------------------------------------------------------------- reports
    def read_samples(self, folder: Path) -> list:
        from rlcreate.text.runs import read_text_records

        return read_text_records(folder)

    def gallery_html(self, run_data: dict, index: int, img_dir: Path, limit: int) -> str:
        from rlcreate.text.evaluate import texts_html

        return texts_html(run_data, limit)


DOMAIN = TextDomain()
