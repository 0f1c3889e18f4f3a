"""Train the multi-form recipe (rlcreate/recipes/text_forms.yaml) for several seeds, one after another.

Each seed is an ordinary ``rlcreate finetune`` run (GRPO + LoRA through
:func:`rlcreate.text.finetune.finetune_recipe`) written to ``<out>/seed<k>/``: ``model/`` (merged),
``tb/`` (``rewards/<form>/mean``: the per-form learning curves), ``trl/checkpoint-*/trainer_state.json``
(the same log as JSON) and ``finetune_report.json``. ``scripts/bench_text_forms.py`` then judges
the models on TEST prompts.

    OMP_NUM_THREADS=1 python scripts/train_text_forms.py --seeds 0 1 2 --steps 80
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


@dataclasses.dataclass
class Config:
    recipe: str = "rlcreate/recipes/text_forms.yaml"
    """the multi-form recipe"""
    seeds: tuple[int, ...] = (0, 1, 2)
    """training seeds, run one after another"""
    steps: int | None = None
    """override finetune.steps (default: the recipe's)"""
    out: str = "runs/text_forms"
    """a run folder per seed under here"""
    eval_prompts: int = 5
    """DEV prompts (interleaved forms) for finetune's own before/after check; the TEST judging is the
    benchmark's, so this is kept small"""
    save_steps: int = 5
    """checkpoint every this many steps, so a run stopped early still has a recent adapter (the
    benchmark loads the latest checkpoint when model/ is missing)"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default=Config.recipe)
    p.add_argument("--seeds", type=int, nargs="+", default=list(Config.seeds))
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--out", default=Config.out)
    p.add_argument("--eval-prompts", type=int, default=Config.eval_prompts)
    p.add_argument("--save-steps", type=int, default=Config.save_steps)
    p.add_argument("--resume", action="store_true", help="continue each seed from its latest checkpoint")
    a = p.parse_args()
    cfg = Config(a.recipe, tuple(a.seeds), a.steps, a.out, a.eval_prompts, a.save_steps)

    from rlcreate.text.data import prompts
    from rlcreate.text.finetune import finetune_recipe, load_finetune_recipe

    for seed in cfg.seeds:
        recipe, section = load_finetune_recipe(cfg.recipe)
        recipe.seed = seed
        section = dict(section or {}, eval_prompts=prompts("forms_dev")[: cfg.eval_prompts],
                       save_steps=cfg.save_steps)
        start = time.perf_counter()
        report = finetune_recipe(recipe, section, Path(cfg.out) / f"seed{seed}", steps=cfg.steps, progress_bar=False,
                                 resume=a.resume)
        print(json.dumps({"seed": seed, "steps": report["steps"], "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
