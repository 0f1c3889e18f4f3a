"""Opening a run folder or checking a recipe never executes code.

Each route a shared run folder or recipe could use to run code gets a planted payload; the test
proves the payload did NOT run (its sentinel file is absent) and that rlcreate refused with a
clear user error instead:

* a pickled payload as the policy (``model.zip`` of older runs, and inside ``model/``),
* a pickled payload as the reward state (``reward_state.npz`` and an object array inside it,
  and a legacy ``reward_state.pkl`` lying next to a valid state),
* a recipe reward ``os:system`` with ``args: {command: ...}`` (through ``check`` and the builder).

The payload is ``open(SENTINEL, "w")`` via ``__reduce__``: unpickling it creates the sentinel.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlcreate.errors import UserError

TINY = {
    "name": "tiny", "seed": 0,
    "env": {"id": "rlcreate/MarioLatent-v0", "kwargs": {"n_segments": 2}},
    "rewards": {"playability": {"weight": 1.0},
                "novelty": {"reward": "level_novelty", "weight": 1.0, "transform": "normalize"}},
    "trainer": {"algo": "ppo", "total_timesteps": 256, "n_envs": 4, "checkpoints": 2, "samples": 2,
                "hyper": {"n_steps": 32, "batch_size": 64, "n_epochs": 1}},
}


class _Payload:
    def __init__(self, sentinel: Path):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def _payload_bytes(sentinel: Path) -> bytes:
    return pickle.dumps({"policy": _Payload(sentinel)})


def _proves_payload_works(sentinel: Path) -> None:
    """The payload is real: plain pickle.loads would run it (then the sentinel is removed)."""
    pickle.loads(_payload_bytes(sentinel))
    assert sentinel.exists()
    sentinel.unlink()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from rlcreate.recipe import parse_recipe
    from rlcreate.train.runner import train_run

    root = tmp_path_factory.mktemp("safety")
    train_run(parse_recipe(TINY), root / "run", progress_bar=False)
    return root / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def test_run_folder_holds_no_pickles(run):
    """What train writes is safetensors, npz without object arrays, JSON and YAML only."""
    suffixes = {p.suffix for p in run.rglob("*") if p.is_file() and "tb" not in p.parts and "samples" not in p.parts}
    assert suffixes <= {".safetensors", ".json", ".npz", ".yaml"}, suffixes
    for npz in run.rglob("*.npz"):
        with np.load(npz, allow_pickle=False) as data:  # raises if any member needs pickle
            assert all(not data[k].dtype.hasobject for k in data.files)


def test_pickled_model_zip_is_never_loaded(run, tmp_path):
    from rlcreate.train.runner import restore

    sentinel = tmp_path / "PWNED"
    _proves_payload_works(sentinel)
    bad = _copy(run, tmp_path)
    shutil.rmtree(bad / "model")
    shutil.rmtree(bad / "checkpoints")
    with zipfile.ZipFile(bad / "model.zip", "w") as z:  # what SB3's load would unpickle
        z.writestr("data", json.dumps({"policy_class": {":serialized:": _payload_bytes(sentinel).hex()}}))
        z.writestr("policy.pth", _payload_bytes(sentinel))
    (bad / "reward_state.pkl").write_bytes(_payload_bytes(sentinel))
    with pytest.raises(UserError, match="has no policy"):
        restore(bad)
    assert not sentinel.exists()


def test_pickle_in_policy_weights_does_not_run(run, tmp_path):
    from rlcreate.train.runner import restore

    sentinel = tmp_path / "PWNED"
    bad = _copy(run, tmp_path)
    (bad / "model" / "policy.safetensors").write_bytes(_payload_bytes(sentinel))
    with pytest.raises(UserError, match="not a readable safetensors file"):
        restore(bad)
    assert not sentinel.exists()


def test_code_named_in_policy_description_is_refused(run, tmp_path):
    from rlcreate.train.runner import restore

    bad = _copy(run, tmp_path)
    desc = json.loads((bad / "model" / "policy.json").read_text())
    desc["hyper"]["policy"] = "os:system"
    (bad / "model" / "policy.json").write_text(json.dumps(desc))
    with pytest.raises(UserError, match="not a policy"):
        restore(bad)
    desc["hyper"] = {"policy_kwargs": {"activation_fn": "os:system"}}
    (bad / "model" / "policy.json").write_text(json.dumps(desc))
    with pytest.raises(UserError, match="activation_fn"):
        restore(bad)


@pytest.mark.parametrize("how", ["raw_pickle", "object_array"])
def test_pickle_in_reward_state_does_not_run(run, tmp_path, how):
    from rlcreate.train.runner import restore

    sentinel = tmp_path / "PWNED"
    bad = _copy(run, tmp_path)
    state = bad / "model" / "reward_state.npz"
    if how == "raw_pickle":
        state.write_bytes(_payload_bytes(sentinel))
    else:  # a well-formed npz whose member is a pickled object array
        arr = np.empty(1, dtype=object)
        arr[0] = _Payload(sentinel)
        from rlcreate.train.checkpoint import FORMAT

        tree = {"format": FORMAT, "tree": {"t": "dict", "v": {"x": {"t": "array", "k": "a0"}}}}
        np.savez(state, __tree__=np.array(json.dumps(tree)), a0=arr)
    with pytest.raises(UserError, match="not a readable rlcreate state file"):
        restore(bad)
    assert not sentinel.exists()


def test_legacy_reward_state_pkl_is_ignored(run, tmp_path):
    from rlcreate.train.runner import restore

    sentinel = tmp_path / "PWNED"
    bad = _copy(run, tmp_path)
    (bad / "reward_state.pkl").write_bytes(_payload_bytes(sentinel))
    (bad / "checkpoints" / "reward_state_128.pkl").write_bytes(_payload_bytes(sentinel))
    _, model = restore(bad)
    assert "final model (model/" in model.rlcreate_source
    assert not sentinel.exists()


def test_os_system_reward_is_refused_by_check(tmp_path):
    from rlcreate.cli import main
    from rlcreate.recipe import build_reward_set, parse_recipe
    sentinel = tmp_path / "PWNED"
    recipe = {**TINY, "rewards": {"shell": {"reward": "os:system", "args": {"command": f"touch {sentinel}"}}}}
    with pytest.raises(UserError, match="not a reward"):
        build_reward_set(parse_recipe(recipe))
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["check", str(path)]) == 2
    assert not sentinel.exists()
    for path_ in ("subprocess:Popen", "rlcreate.rewards.registry:get_reward", "builtins:eval"):
        with pytest.raises(UserError, match="not a reward"):
            build_reward_set(parse_recipe({**TINY, "rewards": {"x": {"reward": path_}}}))


def test_registered_and_module_rewards_still_load_by_path():
    from rlcreate.rewards.registry import get_reward

    assert get_reward("rlcreate.levels.rewards:Playability").name == "playability"


def test_state_tree_round_trip_is_exact(tmp_path):
    import torch

    from rlcreate.train.checkpoint import load_tree, save_tree

    tree = {"a": {"slots": np.arange(6, dtype=np.float32).reshape(2, 3), "n": 3, "nan": float("nan"),
                  "rng": json.dumps({"state": 1}), "none": None, "flag": True},
            "list": [1, 2.5, "x"], "t": torch.tensor([1.0, 2.0]), "empty": {}}
    back = load_tree(save_tree(tree, tmp_path / "s.npz"))
    assert back["a"]["slots"].dtype == np.float32 and np.array_equal(back["a"]["slots"], tree["a"]["slots"])
    assert back["a"]["n"] == 3 and isinstance(back["a"]["n"], int) and np.isnan(back["a"]["nan"])
    assert back["a"]["rng"] == tree["a"]["rng"] and back["a"]["none"] is None and back["a"]["flag"] is True
    assert back["list"] == [1, 2.5, "x"] and torch.equal(back["t"], tree["t"]) and back["empty"] == {}
    with pytest.raises(TypeError, match="without pickle"):
        save_tree({"f": lambda x: x}, tmp_path / "bad.npz")


@pytest.mark.parametrize("tree", [{"novelty": [1, 2]}, {"novelty": {"module": [], "transform": {}}}])
def test_reward_state_of_the_wrong_shape_is_one_error(tmp_path, tree):
    # a list saved where a term's state dict belongs used to escape as an AttributeError traceback
    from rlcreate.recipe import build_reward_set, parse_recipe
    from rlcreate.train.checkpoint import StateFormatError, load_reward_state, save_tree

    save_tree(tree, tmp_path / "reward_state.npz")
    with pytest.raises(StateFormatError, match="does not fit this run's reward terms"):
        load_reward_state(tmp_path, build_reward_set(parse_recipe(TINY)))


def test_state_file_whose_header_is_not_a_mapping_is_named(tmp_path):
    from rlcreate.train.checkpoint import StateFormatError, load_tree

    np.savez(tmp_path / "s.npz", __tree__=np.array(json.dumps([1, 2])))
    with pytest.raises(StateFormatError, match=r"not an rlcreate state file \(format None\)"):
        load_tree(tmp_path / "s.npz")


def test_lm_prior_policy_round_trips_without_pickle(tmp_path):
    """The text domain's lm_prior MaskablePPO policy saves as safetensors + policy.json and comes
    back (without the environment) with the same action distribution."""
    import torch

    from rlcreate.sb3 import build_algo, load_policy_folder, save_checkpoint
    from tests.test_text_env import tiny_lm, vec_env

    env = vec_env(tiny_lm(), n=4, top_k=8, max_new_tokens=4)
    hyper = {"policy": "lm_prior", "n_steps": 8, "batch_size": 16, "n_epochs": 2, "policy_kwargs": {"net_arch": [16, 16]}}
    model = build_algo("maskable_ppo", hyper, venv=env, seed=0)
    model.learn(total_timesteps=64)
    save_checkpoint(tmp_path / "model", model, None, hyper, "maskable_ppo")
    loaded = load_policy_folder(tmp_path / "model")
    obs, masks = env.reset(), env.action_masks()
    with torch.no_grad():
        p0 = model.policy.get_distribution(torch.as_tensor(obs), masks).distribution.probs
        p1 = loaded.policy.get_distribution(torch.as_tensor(obs), masks).distribution.probs
    assert type(loaded.policy).__name__ == "LMPriorPolicy" and loaded.num_timesteps == model.num_timesteps
    assert torch.equal(p0, p1)



def test_annealed_learning_rate_reaches_the_optimizer_and_survives_a_reload(tmp_path):
    """``learning_rate: {start, end}`` anneals linearly over the run (SB3's progress), is saved as
    plain data, and a reloaded policy continues on the same schedule."""
    from rlcreate.sb3 import build_algo, load_policy_folder, save_checkpoint
    from tests.test_text_env import tiny_lm, vec_env

    env = vec_env(tiny_lm(), n=4, top_k=8, max_new_tokens=4)
    hyper = {"policy": "lm_prior", "n_steps": 8, "batch_size": 16, "n_epochs": 1,
             "learning_rate": {"start": 0.001, "end": 0.0}, "policy_kwargs": {"net_arch": [16, 16]}}
    model = build_algo("maskable_ppo", hyper, venv=env, seed=0)
    model.learn(total_timesteps=32)  # one rollout: SB3 updates after it at the run's end (progress 1)
    assert model.policy.optimizer.param_groups[0]["lr"] == 0.0
    assert model.lr_schedule(0.5) == pytest.approx(0.0005)
    save_checkpoint(tmp_path / "model", model, None, hyper, "maskable_ppo")
    loaded = load_policy_folder(tmp_path / "model")
    assert [loaded.lr_schedule(p) for p in (1.0, 0.25)] == pytest.approx([0.001, 0.00025])  # p: share to go

# ------------------------------------------------------------------------------ a run folder is a closed box
# (rlcreate.runbox): links inside a run folder are refused, never followed; names stay plain folder
# names; one writer per run folder; a full disk is one error line and loses nothing saved.

def _cli(*argv) -> tuple[int, str]:
    import contextlib
    import io

    from rlcreate.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, err.getvalue()


def _one_error(code: int, err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "error:" in lines[0], (code, err[-1500:])
    for w in words:
        assert w in lines[0], (w, lines[0])


def _outside(tmp_path: Path) -> tuple[Path, Path]:
    """A file and a folder outside the run that a planted link points to."""
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    folder = tmp_path / "outside" / "dir"
    (folder / ".tmp-keep").mkdir(parents=True)
    (folder / ".tmp-keep" / "data").write_text("precious")
    return victim, folder


@pytest.mark.parametrize("plant", ["samples/level_000.txt", "config.yaml", "checkpoints", "metrics.json",
                                   "generated/level_000.txt", "samples/montage.png"])
@pytest.mark.parametrize("command", ["resume", "generate", "eval", "report"])
def test_links_in_a_run_folder_are_refused_and_never_followed(run, tmp_path, plant, command):
    victim, folder = _outside(tmp_path)
    bad = _copy(run, tmp_path)
    link = bad / plant
    link.parent.mkdir(exist_ok=True)
    if link.is_dir():
        shutil.rmtree(link)
    elif link.exists():
        link.unlink()
    link.symlink_to(folder if plant == "checkpoints" else victim)
    argv = {"resume": ["train", bad, "--resume", "--quiet"], "generate": ["generate", bad, "--n", "2"],
            "eval": ["eval", bad, "--no-audit", "--n", "2"], "report": ["report", bad, "--out", tmp_path / "rep"]}
    code, err = _cli(*argv[command])
    _one_error(code, err, "symbolic link", plant.split("/")[0])
    assert victim.read_text() == "precious" and (folder / ".tmp-keep" / "data").read_text() == "precious"
    assert link.is_symlink()


@pytest.mark.parametrize("command", ["resume", "generate", "eval", "report"])
def test_a_fifo_in_a_run_folder_is_refused_not_waited_on(run, tmp_path, command):
    # opening a FIFO for reading waits for a writer: train --resume hung on one planted as
    # model/optimizer.safetensors; a run folder holds only files and folders
    import signal

    bad = _copy(run, tmp_path)
    (bad / "model" / "optimizer.safetensors").unlink()
    os.mkfifo(bad / "model" / "optimizer.safetensors")
    shutil.rmtree(bad / "checkpoints")  # so resume reads model/
    argv = {"resume": ["train", bad, "--resume", "--quiet"], "generate": ["generate", bad, "--n", "2"],
            "eval": ["eval", bad, "--no-audit", "--n", "2"], "report": ["report", bad, "--out", tmp_path / "rep"]}

    def hung(*_):
        raise TimeoutError(f"{command} waited on the FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        code, err = _cli(*argv[command])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    _one_error(code, err, "not a file or folder", "optimizer.safetensors")


def test_writes_replace_a_link_instead_of_writing_through_it(tmp_path):
    from rlcreate.runbox import atomic_target, remove, write_text

    victim, folder = _outside(tmp_path)
    link = tmp_path / "metrics.json"
    link.symlink_to(victim)
    write_text(link, "{}")
    assert not link.is_symlink() and link.read_text() == "{}" and victim.read_text() == "precious"
    link2 = tmp_path / "img.png"
    link2.symlink_to(victim)
    with atomic_target(link2) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and not tmp.is_symlink()
        tmp.write_bytes(b"png")
    assert link2.read_bytes() == b"png" and victim.read_text() == "precious"
    dlink = tmp_path / "checkpoints"
    dlink.symlink_to(folder)
    remove(dlink)
    assert not dlink.exists() and (folder / ".tmp-keep" / "data").read_text() == "precious"


def test_report_embeds_only_plain_files_of_the_run(run, tmp_path):
    """A hard link to an outside file in samples/ is not copied into the report."""
    import os

    from rlcreate.evaluation.report import write_report

    bad = _copy(run, tmp_path)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"SECRET-BYTES")
    first = sorted((bad / "samples").glob("level_*.png"))[0]
    first.unlink()
    os.link(secret, first)
    page = write_report([bad], tmp_path / "rep")
    copied = [p.read_bytes() for p in (page.parent / "img").glob("run0_*.png")]
    assert copied and all(b"SECRET-BYTES" not in c for c in copied)


@pytest.mark.parametrize("argv,words", [
    (["train", "{recipe}", "--name", "x" * 300, "--out", "{tmp}"], ["--name"]),
    (["train", "{recipe}", "--name", "../../x", "--out", "{tmp}"], ["--name"]),
    (["train", "{recipe}", "--out", "/dev/null"], ["--out", "not a folder"]),
    (["train", "{recipe}", "--out", "{file}"], ["--out", "not a folder"]),
    (["baseline", "{recipe}", "--method", "random", "--name", "../../x", "--out", "{tmp}"], ["--name"]),
    (["finetune", "{recipe}", "--name", "../x"], ["--name"]),
    (["report", "{run}", "--out", "{file}"], ["--out", "not a folder"]),
    (["report", "{tmp}/empty"], ["not a run folder"]),
    (["report", "/"], ["not a run folder"]),
    (["generate", "{run}", "--out", "{run}"], ["--out", "did not write"]),
    (["generate", "{run}", "--out", "{run}/samples"], ["--out", "did not write"]),  # train's samples are kept
    (["baseline", "{recipe}", "--method", "../x", "--out", "{tmp}"], ["--method", "not a baseline"]),
])
def test_names_and_output_folders_are_checked_in_every_command(run, tmp_path, argv, words):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    (tmp_path / "file").write_text("a file")
    (tmp_path / "empty").mkdir()
    bad = _copy(run, tmp_path)
    argv = [a.format(recipe=recipe, tmp=tmp_path, file=tmp_path / "file", run=bad) for a in argv]
    code, err = _cli(*argv)
    lines = [line for line in err.splitlines() if "error" in line]
    assert code == 2 and len(lines) == 1, (code, err[-1000:])
    assert all(w in lines[0] for w in words), lines[0]
    assert not (tmp_path.parent / "x").exists() and not (tmp_path / "x").exists()


def test_generate_replaces_older_samples_as_a_whole(run, tmp_path):
    bad = _copy(run, tmp_path)
    assert _cli("generate", bad, "--n", "4", "--out", tmp_path / "gen")[0] == 0
    assert len(list((tmp_path / "gen").glob("level_*.txt"))) == 4
    assert _cli("generate", bad, "--n", "2", "--out", tmp_path / "gen")[0] == 0
    assert sorted(p.name for p in (tmp_path / "gen").glob("level_*.txt")) == ["level_000.txt", "level_001.txt"]
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))


# ------------------------------------------------------------------------------ state files: wrong types, NaN, bombs

@pytest.mark.parametrize("file,key,value,match", [
    ("trainer_state.json", "num_timesteps", "abc", "num_timesteps"),
    ("trainer_state.json", "num_timesteps", -100, "num_timesteps"),
    ("trainer_state.json", "n_updates", [], "n_updates"),
    ("trainer_state.json", "rng.numpy.pos", 1e30, "pos"),
    ("trainer_state.json", "rng.numpy.cached_gaussian", "nan", "NaN"),
    ("policy.json", "num_timesteps", -5, "num_timesteps"),
    ("policy.json", "action_space.n", 10**12, "Discrete n"),
    ("policy.json", "observation_space.shape", [10**6, 10**6], "Box shape"),
    ("policy.json", "hyper.policy_kwargs", {"net_arch": [8192, 8192]}, "MAX_POLICY_PARAMS"),
])
def test_bad_numbers_in_state_files_are_one_error(run, tmp_path, file, key, value, match):
    bad = _copy(run, tmp_path)
    path = bad / "model" / file
    data = json.loads(path.read_text())
    *parents, last = key.split(".")
    node = data
    for k in parents:
        node = node.setdefault(k, {})
    if last == "n" and node.get("type") != "Discrete":
        node.clear()
        node.update({"type": "Discrete", "n": 4, "start": 0})
    node[last] = value
    path.write_text(json.dumps(data).replace('"nan"', "NaN") if value == "nan" else json.dumps(data))
    shutil.rmtree(bad / "checkpoints")  # so resume reads model/
    before = path.read_bytes()
    code, err = _cli("train", bad, "--resume", "--quiet", "--timesteps", "384")
    _one_error(code, err, match)
    assert path.read_bytes() == before


def test_all_nan_weights_are_refused(run, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = _copy(run, tmp_path)
    path = bad / "model" / "policy.safetensors"
    save_file({k: v * float("nan") for k, v in load_file(str(path)).items()}, str(path))
    _one_error(*_cli("generate", bad, "--n", "2"), "NaN")


def test_deep_json_in_a_run_folder_is_one_error(run, tmp_path):
    bad = _copy(run, tmp_path)
    (bad / "model" / "policy.json").write_text("[" * 200_000 + "]" * 200_000)
    _one_error(*_cli("generate", bad, "--n", "2"), "nested")


# ------------------------------------------------------------------------------ wrong successes become errors

@pytest.mark.parametrize("change,words", [
    ({"targets": {"enemies": [-2, 1]}}, ["targets.enemies", "0 <= low"]),  # CLI twin: generate --targets below
    ({"targets": {"enemies": [0, 1e308]}}, ["targets.enemies", "224"]),
    ({"rewards": {"playability": {"weight": {}}}}, ["weight", "start"]),
    ({"rewards": {"novelty": {"reward": "level_novelty", "transform": {"normalize": {"clip": "big"}}}}},
     ["normalize.clip"]),
    ({"trainer": {**TINY["trainer"], "device": "nonsense"}}, ["trainer.device", "not a torch device"]),
    ({"trainer": {**TINY["trainer"], "device": "cuda:7"}}, ["trainer.device", "no such device"]),
    ({"trainer": {**TINY["trainer"], "hyper": {"policy_kwargs": {"net_arch": [65536, 65536]}}}},
     ["MAX_POLICY_PARAMS"]),
])
def test_check_refuses_what_used_to_pass(tmp_path, change, words):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**TINY, **change}))
    _one_error(*_cli("check", path), *words)


@pytest.mark.parametrize("targets", ["enemies=inf", "enemies=-1", "enemies=1e308", "enemies=nan"])
def test_generate_refuses_targets_outside_what_is_measured(run, tmp_path, targets):
    from rlcreate.recipe import parse_recipe

    bad = _copy(run, tmp_path)
    recipe = parse_recipe({**TINY, "targets": {"enemies": [0, 2]}})
    recipe.dump(bad / "config.yaml")
    _one_error(*_cli("generate", bad, "--n", "2", "--targets", targets), "enemies")
    assert not (bad / "generated").exists()


# ------------------------------------------------------------------------------ one writer per run folder

def test_a_second_writer_gets_one_error_naming_the_holder(run, tmp_path):
    import os

    from rlcreate.runbox import run_lock

    bad = _copy(run, tmp_path)
    before = {p: p.read_bytes() for p in bad.rglob("*") if p.is_file()}
    with run_lock(bad, "train"):
        for argv in (["train", bad, "--resume", "--quiet"], ["generate", bad, "--n", "2"],
                     ["eval", bad, "--no-audit"]):
            _one_error(*_cli(*argv), "in use by another rlcreate process", f"pid {os.getpid()}")
    assert {p: p.read_bytes() for p in bad.rglob("*") if p.is_file()} == before
    assert _cli("generate", bad, "--n", "2")[0] == 0  # released


@pytest.mark.slow  # two real processes
def test_concurrent_train_is_refused_and_a_killed_holder_is_taken_over(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from rlcreate.runbox import lock_path

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "trainer": {**TINY["trainer"], "total_timesteps": 10**7}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rlcreate.cli", "train", str(recipe), "--out", str(tmp_path / "runs"), "--quiet"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "tiny"
    pid_file = lock_path(run).with_name(lock_path(run).name + ".pid")
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints").is_dir() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert pid_file.is_file(), first.stderr.read() if first.poll() is not None else "no lock"
        for argv in (["train", str(run), "--resume", "--quiet"],
                     ["train", str(recipe), "--out", str(tmp_path / "runs"), "--overwrite", "--quiet"]):
            second = subprocess.run([sys.executable, "-m", "rlcreate.cli", *argv], env=env, capture_output=True,
                                    text=True, timeout=120)
            assert second.returncode == 2 and f"pid {first.pid}" in second.stderr, second.stderr[-1000:]
        assert (run / "config.yaml").is_file()  # --overwrite did not delete the live run
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    short = [sys.executable, "-m", "rlcreate.cli", "train", str(run), "--resume", "--quiet", "--timesteps", "384"]
    taken = subprocess.run(short, env=env, capture_output=True, text=True, timeout=300)
    assert taken.returncode == 0, taken.stderr[-1500:]
    assert (run / "model" / "policy.json").is_file()


# ------------------------------------------------------------------------------ disk full

def test_disk_full_during_training_is_one_error_and_resume_continues(tmp_path, monkeypatch):
    """ENOSPC injected at the third checkpoint write: one error line, exit 2, the earlier
    checkpoints intact; a resume (disk freed) finishes the run."""
    import errno

    import rlcreate.sb3.io as sb3_io

    recipe = tmp_path / "tiny.yaml"
    trainer = {**TINY["trainer"], "checkpoints": 4, "total_timesteps": 512}
    recipe.write_text(yaml.safe_dump({**TINY, "trainer": trainer}))
    real, calls = sb3_io.save_file, []

    def full(tensors, filename, *a, **k):
        calls.append(filename)
        if len(calls) > 6:  # two checkpoints (3 safetensors each) fit, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        return real(tensors, filename, *a, **k)

    monkeypatch.setattr(sb3_io, "save_file", full)  # the checkpoint writer's safetensors call
    code, err = _cli("train", recipe, "--out", tmp_path / "runs", "--quiet")
    _one_error(code, err, "No space left on device", "free disk space", "--resume")
    run = tmp_path / "runs" / "tiny"
    from rlcreate.train.checkpoint import list_checkpoints

    assert len(list_checkpoints(run)) == 2 and not list((run / "checkpoints").glob(".tmp-*"))
    monkeypatch.setattr(sb3_io, "save_file", real)
    assert _cli("train", run, "--resume", "--quiet")[0] == 0
    assert (run / "model" / "policy.safetensors").is_file()


def test_disk_full_while_writing_metrics_keeps_the_old_file(run, tmp_path, monkeypatch):
    import errno

    import rlcreate.runbox as runbox

    bad = _copy(run, tmp_path)
    (bad / "metrics.json").write_text('{"old": true}')

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(runbox, "_create_exclusive", full)
    _one_error(*_cli("eval", bad, "--no-audit", "--n", "2"), "No space left on device")
    assert (bad / "metrics.json").read_text() == '{"old": true}'
