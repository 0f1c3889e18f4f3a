"""Level quality judges (rlcreate.levels.quality), the DEV/TEST split and the level value rewards."""

from __future__ import annotations

import numpy as np
import pytest

from rlcreate.levels import corpus
from rlcreate.levels import quality as q


def _flat(width: int = 64) -> np.ndarray:
    g = np.zeros((14, width), np.int8)
    g[-2:] = 1
    return g


def _noise(seed: int, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = np.where(rng.random((14, width)) < 0.3, 1, 0).astype(np.int8)
    g[-2:] = 1
    return g


def test_dev_and_test_split_the_held_out_blocks_without_overlap():
    dev, test = {b.name for b in corpus.dev_blocks()}, {b.name for b in corpus.test_blocks()}
    held = {b.name for b in corpus.held_out_blocks()}
    assert dev and test and not dev & test and dev | test == held
    assert {corpus.split_of(b) for b in corpus.training_blocks()} == {"train"}
    assert corpus.test_windows(128, 128).shape == (len(test), 14, 128)
    # the existing API is unchanged
    assert len(corpus.held_out_windows(16, 16)) == len(corpus.dev_windows(16, 16)) + len(corpus.test_windows(16, 16))


def test_element_profile_counts_per_128_columns():
    g = _flat(64)
    g[11, 10] = 6          # one enemy
    g[12:, 20:23] = 0      # one gap, 3 columns wide
    prof = q.element_profile([g])
    assert prof["enemies"][0] == 2.0 and prof["gaps"][0] == 2.0 and prof["pipes"][0] == 0.0


def test_flat_floor_is_outside_the_human_band_and_human_windows_are_inside():
    flat = q.profile_report([_flat(128)] * 16)
    assert flat["inside"] <= 1  # no pipes, blocks, enemies, coins: only gaps could match by chance
    human = q.profile_report(list(corpus.corpus_windows(128, stride=449)[:16]))
    assert human["inside"] >= 4


def test_human_sets_clear_five_of_five_only_about_six_times_in_ten():
    """The band holds ~90% of human set means per element by construction, so all five together
    hold far less often: the chance a human set passes is reported next to the profile."""
    chance = q.human_sets_inside(128, 16, draws=1000)
    assert 0.4 < chance["all"] < 0.8 and 0.8 < chance["all_but_one"] <= 1.0
    assert chance["all"] < chance["all_but_one"]
    report = q.profile_report([_flat(128)] * 16)
    assert report["human_sets"] == q.human_sets_inside(128, 16)
    assert "human_sets" not in q.profile_report([_flat(128)] * 16, band=q.human_band(128, 16))
    table = {"human_split": "test", "groups": {"flat": {"profile": report}}}
    assert f"on all 5 elements {report['human_sets']['all']:.0%} of the time" in q.format_table(table)


def test_training_window_sets_clear_the_band_less_often_than_corpus_sets():
    """The band is the whole corpus's; the training split's coin mean sits under its centre, so sets
    of training windows (what a generator calibrated to the training rates writes at best) pass
    less often, and the table reports both bars."""
    corpus_bar = q.human_sets_inside(128, 64, draws=1000)
    train_bar = q.human_sets_inside(128, 64, draws=1000, source="train")
    assert train_bar["all"] < corpus_bar["all"] - 0.05
    assert 0.3 < train_bar["all"] < train_bar["all_but_one"] <= 1.0
    report = q.profile_report([_flat(128)] * 16)
    assert report["human_train_sets"] == q.human_sets_inside(128, 16, source="train")
    table = {"human_split": "test", "groups": {"flat": {"profile": report}}}
    assert f"TRAINING windows (the rates calibration aims at) {report['human_train_sets']['all']:.0%}" in q.format_table(table)
    with pytest.raises(ValueError, match="corpus or train"):
        q.human_sets_inside(128, 16, source="test")


def test_human_likeness_separates_noise_and_not_human_from_human():
    train, groups = q.human_reference_segments("train", stride=16)
    same = q.human_likeness(generated_segments=(train, groups))
    assert same["auc"] < 0.7
    noise = q.human_likeness([_noise(s, 128) for s in range(16)])
    assert noise["auc"] > 0.95


def test_set_diversity_is_zero_for_copies_and_high_for_human_levels():
    assert q.set_diversity([_flat(128)] * 8)["distinct_share"] == 0.0
    human = q.set_diversity(list(corpus.test_windows(128, 128)))
    assert human["distinct_share"] > 0.5 and human["n_segments"] == 40


def test_copy_share_flags_training_windows():
    train = corpus.training_windows(128, stride=512)[:4]
    assert q.copy_share(list(train))["exact_copy_share"] == 1.0


def test_value_rewards_rank_human_above_flat_and_noise():
    from rlcreate.rewards import get_reward

    human = list(corpus.dev_windows(64, 64))
    profile, typical, div = (get_reward(n) for n in ("element_profile", "lm_typicality", "batch_diversity"))
    assert np.mean(profile(human)) > profile([_flat()])[0]
    assert typical([_noise(0)])[0] < 0.01           # columns the LM has never seen in context
    assert div([_flat(), _flat()]) == [0.0, 0.0]    # a collapsed set scores 0
    assert min(div(human)) > 0.3


def test_element_profile_leaves_out_controlled_elements():
    from rlcreate.rewards import get_reward

    profile = get_reward("element_profile")
    g = _flat()
    full = profile([g])[0]
    assert profile([g], targets={"enemies": [1.0], "gaps": [1.0]})[0] != full
    assert profile([g], targets={e: [0.0] for e in q.ELEMENTS}) == [None]


def test_set_profile_pays_the_levels_that_bring_the_batch_mean_toward_human():
    from rlcreate.rewards import get_reward

    set_profile = get_reward("set_profile")
    coins = _flat(128)
    coins[5, 10:30] = 5  # a row of 20 coins (the human mean is ~6 per 128 columns)
    batch = [_flat(128)] * 7 + [coins]
    r = set_profile(batch)
    assert r[7] > 0 > r[0]                      # a batch short of everything: the coin level helps
    too_many = set_profile([coins] * 7 + [_flat(128)])  # 20 coins each is too many: the bare level helps
    assert too_many[7] > 0 > too_many[0]
    assert set_profile([coins] * 8) == [0.0] * 8  # copies: removing one moves nothing (a difference reward)
    # controlled elements are left out; all elements controlled -> no score
    assert set_profile(batch, targets={e: [0.0] * 8 for e in q.ELEMENTS}) == [None] * 8


def test_lm_logprob_uses_the_env_log_probs_when_given():
    from rlcreate.rewards import get_reward

    lp = get_reward("lm_logprob")
    assert lp([_flat(), _flat()], token_logprobs=np.full((2, 64), -0.5)) == [-32.0, -32.0]
    scored = lp([_flat()])[0]
    assert scored < 0 and np.isfinite(scored)


def test_latent_prior_prefers_the_typical_shell():
    from rlcreate.rewards import get_reward

    prior = get_reward("latent_prior")
    d = 32
    shell = np.full((1, d), 1.0)  # ||z||^2 = d
    corner = np.full((1, d), 2.5)
    assert prior([None], latent=shell)[0] == pytest.approx(1.0)
    assert prior([None], latent=corner)[0] < 1e-3
    assert prior([None]) == [None]


@pytest.mark.slow
def test_bench_level_quality_script_runs_and_writes_json(tmp_path, monkeypatch):
    """scripts/bench_level_quality.py end to end on a tiny budget (no A*), with a run folder of levels."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_level_quality.py"
    spec = importlib.util.spec_from_file_location("bench_level_quality", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(__import__("sys").modules, spec.name, bench)  # dataclasses look the module up
    spec.loader.exec_module(bench)
    run = tmp_path / "run"
    run.mkdir()
    np.save(run / "levels.npy", np.stack([_noise(s, 32) for s in range(4)]))
    out = tmp_path / "q.json"
    bench.main(bench.Config(run=str(run), n=4, width=32, astar_levels=0, out=str(out)))
    data = json.loads(out.read_text())
    assert set(data["groups"]) == {"human_dev", "column_lm_samples", "vae_prior", "policy"}
    assert data["groups"]["policy"]["human_likeness"]["auc"] > 0.9  # noise is told from human levels
    assert data["machine"]["cpu_count"] and data["config"]["n"] == 4


@pytest.mark.slow
def test_bench_level_quality_judges_the_untrained_policy_of_the_run_recipe(tmp_path, monkeypatch):
    """--untrained 1: the run recipe's policy before training is sampled and judged, control included."""
    import importlib.util
    import json
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_level_quality", root / "scripts" / "bench_level_quality.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(__import__("sys").modules, spec.name, bench)
    spec.loader.exec_module(bench)
    recipe = yaml.safe_load((root / "rlcreate" / "recipes" / "mario_tokens.yaml").read_text())
    recipe["env"]["kwargs"].update(n_columns=32, k=8)
    recipe["trainer"].update(n_envs=4, total_timesteps=64)
    recipe["trainer"]["hyper"].update(n_steps=16, batch_size=32)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(recipe))
    np.save(run / "levels.npy", np.stack([_noise(s, 32) for s in range(4)]))
    out = tmp_path / "q.json"
    bench.main(bench.Config(run=str(run), n=4, width=32, astar_levels=0, untrained=1, out=str(out)))
    data = json.loads(out.read_text())
    assert data["groups"]["policy_untrained"]["n_levels"] == 4 and data["groups"]["policy_untrained"]["width"] == 32
    assert set(data["control"]["policy_untrained"]) == {"enemies", "gaps"}
    assert all(np.isfinite(v["mae"]) for v in data["control"]["policy_untrained"].values())


