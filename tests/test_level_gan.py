"""The bounded-prior level GAN (rlcreate.levels.gan), MarioLatent-v1 on top of it, and its scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlcreate  # noqa: F401
from rlcreate.levels.gan import GANConfig, GANInputError, LevelGAN, SegmentCritic, SegmentGenerator, default_gan_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_gan():
    torch.manual_seed(0)
    return LevelGAN(SegmentGenerator(GANConfig(latent_dim=8, channels=8)))


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_generator_and_critic_shapes(arch):
    cfg = GANConfig(latent_dim=8, channels=8, arch=arch)
    g, d = SegmentGenerator(cfg), SegmentCritic(cfg)
    z = torch.rand(5, 8) * 2 - 1
    ctx = torch.nn.functional.one_hot(torch.randint(0, 13, (5, 14, 4)), 13).permute(0, 3, 1, 2).float()
    logits = g(z, ctx, torch.ones(5))
    assert logits.shape == (5, 13, 14, 16)
    assert d(torch.softmax(logits, 1), ctx, torch.ones(5)).shape == (5,)


def test_decode_is_deterministic_and_seeded(tiny_gan):
    a = tiny_gan.sample_levels(3, n_segments=2, seed=1)
    b = tiny_gan.sample_levels(3, n_segments=2, seed=1)
    c = tiny_gan.sample_levels(3, n_segments=2, seed=2)
    assert a.shape == (3, 14, 32) and a.dtype == np.int8
    assert (a == b).all() and not (a == c).all()
    assert a.min() >= 0 and a.max() < 13


def test_context_changes_the_next_segment(tiny_gan):
    z = np.zeros((2, 8), np.float32)
    ctx = np.stack([np.zeros((14, 4)), np.full((14, 4), 1)]).astype(np.int8)  # sky vs solid ground
    with_ctx = tiny_gan.decode_logits(z, ctx)
    assert not np.allclose(with_ctx[0], with_ctx[1])
    # has_context=False rows ignore the given context: both decode as level starts
    starts = tiny_gan.decode_logits(z, ctx, has_context=np.zeros(2, bool))
    assert np.allclose(starts[0], starts[1])
    assert np.allclose(starts[0], tiny_gan.decode_logits(z[:1])[0], atol=1e-5)


def test_prior_is_bounded_and_inputs_are_checked(tiny_gan):
    with pytest.raises(GANInputError, match=r"inside the prior's support \[-1, 1\]"):
        tiny_gan.decode(np.full((1, 8), 1.5, np.float32))
    with pytest.raises(GANInputError, match="wrap a single latent"):
        tiny_gan.decode(np.zeros(8, np.float32))
    with pytest.raises(GANInputError, match=r"context must have shape \(batch, 14, 4\)"):
        tiny_gan.decode(np.zeros((2, 8), np.float32), context=np.zeros((2, 14, 3), np.int8))
    with pytest.raises(GANInputError, match="not a level-GAN folder"):
        LevelGAN.load(ROOT)


def test_save_load_roundtrip(tiny_gan, tmp_path):
    tiny_gan.save(tmp_path / "g")
    again = LevelGAN.load(tmp_path / "g")
    assert (again.sample_levels(2, 3, seed=4) == tiny_gan.sample_levels(2, 3, seed=4)).all()


def test_shipped_gan_samples_chained_levels():
    if not (default_gan_path() / "model.safetensors").is_file():
        pytest.skip("shipped GAN not trained")
    gan = LevelGAN.load()
    assert gan.prior == "uniform" and gan.action_scale == 1.0 and gan.context_columns > 0
    levels = gan.sample_levels(4, n_segments=8, seed=0)
    assert levels.shape == (4, 14, 128)
    # ground continues across seams more often than for segments decoded as level starts
    def seam_breaks(lv):
        g = lv[:, -1, :] != 0
        return np.mean([(g[:, s - 1] != g[:, s]).mean() for s in range(16, 128, 16)])
    assert seam_breaks(levels) <= seam_breaks(gan.sample_levels(4, 8, seed=0, chained=False)) + 0.05


# ---- MarioLatent-v1 ---------------------------------------------------------------------------

CHEAP = {"prior": {"reward": "residual_prior", "weight": 0.1}, "play": {"reward": "playability", "weight": 1.0}}


def test_v1_env_passes_check_env_and_logs_saturation(tiny_gan):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    from rlcreate.levels.envs import make_mario_latent_v1

    env = make_mario_latent_v1(n_segments=2, generator=tiny_gan, reward=CHEAP)
    gym_check(env, skip_render_check=True)
    sb3_check(env, warn=True)
    env.reset(seed=0)
    _, r0, term, _, info = env.step(np.full(8, 5.0, np.float32))  # far outside the box: clipped
    assert info["latent"]["saturated"] == 1.0 and not term and r0 == 0.0
    assert np.all(np.abs(env.core.latents[0, 0]) < 1.0)  # tanh residual: inside the support
    _, r1, term, _, info = env.step(np.zeros(8, np.float32))
    assert term and info["latent"]["saturated"] == 0.0
    # level-end scoring sees both steps' actions: the prior term is -1/2 * sum((a / 0.4)^2) over them
    assert info["rewards"]["prior"] == pytest.approx(-0.5 * 8 / 0.4 ** 2)
    assert info["level"].shape == (14, 32)


def test_v1_residual_zero_action_is_the_generators_own_sample(tiny_gan):
    from rlcreate.levels.envs import make_mario_latent_v1_vec

    venv = make_mario_latent_v1_vec(n_envs=3, n_segments=3, generator=tiny_gan, reward=CHEAP, seed=5)
    venv.reset()
    core = venv.core
    base, segs = [], []
    for _ in range(3):
        base.append(core.base.copy())
        _, _, done, infos = venv.step(np.zeros((3, 8), np.float32))
        segs.append(np.stack([i["segment"] for i in infos]))
    # rebuild the level from the prior draws with the generator alone, chained by context
    prev, expect = None, []
    for z0 in base:
        z = np.tanh(np.arctanh(np.clip(z0, -0.999, 0.999))).astype(np.float32)
        prev = tiny_gan.decode(z, None if prev is None else prev[:, :, -4:])
        expect.append(prev)
    assert done.all()
    assert all((a == b).all() for a, b in zip(segs, expect))


def test_v1_rejects_bad_settings(tiny_gan):
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1
    from rlcreate.levels.generators.latent import LatentLevelGenerator, LevelVAE, VAEConfig

    with pytest.raises(EnvConfigError, match="latent_mode = 'box'"):
        make_mario_latent_v1(generator=tiny_gan, reward=CHEAP, latent_mode="box")
    with pytest.raises(EnvConfigError, match="radius = 0"):
        make_mario_latent_v1(generator=tiny_gan, reward=CHEAP, radius=0)
    vae = LatentLevelGenerator.from_module(LevelVAE(VAEConfig(latent_dim=8, hidden=16)))
    with pytest.raises(EnvConfigError, match="needs a generator with a uniform"):
        make_mario_latent_v1(generator=vae, reward=CHEAP)


def test_v1_is_registered_next_to_v0():
    assert {"rlcreate/MarioLatent-v0", "rlcreate/MarioLatent-v1"} <= set(gym.registry)


def test_saturation_is_logged_to_tensorboard_keys(tiny_gan):
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    from rlcreate.levels.envs import make_mario_latent_v1_vec
    from rlcreate.sb3.trainer import RewardTermsLogger

    venv = make_mario_latent_v1_vec(n_envs=2, n_segments=2, generator=tiny_gan, reward=CHEAP, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=8, n_epochs=1, seed=0)
    logger = configure(None, [])
    model.set_logger(logger)
    seen = {}
    orig = logger.record

    def record(key, value, *a, **k):
        seen[key] = value
        orig(key, value, *a, **k)

    logger.record = record
    model.learn(8, callback=RewardTermsLogger(8))
    assert 0.0 <= seen["latent/saturated"] <= 1.0 and seen["latent/norm"] > 0
    assert "rewards/prior" in seen


# ---- scripts ----------------------------------------------------------------------------------

def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_train_level_gan_smoke(tmp_path):
    _run([sys.executable, "scripts/train_level_gan.py", "--steps", "3", "--n-critic", "1", "--channels", "8",
          "--n-levels", "8", "--out", str(tmp_path / "gan")])
    r = json.loads((tmp_path / "gan" / "training_metrics.json").read_text())
    assert {"auc", "profile_inside", "distinct_share", "malformed_pipe_share"} <= set(r["judges_test"])
    assert (tmp_path / "gan" / "montage.png").is_file() and (tmp_path / "gan" / "MODEL_CARD.md").is_file()
    assert LevelGAN.load(tmp_path / "gan").sample_levels(2, 2).shape == (2, 14, 32)


@pytest.mark.slow
def test_bench_latent_control_smoke(tmp_path):
    """The guide-alone control bench writes both settings' per-target rows and the scatter PNG; the
    cap leaves no level over round(target x 8) on gap runs more often than the uncapped guide."""
    _run([sys.executable, "scripts/bench_latent_control.py", "--n", "16", "--seeds", "1",
          "--out", str(tmp_path / "c.json")])
    r = json.loads((tmp_path / "c.json").read_text())
    for key in ("guide", "guide_with_cap"):
        assert {"enemies", "gaps"} <= set(r[key]) and -1 <= r[key]["enemies"]["corr_mean"] <= 1
        shares = [r[key]["gaps"][k] for k in ("over_share", "exact_share", "under_share")]
        assert sum(shares) == pytest.approx(1.0)
    assert r["guide_with_cap"]["gaps"]["over_share"] <= r["guide"]["gaps"]["over_share"]
    assert (tmp_path / "c.png").is_file()


@pytest.mark.slow
def test_bench_latent_generator_smoke(tmp_path, tiny_gan):
    import yaml

    tiny_gan.save(tmp_path / "gan")
    doc = yaml.safe_load((ROOT / "rlcreate" / "recipes" / "mario_latent.yaml").read_text())
    # the GAN has no control channel: its rows run without it (deficits and shaping stay)
    doc["env"]["kwargs"].update(n_segments=2, generator=str(tmp_path / "gan"), control_channel=False,
                                control_guidance=False, control_cap=False)
    doc["trainer"].update(total_timesteps=64, n_envs=4, checkpoints=0, samples=2)
    doc["trainer"]["hyper"].update(n_steps=16, batch_size=32, n_epochs=1)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(doc))
    _run([sys.executable, "-m", "rlcreate.cli", "train", str(tmp_path / "r.yaml"), "--out", str(tmp_path),
          "--name", "run", "--quiet"])
    _run([sys.executable, "scripts/bench_latent_generator.py", "--run", str(tmp_path / "run"), "--candidates",
          f"column_lm,{tmp_path / 'gan'}", "--n", "4", "--n-segments", "2", "--boot", "5", "--best-of", "2",
          "--steered-best-of", "2", "--speed-seconds", "0.2", "--speed-envs", "4", "--calibration-n", "8", "--out", str(tmp_path / "b.json")])
    r = json.loads((tmp_path / "b.json").read_text())
    assert {"steered", "steered_sampled", "untrained", "untrained_sampled", "best_of_2", "own_samples", "human_dev"} <= set(
        r["steering"]["run"]["groups"])
    assert r["speed"]["ratio_env_prior_term_only"] > 0 and {"gan", "column_lm", "shipped"} <= set(r["candidates"])
    diffs = r["steering"]["run"]["objective_differences"]
    assert diffs["steered_minus_untrained"]["paired"] and len(diffs["steered_minus_best_of_2"]["ci90"]) == 2
    assert len(r["steering"]["run"]["groups"]["steered_best_of_2"]["objective"]["ci90"]) == 2
    assert len(r["steering"]["run"]["groups"]["steered"]["objective"]["totals"]) == 4  # per level, for pooling
    assert not diffs["steered_best_of_2_minus_best_of_2"]["paired"]
    assert diffs["steered_sampled_minus_untrained"]["paired"] and diffs["steered_sampled_minus_untrained_sampled"]["paired"]
    assert 0 <= r["steering"]["run"]["groups"]["steered"]["actions"]["saturated_share"] <= 1
    assert set(r["calibration"]["variants"]) == {"column_lm"} and r["calibration"]["n_levels"] == 8


def _train_tiny_candidates_run(recipe: Path, tmp_path: Path) -> None:
    """Train ``recipe`` (a MarioLatent-v1 candidates recipe) for 64 steps into ``tmp_path / "run"``."""
    import yaml

    doc = yaml.safe_load(recipe.read_text())
    doc["env"]["kwargs"]["n_segments"] = 2
    doc["trainer"].update(total_timesteps=64, n_envs=4, checkpoints=0, samples=2)
    doc["trainer"]["hyper"].update(n_steps=16, batch_size=32, n_epochs=1)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(doc))
    _run([sys.executable, "-m", "rlcreate.cli", "train", str(tmp_path / "r.yaml"), "--out", str(tmp_path),
          "--name", "run", "--quiet"])


@pytest.mark.slow
def test_bench_latent_candidates_smoke(tmp_path):
    """The candidates bench on a tiny run of mario_latent_candidates_terms.yaml: every row, 95% CIs,
    paired differences where the same requests and prior draws are shared, and the speed ratios of
    the shipped latent recipes and the run's own."""
    import yaml

    _train_tiny_candidates_run(ROOT / "rlcreate" / "recipes" / "mario_latent_candidates_terms.yaml", tmp_path)
    k2 = yaml.safe_load((ROOT / "rlcreate" / "recipes" / "mario_latent_choice.yaml").read_text())
    k2["env"]["kwargs"]["candidates"] = 2  # a speed-only variant: a choice between two candidates
    (tmp_path / "choice_k2.yaml").write_text(yaml.safe_dump(k2))
    _run([sys.executable, "scripts/bench_latent_candidates.py", "--run", str(tmp_path / "run"), "--n", "4",
          "--boot", "20", "--speed-seconds", "0.2", "--speed-envs", "4", "--pool", "run",
          "--speed-recipes", str(tmp_path / "choice_k2.yaml"), "--out", str(tmp_path / "b.json")])
    r = json.loads((tmp_path / "b.json").read_text())
    run = r["runs"]["run"]
    assert {"steered", "untrained", "best_of_4", "greedy", "own_samples"} == set(run["groups"])
    assert run["groups"]["steered"]["objective"]["ci95"][0] <= run["groups"]["steered"]["objective"]["mean"]
    diffs = run["objective_differences"]
    assert diffs["steered_minus_untrained"]["paired"] and not diffs["steered_minus_best_of_4"]["paired"]
    assert diffs["steered_minus_greedy"]["paired"] and len(diffs["greedy_minus_best_of_4"]["ci95"]) == 2
    assert 0 <= run["groups"]["steered"]["switch_share"] <= 1
    assert r["pooled"]["steered_minus_untrained"]["mean"] == pytest.approx(diffs["steered_minus_untrained"]["mean"])
    speed = r["speed"]
    assert speed["mario_latent_candidates_decodes_per_step"] == 4 and speed["mario_latent_decodes_per_step"] == 1
    assert speed["ratio_run"] > 0 and speed["ratio_mario_latent"] > 0
    assert speed["mario_latent_choice_decodes_per_step"] == 4 and speed["ratio_mario_latent_choice"] > 0
    assert speed["choice_k2_decodes_per_step"] == 2 and speed["ratio_choice_k2"] > 0
    # where the step's time goes: the LM passes inside the decode, the decode inside the step
    split = speed["split_ms_per_step"]["mario_latent_candidates_terms"]
    assert 0 < split["lm"] < split["decode"] < split["wall"] and split["observe"] > 0
    assert speed["ratio_mario_latent_candidates_terms_lm_only"] > speed["ratio_mario_latent_candidates_terms_decode_only"] > 0


