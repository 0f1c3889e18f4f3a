"""The MarioLatent-v1 speed paths change no result: the column LM decoding uniform noise writes the
same segments when rows that share a prompt are decoded as one group (prompt encoded once, common
prefix stepped once, a preallocated KV cache, probabilities sorted as values and each draw mapped
back to its column in the stable order) as when every row is decoded on its own
(``shared_decode = False``: the decode before those changes); the
candidates env writes the same candidates, levels, observations and rewards either way; the
whole-stack element profile counts what ``element_counts`` counts level by level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gen():
    from rlcreate.levels.gan import ColumnLMLatent

    return ColumnLMLatent()  # the shipped column LM, shipped settings


def both(gen, *args, **kw):
    """``decode`` through the shared (fast) path and the per-row reference path."""
    fast = gen.decode(*args, **kw)
    gen.shared_decode = False
    try:
        ref = gen.decode(*args, **kw)
    finally:
        del gen.shared_decode
    return fast, ref


def test_shared_decode_writes_the_same_segments_as_decoding_every_row(gen):
    rng = np.random.default_rng(0)
    levels = gen.sample_levels(12, 3, seed=1)
    k = 4  # candidates of a level: the same context, control and cap, different quantiles
    ctx = np.repeat(levels[:, :, 16:48], k, axis=0)
    z = rng.uniform(-1, 1, (len(ctx), gen.latent_dim)).astype(np.float32)
    control = np.repeat(rng.uniform(-0.6, 0.6, (12, 2)), k, axis=0)
    limit = np.repeat(rng.integers(0, 3, (12, 2)).astype(np.float64), k, axis=0)
    limit[::8, 1] = np.inf  # no cap on gaps for some levels
    cases = {
        "context": ((z, ctx), {"final": False}),
        "context + control + cap": ((z, ctx), {"final": False, "control": control, "limit": limit}),
        "level start (no prompt: one group for every row)": ((z,), {"final": False}),
        "last segment": ((z, ctx), {"final": True, "control": control}),
        "distinct contexts (the bare generator's batch)": ((z[:12], levels[:, :, 16:48]), {"final": False}),
    }
    for name, (args, kw) in cases.items():
        fast, ref = both(gen, *args, **kw)
        assert fast.dtype == ref.dtype == np.int8 and fast.shape == ref.shape, name
        assert np.array_equal(fast, ref), f"{name}: {int((fast != ref).any(axis=(1, 2)).sum())} segments differ"
    # the extra element channels (a cap only on enemies and gaps, the first two)
    from rlcreate.levels.gan import ColumnLMLatent

    extra = ColumnLMLatent(gen.lm, extra_controls=("coins", "gap_len"))
    control4 = np.concatenate([control, np.repeat(rng.uniform(-0.6, 0.6, (12, 2)), k, axis=0)], 1)
    limit4 = np.concatenate([limit, np.full((len(z), 2), np.inf)], 1)
    fast, ref = both(extra, z, ctx, final=False, control=control4, limit=limit4)
    assert np.array_equal(fast, ref), "extra controls"
    # the candidates of a level really share work: equal first columns are common
    fast, _ = both(gen, z, ctx, final=False)
    first = fast[:, :, 0].reshape(12, k, -1)
    assert any(len({c.tobytes() for c in lv}) < k for lv in first)


def test_value_sorted_draw_draws_what_the_stable_index_sort_draws(gen):
    """The shared decode sorts probabilities as values and maps each drawn value back to its
    column (``_draw_sorted``); the reference sorts column indices stably (``_distribution``). Same
    column for every quantile, ties (equal probabilities, drawn inside their run) included, with
    the env's offsets, control, structure rule and cap; the reference's cumulative probabilities
    are the same bits as before (a stable sort of the same values)."""
    rng = np.random.default_rng(3)
    v = gen.lm.vocab_size
    logits = rng.normal(size=(8, v)).astype(np.float32)
    logits[:, : gen.n_special] = -np.inf
    logits[0, 10:40] = 1.5  # a run of equal logits
    logits[1, [12, 300, 301]] = logits[1, 11]
    logits[2, 5:] = 0.0  # almost all equal
    logits[3, 200] = 60.0  # one column holds almost everything; the rest ~1e-26 or 0
    prev = rng.integers(gen.n_special, v, 8)
    control = rng.uniform(-0.6, 0.6, (8, 2))
    limit = np.array([[0, 0], [1, 0], [2, 1], [np.inf, np.inf]] * 2, np.float64)
    rows = np.repeat(np.arange(8), 4001)
    u = np.tile(np.r_[np.linspace(0, 1, 4000), 1 - 1e-12], 8)
    for args in [(None, False, None, None), (prev, False, control, limit), (prev, True, control, limit)]:
        p = gen._probabilities(logits, *args)
        order, cdf = gen._distribution(logits, *args)
        ref = gen._draw(order, cdf, u, rows)
        fast = gen._draw_sorted(p, u, rows)
        assert np.array_equal(fast, ref), f"{int((fast != ref).sum())} draws differ"
        assert np.array_equal(np.cumsum(np.sort(p, axis=1)[:, ::-1], axis=1), cdf)  # the same bits
        drawn = np.unique(np.stack([rows, ref]), axis=1)
        assert (p[drawn[0], drawn[1]] > 0).all()  # never a column the rule or the cap left out
    # the runs of ties were drawn inside, at more than one column each
    assert len(np.unique(fast[rows == 0])) > 20 and len(np.unique(fast[rows == 2])) > 100


def candidates_env(tmp_path, n_segments: int = 3):
    import yaml

    from rlcreate.assemble import assemble
    from rlcreate.recipe import load_recipe

    doc = yaml.safe_load((ROOT / "rlcreate" / "recipes" / "mario_latent_candidates_terms.yaml").read_text())
    doc["env"]["kwargs"]["n_segments"] = n_segments
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(doc))
    return assemble(load_recipe(tmp_path / "r.yaml")).make_env(6, 7, "eval")


def rollout(venv, steps: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out: dict = {"obs": [venv.reset()], "cand": [venv.core.cand_seg.copy()], "rew": [], "levels": []}
    for _ in range(steps):
        a = rng.uniform(-1, 1, (venv.num_envs, venv.action_space.shape[0])).astype(np.float32)
        obs, rew, _, infos = venv.step(a)
        out["obs"].append(obs)
        out["cand"].append(venv.core.cand_seg.copy())
        out["rew"].append(rew)
        out["levels"] += [i["level"] for i in infos if "level" in i]
    return {k: np.stack(v) for k, v in out.items()}


def test_candidates_env_is_unchanged_by_the_shared_decode(tmp_path):
    """Same seed, same random picks: the same candidates, observations, rewards and finished levels
    with the shared decode as with every candidate decoded on its own (two whole levels)."""
    fast = rollout(candidates_env(tmp_path), 7, seed=1)
    venv = candidates_env(tmp_path)
    venv.core.gen.shared_decode = False
    ref = rollout(venv, 7, seed=1)
    assert len(fast["levels"]) == 12  # two levels of 3 segments per env
    for key in ("cand", "obs", "rew", "levels"):
        assert fast[key].shape == ref[key].shape and np.array_equal(fast[key], ref[key]), key
    assert fast["cand"].any()  # candidates were decoded, not left at zeros


def test_whole_stack_element_profile_counts_what_element_counts_counts():
    from rlcreate.levels.corpus import corpus_windows
    from rlcreate.levels.metrics import element_counts
    from rlcreate.levels.quality import ELEMENTS, element_profile

    rng = np.random.default_rng(0)
    stacks = {
        "human windows": corpus_windows(128, stride=16),
        "random tiles (pipes cut, enemies anywhere)": rng.integers(0, 13, (60, 14, 40)).astype(np.int8),
        "odd width": corpus_windows(128, stride=32)[:, :, :17],
    }
    for name, grids in stacks.items():
        fast = element_profile(grids)
        for e in ELEMENTS:
            want = np.array([element_counts(g)[e] * 128 / g.shape[1] for g in grids])
            assert np.array_equal(fast[e], want), f"{name}: {e}"
    assert element_profile(list(stacks["human windows"][:1]))["gaps"].shape == (1,)  # one level: the per-level path


def test_preallocated_cache_gives_the_same_logits_and_grows_past_its_capacity(gen):
    import torch

    from rlcreate.hf_cache import append_rows, preallocate

    lm = gen.lm
    prompt = gen.sample_levels(3, 2, seed=0)[:, :, :20]
    ids = np.array([[40, 41, 42], [50, 51, 52], [60, 61, 62], [40, 41, 42]])
    _, state = lm.start(4, prompt_grids=prompt[[0, 1, 2, 0]])
    plain = []
    for t in range(3):
        logits, state = lm.step(state, ids[:, t])
        plain.append(logits)
    _, state = lm.start(3, prompt_grids=prompt)
    assert preallocate(state.past_key_values, state.length + 1, rows=4)  # room for one step only: then it grows
    append_rows(state.past_key_values, torch.as_tensor([0]))  # row 3 continues row 0's prompt
    state.batch = 4
    for t in range(3):
        logits, state = lm.step(state, ids[:, t])
        assert np.array_equal(logits, plain[t]), t
    assert not preallocate(object(), 10)  # not a DynamicCache: left alone, the caller steps it as before
