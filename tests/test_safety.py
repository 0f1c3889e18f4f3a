"""Opening a run folder or checking a recipe never executes code (issue 12, part 1).

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


def test_lm_prior_policy_round_trips_without_pickle(tmp_path):
    """The text domain's lm_prior MaskablePPO policy saves as safetensors + policy.json and comes
    back (without the environment) with the same action distribution."""
    import torch

    from rlcreate.sb3 import load_policy_folder, save_checkpoint
    from rlcreate.sb3 import build_algo
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