def test_latent_rule_start_std_variants_change_only_their_option():
    """The exploration-std bench recipes are the rule-start recipe with only log_std_init changed
    (std 0.2: -1.6, std 0.1: -2.3); the gain variants are the std-0.2 one and the rule-start one with
    only rule_gain lowered."""
    import yaml

    from rlcreate.recipe import parse_recipe

    def load(name):
        doc = yaml.safe_load((ROOT / "benchmarks" / "recipes" / name).read_text())
        parse_recipe(dict(doc))  # a valid recipe
        del doc["name"], doc["description"]
        return doc

    base = load("latent_candidates_rule_start.yaml")
    for name, key, value in [
        ("latent_candidates_rule_start_std02.yaml", "log_std_init", -1.6),
        ("latent_candidates_rule_start_std01.yaml", "log_std_init", -2.3),
        ("latent_candidates_rule_start_std02_gain10.yaml", "rule_gain", 10.0),
        ("latent_candidates_rule_start_gain10.yaml", "rule_gain", 10.0),
    ]:
        doc = load(name)
        ref = load("latent_candidates_rule_start_std02.yaml") if "std02_gain" in name else base
        assert doc["trainer"]["hyper"]["policy_kwargs"][key] == value != ref["trainer"]["hyper"]["policy_kwargs"][key]
        doc["trainer"]["hyper"]["policy_kwargs"][key] = ref["trainer"]["hyper"]["policy_kwargs"][key]
        assert doc == ref, name