def test_human_likeness_judge_flags_noise_and_passes_human_levels():
    from rlcreate.levels.judges import run_judges

    noise = run_judges([_noise(s, 128) for s in range(8)], ["human_likeness"])["human_likeness"]
    assert noise["flagged"] and noise["auc"] > 0.9 and noise["profile_inside"] <= 1
    human = run_judges(list(corpus.training_windows(128, stride=700)[:8]), ["human_likeness"])["human_likeness"]
    assert not human["flagged"]
    assert run_judges([_flat(8)] * 2, ["human_likeness"])["human_likeness"] == {
        "skipped": "needs at least 2 levels of >= 16 columns"}


def test_solid_block_share_finds_walls_and_staircase_bulk_not_ground_or_thin_stacks():
    flat = _flat(128)
    wall = _flat(128)
    wall[6:13, 40:46] = 1  # 7 rows x 6 columns above the bottom row
    thin = _flat(128)
    thin[2:13, 40:45] = 1  # 5 columns wide: no 6 x 6 square
    stairs = _flat(128)
    for i in range(8):
        stairs[12 - i : 13, 60 + i] = 1  # heights 1..8 above the ground: at most 3 columns reach 6
    bulk = stairs.copy()
    bulk[5:13, 68:73] = 1  # the stair's top held for 5 columns: 8 columns of height >= 6
    assert [q.solid_block_share([g]) for g in (flat, wall, thin, stairs, bulk)] == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert q.solid_block_share([flat, wall, thin, stairs]) == 0.25
    # the docstring's human rate
    assert q.solid_block_share(list(corpus.training_windows(128, 128))) == 2 / 46
    report = q.profile_report([_flat(128)] * 16)
    structure = {"malformed_pipe_share": 0.5, "solid_block_share": 0.25}
    text = q.format_table({"human_split": "test", "groups": {"x": {"profile": report, "structure": structure}}})
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("levels with")] == ["50%", "25%"]
