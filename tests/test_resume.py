"""Training survives SIGKILL.

A real ``rlcreate train`` process is killed with SIGKILL at a random (seeded) moment after its first
checkpoint. The test then checks that

* the folder holds only complete checkpoints (each loads), and the newest one is at most one
  checkpoint interval (plus the rollout in flight) behind the last step the run logged;
* ``generate`` works on the interrupted run and says it used that checkpoint;
* ``train RUN --resume`` continues from it (not from step 0) to the full budget;
* resuming is deterministic: two resumes of the same checkpoint give identical weights;
* the resumed run's final policy scores like an uninterrupted run of the same recipe: its mean
  episode return over 64 evaluation episodes is no further from the uninterrupted run's than a run
  with another seed is, plus 4 standard errors of the evaluation (the resumed run restarts the
  episodes in flight, so it is not bit-identical).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

ROLLOUT = 4 * 32   # n_envs * n_steps: checkpoints are taken at rollout boundaries
INTERVAL = 2048
TOTAL = 16384
RECIPE = {
    "name": "kill", "seed": 3,
    "env": {"id": "rlcreate/MarioLatent-v0", "kwargs": {"n_segments": 2}},
    "rewards": {"playability": {"weight": 1.0},
                "novelty": {"reward": "level_novelty", "weight": 1.0, "transform": "normalize"}},
    "trainer": {"algo": "ppo", "total_timesteps": TOTAL, "n_envs": 4, "checkpoint_every": {"steps": INTERVAL},
                "samples": 2, "hyper": {"n_steps": 32, "batch_size": 64, "n_epochs": 2}},
}
CLI = [sys.executable, "-c", "import sys; from rlcreate.cli import main; sys.exit(main(sys.argv[1:]))"]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _logged_steps(run: Path) -> int:
    """The last step the run logged to TensorBoard (SB3 dumps at ``num_timesteps`` after every
    update and flushes each dump)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    best = 0
    for events in {p.parent for p in (run / "tb").rglob("events.out.tfevents.*")}:
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            best = max([best] + [int(e.step) for e in acc.Scalars(tag)])
    return best


