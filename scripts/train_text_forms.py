"""Train the multi-form recipe (rlcreate/recipes/text_forms.yaml) for several seeds, one after another.

Each seed is an ordinary ``rlcreate train`` run (TRL GRPO + LoRA) of a copy of the recipe with
``seed:`` set, written to ``<out>/seed<k>/``: ``model/`` (merged), ``tb/`` (``rewards/<form>``: the
per-form learning curves), ``checkpoints/step_<N>/`` (LoRA adapter and TRL's ``trainer_state.json``,
the same log as JSON). ``scripts/bench_text_forms.py`` then judges the models on TEST prompts.

    OMP_NUM_THREADS=1 python scripts/train_text_forms.py --seeds 0 1 2 [--steps 60] [--resume]
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import yaml


@dataclasses.dataclass
class Config:
    recipe: str = "rlcreate/recipes/text_forms.yaml"
    """the multi-form recipe"""
    seeds: tuple[int, ...] = (0, 1, 2)
    """training seeds, run one after another"""
    steps: int | None = None
    """override finetune.steps (default: the recipe's)"""
    out: str = "runs/text_forms"
    """a run folder per seed under here (and the per-seed recipe copies)"""
    resume: bool = False
    """continue each seed from its latest checkpoint"""


def main(cfg: Config) -> None:
    if not cfg.seeds:  # tyro accepts `--seeds` with no value
        print("error: --seeds needs at least one seed, e.g. --seeds 0 1 2", file=sys.stderr)
        raise SystemExit(2)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed in cfg.seeds:
        data = yaml.safe_load(Path(cfg.recipe).read_text(encoding="utf-8"))
        data["seed"] = seed
        copy = out / f"recipe_seed{seed}.yaml"
        copy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        cmd = [sys.executable, "-m", "rlcreate.cli", "train", str(copy), "--out", str(out), "--name", f"seed{seed}",
               "--quiet"] + (["--steps", str(cfg.steps)] if cfg.steps else []) + (["--resume"] if cfg.resume else [])
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        print(f"seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    from rlcreate.scripting import parse_config

    main(parse_config(Config))
