"""Evaluation: baselines at equal budget, judges, audit verdicts, QD summary, reports, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlcreate.evaluation.audit import flag_divergence
from rlcreate.evaluation.baselines import BaselineError, run_baseline
from rlcreate.evaluation.report import RunFolderError, evaluate_run, load_run, write_report
from rlcreate.levels import corpus
from rlcreate.levels.generators.latent import LatentLevelGenerator, LevelVAE, VAEConfig
from rlcreate.levels.judges import UnknownJudgeError, run_judges
from rlcreate.levels.qd import DEFAULT_GRID, DescriptorError, describe, qd_summary
from rlcreate.levels.tiles import parse_level
from rlcreate.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]

FLAT = parse_level("\n".join(["-" * 32] * 12 + ["X" * 32] * 2))  # flat ground, nothing else


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random VAE saved as a folder and a 2-segment recipe that points at it."""
    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    LatentLevelGenerator.from_module(LevelVAE(VAEConfig(latent_dim=8, hidden=16))).save(root / "vae")
    recipe = load_recipe(ROOT / "rlcreate" / "recipes" / "legacy_mario_latent.yaml")
    recipe.env_kwargs.update(n_segments=2, generator=str(root / "vae"))
    recipe.trainer.update(samples=4, n_envs=4, total_timesteps=128, checkpoints=2)
    recipe.trainer["hyper"].update(n_steps=16, batch_size=32, n_epochs=1)
    recipe.dump(root / "tiny.yaml")
    return root, load_recipe(root / "tiny.yaml")


# ---- QD -------------------------------------------------------------------------------------

def test_qd_summary_counts_cells_and_offset():
    g = corpus.full_corpus()[:, :128]
    one = qd_summary([g, g, g], [1.0, 3.0, 2.0])
    assert one["filled"] == 1 and one["qd_score"] == pytest.approx(3.0)  # best of the cell
    assert one["coverage"] == pytest.approx(1 / 196)
    shifted = qd_summary([g], [-0.5], offset=-1.0)
    assert shifted["qd_score"] == pytest.approx(0.5)
    other = corpus.full_corpus()[:, 4427:4427 + 128]
    assert not np.allclose(describe([g], DEFAULT_GRID.names), describe([other], DEFAULT_GRID.names))


def test_qd_rejects_bad_input():
    with pytest.raises(DescriptorError, match="Did you mean 'leniency'"):
        describe([FLAT], ["lenency"])
    with pytest.raises(DescriptorError, match="2 levels but 1 objectives"):
        qd_summary([FLAT, FLAT], [1.0])


# ---- judges ---------------------------------------------------------------------------------

def test_judges_on_known_levels():
    real = [corpus.full_corpus()[:, s:s + 32] for s in (4427, 4600)]
    noise = [np.random.default_rng(i).integers(0, 13, (14, 32)).astype(np.int8) for i in range(2)]
    names = ["tile_kl", "novelty", "validity", "solver", "expressive_range", "diversity"]
    jr, jn = run_judges(real, names), run_judges(noise, names)
    assert jr["tile_kl"]["kl_3x3"] < jn["tile_kl"]["kl_3x3"]
    assert jr["novelty"]["train_distance"] < jn["novelty"]["train_distance"]
    assert jn["validity"]["valid"] == 0.0
    flat = run_judges([FLAT], ["solver", "expressive_range"])
    assert flat["solver"]["playable"] == 1.0 and flat["expressive_range"]["linearity"] == pytest.approx(1.0)


def test_unknown_judge_suggests():
    with pytest.raises(UnknownJudgeError, match="Did you mean 'tile_kl'"):
        run_judges([FLAT], ["tile_kll"])


def test_astar_judge_skips_without_java(monkeypatch):
    import rlcreate.levels.astar as astar

    monkeypatch.setattr(astar, "java_available", lambda java=None: False)
    out = run_judges([FLAT], ["astar"])
    assert "java not found" in out["astar"]["skipped"]


def test_astar_judge_plays_only_the_first_astar_levels(monkeypatch):
    from types import SimpleNamespace

    import rlcreate.levels.astar as astar

    played = []

    def fake_run_astar(levels, runs=2, workers=2):
        played.append(len(levels))
        result = SimpleNamespace(jumps=3)
        return [SimpleNamespace(win_rate=1.0, mean_completion=1.0, results=[result]) for _ in levels]

    monkeypatch.setattr(astar, "java_available", lambda java=None: True)
    monkeypatch.setattr(astar, "run_astar", fake_run_astar)
    assert run_judges([FLAT] * 5, ["astar"], astar_levels=2)["astar"]["levels"] == 2
    assert run_judges([FLAT] * 5, ["astar"])["astar"]["levels"] == 5
    assert played == [2, 5]


