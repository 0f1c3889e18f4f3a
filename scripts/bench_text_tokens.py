"""Benchmark: TextTokens-v0 throughput vs. a plain KV-cache decode loop of the same LM and batch.

Reads top to bottom: config, seeding, build, then interleaved timing rounds (so machine load hits
both paths alike), then JSON. Three paths, all emitting ``n_envs`` sequences of ``max_new_tokens``
tokens from the same prompts on SmolLM2-135M-Instruct:

- **env**: ``TextTokensVecEnv`` with ``n_envs`` rows, a uniform random policy over the allowed
  top-k slots, auto-reset (finished rows restart individually, spliced into the shared cache);
- **plain**: the raw generator doing the same work, a hand-written batched loop (prefill, then one
  forward per token with the KV cache and ``logits_to_keep=1``, top-k sampling), new batch every
  ``max_new_tokens`` tokens;
- **one_forward_per_env** (for orientation, the RL4LMs way): ``n_envs`` single-sequence envs, each
  stepped with its own batch-1 forward.
Plus ``generate()`` at the same batch for orientation. Throughput is in tokens (= env steps) per
second summed over all sequences; the headline number is ``env / plain`` (target >= 0.8).

Run: ``.venv/bin/python scripts/bench_text_tokens.py [--n-envs 32 --rounds 3 ...]``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from rlcreate.scripting import parse_config


@dataclass
class Config:
    n_envs: int = 32
    """parallel sequences (VecEnv rows, plain-loop batch size)"""
    max_new_tokens: int = 32
    """episode length cap; the plain loop also starts a new batch after this many tokens"""
    top_k: int = 16
    """action-space size of the env; the plain loop samples from the same top-k"""
    steps_per_round: int = 64
    """batch-steps timed per round for the env and for the plain loop"""
    rounds: int = 3
    """interleaved timing rounds (env, plain, env, plain, ...)"""
    single_env_steps: int = 4
    """steps per env for the one-forward-per-env path (n_envs x this many batch-1 forwards)"""
    generate_rounds: int = 1
    """generate() calls of n_envs x max_new_tokens for orientation (0 to skip)"""
    threads: int = 0
    """torch intra-op threads (0 = torch's default)"""
    seed: int = 0
    """seeds prompt draws, the random policy and sampling"""
    out: str = "runs/bench/text_tokens.json"
    """where the JSON result is written"""


class ZeroReward:
    """Constant 0: the benchmark measures stepping, not reward modules."""

    __name__ = "zero"

    def __call__(self, texts, **context):
        return [0.0] * len(texts)


cfg = parse_config(Config)

# ---- seeding and threads, in one place
if cfg.threads:
    torch.set_num_threads(cfg.threads)
torch.manual_seed(cfg.seed)
rng = np.random.default_rng(cfg.seed)

# ---- build
from rlcreate.benchmark import environment, finish, write_json  # noqa: E402
from rlcreate.hf_cache import cache_argument, returned_cache  # noqa: E402
from rlcreate.text.data import prompts as shipped_prompts  # noqa: E402
from rlcreate.text.envs import make_text_tokens_env, make_text_tokens_vec_env  # noqa: E402
from rlcreate.text.loading import load_causal_lm  # noqa: E402
from rlcreate.text.stepping import LMStepper  # noqa: E402

bench_env = environment(dataclasses.asdict(cfg))

t0 = time.perf_counter()
model, tokenizer = load_causal_lm()
load_s = time.perf_counter() - t0
prompts = shipped_prompts("train")
vec_env = make_text_tokens_vec_env(n_envs=cfg.n_envs, lm=(model, tokenizer), reward=ZeroReward(),
                                   prompts=prompts, top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens,
                                   seed=cfg.seed)
plain_stepper = LMStepper(model, tokenizer, top_k=cfg.top_k)  # only used to format/encode prompts


def random_masked_actions(masks: np.ndarray) -> np.ndarray:
    """Uniform random allowed slot per row (the trivial policy)."""
    scores = rng.random(masks.shape) * masks
    return scores.argmax(axis=1)


def time_env(n_steps: int) -> dict:
    episodes = 0
    start = time.perf_counter()
    for _ in range(n_steps):
        _, _, dones, _ = vec_env.step(random_masked_actions(vec_env.action_masks()))
        episodes += int(dones.sum())
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "tokens": n_steps * cfg.n_envs, "episodes_finished": episodes,
            "cache_length_end": vec_env.core.stepper.cache_length}


plain_state = {"t": cfg.max_new_tokens}  # forces a prefill on the first call