def _eval_returns(run: Path, n: int = 64) -> np.ndarray:
    from rlcreate.train.runner import restore, rollout

    asm, model = restore(run)
    venv = asm.make_env(n_envs=16, seed=12345, purpose="eval")
    venv.set_progress(1.0)
    return np.array([ep["episode_return"] for ep in rollout(model, venv, n, deterministic=True)])


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path):
    from rlcreate.sb3 import load_policy_folder
    from rlcreate.train.checkpoint import latest_checkpoint, list_checkpoints

    recipe = tmp_path / "kill.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    out, run = tmp_path / "runs", tmp_path / "runs" / "kill"
    proc = subprocess.Popen(CLI + ["train", str(recipe), "--out", str(out), "--quiet"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list_checkpoints(run):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    time.sleep(random.Random(12).uniform(0.0, 6.0))  # a random moment of training (seeded)
    assert proc.poll() is None, "training finished before the kill; raise TOTAL"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    ckpts = list_checkpoints(run)
    for _, folder in ckpts:  # every checkpoint the folder shows is whole
        load_policy_folder(folder)
    newest = ckpts[-1][0]
    logged = _logged_steps(run)
    assert not (run / "model").exists()
    assert 0 < newest < TOTAL and logged >= newest
    assert logged - newest <= INTERVAL + ROLLOUT, (logged, newest)

    gen = subprocess.run(CLI + ["generate", str(run), "--n", "2", "--out", str(tmp_path / "gen")],
                         env=_env(), capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert f"latest checkpoint (checkpoints/step_{newest:09d}" in gen.stdout

    twin = tmp_path / "twin"
    shutil.copytree(run, twin)
    res = subprocess.run(CLI + ["train", str(run), "--resume", "--quiet"], env=_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resuming from the latest checkpoint (checkpoints/step_{newest:09d}" in res.stderr
    folder, label = latest_checkpoint(run)
    assert folder.name == "model" and f"{TOTAL} steps" in label
    assert _logged_steps(run) >= TOTAL - ROLLOUT

    res2 = subprocess.run(CLI + ["train", str(twin), "--resume", "--quiet"], env=_env(), capture_output=True, text=True)
    assert res2.returncode == 0, res2.stderr[-3000:]
    assert (run / "model" / "policy.safetensors").read_bytes() == (twin / "model" / "policy.safetensors").read_bytes()

    full = subprocess.run(CLI + ["train", str(recipe), "--out", str(tmp_path / "full"), "--quiet"], env=_env(),
                          capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-3000:]
    from rlcreate.recipe import parse_recipe
    from rlcreate.train.runner import train_run

    train_run(parse_recipe({**RECIPE, "seed": RECIPE["seed"] + 1}), tmp_path / "other", progress_bar=False)
    resumed, straight = _eval_returns(run), _eval_returns(tmp_path / "full" / "kill")
    other = _eval_returns(tmp_path / "other")
    se = np.sqrt(resumed.var(ddof=1) / len(resumed) + straight.var(ddof=1) / len(straight))
    seed_gap = abs(other.mean() - straight.mean())  # training noise: the same recipe, another seed
    print(f"killed at logged step {logged}, newest checkpoint {newest}; eval return resumed "
          f"{resumed.mean():.3f} vs uninterrupted {straight.mean():.3f} (se {se:.3f}), another seed "
          f"{other.mean():.3f}")
    # within noise: no further from the uninterrupted run than another seed is, plus evaluation noise
    assert abs(resumed.mean() - straight.mean()) <= seed_gap + 4 * se, (resumed.mean(), straight.mean(), se)


def test_refuses_existing_run_and_keeps_its_recipe(tmp_path):
    """``train`` into a folder that holds a run exits 2 without touching it; a broken recipe with
    --overwrite fails validation before anything is removed."""
    from rlcreate.cli import main

    run = tmp_path / "runs" / "kill"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("original: recipe\n")
    recipe = tmp_path / "kill.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**RECIPE, "trainer": {**RECIPE["trainer"], "hyper": {"learning_rate": -1}}}))
    assert main(["train", str(bad), "--out", str(tmp_path / "runs"), "--overwrite", "--quiet"]) == 2
    assert (run / "config.yaml").read_text() == "original: recipe\n"
    assert main(["train", str(recipe), "--out", str(tmp_path / "runs"), "--resume", "--overwrite"]) == 2
    assert main(["train", str(run), "--quiet"]) == 2  # a run folder without --resume


def test_resuming_a_run_folder_refuses_name_and_out(tmp_path, capsys):
    """``train RUN --resume`` continues RUN in place; a --name or --out would be silently ignored."""
    from rlcreate.cli import main

    run = tmp_path / "runs" / "kill"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(RECIPE))
    for flag, value in (("--name", "other"), ("--out", str(tmp_path / "elsewhere")), ("--seed", "5")):
        assert main(["train", str(run), "--resume", flag, value, "--quiet"]) == 2
        assert f"error: {flag}:" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"] and not (tmp_path / "elsewhere").exists()


def test_atomic_folder_leaves_nothing_on_failure(tmp_path):
    from rlcreate.train.checkpoint import atomic_folder, list_checkpoints

    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path / "checkpoints" / "step_000000100") as tmp:
            (tmp / "policy.json").write_text("{}")
            raise RuntimeError("killed mid-save")
    assert list((tmp_path / "checkpoints").iterdir()) == [] and list_checkpoints(tmp_path) == []


def test_saving_a_step_again_swaps_the_whole_folder(tmp_path, monkeypatch):
    """A resumed GRPO run saves the same step again: the old checkpoint stays whole until the new
    one is in place (a kill between the two renames leaves it in a ``.tmp-old-`` folder)."""
    import os

    from rlcreate import runbox

    old, new = tmp_path / "step_1", tmp_path / "staging"
    old.mkdir()
    (old / "weights").write_text("old")
    new.mkdir()
    (new / "weights").write_text("new")
    renames = []
    real_replace = os.replace

    def killed_after_first_rename(src, dst):
        renames.append(dst)
        if len(renames) == 2:
            raise KeyboardInterrupt("killed between the renames")
        real_replace(src, dst)

    monkeypatch.setattr(runbox.os, "replace", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        runbox.move_folder_into_place(new, old)
    kept = [p for p in tmp_path.glob(".tmp-old-*/step_1/weights")]
    assert len(kept) == 1 and kept[0].read_text() == "old"  # the old checkpoint was moved aside, not deleted
    monkeypatch.setattr(runbox.os, "replace", real_replace)
    runbox.move_folder_into_place(new, old)
    assert (old / "weights").read_text() == "new" and not new.exists()


def test_checkpoint_every_is_validated():
    from rlcreate.recipe import RecipeError, parse_recipe

    bad_values = (0, -5, {"minutes": float("nan")}, {"minutes": 0}, {"steps": 1.5}, {"hours": 1}, "often",
                  {"steps": None}, {"steps": None, "minutes": None})  # the last two used to mean: no checkpoints
    for bad in bad_values:
        with pytest.raises(RecipeError, match="checkpoint_every"):
            parse_recipe({**RECIPE, "trainer": {**RECIPE["trainer"], "checkpoint_every": bad}})
    ok = parse_recipe({**RECIPE, "trainer": {**RECIPE["trainer"], "checkpoint_every": {"minutes": 5}}})
    assert ok.trainer.checkpoint_every == {"steps": None, "minutes": 5.0}


def test_config_yaml_keeps_the_description(tmp_path):
    from rlcreate.recipe import RecipeError, load_recipe, parse_recipe

    recipe = parse_recipe({**RECIPE, "description": "few enemies, wide gaps"})
    recipe.dump(tmp_path / "config.yaml")
    assert load_recipe(tmp_path / "config.yaml").description == "few enemies, wide gaps"
    with pytest.raises(RecipeError, match="description"):
        parse_recipe({**RECIPE, "description": ["a", "list"]})


def test_same_seed_same_threads_same_run(tmp_path):
    """Determinism: same recipe, seed and thread count -> byte-identical weights, optimizer,
    reward state (novelty archive, running normaliser) and sample levels."""
    import torch

    from rlcreate.recipe import parse_recipe
    from rlcreate.train.runner import train_run

    recipe = {**RECIPE, "trainer": {**RECIPE["trainer"], "total_timesteps": 512, "checkpoint_every": {"steps": 256}}}
    threads = torch.get_num_threads()
    for name in ("a", "b"):
        train_run(parse_recipe(recipe), tmp_path / name, progress_bar=False)
    assert torch.get_num_threads() == threads
    files = ["model/policy.safetensors", "model/optimizer.safetensors", "model/reward_state.npz",
             "checkpoints/step_000000256/reward_state.npz"] + \
        [str(p.relative_to(tmp_path / "a")) for p in sorted((tmp_path / "a" / "samples").glob("level_*.txt"))]
    assert len(files) >= 6
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_reward_state_round_trip_continues_exactly(tmp_path):
    """A reward set restored from its saved state scores the next batch exactly as the original
    would (novelty archive contents, adaptive threshold, RNG and running statistics)."""
    from rlcreate.levels import corpus
    from rlcreate.recipe import build_reward_set, parse_recipe
    from rlcreate.train.checkpoint import load_tree, save_tree

    recipe = parse_recipe(RECIPE)
    grid = corpus.full_corpus()
    batches = [[grid[:, s:s + 32] for s in range(o, o + 8 * 32, 32)] for o in (0, 256, 512)]
    original = build_reward_set(recipe)
    for b in batches[:2]:
        original(b, progress=0.5)
    restored = build_reward_set(recipe)
    restored.load_state_dict(load_tree(save_tree(original.state_dict(), tmp_path / "state.npz")))
    fresh = build_reward_set(recipe)(batches[2], progress=0.5)  # the state matters for these scores
    a, b = original(batches[2], progress=0.5), restored(batches[2], progress=0.5)
    assert not np.array_equal(a.total, fresh.total)
    assert np.array_equal(a.total, b.total)
    for name in a.terms:
        assert np.array_equal(a.terms[name], b.terms[name], equal_nan=True), name


def test_train_seed_overrides_the_recipes_seed(tmp_path, monkeypatch):
    """``train RECIPE --seed S`` hands the trainer the recipe under seed S (nothing else changed);
    the recipe file is left as it is."""
    import rlcreate.train.runner as runner
    from rlcreate.cli import main
    from rlcreate.recipe import load_recipe

    seen = []
    monkeypatch.setattr(runner, "train_run", lambda recipe, run_dir, **kw: seen.append(recipe) or {})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    for extra in ([], ["--seed", "7"]):
        assert main(["train", str(path), "--out", str(tmp_path / "runs"), "--quiet", *extra]) == 0
    assert [r.seed for r in seen] == [RECIPE["seed"], 7]
    seen[1].seed = RECIPE["seed"]
    assert seen[1].to_dict() == seen[0].to_dict() and load_recipe(path).seed == RECIPE["seed"]