# ---- audit ----------------------------------------------------------------------------------

def test_audit_flags_on_synthetic_series():
    steps = [100, 200, 300, 400]
    assert flag_divergence(steps, [0.2, 0.4, 0.6, 0.8], [0.9, 0.7, 0.5, 0.3])["verdict"] == "diverged"
    stalled = flag_divergence(steps, [0.2, 0.4, 0.6, 0.8], [0.5, 0.5, 0.52, 0.51])
    assert stalled["verdict"] == "stalled" and stalled["proxy_change"] == pytest.approx(0.6)
    assert flag_divergence(steps, [0.2, 0.4, 0.6, 0.8], [0.2, 0.35, 0.5, 0.7])["verdict"] == "ok"
    assert flag_divergence(steps, [0.8, 0.6, 0.4, 0.2], [0.9, 0.7, 0.5, 0.3])["verdict"] == "ok"  # proxy fell
    assert flag_divergence([1], [0.1], [0.1])["verdict"] == "insufficient"
    with pytest.raises(ValueError, match="one value per checkpoint"):
        flag_divergence(steps, [0.1], [0.1, 0.2])


# ---- baselines ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["random", "cma", "map-elites", "cma-me"])
def test_baseline_equal_budget(tiny, method, tmp_path):
    _, recipe = tiny
    info = run_baseline(recipe, method, tmp_path / method, budget=72, batch=4, progress_bar=False)
    # 4 levels x 2 segments = 8 evaluations per generation; whole generations within the budget
    assert info["evaluations"] == 72 and info["generations"] == 9
    progress = json.loads((tmp_path / method / "progress.json").read_text())
    assert len(progress) == 9 and progress[-1]["evaluations"] == 72
    assert progress[-1]["best_so_far"] == pytest.approx(info["best_return"])
    metrics = json.loads((tmp_path / method / "samples" / "metrics.json").read_text())
    assert metrics["n"] == 4 and all("episode_return" in m for m in metrics["levels"])
    assert (tmp_path / method / "config.yaml").is_file() and (tmp_path / method / "samples" / "level_000.png").is_file()


def test_baseline_is_deterministic(tiny, tmp_path):
    _, recipe = tiny
    a = run_baseline(recipe, "cma", tmp_path / "a", budget=32, batch=4, progress_bar=False)
    b = run_baseline(recipe, "cma", tmp_path / "b", budget=32, batch=4, progress_bar=False)
    assert a["best_return"] == b["best_return"]
    assert (tmp_path / "a/samples/level_000.txt").read_text() == (tmp_path / "b/samples/level_000.txt").read_text()


def test_cma_improves_over_its_first_generation(tiny, tmp_path):
    _, recipe = tiny
    run_baseline(recipe, "cma", tmp_path / "c", budget=240, batch=6, progress_bar=False)
    progress = json.loads((tmp_path / "c" / "progress.json").read_text())
    assert progress[-1]["best_so_far"] > progress[0]["best"]


def test_baseline_bad_input(tiny, tmp_path):
    _, recipe = tiny
    with pytest.raises(BaselineError, match="Did you mean 'cma'"):
        run_baseline(recipe, "cmaa", tmp_path / "x", budget=8, progress_bar=False)
    with pytest.raises(BaselineError, match="budget >= 8"):
        run_baseline(recipe, "random", tmp_path / "x", budget=4, batch=4, progress_bar=False)


# ---- a tiny RL run, eval and report ---------------------------------------------------------

@pytest.fixture(scope="module")
def rl_run(tiny):
    from rlcreate.train.runner import train_run

    root, recipe = tiny
    train_run(recipe, root / "rl", progress_bar=False)
    return root / "rl"