def test_latent_choice_bench_recipes_change_only_their_option():
    """benchmarks/recipes/latent_choice_rule_start.yaml = mario_latent_choice.yaml plus rule_gain and
    the rule's entries (the same positions as the Box rule-start recipe's); latent_choice_k2.yaml =
    the same with two candidates."""
    import yaml

    from rlcreate.recipe import parse_recipe

    bench = yaml.safe_load((ROOT / "benchmarks" / "recipes" / "latent_choice_rule_start.yaml").read_text())
    shipped = yaml.safe_load((ROOT / "rlcreate" / "recipes" / "mario_latent_choice.yaml").read_text())
    box = yaml.safe_load((ROOT / "benchmarks" / "recipes" / "latent_candidates_rule_start.yaml").read_text())
    parse_recipe(dict(bench))
    kw = bench["trainer"]["hyper"]["policy_kwargs"]
    assert kw.pop("rule_gain") == 50.0
    assert kw.pop("rule_entries") == box["trainer"]["hyper"]["policy_kwargs"]["rule_entries"]
    for d in (bench, shipped):
        del d["name"], d["description"]
    assert bench == shipped
    k2 = yaml.safe_load((ROOT / "benchmarks" / "recipes" / "latent_choice_k2.yaml").read_text())
    parse_recipe(dict(k2))
    assert k2["env"]["kwargs"]["candidates"] == 2 and shipped["env"]["kwargs"]["candidates"] == 4
    k2["env"]["kwargs"]["candidates"] = 4
    del k2["name"], k2["description"]
    assert k2 == shipped


@pytest.mark.slow
def test_latent_rule_agreement_smoke(tmp_path):
    """scripts/latent_rule_agreement.py on a tiny run of the rule-start bench recipe: the untrained
    start (rule_gain > 0) writes greedy_action's candidate at every step; the trained policy's share
    and pick counts are reported."""
    _train_tiny_candidates_run(ROOT / "benchmarks" / "recipes" / "latent_candidates_rule_start.yaml", tmp_path)
    run = str(tmp_path / "run")
    _run([sys.executable, "scripts/latent_rule_agreement.py", "--runs", run, "--n", "8", "--out", str(tmp_path / "a.json")])
    r = json.loads((tmp_path / "a.json").read_text())["runs"][run]
    start, steered = r["untrained_start"], r["steered"]
    assert start["agree_share"] == 1.0 and start["picks"] == start["greedy_picks"] and start["steps"] >= 16
    assert sum(start["picks"][1:]) > 0 and start["outside_box_share"] == 0.0  # the rule part stays inside (0, 1)
    assert 0 <= steered["agree_share"] <= 1 and start["sampled_agree_share"] < 1.0 and sum(steered["picks"]) == steered["steps"] and r["env_steps"] == 64


@pytest.mark.slow
def test_bench_latent_selection_smoke(tmp_path):
    """scripts/bench_latent_selection.py on a tiny run of the choice recipe: with one draw every
    best-of row is its mode (PPO's best-of-1 is PPO's set, score for score); with two, every row and
    paired difference carries a CI; a Box run is refused with one error line."""
    import yaml

    _train_tiny_candidates_run(ROOT / "rlcreate" / "recipes" / "mario_latent_choice.yaml", tmp_path)
    rule = yaml.safe_load((ROOT / "benchmarks" / "recipes" / "latent_choice_rule_start.yaml").read_text())
    rule["env"]["kwargs"]["n_segments"] = 2
    (tmp_path / "rule.yaml").write_text(yaml.safe_dump(rule))
    run = str(tmp_path / "run")
    for draws in (1, 2):
        _run([sys.executable, "scripts/bench_latent_selection.py", "--runs", run, "--rule-recipe",
              str(tmp_path / "rule.yaml"), "--n", "8", "--draws", str(draws), "--out", str(tmp_path / f"s{draws}.json")])
    one = json.loads((tmp_path / "s1.json").read_text())["runs"][run]
    assert one["differences"]["ppo_best_of_n_minus_ppo"] == {"mean": 0.0, "ci": [0.0, 0.0], "n": 8}
    r = json.loads((tmp_path / "s2.json").read_text())["runs"][run]
    assert set(r["objective"]) == {"ppo", "ppo_best_of_n", "rule_best_of_n", "start_best_of_n"}
    assert r["objective"]["ppo"] == one["objective"]["ppo"] and r["env_steps"] == 64
    for d in (*r["objective"].values(), *r["differences"].values()):
        assert d["n"] == 8 and d["ci"][0] <= d["mean"] <= d["ci"][1]
    box = tmp_path / "box"
    box.mkdir()
    _train_tiny_candidates_run(ROOT / "rlcreate" / "recipes" / "mario_latent_candidates_terms.yaml", box)
    proc = subprocess.run([sys.executable, "scripts/bench_latent_selection.py", "--runs", str(box / "run"),
                           "--out", str(tmp_path / "x.json")], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2 and "error: --runs" in proc.stderr and "candidate_action: choice" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_bench_latent_demo_smoke(tmp_path):
    """The demo-budget bench: the latent demo's own code, its phases timed (they add up to the wall
    time; with --parallel 0 the start's side too), the load sampled, the demo's summary kept."""
    _run([sys.executable, "scripts/bench_latent_demo.py", "--steps", "64", "--n-levels", "16", "--objective-levels",
          "32", "--astar-levels", "0", "--parallel", "0", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "b.json")])
    run = json.loads((tmp_path / "b.json").read_text())["runs"]["64"]
    phases = run["phase_seconds"]
    assert {"train", "sample_policy_sets", "sample_greedy", "objective", "sample_generator", "judges_total"} <= set(phases)
    parts = sum(v for k, v in phases.items() if k != "judges_total")  # its parts: judges without A*, A*
    assert parts == pytest.approx(run["wall_seconds_end_to_end"], abs=0.5) and run["load_avg_1min_samples"]
    assert run["summary"]["objective_levels"] == 32 and run["summary"]["share"]["steered_minus_greedy"]["n"] == 32


# ---- the column LM decoding uniform noise ------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_lm():
    from rlcreate.levels import corpus
    from rlcreate.levels.generators.column_lm import N_SPECIAL, ColumnLM, build_vocab, small_gpt2

    vocab = build_vocab([b.grid() for b in corpus.training_blocks()])
    model = small_gpt2(len(vocab) + N_SPECIAL, n_positions=64, n_embd=16, n_layer=1, n_head=2, seed=0)
    return ColumnLM.from_model(model, vocab)


def test_lm_latent_lowest_quantile_is_greedy_decoding(tiny_lm):
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, segment_width=8, context_columns=16, structure=False, element_bias={})
    seg = gen.decode(np.full((2, 8), -1.0, np.float32))
    assert (seg == tiny_lm.generate(8, batch=2, top_k=1)).all()
    # the highest quantile picks a different (the least likely) column
    assert not (gen.decode(np.full((2, 8), 1.0, np.float32)) == seg).all()


@pytest.mark.parametrize("order", ["probability", "elements"])
def test_lm_latent_uniform_noise_matches_the_lm_column_frequencies(tiny_lm, order):
    """Under the uniform prior the first column follows the LM's own next-column distribution,
    whatever order the columns are lined up in."""
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, segment_width=1, context_columns=16, structure=False, element_bias={}, order=order)
    z = np.random.default_rng(0).uniform(-1, 1, (4000, 1)).astype(np.float32)
    ids = np.array([tiny_lm.encode_level(s)[0] for s in gen.decode(z)])
    logits, _ = tiny_lm.start(1)
    p = np.exp(logits[0] - logits[0].max())
    p /= p.sum()
    top = np.argsort(-p)[:3]
    for t in top:
        assert abs((ids == t).mean() - p[t]) < 4 * np.sqrt(p[t] * (1 - p[t]) / len(z)) + 1e-3


def test_lm_latent_keeps_pipes_whole_and_continues_context(tiny_lm):
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.quality import malformed_pipe_share

    gen = ColumnLMLatent(tiny_lm, segment_width=8, context_columns=16)
    levels = gen.sample_levels(16, n_segments=3, seed=0)
    assert levels.shape == (16, 14, 24) and malformed_pipe_share(list(levels)) == 0.0
    z = np.zeros((1, 8), np.float32)
    a = gen.decode(z, context=levels[:1, :, :8])
    b = gen.decode(z, context=levels[1:2, :, :8])
    c = gen.decode(z, context=levels[:1, :, :8], has_context=np.zeros(1, bool))
    assert (c == gen.decode(z)).all()
    assert a.shape == (1, 14, 8) and (not (a == b).all() or (levels[0, :, :8] == levels[1, :, :8]).all())
    with pytest.raises(GANInputError, match=r"context must have shape \(batch, 14, 1..16\)"):
        gen.decode(z, context=levels[:1, :, :20])


