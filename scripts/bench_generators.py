"""Benchmark the shipped level generators; prints and saves JSON.

Measures, in one run (ratios are what to compare across machines):
- VAE decode per call at batch 1 and 64: ``decode`` (torch) vs the numpy copy of the decoder;
- column LM, 100 new columns at batch 1 and 16: our KV-cache loop vs transformers' ``generate()``
  doing the same sampling (the obvious alternative).

    .venv/bin/python scripts/bench_generators.py                  # -> runs/bench_generators.json
    .venv/bin/python scripts/bench_generators.py --repeats 2 --out /tmp/b.json
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from rlcreate.levels.generators.column_lm import N_SPECIAL, ColumnLM
from rlcreate.levels.generators.latent import LatentLevelGenerator
from rlcreate.scripting import parse_config


@dataclass
class BenchConfig:
    repeats: int = 5
    """Timed repetitions per measurement (the median is reported)."""
    vae_calls: int = 200
    """Decode calls per VAE repetition."""
    threads: int = 1
    """torch CPU threads (the RL envs run many processes; 1 thread each is the realistic setting)."""
    seed: int = 0
    """Seed for latents and sampling."""
    out: str = "runs/bench_generators.json"
    """Where the JSON goes."""


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, lazy init)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_vae(cfg: BenchConfig) -> dict:
    gen = LatentLevelGenerator.load()
    rng = np.random.default_rng(cfg.seed)
    out = {}
    for batch in (1, 64):
        z = rng.standard_normal((batch, gen.latent_dim)).astype(np.float32)
        assert np.array_equal(gen.decode(z), gen.decode_numpy(z))  # same levels both ways

        def run(f, z=z):  # bind this batch's latents
            return lambda: [f(z) for _ in range(cfg.vae_calls)]
        ours = median_seconds(run(gen.decode), cfg.repeats) / cfg.vae_calls
        numpy_path = median_seconds(run(gen.decode_numpy), cfg.repeats) / cfg.vae_calls
        out[f"batch_{batch}"] = {"decode_ms_per_call": ours * 1e3, "numpy_ms_per_call": numpy_path * 1e3,
                                 "numpy_over_decode": numpy_path / ours, "segments_per_s": batch / ours}
    return out


def bench_column_lm(cfg: BenchConfig) -> dict:
    lm = ColumnLM.load()
    out = {}
    for batch in (1, 16):
        ours = median_seconds(lambda batch=batch: lm.generate(100, batch=batch, seed=cfg.seed), cfg.repeats)

        def hf_generate(batch=batch):  # bind this iteration's batch size
            bos = torch.zeros((batch, 1), dtype=torch.long)
            torch.manual_seed(cfg.seed)
            with torch.inference_mode():
                lm.model.generate(bos, attention_mask=torch.ones_like(bos), do_sample=True, top_k=0,
                                  max_new_tokens=100, min_new_tokens=100, suppress_tokens=list(range(N_SPECIAL)),
                                  pad_token_id=0)
        hf = median_seconds(hf_generate, cfg.repeats)
        out[f"batch_{batch}"] = {"ours_s_per_100_columns": ours, "hf_generate_s_per_100_columns": hf,
                                 "hf_over_ours": hf / ours, "columns_per_s": 100 * batch / ours}
    return out


def main(cfg: BenchConfig) -> dict:
    from rlcreate.benchmark import environment, finish, write_json

    torch.set_num_threads(cfg.threads)
    env = environment(asdict(cfg))
    result = {
        "vae_decode": bench_vae(cfg),
        "column_lm_generate": bench_column_lm(cfg),
        "reference": "MarioGPT (one token per tile, distilgpt2): ~293 s per 100-column level on a desktop CPU",
    }
    result = {**finish(env), **result}
    write_json(cfg.out, result)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(parse_config(BenchConfig))