def test_eval_and_report_on_rl_and_baseline(rl_run, tiny, tmp_path, monkeypatch):
    import rlcreate.levels.astar as astar

    monkeypatch.setattr(astar, "java_available", lambda java=None: False)  # the A*-judged pair is skipped
    root, recipe = tiny
    res = evaluate_run(rl_run, n=4, judges=["tile_kl", "novelty", "solver"], audit_levels=4)
    assert res["n_levels"] == 4 and "composite" in res and res["qd"]["n_levels"] == 4
    pairs = res["audit"]["pairs"]
    assert set(pairs) == {"playability", "novelty", "coherence"}
    assert pairs["playability"]["verdict"] == "skipped" and "java" in pairs["playability"]["reason"]
    assert pairs["playability"]["judge_name"].startswith("astar.")  # named like every other pair
    assert all(isinstance(p.get("judge", []), list) for p in pairs.values())  # "judge" is always a series
    assert pairs["novelty"]["verdict"] in ("ok", "stalled", "diverged") and len(pairs["novelty"]["proxy"]) == 2
    assert res["audit"]["checkpoints"] == [64, 128]
    assert json.loads((rl_run / "metrics.json").read_text())["judges"]["tile_kl"]["kl_3x3"] > 0
    run_baseline(recipe, "random", root / "rand", budget=16, batch=4, progress_bar=False)
    evaluate_run(root / "rand", judges=["validity"])
    page = write_report([rl_run, root / "rand"], tmp_path / "rep")
    text = page.read_text()
    for src in __import__("re").findall(r"src='([^']+)'", text):
        assert (page.parent / src).is_file(), src
    assert "img/expressive_range.png" in text and "img/curves_0.png" in text
    assert "baseline: random" in text and "Audit" in text
    assert "not what rlcreate writes" not in text  # rlcreate's own files pass the report's shape checks


def test_report_on_incomplete_run(tiny, tmp_path):
    root, _ = tiny
    run = tmp_path / "interrupted"
    run.mkdir()
    (run / "config.yaml").write_text((root / "tiny.yaml").read_text())
    page = write_report([run], tmp_path / "rep")
    text = page.read_text()
    assert "missing: model/" in text and "missing: samples/ levels" in text and "missing: tb/" in text
    assert load_run(run)["missing"]
    with pytest.raises(RunFolderError, match="not a folder"):
        write_report([tmp_path / "nope"], tmp_path / "rep2")


def test_report_lists_damaged_json_files_instead_of_crashing(tiny, tmp_path):
    # a run folder may come from someone else: JSON of the wrong shape must not end in a traceback
    root, _ = tiny
    run = tmp_path / "damaged"
    run.mkdir()
    (run / "config.yaml").write_text((root / "tiny.yaml").read_text())
    (run / "baseline.json").write_text('["cma"]')
    (run / "progress.json").write_text('[{"evaluations": 1}]')
    (run / "metrics.json").write_text('{"judges": {"tile_kl": 3}}')
    (run / "audit.json").write_text('{"pairs": {}, "flags": {"stochastic": {"collapse": {}}}}')
    text = write_report([run], tmp_path / "rep").read_text()
    for name in ("baseline.json", "progress.json", "metrics.json", "audit.json"):
        assert f"missing: {name}: not what rlcreate writes" in text
    assert "(RL)" in text  # a baseline.json without a method does not make it a baseline run


def test_eval_reads_hand_edited_json_of_the_wrong_shape_as_absent(tiny, tmp_path):
    """eval on a folder whose samples/metrics.json and baseline.json were edited into other shapes
    judges the levels instead of raising a traceback."""
    root, recipe = tiny
    run_baseline(recipe, "random", tmp_path / "rand", budget=8, batch=4, progress_bar=False)
    (tmp_path / "rand" / "samples" / "metrics.json").write_text('{"levels": [1, "x", {"episode_return": true}]}')
    (tmp_path / "rand" / "baseline.json").write_text('["cma"]')
    res = evaluate_run(tmp_path / "rand", judges=["validity"])
    assert res["n_levels"] > 0 and "composite" not in res and "search" not in res
    assert any("QD-score counts each level as 1" in note for note in res["notes"])


# ---- CLI ------------------------------------------------------------------------------------

def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rlcreate.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.mark.slow
def test_cli_baseline_eval_report(tiny, tmp_path):
    root, _ = tiny
    r = _cli("baseline", root / "tiny.yaml", "--method", "map-elites", "--budget", "32", "--out", tmp_path, "--quiet")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "legacy-mario-latent-map-elites"  # <recipe name>-<method>
    assert "32 reward evaluations" in r.stdout
    r = _cli("eval", run, "--judges", "validity,tile_kl")
    assert r.returncode == 0, r.stderr
    assert "tile_kl" in json.loads((run / "metrics.json").read_text())["judges"]
    r = _cli("report", run, "--out", tmp_path / "rep")
    assert r.returncode == 0 and (tmp_path / "rep" / "index.html").is_file(), r.stderr


def test_cli_user_errors(tiny, tmp_path):
    root, _ = tiny
    r = _cli("baseline", root / "tiny.yaml", "--method", "cmaa", "--out", tmp_path)
    assert r.returncode == 2 and "Did you mean 'cma'" in r.stderr
    r = _cli("eval", tmp_path / "missing-run")
    assert r.returncode == 2 and "not a run folder" in r.stderr
