"""Post-training calibration of the element rates (rlcreate.levels.calibrate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rlcreate.assemble
import rlcreate.levels.quality
import rlcreate.levels.share
from rlcreate.levels.calibrate import (
    CALIBRATED_ELEMENTS,
    calibrate_element_bias,
    calibration_refusal,
    with_element_bias,
)
from rlcreate.levels.demo import demo_recipe_path
from rlcreate.levels.value_rewards import human_element_stats
from rlcreate.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
BASE = {"pipes": 2.0, "question_blocks": 4.0, "coins": 3.0}  # a policy writing too few of each


@pytest.fixture
def fake_sampler(monkeypatch):
    """A sampler whose rate of each element is BASE * exp(offset) (what a logit offset does to a rare
    element), with no sampling noise, and a log of the requests each round drew."""
    human_element_stats(128)  # the real human rates, cached before element_profile is replaced
    seen: list[tuple[int, int]] = []

    class Asm:
        def __init__(self, recipe):
            self.bias = dict(recipe.env.kwargs.get("element_bias") or {})

    def sample(model, asm, n, env_seed, policy_seed, deterministic=False):
        seen.append((env_seed, policy_seed))
        return [asm.bias] * n, [{}] * n

    def profile(levels):
        return {
            e: np.array([BASE.get(e, 5.0) * np.exp(b.get(e, 0.0)) for b in levels])
            for e in rlcreate.levels.quality.ELEMENTS
        }

    monkeypatch.setattr(rlcreate.assemble, "assemble", Asm)
    monkeypatch.setattr(rlcreate.levels.share, "sample_levels", sample)
    monkeypatch.setattr(rlcreate.levels.quality, "element_profile", profile)
    return seen


def test_the_fit_reaches_the_human_training_rate_and_returns_its_last_measured_round(fake_sampler):
    """The fake response is log-linear with slope 1: after the first (damped) step the fitted line
    is exact, so the third round measures the target rates, and the last round is the one returned."""
    recipe = load_recipe(demo_recipe_path("tokens"))
    out = calibrate_element_bias(object(), recipe, levels=128, method="fit")  # 4 rounds by default
    mu = dict(zip(rlcreate.levels.quality.ELEMENTS, human_element_stats(128)[0]))
    errors = [r["error"] for r in out["rounds"]]
    assert len(errors) == 4 and errors[0] > 0.2 and errors[1] > 0.01 and errors[2] < 1e-3 and errors[3] < 1e-3
    assert out["chosen_round"] == 3 and out["method"] == "fit"
    for e in CALIBRATED_ELEMENTS:
        assert out["element_bias"][e] == pytest.approx(np.log(mu[e] / BASE[e]), abs=1e-3)
    assert fake_sampler == [(1000, 1000), (1064, 1064)] * 4  # the same requests every round


def test_the_fit_follows_a_policy_that_resists_the_offsets(monkeypatch):
    """A policy whose rates move with a slope of 0.4 in log(rate) per unit of offset (as trained
    policies' coins did): damped steps that assume slope 1 stop short, the fitted line does not."""
    human_element_stats(128)

    class Asm:
        def __init__(self, recipe):
            self.bias = dict(recipe.env.kwargs.get("element_bias") or {})

    monkeypatch.setattr(rlcreate.assemble, "assemble", Asm)
    monkeypatch.setattr(
        rlcreate.levels.share, "sample_levels", lambda model, asm, n, env_seed, policy_seed, deterministic=False: ([asm.bias] * n, [{}] * n)
    )
    monkeypatch.setattr(
        rlcreate.levels.quality,
        "element_profile",
        lambda levels: {e: np.array([mu[e] * np.exp(0.4 * (b.get(e, 0.0) - 0.6)) for b in levels]) for e in mu},
    )
    mu = dict(zip(rlcreate.levels.quality.ELEMENTS, human_element_stats(128)[0]))  # the rates at an offset of 0.6
    recipe = load_recipe(demo_recipe_path("tokens"))
    fit = calibrate_element_bias(object(), recipe, levels=64, rounds=4, method="fit")
    closest = calibrate_element_bias(object(), recipe, levels=64, rounds=4)  # the default
    assert fit["rounds"][-1]["error"] < 0.01 < 0.05 < closest["rounds"][closest["chosen_round"]]["error"]
    assert fit["element_bias"] == {e: pytest.approx(0.6, abs=0.01) for e in CALIBRATED_ELEMENTS}


def test_fitted_offsets_keep_their_bounds():
    from rlcreate.levels.calibrate import MAX_STEP, fitted_offsets

    target = {"coins": 6.0}
    flat = [{"element_bias": {"coins": 0.0}, "means": {"coins": 3.0}}, {"element_bias": {"coins": 0.3}, "means": {"coins": 3.0}}]
    assert fitted_offsets(flat, target, 0.8, 1.5)["coins"] == pytest.approx(0.3 + MAX_STEP)  # no response: a bounded step
    one = [{"element_bias": {"coins": 0.0}, "means": {"coins": 4.0}}]
    assert fitted_offsets(one, target, 0.8, 1.5)["coins"] == pytest.approx(0.8 * np.log(1.5))  # slope 1 assumed, damped
    far = [{"element_bias": {"coins": 1.4}, "means": {"coins": 1.0}}]
    assert fitted_offsets(far, target, 0.8, 1.5)["coins"] == 1.5  # within the limit


def test_the_default_closest_method_steps_and_keeps_the_closest_round(fake_sampler):
    recipe = load_recipe(demo_recipe_path("tokens"))
    assert len(calibrate_element_bias(object(), recipe, levels=64)["rounds"]) == 3 and len(fake_sampler) == 3
    fake_sampler.clear()
    out = calibrate_element_bias(object(), recipe, levels=128, rounds=6, damping=0.8)
    assert out["method"] == "closest"
    mu = dict(zip(rlcreate.levels.quality.ELEMENTS, human_element_stats(128)[0]))
    errors = [r["error"] for r in out["rounds"]]
    assert errors[0] == pytest.approx(max(abs(np.log(mu[e] / BASE[e])) for e in CALIBRATED_ELEMENTS), abs=1e-3)
    assert errors[-1] < 0.01 < errors[0]  # damped steps close the gap geometrically (factor 0.2 a round)
    assert out["chosen_round"] == int(np.argmin(errors))
    for e in CALIBRATED_ELEMENTS:  # the chosen offsets are the log-ratio of target to base rate
        assert out["element_bias"][e] == pytest.approx(np.log(mu[e] / BASE[e]), abs=0.01)
        assert out["target"][e] == pytest.approx(mu[e], abs=1e-3)
    # every round answers the same requests (common random numbers): 2 sets of 64 per round
    assert fake_sampler == [(1000, 1000), (1064, 1064)] * 6


@pytest.mark.parametrize("method", ["fit", "closest"])
def test_the_chosen_offsets_were_measured_not_extrapolated(fake_sampler, method):
    out = calibrate_element_bias(object(), load_recipe(demo_recipe_path("tokens")), levels=64, rounds=1, method=method)
    assert out["chosen_round"] == 0
    assert out["element_bias"] == {e: 0.0 for e in CALIBRATED_ELEMENTS}  # the only measured offsets


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        calibrate_element_bias(object(), load_recipe(demo_recipe_path("tokens")), levels=64, method="best")


def test_the_offsets_start_from_the_recipes_own_and_stay_bounded(fake_sampler):
    recipe = with_element_bias(load_recipe(demo_recipe_path("tokens")), {"coins": 0.4})
    out = calibrate_element_bias(lambda asm: object(), recipe, levels=64, rounds=2, damping=10.0, limit=0.5)
    assert out["rounds"][0]["element_bias"]["coins"] == 0.4
    assert all(abs(b) <= 0.5 for b in out["rounds"][1]["element_bias"].values())


def test_with_element_bias_copies():
    recipe = load_recipe(demo_recipe_path("tokens"))
    calibrated = with_element_bias(recipe, {"coins": 0.3})
    assert calibrated.env.kwargs["element_bias"] == {"coins": 0.3}
    assert "element_bias" not in recipe.env.kwargs


@pytest.mark.parametrize("levels, rounds", [(8, 2), (64, 0)])
def test_too_small_a_fit_is_refused(levels, rounds):
    with pytest.raises(ValueError, match="levels"):
        calibrate_element_bias(object(), load_recipe(demo_recipe_path("tokens")), levels=levels, rounds=rounds)


def _cli(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "rlcreate.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_calibrate_command_refuses_a_run_without_offsets(tmp_path):
    """The offsets are the column LM's: a latent run on the level GAN gets one error line naming its
    generator, and its config.yaml is left as it was."""
    run = tmp_path / "latent"
    run.mkdir()
    text = (ROOT / "rlcreate/recipes/mario_latent.yaml").read_text().replace("generator: column_lm ", "generator: gan ")
    assert "generator: gan" in text
    (run / "config.yaml").write_text(text)
    proc = _cli("calibrate", str(run))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "its generator is 'gan'" in proc.stderr
    assert (run / "config.yaml").read_text() == text and not (run / "calibration.json").exists()
    proc = _cli("calibrate", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "not a run folder" in proc.stderr
    assert not list(tmp_path.glob(".missing*"))  # no lock file made beside a folder that is not a run


def test_which_recipes_have_offsets():
    assert calibration_refusal(load_recipe(demo_recipe_path("tokens"))) is None
    latent = load_recipe(demo_recipe_path("latent"))
    assert calibration_refusal(latent) is None  # the column LM decoding noise
    latent.env.kwargs["generator"] = "gan"
    assert "'gan'" in calibration_refusal(latent)
    latent.env.id = "rlcreate/MarioLatent-v0"
    assert "MarioLatent-v0" in calibration_refusal(latent)
    with pytest.raises(ValueError, match="cannot calibrate"):
        calibrate_element_bias(object(), latent, levels=16, rounds=1)


def test_a_latent_fit_starts_from_the_generators_offsets_and_acts_by_the_mean(monkeypatch):
    """A latent recipe without element_bias samples with the column LM generator's defaults, so the
    first round measures those; its policy is drawn acting by its mean (as the demo draws it)."""
    from rlcreate.levels.gan import DEFAULT_ELEMENT_BIAS

    human_element_stats(128)
    calls: list[tuple[dict, bool]] = []

    class Asm:
        def __init__(self, recipe):
            self.bias = dict(recipe.env.kwargs.get("element_bias") or {})

    def sample(model, asm, n, env_seed, policy_seed, deterministic=False):
        calls.append((asm.bias, deterministic))
        return [asm.bias] * n, [{}] * n

    monkeypatch.setattr(rlcreate.assemble, "assemble", Asm)
    monkeypatch.setattr(rlcreate.levels.share, "sample_levels", sample)
    monkeypatch.setattr(
        rlcreate.levels.quality, "element_profile", lambda levels: {e: np.full(len(levels), 5.0) for e in rlcreate.levels.quality.ELEMENTS}
    )
    recipe = load_recipe(demo_recipe_path("latent"))
    assert "element_bias" not in recipe.env.kwargs
    out = calibrate_element_bias(object(), recipe, levels=16, rounds=2)
    first = out["rounds"][0]["element_bias"]
    assert first == {e: DEFAULT_ELEMENT_BIAS.get(e, 0.0) for e in CALIBRATED_ELEMENTS}
    assert calls[0] == (first, True) and all(det for _, det in calls)
    assert out["rounds"][1]["element_bias"] != first  # 5.0 of each is off the human rates: the offsets move


@pytest.mark.slow
def test_calibrate_command_writes_the_fit_into_a_trained_run(tmp_path):
    """`rlcreate calibrate` on a plain `rlcreate train` token run: the fitted offsets go into its
    config.yaml (what eval, report and generate read), calibration.json keeps the fit and the
    offsets it trained with, samples/ is redrawn; a second fit keeps the trained-with record."""
    import json

    proc = _cli("train", str(ROOT / "rlcreate/recipes/mario_tokens.yaml"), "--steps", "512", "--out", str(tmp_path),
                "--name", "r", "--quiet")
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "r"
    before = (run / "samples").stat().st_mtime_ns
    proc = _cli("calibrate", str(run), "--levels", "16", "--rounds", "2")
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((run / "calibration.json").read_text())
    fit = saved["steered"]
    assert saved["trained_element_bias"] is None and len(fit["rounds"]) == 2 and fit["levels"] == 16
    assert fit["element_bias"] == fit["rounds"][fit["chosen_round"]]["element_bias"]
    assert load_recipe(run / "config.yaml").env.kwargs["element_bias"] == fit["element_bias"]
    assert (run / "samples").stat().st_mtime_ns != before and list((run / "samples").glob("level_*.txt"))
    assert "offsets pipes" in proc.stdout
    (run / "calibration.json").write_text(json.dumps({**saved, "untrained_start": fit}))  # as a demo run has
    proc = _cli("calibrate", str(run), "--levels", "16", "--rounds", "1")
    assert proc.returncode == 0, proc.stderr
    again = json.loads((run / "calibration.json").read_text())
    assert again["untrained_start"] == fit  # the start's fit of a demo run is kept
    assert again["trained_element_bias"] is None  # the offsets it trained with, not the first fit's
    assert again["steered"]["rounds"][0]["element_bias"] == fit["element_bias"]  # the second fit starts from the first