def test_lm_latent_element_bias_raises_the_biased_columns_share(tiny_lm):
    """A coin offset makes coin columns more frequent under the uniform prior, by the offset's odds."""
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.tiles import COIN

    z = np.random.default_rng(0).uniform(-1, 1, (4000, 1)).astype(np.float32)
    share = {}
    for b in (0.0, 1.0):
        gen = ColumnLMLatent(tiny_lm, segment_width=1, context_columns=16, structure=False,
                             element_bias={"coins": b})
        share[b] = float((gen.decode(z) == COIN).any(axis=(1, 2)).mean())
    logits, _ = tiny_lm.start(1)
    p = np.exp(logits[0] - logits[0].max())
    p /= p.sum()
    coin = np.concatenate([[False, False], (tiny_lm.columns == COIN).any(1)])
    expect = p[coin].sum() * np.e / (p[coin].sum() * np.e + p[~coin].sum())  # odds times e^1
    assert abs(share[0.0] - p[coin].sum()) < 0.03 and abs(share[1.0] - expect) < 0.03
    assert share[1.0] > share[0.0] + 0.02
    with pytest.raises(GANInputError, match="element_bias keys .*enemies"):
        ColumnLMLatent(tiny_lm, element_bias={"enemies": 1.0})


def test_lm_latent_elements_order_puts_enemies_low_and_gaps_high(tiny_lm):
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.metrics import ground_heights
    from rlcreate.levels.tiles import ENEMY

    gen = ColumnLMLatent(tiny_lm, segment_width=1, context_columns=16, structure=False, element_bias={},
                         order="elements")
    low, high = gen.decode(np.array([[-1.0]], np.float32))[0], gen.decode(np.array([[1.0]], np.float32))[0]
    assert (low == ENEMY).sum() == (tiny_lm.columns == ENEMY).sum(axis=1).max() > 0
    assert ground_heights(high)[0] == 0  # a gap column
    with pytest.raises(GANInputError, match="order = 'random'"):
        ColumnLMLatent(tiny_lm, order="random")


def test_lm_latent_open_seams_are_closed_by_the_next_segment(tiny_lm):
    """With final=False a segment may end on a pipe's left half; the next segment, given it as
    context, starts with the right half; a final segment never opens one."""
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.quality import malformed_pipe_share
    from rlcreate.levels.tiles import PIPE_BL, PIPE_TL

    gen = ColumnLMLatent(tiny_lm, segment_width=4, context_columns=16, element_bias={"pipes": 4.0})
    z = np.random.default_rng(1).uniform(-1, 1, (256, 4)).astype(np.float32)
    opens = lambda seg: np.isin(seg[:, :, -1], (PIPE_TL, PIPE_BL)).any(axis=1)  # noqa: E731
    first = gen.decode(z, final=False)
    assert opens(first).any() and not opens(gen.decode(z, final=True)).any()
    second = gen.decode(z[::-1].copy(), context=first, final=True)
    assert malformed_pipe_share(list(np.concatenate([first, second], axis=2))) == 0.0
    closing = ColumnLMLatent(tiny_lm, segment_width=4, context_columns=16, element_bias={"pipes": 4.0},
                             close_every_segment=True)
    assert not opens(closing.decode(z, final=False)).any()


def test_v1_env_with_lm_latent_passes_check_env(tiny_lm):
    from gymnasium.utils.env_checker import check_env as gym_check

    from rlcreate.levels.envs import make_mario_latent_v1
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    choice = make_mario_latent_v1(n_segments=3, generator=gen, reward=CHEAP, candidates=3, candidate_action="choice")
    for env in (make_mario_latent_v1(n_segments=3, generator=gen, reward=CHEAP), choice):
        gym_check(env, skip_render_check=True)
        env.reset(seed=0)
        for _ in range(3):
            _, _, term, _, info = env.step(env.action_space.sample())
        assert term and info["level"].shape == (14, 24)


def test_lm_latent_control_channel_shifts_enemies_and_gap_starts(tiny_lm):
    """The designed control channel: zeros decode exactly as no control; +1 on enemies raises the
    share of enemy columns, -1 on gaps lowers the share of gap starts; a bad shape is refused."""
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.metrics import ground_heights
    from rlcreate.levels.tiles import ENEMY

    gen = ColumnLMLatent(tiny_lm, segment_width=1, context_columns=16, structure=False, element_bias={})
    z = np.random.default_rng(0).uniform(-1, 1, (2000, 1)).astype(np.float32)
    plain = gen.decode(z)
    assert (gen.decode(z, control=np.zeros((2000, 2))) == plain).all()

    def shares(seg):
        return (seg == ENEMY).any(axis=(1, 2)).mean(), np.mean([ground_heights(s)[0] == 0 for s in seg])

    e0, g0 = shares(plain)
    e1, _ = shares(gen.decode(z, control=np.tile([1.0, 0.0], (2000, 1))))
    _, g1 = shares(gen.decode(z, control=np.tile([0.0, -1.0], (2000, 1))))
    assert e1 > e0 + 0.02 and g1 < g0
    with pytest.raises(GANInputError, match=r"control must be a finite array of shape \(2000, 2\)"):
        gen.decode(z, control=np.zeros((2000, 3)))


def test_v1_control_channel_deficits_and_shaping(tiny_lm):
    """control_channel adds the generator's control entries to the action box, observe_deficits
    one schedule deficit per target to the observation; the potential-based target shaping sums
    to 0 over every level (returns unchanged), so with no reward terms every level's return is 0."""
    from gymnasium.utils.env_checker import check_env as gym_check

    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    plain = make_mario_latent_v1(n_segments=3, generator=gen, reward=CHEAP)
    env = make_mario_latent_v1(n_segments=3, generator=gen, reward=CHEAP, control_channel=True,
                               observe_deficits=True, target_shaping=4.0)
    assert env.action_space.shape == (plain.action_space.shape[0] + 2,)
    assert env.observation_space.shape == (plain.observation_space.shape[0] + 2,)  # two default targets
    gym_check(env, skip_render_check=True)
    zero = {"z": {"reward": "residual_prior", "weight": 0.0}}
    venv = make_mario_latent_v1_vec(8, n_segments=3, generator=gen, reward=zero, seed=0, control_channel=True,
                                    observe_deficits=True, target_shaping=4.0)
    venv.reset()
    rng, total, shaped = np.random.default_rng(0), np.zeros(8), []
    for _ in range(3):
        _, r, done, infos = venv.step(rng.uniform(-1, 1, (8, 10)).astype(np.float32))
        total += r
        shaped.append([i["target_shaping"] for i in infos])
    assert done.all() and np.allclose(total, 0.0, atol=1e-5) and np.abs(shaped[:2]).max() > 0
    with pytest.raises(EnvConfigError, match="control_guidance = 'yes': use true or false"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, control_guidance="yes")
    with pytest.raises(EnvConfigError, match="target_shaping = 4.0 needs observe_deficits: true"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, target_shaping=4.0)
    with pytest.raises(EnvConfigError, match="control_channel = True needs a generator with control_names"):
        make_mario_latent_v1(generator=LevelGAN(SegmentGenerator(GANConfig(latent_dim=8, channels=8))),
                             reward=CHEAP, control_channel=True)


def test_v1_control_guidance_follows_targets_without_a_policy(tiny_lm):
    """control_for inverts the rate table (monotone, clipped); with control_guidance a zero action
    writes more enemies for a high enemy target than for a low one; without the channel it is refused."""
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.tiles import ENEMY

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    c = gen.control_for(np.array([[0.0, 0.0], [gen.CONTROL_RATES["enemies"][4], 0.82], [99.0, 99.0]]))
    assert np.allclose(c[0], -1.0) and np.allclose(c[1], 0.0) and np.allclose(c[2], 1.0)
    counts = {}
    for lo, hi in ((0.0, 0.0), (3.0, 3.0)):
        venv = make_mario_latent_v1_vec(16, n_segments=2, generator=gen, reward=CHEAP, seed=0, control_channel=True,
                                        observe_deficits=True, control_guidance=True,
                                        targets={"enemies": [lo, hi], "gaps": [0.5, 0.5]})
        venv.reset()
        for _ in range(2):
            _, _, _, infos = venv.step(np.zeros((16, 10), np.float32))
        counts[hi] = sum(int((i["level"] == ENEMY).sum()) for i in infos)
    assert counts[3.0] > counts[0.0]
    with pytest.raises(EnvConfigError, match="control_guidance = True needs control_channel"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, control_guidance=True)