@torch.inference_mode()
def plain_prefill():
    batch = [prompts[i] for i in rng.integers(len(prompts), size=cfg.n_envs)]
    ids = plain_stepper.encode_prompts(batch)
    width = max(len(x) for x in ids)
    input_ids = torch.full((cfg.n_envs, width), plain_stepper.pad_token_id)
    mask = torch.zeros((cfg.n_envs, width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, width - len(x):] = torch.tensor(x)
        mask[i, width - len(x):] = 1
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    plain_state.update(cache=returned_cache(out), mask=mask, pos=mask.sum(1), logits=out.logits[:, -1], t=0)


@torch.inference_mode()
def time_plain(n_steps: int) -> dict:
    start = time.perf_counter()
    for _ in range(n_steps):
        if plain_state["t"] >= cfg.max_new_tokens:
            plain_prefill()
        top_logits, top_ids = plain_state["logits"].topk(cfg.top_k, dim=-1)
        pick = torch.multinomial(torch.softmax(top_logits, -1), 1)
        tokens = top_ids.gather(1, pick)
        mask = torch.cat([plain_state["mask"], plain_state["mask"].new_ones((cfg.n_envs, 1))], 1)
        out = model(input_ids=tokens, attention_mask=mask, position_ids=plain_state["pos"][:, None],
                    **{cache_argument(model): plain_state["cache"]}, use_cache=True, logits_to_keep=1)
        plain_state.update(cache=returned_cache(out), mask=mask, pos=plain_state["pos"] + 1,
                           logits=out.logits[:, -1], t=plain_state["t"] + 1)
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "tokens": n_steps * cfg.n_envs}


def time_one_forward_per_env() -> dict:
    envs = [make_text_tokens_env(lm=(model, tokenizer), reward=ZeroReward(), prompts=prompts,
                                 top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens) for _ in range(cfg.n_envs)]
    for i, env in enumerate(envs):
        env.reset(seed=cfg.seed + i)
    start = time.perf_counter()
    for _ in range(cfg.single_env_steps):
        for env in envs:
            _, _, terminated, truncated, _ = env.step(int(random_masked_actions(env.action_masks()[None])[0]))
            if terminated or truncated:
                env.reset()
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "tokens": cfg.single_env_steps * cfg.n_envs}


@torch.inference_mode()
def time_generate() -> dict:
    batch = [prompts[i] for i in rng.integers(len(prompts), size=cfg.n_envs)]
    texts = [tokenizer.decode(x) for x in plain_stepper.encode_prompts(batch)]
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    start = time.perf_counter()
    out = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, min_new_tokens=cfg.max_new_tokens,
                         do_sample=True, top_k=cfg.top_k, pad_token_id=plain_stepper.pad_token_id)
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "tokens": (out.shape[1] - enc["input_ids"].shape[1]) * cfg.n_envs}


def rate(runs: list[dict]) -> float:
    return sum(r["tokens"] for r in runs) / sum(r["seconds"] for r in runs)


# ---- warm-up (first forwards allocate; not timed)
vec_env.reset()
time_env(4)
time_plain(4)

# ---- interleaved timing rounds
load_before = os.getloadavg()
env_runs, plain_runs = [], []
for r in range(cfg.rounds):
    env_runs.append(time_env(cfg.steps_per_round))
    plain_runs.append(time_plain(cfg.steps_per_round))
    print(f"round {r}: env {env_runs[-1]['tokens'] / env_runs[-1]['seconds']:.1f} tok/s, "
          f"plain {plain_runs[-1]['tokens'] / plain_runs[-1]['seconds']:.1f} tok/s", flush=True)
single_run = time_one_forward_per_env()
generate_runs = [time_generate() for _ in range(cfg.generate_rounds)]
load_after = os.getloadavg()

env_rate, plain_rate = rate(env_runs), rate(plain_runs)
per_round = [e["tokens"] / e["seconds"] / (p["tokens"] / p["seconds"]) for e, p in zip(env_runs, plain_runs)]
result = {
    "benchmark": "bench_text_tokens",
    "settings": dataclasses.asdict(cfg),
    "model": {"name": "smollm2-135m-instruct", "parameters": sum(p.numel() for p in model.parameters()),
              "dtype": str(next(model.parameters()).dtype), "load_seconds": load_s},
    "tokens_per_s": {"env": env_rate, "plain_loop": plain_rate, "one_forward_per_env": rate([single_run]),
                     "generate": rate(generate_runs) if generate_runs else None},
    "ratio_env_over_plain": env_rate / plain_rate,
    "ratio_per_round": per_round,
    "ratio_one_forward_per_env_over_plain": rate([single_run]) / plain_rate,
    "target_ratio": 0.8,
    "runs": {"env": env_runs, "plain": plain_runs, "one_forward_per_env": single_run, "generate": generate_runs},
    "loadavg_timed_rounds": {"before": load_before, "after": load_after},
}
result = {**finish(bench_env), **result}

# ---- save
out = write_json(cfg.out, result)
print(json.dumps({k: result[k] for k in ("tokens_per_s", "ratio_env_over_plain", "ratio_per_round")}, indent=2))
print(f"wrote {out}")