def test_lm_latent_limit_caps_enemies_and_gap_starts_per_segment(tiny_lm):
    """decode's limit is a cap: with the enemy channel pushed to +1, no segment writes more enemy
    tiles or gap starts than its limit (no structure rule here, so the cap always applies), an
    infinite limit decodes exactly as none, and a bad shape is refused."""
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.rewards import TARGET_MEASURES
    from rlcreate.levels.tiles import ENEMY

    gen = ColumnLMLatent(tiny_lm, segment_width=8, context_columns=16, structure=False, element_bias={})
    z = np.random.default_rng(0).uniform(-1, 1, (400, 8)).astype(np.float32)
    push = np.tile([1.0, 1.0], (400, 1))
    free = gen.decode(z, control=push)
    assert (gen.decode(z, control=push, limit=np.full((400, 2), np.inf)) == free).all()
    limit = np.tile([1.0, 0.0], (400, 1))
    capped = gen.decode(z, control=push, limit=limit)
    enemies, gaps = (capped == ENEMY).sum(axis=(1, 2)), TARGET_MEASURES["gaps"][0](capped)
    assert (free == ENEMY).sum(axis=(1, 2)).max() > 1  # the cap has something to stop
    assert enemies.max() <= 1 and gaps.max() == 0 and (enemies == 1).any()
    with pytest.raises(GANInputError, match=r"limit must be an array of shape \(400, 2\)"):
        gen.decode(z, limit=np.zeros((400, 3)))


def test_v1_control_cap_keeps_levels_at_or_under_their_targets(tiny_lm):
    """control_cap: with the guide and the cap a zero action never writes more enemies or gap runs
    than round(target x columns / 16) when the structure rule leaves room (no rule here); without
    the guide it is refused."""
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.rewards import TARGET_MEASURES

    gen = ColumnLMLatent(tiny_lm, 8, 16, structure=False)
    kw = dict(generator=gen, reward=CHEAP, control_channel=True, observe_deficits=True, control_guidance=True,
              targets={"enemies": [0.25, 1.25], "gaps": [0.3, 1.2]})
    over = {}
    for cap in (False, True):
        venv = make_mario_latent_v1_vec(32, n_segments=4, seed=0, control_cap=cap, **kw)
        venv.reset()
        for _ in range(4):
            _, _, _, infos = venv.step(np.full((32, 10), 0.9, np.float32))  # the policy asks for more of both
        levels = np.stack([i["level"] for i in infos])
        want = np.array([[i["targets"]["enemies"], i["targets"]["gaps"]] for i in infos])
        allowed = np.floor(want * levels.shape[2] / 16 + 0.5)
        got = np.stack([TARGET_MEASURES[k][0](levels) for k in ("enemies", "gaps")], 1)
        over[cap] = int((got > allowed).sum())
    assert over[False] > 0 and over[True] == 0
    with pytest.raises(EnvConfigError, match="control_cap = True needs control_guidance: true"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, control_channel=True, control_cap=True)


def test_v1_preview_shows_what_a_zero_action_writes_and_the_gate_keeps_or_redraws(tiny_lm):
    """preview adds the a = 0 segment's features to the observation and a gate entry to the action:
    a kept preview is exactly the segment written (and the first segment equals a preview-less env's
    a = 0 segment for the same seed); a redraw writes another segment and is counted in
    info["latent"]["redraw"]; outside residual mode it is refused."""
    from gymnasium.utils.env_checker import check_env as gym_check

    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.features import FEATURE_NAMES, segment_features
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    kw = dict(generator=gen, reward=CHEAP, control_channel=True, observe_deficits=True, control_guidance=True)
    plain, env = make_mario_latent_v1(n_segments=3, **kw), make_mario_latent_v1(n_segments=3, preview=True, **kw)
    assert env.action_space.shape == (plain.action_space.shape[0] + 1,)
    # 9 segment features, crossable after the preview, 2 deficits after it
    assert env.observation_space.shape == (plain.observation_space.shape[0] + len(FEATURE_NAMES) + 1 + 2,)
    gym_check(env, skip_render_check=True)
    n, a_dim = 16, env.action_space.shape[0]
    base = make_mario_latent_v1_vec(n, n_segments=3, seed=3, **kw)
    first = base.step(np.zeros((n, a_dim - 1), np.float32)) if base.reset() is not None else None
    venv = make_mario_latent_v1_vec(n, n_segments=3, seed=3, preview=True, **kw)
    obs = venv.reset()
    core = venv.core
    shown = core.preview_seg.copy()
    assert np.allclose(obs[:, -(len(FEATURE_NAMES) + 3) : -3], np.clip(segment_features(shown), 0, 1), atol=1e-6)
    keep = np.zeros((n, a_dim), np.float32)
    _, _, _, infos = venv.step(keep)
    assert all((i["segment"] == s).all() for i, s in zip(infos, shown, strict=True))
    assert all((i["segment"] == f["segment"]).all() for i, f in zip(infos, first[3], strict=True))
    assert all(i["latent"]["redraw"] == 0.0 for i in infos)
    shown = core.preview_seg.copy()
    redraw = keep.copy()
    redraw[:, -1] = -1.0
    _, _, _, infos = venv.step(redraw)
    assert all(i["latent"]["redraw"] == 1.0 for i in infos)
    assert sum((i["segment"] != s).any() for i, s in zip(infos, shown, strict=True)) >= n // 2
    with pytest.raises(EnvConfigError, match="preview = True needs latent_mode: residual"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, latent_mode="direct", preview=True)
    with pytest.raises(EnvConfigError, match="preview = 1: use true or false"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, preview=1)


def test_v1_playability_shaping_credits_each_crossed_segment_and_sums_to_zero(tiny_lm):
    """playability_shaping pays w / n_segments for each segment crossed from the level's start (0
    after the first fall) and takes it back at the level's end: with no reward terms every level's
    return is 0, while the first step's credit follows the solver's seam; bad values are refused."""
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    zero = {"z": {"reward": "residual_prior", "weight": 0.0}}
    venv = make_mario_latent_v1_vec(32, n_segments=3, generator=gen, reward=zero, seed=0, playability_shaping=3.0)
    venv.reset()
    rng, total = np.random.default_rng(0), np.zeros(32)
    _, r, _, infos = venv.step(rng.uniform(-1, 1, (32, 8)).astype(np.float32))
    crossed = venv.core.seam.alive(venv.core.seam_state)
    assert np.allclose(r, np.where(crossed, 1.0, 0.0)) and 0 < crossed.sum() and all("playability_shaping" in i for i in infos)
    total += r
    for _ in range(2):
        _, r, done, _ = venv.step(rng.uniform(-1, 1, (32, 8)).astype(np.float32))
        total += r
    assert done.all() and np.allclose(total, 0.0, atol=1e-5)
    with pytest.raises(EnvConfigError, match="playability_shaping = -1: must be a number >= 0"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, playability_shaping=-1)


def test_demo_refuses_an_unknown_generator():
    proc = subprocess.run([sys.executable, "-m", "rlcreate.cli", "demo", "--generator", "vae", "--out", "/nonexistent"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2 and "--generator" in proc.stderr and "latent" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_latent_env_element_bias_sets_the_column_lms_offsets():
    """element_bias (what the demo's calibration fits): the column LM generator decodes with those
    offsets (more coins at +2 than at -2, on the same noise); None keeps the generator's defaults;
    a generator without them, an unknown element or a non-mapping is one EnvConfigError."""
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import bounded_generator, make_mario_latent_v1
    from rlcreate.levels.gan import DEFAULT_ELEMENT_BIAS
    from rlcreate.levels.tiles import COIN

    plain = bounded_generator(None)
    default = bounded_generator(None, (), dict(DEFAULT_ELEMENT_BIAS))
    assert np.array_equal(plain._offset, default._offset)
    more, fewer = bounded_generator("column_lm", (), {"coins": 2.0}), bounded_generator(None, (), {"coins": -2.0})
    coins = [int((g.sample_levels(16, 2, seed=0) == COIN).sum()) for g in (fewer, plain, more)]
    assert coins[0] < coins[1] < coins[2], coins
    bias = {"coins": 2.0, "question_blocks": -1.0}
    env = make_mario_latent_v1(reward=CHEAP, element_bias=bias)
    assert np.array_equal(env.core.gen._offset, bounded_generator(None, (), bias)._offset)
    for kwargs, says in (
        ({"generator": "gan", "element_bias": {"coins": 1.0}}, "needs the column LM generator"),
        ({"element_bias": {"dragons": 1.0}}, "dragons"),
        ({"element_bias": [0.5]}, "write a mapping"),
        ({"element_bias": {"coins": "lots"}}, "finite number"),
    ):
        with pytest.raises(EnvConfigError, match=says):
            make_mario_latent_v1(reward=CHEAP, **kwargs)


@pytest.mark.slow
def test_demo_latent_runs_end_to_end(tmp_path):
    _run([sys.executable, "-m", "rlcreate.cli", "demo", "--generator", "latent", "--timesteps", "64", "--quiet",
          "--out", str(tmp_path / "demo")])
    r = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert r["recipe"] == "mario-latent-choice" and r["env_id"] == "rlcreate/MarioLatent-v1"
    assert set(r["groups"]) == {"steered", "untrained_start", "best_of_4", "greedy", "generator", "human_dev"}
    assert r["width"] == 128 and all(g["n_levels"] == 64 for g in r["groups"].values() if g is not r["groups"]["human_dev"])
    # the objective and PPO's share on 256 levels per set (the judges on the first 64), the rule's row paired
    assert r["objective_levels"] == 256 and r["share"]["steered_minus_greedy"]["n"] == 256
    assert set(r["share"]) == {"steered_minus_untrained_start", "steered_minus_best_of_4", "steered_minus_greedy"}
    assert len(np.load(tmp_path / "demo" / "levels.npy")) == 64
    # the latent demo's own defaults: no A* plays (--astar-levels), the checkpoint audit left to rlcreate eval
    assert r["astar_levels"] == 0 and all(g["astar"] is None for g in r["groups"].values())
    assert not (tmp_path / "demo" / "metrics.json").exists()
    # no rate calibration by default on this path (--calibrate: next test)
    from rlcreate.recipe import load_recipe

    assert r["calibration"] == {} and "element_bias" not in load_recipe(tmp_path / "demo" / "config.yaml").env.kwargs


@pytest.mark.slow
def test_demo_latent_calibrate_fits_the_policy_its_start_and_the_rule(tmp_path):
    """--calibrate: the policy's, its start's and the greedy rule's element rates are fitted (each
    from the generator's default offsets, acting by the mean); the policy's offsets go into
    config.yaml, which eval / report / generate read."""
    from rlcreate.levels.gan import DEFAULT_ELEMENT_BIAS
    from rlcreate.recipe import load_recipe

    _run([sys.executable, "-m", "rlcreate.cli", "demo", "--generator", "latent", "--timesteps", "64", "--quiet",
          "--calibrate", "--out", str(tmp_path / "demo")])
    r = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert set(r["calibration"]) == {"steered", "untrained_start", "greedy"}
    for fit in r["calibration"].values():
        assert fit["rounds"][0]["element_bias"] == {"pipes": DEFAULT_ELEMENT_BIAS["pipes"], "question_blocks": 0.0,
                                                    "coins": DEFAULT_ELEMENT_BIAS["coins"]}
        assert fit["element_bias"] == fit["rounds"][fit["chosen_round"]]["element_bias"]
    saved = load_recipe(tmp_path / "demo" / "config.yaml").env.kwargs["element_bias"]
    assert saved == r["calibration"]["steered"]["element_bias"]


def test_demo_recipe_option_takes_a_recipe_of_the_generators_env(tmp_path):
    """--recipe: a shipped name or a path of the --generator's env; a missing file or another env's
    recipe is one error line naming the value and the fix (exit 2, no traceback)."""
    from rlcreate.levels.demo import DEMO_RECIPES, _demo_recipe, recipe_file

    assert _demo_recipe("latent", None) == recipe_file(DEMO_RECIPES["latent"])
    assert _demo_recipe("latent", "mario_latent.yaml") == recipe_file("mario_latent.yaml")
    for recipe, says in (("nope.yaml", "no such file"), ("mario_tokens.yaml", "not rlcreate/MarioLatent")):
        proc = subprocess.run([sys.executable, "-m", "rlcreate.cli", "demo", "--generator", "latent", "--recipe", recipe,
                               "--out", str(tmp_path / "d")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 2 and f"--recipe {recipe}" in proc.stderr and says in proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "d").exists()


def test_lm_latent_element_channels_shift_their_columns(tiny_lm):
    """extra_controls: zeros decode exactly as no control; +1 on coins raises the share of coin
    columns, -1 on qblocks lowers the share of ?-block columns; unknown names are refused."""
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.tiles import COIN, QCOIN, QUESTION

    gen = ColumnLMLatent(tiny_lm, segment_width=1, context_columns=16, structure=False, element_bias={},
                         extra_controls=("coins", "qblocks"))
    assert gen.control_names == ("enemies", "gaps", "coins", "qblocks")
    z = np.random.default_rng(0).uniform(-1, 1, (2000, 1)).astype(np.float32)
    plain = gen.decode(z)
    assert (gen.decode(z, control=np.zeros((2000, 4))) == plain).all()

    def share(seg, tiles):
        return np.isin(seg, tiles).any(axis=(1, 2)).mean()

    more_coins = gen.decode(z, control=np.tile([0.0, 0.0, 1.0, 0.0], (2000, 1)))
    fewer_q = gen.decode(z, control=np.tile([0.0, 0.0, 0.0, -1.0], (2000, 1)))
    assert share(more_coins, [COIN]) > share(plain, [COIN]) + 0.02
    assert share(fewer_q, [QUESTION, QCOIN]) < share(plain, [QUESTION, QCOIN])
    assert np.allclose(gen.control_for(np.ones((3, 4)))[:, 2:], 0.0)  # no guide for the element channels
    with pytest.raises(GANInputError, match="extra_controls"):
        ColumnLMLatent(tiny_lm, extra_controls=("stars",))


def test_v1_element_channels_and_control_only_actions(tiny_lm):
    """element_channels add one action entry per channel; residual_action=False drops the 16 latent
    entries, and its zero action writes exactly what the residual env's zero action writes (the
    untrained start is the same generator + guide); bad settings are refused."""
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16, extra_controls=("coins", "gap_len"))
    kw = dict(generator=gen, reward=CHEAP, control_channel=True, observe_deficits=True, control_guidance=True,
              control_cap=True, element_channels=["coins", "gap_len"])
    full = make_mario_latent_v1(n_segments=2, **kw)
    small = make_mario_latent_v1(n_segments=2, residual_action=False, **kw)
    assert full.action_space.shape == (8 + 4,) and small.action_space.shape == (4,)
    levels = {}
    for flag in (True, False):
        venv = make_mario_latent_v1_vec(6, n_segments=3, seed=3, residual_action=flag, **kw)
        venv.reset()
        for _ in range(3):
            _, _, done, infos = venv.step(np.zeros((6, venv.action_space.shape[0]), np.float32))
        levels[flag] = np.stack([i["level"] for i in infos])
    assert done.all() and (levels[True] == levels[False]).all()
    pushed = make_mario_latent_v1_vec(6, n_segments=3, seed=3, residual_action=False, **kw)
    pushed.reset()
    for _ in range(3):
        _, _, _, infos = pushed.step(np.tile([0, 0, 0, 1.0], (6, 1)).astype(np.float32))  # longer gaps
    assert not (np.stack([i["level"] for i in infos]) == levels[False]).all()
    with pytest.raises(EnvConfigError, match="element_channels needs control_channel: true"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, element_channels=["coins"])
    with pytest.raises(EnvConfigError, match="residual_action = False needs"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, residual_action=False)
    with pytest.raises(EnvConfigError, match="element_channels = 'coins': use a list"):
        make_mario_latent_v1(generator=gen, reward=CHEAP, control_channel=True, element_channels="coins")
    with pytest.raises(EnvConfigError, match="needs the column LM generator"):
        make_mario_latent_v1(generator="gan", reward=CHEAP, control_channel=True, element_channels=["pipes"])


def test_v1_observe_profile_says_what_the_level_still_needs(tiny_lm):
    """observe_profile adds 3 entries (pipes, ?-blocks, coins): 0.5 + 0.5 tanh((human rate x
    columns / 128 - count so far) / 2), so an empty level reads as on schedule (0.5) and a level
    written with more coins than the human rate reads below 0.5 on coins."""
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec, profile_measures
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.levels.tiles import COIN

    gen = ColumnLMLatent(tiny_lm, 8, 16, extra_controls=("coins",))
    kw = dict(generator=gen, reward=CHEAP, control_channel=True, element_channels=["coins"])
    plain = make_mario_latent_v1(n_segments=2, **kw)
    env = make_mario_latent_v1(n_segments=2, observe_profile=True, **kw)
    assert env.observation_space.shape == (plain.observation_space.shape[0] + 3,)
    venv = make_mario_latent_v1_vec(4, n_segments=3, seed=0, observe_profile=True, **kw)
    obs = venv.reset()
    assert np.allclose(obs[:, -3:], 0.5)
    obs, _, _, infos = venv.step(np.zeros((4, venv.action_space.shape[0]), np.float32))
    seg = np.stack([i["segment"] for i in infos])
    rate = profile_measures()["coins"][1]
    want = 0.5 + 0.5 * np.tanh((rate * 8 / 128 - (seg == COIN).sum(axis=(1, 2))) / 2.0)
    assert np.allclose(obs[:, -1], want, atol=1e-6)


def test_v1_shape_terms_pay_each_segment_and_sum_to_zero(tiny_lm):
    """shape_terms: potential-based shaping from a term scored on the level so far; it pays before
    the level's end and telescopes to 0 over each level; it needs reward_every='end'."""
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    reward = {"profile": {"reward": "element_profile", "weight": 2.0}}
    venv = make_mario_latent_v1_vec(4, n_segments=3, generator=gen, reward=reward, seed=0, shape_terms=["profile"])
    venv.reset()
    shaped = []
    for _ in range(3):
        _, r, done, infos = venv.step(np.zeros((4, 8), np.float32))
        shaped.append([i["term_shaping"] for i in infos])
    shaped = np.array(shaped)
    assert done.all() and np.abs(shaped[0]).max() > 0 and np.allclose(shaped.sum(0), 0.0, atol=1e-9)
    with pytest.raises(EnvConfigError, match="shape_terms"):
        make_mario_latent_v1(generator=gen, reward=reward, shape_terms=["profile"], reward_every="segment")
    with pytest.raises(EnvConfigError, match=r"shape_terms \['nope'\]: not terms of the reward set"):
        make_mario_latent_v1(generator=gen, reward=reward, shape_terms=["nope"])


def test_v1_candidates_observe_k_segments_and_write_the_chosen_one(tiny_lm):
    """candidates=K: K-1 action entries; a zero action writes what the env without candidates writes
    (the same prior draws and targets: the start is unchanged); an entry >= 0.5 writes that
    candidate, whose features were in the observation; bad settings are refused."""
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    kw = dict(generator=gen, reward=CHEAP, control_channel=True, observe_deficits=True, control_guidance=True)
    plain = make_mario_latent_v1(n_segments=2, **kw)
    env = make_mario_latent_v1(n_segments=2, candidates=3, **kw)
    per = plain.core.n_features + 1 + 2  # features, crossable after it, two target deficits after it
    assert env.action_space.shape == (2,) and env.observation_space.shape == (plain.observation_space.shape[0] + 3 * per,)
    levels = {}
    for k in (0, 3):
        venv = make_mario_latent_v1_vec(5, n_segments=3, seed=2, candidates=k, **kw)
        venv.reset()
        for _ in range(3):
            _, _, done, infos = venv.step(np.zeros((5, venv.action_space.shape[0]), np.float32))
        levels[k] = np.stack([i["level"] for i in infos])
    assert done.all() and (levels[0] == levels[3]).all()
    venv = make_mario_latent_v1_vec(5, n_segments=3, seed=2, candidates=3, **kw)
    obs = venv.reset()
    second = venv.core.cand_seg[:, 2].copy()
    feats = obs[:, plain.observation_space.shape[0] + 2 * per : plain.observation_space.shape[0] + 2 * per + 9]
    assert np.allclose(feats, np.clip(venv.core.featurizer(second), 0, 1), atol=1e-6)
    _, _, _, infos = venv.step(np.tile([0.2, 0.9], (5, 1)).astype(np.float32))
    assert (np.stack([i["segment"] for i in infos]) == second).all()
    assert all(i["latent"]["redraw"] == 1.0 for i in infos)
    with pytest.raises(EnvConfigError, match="candidates = 1: use 0"):
        make_mario_latent_v1(candidates=1, **kw)
    with pytest.raises(EnvConfigError, match="candidates needs latent_mode: residual"):
        make_mario_latent_v1(candidates=3, preview=True, **kw)


def test_v1_candidate_terms_show_what_each_candidate_pays(tiny_lm):
    """candidate_terms: per candidate, the change of each named term's potential if it is written
    (and their sum), squashed; when every level takes candidate j (so the batch terms see the batch
    they were scored on), the shaping paid for those terms is exactly candidate j's observed sum,
    at every step including the last (where the whole-level terms are paid); bad settings refused."""
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.envs.latent_level import CANDIDATE_TERM_SCALE
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    names = ["profile", "set_profile", "diversity"]
    reward = {"profile": {"reward": "element_profile", "weight": 0.5},
              "set_profile": {"reward": "set_profile", "weight": 0.1},
              "diversity": {"reward": "batch_diversity", "weight": 0.5}}
    kw = dict(generator=gen, reward=reward, candidates=3, shape_terms=names)
    plain = make_mario_latent_v1(n_segments=2, **kw)
    env = make_mario_latent_v1(n_segments=2, candidate_terms=names, **kw)
    assert env.observation_space.shape == (plain.observation_space.shape[0] + 3 * (len(names) + 1),)
    for pick in (0, 2):
        venv = make_mario_latent_v1_vec(6, n_segments=3, seed=4, candidate_terms=names, **kw)
        obs = venv.reset()
        action = np.zeros((6, 2), np.float32)
        if pick:
            action[:, pick - 1] = 1.0
        paid, seen = [], []
        for _ in range(3):
            width = plain.core.n_features + 1 + len(names) + 1  # features, crossable after it, the terms
            assert venv.core.candidate_width == width and plain.core.candidate_width == width - len(names) - 1
            block = obs[:, -3 * width:].reshape(6, 3, width)[:, pick, -len(names) - 1 :].astype(np.float64)
            seen.append(CANDIDATE_TERM_SCALE * np.arctanh(2 * block - 1))
            obs, r, done, infos = venv.step(action)
            paid.append(r)  # no other shaping: the term shaping, plus the whole-level terms at the end
        seen, paid = np.array(seen), np.array(paid)
        assert done.all() and np.abs(seen[..., :-1]).max() > 1e-3
        assert np.allclose(seen[..., -1], seen[..., :-1].sum(-1), atol=1e-4)
        assert np.allclose(seen[..., -1], paid, atol=1e-4)  # the sum observed is what the step pays
    with pytest.raises(EnvConfigError, match="candidate_terms .* needs candidates"):
        make_mario_latent_v1(generator=gen, reward=reward, candidate_terms=["profile"])
    with pytest.raises(EnvConfigError, match=r"not terms of the reward set"):
        make_mario_latent_v1(generator=gen, reward=reward, candidates=3, candidate_terms=["nope"])
    with pytest.raises(EnvConfigError, match="candidate_terms = 'profile': use a list"):
        make_mario_latent_v1(generator=gen, reward=reward, candidates=3, candidate_terms="profile")
    novelty = {"novelty": {"reward": "level_novelty", "weight": 1.0}}
    with pytest.raises(EnvConfigError, match="keep state"):
        make_mario_latent_v1(generator=gen, reward=novelty, candidates=3, candidate_terms=["novelty"])


def test_greedy_action_keeps_the_level_crossable_then_takes_the_largest_term_sum(tiny_lm):
    """The hand-built picker (the demo's and the bench's greedy row) reads each candidate block:
    crossable first, then the observed sum of term changes; it writes candidate 0 with a zero
    action, candidate k with entry k-1 = 1; an env without candidate_terms has no such rule."""
    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.levels.envs import make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    reward = {"profile": {"reward": "element_profile", "weight": 0.5}}
    venv = make_mario_latent_v1_vec(3, n_segments=2, seed=0, generator=gen, reward=reward, candidates=3,
                                    candidate_terms=["profile"])
    core, obs = venv.core, venv.reset()
    width = core.candidate_width
    blocks = np.zeros((3, 3, width), np.float32)
    # (crossable after it, observed sum) per candidate 0, 1, 2
    for row, cands in enumerate([[(1, 0.5), (0, 0.9), (1, 0.6)],   # a broken level loses to any crossable one
                                 [(1, 0.7), (1, 0.4), (1, 0.5)],   # all crossable: the largest sum, candidate 0
                                 [(0, 0.2), (0, 0.8), (0, 0.3)]]):  # none crossable: the largest sum
        for j, (alive, total) in enumerate(cands):
            blocks[row, j, core.n_features], blocks[row, j, -1] = alive, total
    obs = np.concatenate([obs[:, : -3 * width], blocks.reshape(3, -1)], 1)
    assert core.greedy_action(obs).tolist() == [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]
    plain = make_mario_latent_v1_vec(2, n_segments=2, seed=0, generator=gen, reward=reward, candidates=3)
    with pytest.raises(EnvConfigError, match="greedy_action: needs candidates"):
        plain.core.greedy_action(plain.reset())


def test_v1_candidate_choice_writes_the_indexed_candidate(tiny_lm):
    """candidate_action='choice': Discrete(K) actions write candidate k as the Box layout's entry
    k-1 = 1 does (the same observations, levels and rewards for the same picks); greedy_action
    returns the index; nothing saturates; bad settings and out-of-range picks are refused."""
    from gymnasium import spaces

    from rlcreate.envs.core_vec_env import EnvConfigError
    from rlcreate.envs.latent_level import candidate_pick
    from rlcreate.levels.envs import make_mario_latent_v1, make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    reward = {"profile": {"reward": "element_profile", "weight": 0.5}}
    kw = dict(n_segments=3, seed=2, generator=gen, reward=reward, candidates=3, candidate_terms=["profile"])
    box, choice = make_mario_latent_v1_vec(5, **kw), make_mario_latent_v1_vec(5, candidate_action="choice", **kw)
    assert choice.action_space == spaces.Discrete(3) and box.action_space.shape == (2,)
    ob, oc = box.reset(), choice.reset()
    picks = []
    for _ in range(3):
        assert np.array_equal(ob, oc)
        gb, gc = box.core.greedy_action(ob), choice.core.greedy_action(oc)
        assert gc.dtype.kind == "i" and (candidate_pick(gb) == gc).all()
        picks += gc.tolist()
        ob, rb, _, ib = box.step(gb)
        oc, rc, done, ic = choice.step(gc)
        assert np.array_equal(rb, rc) and all(i["latent"]["saturated"] == 0.0 for i in ic)
    assert done.all() and len(set(picks)) >= 2  # not candidate 0 everywhere: the check has teeth
    assert np.array_equal(np.stack([i["level"] for i in ib]), np.stack([i["level"] for i in ic]))
    with pytest.raises(ValueError, match=r"actions must be in 0..2"):
        choice.step(np.full(5, 3))
    with pytest.raises(EnvConfigError, match="candidate_action = 'dice': use one of box, choice"):
        make_mario_latent_v1(generator=gen, reward=reward, candidates=3, candidate_action="dice")
    with pytest.raises(EnvConfigError, match="needs candidates >= 2"):
        make_mario_latent_v1(generator=gen, reward=reward, candidate_action="choice")
    from types import SimpleNamespace

    from rlcreate.evaluation.baselines import BaselineError
    from rlcreate.levels.search import LevelEvaluator

    asm = SimpleNamespace(recipe=SimpleNamespace(env_id="rlcreate/MarioLatent-v1"), reward_set=None,
                          make_env=lambda n, seed: make_mario_latent_v1_vec(n, candidate_action="choice", **kw))
    with pytest.raises(BaselineError, match="candidate_action: choice: CMA-ES and MAP-Elites search Box actions"):
        LevelEvaluator(asm, 2, 100)


def test_candidate_scorer_with_the_rule_starts_at_greedy_action(tiny_lm):
    """candidate_scorer with rule_gain > 0 and the env's rule_entries: on real MarioLatent-v1
    observations the untrained policy's mean action (clipped as SB3 clips it) writes the candidate
    greedy_action writes, at every step; without the option it writes candidate 0."""
    from rlcreate.levels.envs import make_mario_latent_v1_vec
    from rlcreate.levels.gan import ColumnLMLatent
    from rlcreate.sb3.algo import build_algo

    gen = ColumnLMLatent(tiny_lm, 8, 16)
    reward = {"profile": {"reward": "element_profile", "weight": 0.5},
              "diversity": {"reward": "batch_diversity", "weight": 0.5}}
    venv = make_mario_latent_v1_vec(8, n_segments=3, seed=0, generator=gen, reward=reward, candidates=4,
                                    candidate_terms=["profile", "diversity"], playability_shaping=1.0)
    core = venv.core
    assert core.seam is not None and core.rule_entries == [core.n_features, core.candidate_width - 1]
    spaces_ = (venv.observation_space, venv.action_space)
    kw = {"candidate_width": core.candidate_width, "net_arch": [16]}
    rule = build_algo("ppo", {"policy": "candidate_scorer", "policy_kwargs": {
        **kw, "rule_gain": 50.0, "rule_entries": core.rule_entries}}, spaces=spaces_)
    plain = build_algo("ppo", {"policy": "candidate_scorer", "policy_kwargs": kw}, spaces=spaces_)

    def pick(a):
        return np.where(a.max(1) >= 0.5, a.argmax(1) + 1, 0)

    obs, picks = venv.reset(), []
    for _ in range(3):
        a = rule.predict(obs, deterministic=True)[0]
        assert (pick(a) == pick(core.greedy_action(obs))).all()
        assert (pick(plain.predict(obs, deterministic=True)[0]) == 0).all()
        picks += pick(a).tolist()
        obs, *_ = venv.step(a)
    assert len(set(picks)) >= 3  # the rule is not candidate 0 everywhere: the check has teeth


@pytest.mark.slow
def test_candidates_recipe_loads_and_its_zero_action_is_the_shipped_recipes_start():
    """mario_latent_candidates.yaml and mario_latent_candidates_terms.yaml build (K = 4, 3 action
    entries; the latter's candidate_width is the env's block size) and, with a zero action, write
    the same level as mario_latent.yaml's zero action for the same seed (the same generator + guide);
    benchmarks/recipes/latent_candidates_rule_start.yaml is the terms recipe plus the rule options;
    mario_latent_choice.yaml is the terms recipe with a Discrete(4) choice (choice 0 writes the same
    level) and its policy without the Box's log_std_init."""
    import yaml
    from gymnasium import spaces

    from rlcreate.assemble import assemble
    from rlcreate.recipe import parse_recipe

    levels = []
    names = ("mario_latent_candidates.yaml", "mario_latent_candidates_terms.yaml", "mario_latent_choice.yaml")
    for name in (*names, "mario_latent.yaml"):
        doc = yaml.safe_load((ROOT / "rlcreate" / "recipes" / name).read_text())
        doc["env"]["kwargs"]["n_segments"] = 2
        venv = assemble(parse_recipe(doc)).make_env(2, 7, "eval")
        obs = venv.reset()
        if name == "mario_latent_choice.yaml":
            assert venv.action_space == spaces.Discrete(4) and venv.core.n_cand == 4
            choice = yaml.safe_load((ROOT / "rlcreate" / "recipes" / name).read_text())
            terms = yaml.safe_load((ROOT / "rlcreate" / "recipes" / names[1]).read_text())
            assert choice["env"]["kwargs"].pop("candidate_action") == "choice"
            assert terms["trainer"]["hyper"]["policy_kwargs"].pop("log_std_init")
            for d in (choice, terms):
                del d["name"], d["description"]
            assert choice == terms
        elif name != "mario_latent.yaml":
            assert venv.action_space.shape == (3,) and venv.core.n_cand == 4
        if name == "mario_latent_candidates_terms.yaml":  # the policy's block size is the env's
            width = doc["trainer"]["hyper"]["policy_kwargs"]["candidate_width"]
            assert venv.core.candidate_width == width and obs.shape[1] > 4 * width
            # the rule-start bench recipe is this one plus the rule's policy options, read at the env's positions
            bench = yaml.safe_load((ROOT / "benchmarks" / "recipes" / "latent_candidates_rule_start.yaml").read_text())
            base = yaml.safe_load((ROOT / "rlcreate" / "recipes" / name).read_text())
            kw = bench["trainer"]["hyper"]["policy_kwargs"]
            assert kw.pop("rule_entries") == venv.core.rule_entries and kw.pop("rule_gain") > 0
            for d in (bench, base):
                del d["name"], d["description"]
            assert bench == base
        choice = isinstance(venv.action_space, spaces.Discrete)
        zero = np.zeros(2, np.int64) if choice else np.zeros((2, venv.action_space.shape[0]), np.float32)
        for _ in range(2):
            _, _, _, infos = venv.step(zero)
        levels.append(np.stack([i["level"] for i in infos]))
    assert all((lv == levels[-1]).all() for lv in levels[:-1])
