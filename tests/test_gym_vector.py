"""Gymnasium vector entry points: ``gym.make_vec(id, num_envs=N)`` returns the batched core as a
``gymnasium.vector.VectorEnv`` (one forward pass per step, NEXT_STEP autoreset, infos as arrays with
``_key`` masks, ``info["action_mask"]``), and actions outside the mask are flagged or rejected."""

import gymnasium as gym
import numpy as np
import pytest

import rlcreate  # noqa: F401  (registers ids)
from rlcreate.domains import env_ids
from rlcreate.envs.core_vec_env import InvalidActionError
from rlcreate.envs.gym_vector import CoreVectorEnv, batch_infos
from rlcreate.rewards.compose import RewardSet, Term
from tests.tiny_lm import tiny_lm as tiny_text_lm

EOS = 2  # tiny_lm's EOS id


def mean_tile(samples, **context):
    """Test reward: mean tile id of each grid (cheap, stateless)."""
    return [float(np.mean(s)) for s in samples]


class WordCount:
    """Test reward for text: number of words; records every call."""

    __name__ = "words"

    def __init__(self):
        self.calls = []

    def __call__(self, texts, prompts=None, **context):
        self.calls.append(list(texts))
        return [float(len(t.split())) for t in texts]


class CountingDecoder:
    """The shipped VAE generator, counting decode calls."""

    def __init__(self):
        from rlcreate.levels.envs import latent_generator

        self.inner, self.calls = latent_generator(None), 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def decode(self, z):
        self.calls += 1
        return self.inner.decode(z)


@pytest.fixture(scope="module")
def column_lm():
    from rlcreate.levels import corpus
    from rlcreate.levels.generators.column_lm import N_SPECIAL, ColumnLM, build_vocab, small_gpt2

    vocab = build_vocab([b.grid() for b in corpus.training_blocks()])
    model = small_gpt2(len(vocab) + N_SPECIAL, n_positions=64, n_embd=16, n_layer=1, n_head=2, seed=0)
    return ColumnLM.from_model(model, vocab)


@pytest.fixture(scope="module")
def text_lm():
    return tiny_text_lm()


@pytest.mark.parametrize("env_id", env_ids())
def test_every_id_has_a_vector_entry_point(env_id):
    import importlib

    from rlcreate.domains import vector_factories

    spec = gym.spec(env_id)
    assert spec.vector_entry_point is not None, env_id
    module, name = vector_factories()[env_id].split(":")  # the batched factory behind it exists
    assert callable(getattr(importlib.import_module(module), name))


def test_mario_latent_make_vec_one_decode_per_step_and_next_step_autoreset():
    decoder = CountingDecoder()
    env = gym.make_vec("rlcreate/MarioLatent-v0", num_envs=5, n_segments=2, generator=decoder,
                       reward=RewardSet([Term("tiles", mean_tile)]))
    assert isinstance(env, CoreVectorEnv) and env.num_envs == 5
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    assert env.single_action_space.shape == (32,) and env.action_space.shape == (5, 32)
    obs, info = env.reset(seed=3)
    assert obs.shape == (5,) + env.single_observation_space.shape and info == {}
    env.action_space.seed(0)
    obs1, r1, term1, trunc1, info1 = env.step(env.action_space.sample())
    assert decoder.calls == 1 and not term1.any() and not trunc1.any()
    assert info1["rewards"]["tiles"].shape == (5,) and info1["_rewards"].all() and info1["rewards"]["_tiles"].all()
    assert np.allclose(r1, info1["rewards"]["tiles"])
    assert info1["segment"].shape == (5, 14, 16)
    obs2, r2, term2, trunc2, info2 = env.step(env.action_space.sample())
    assert decoder.calls == 2 and term2.all() and not trunc2.any()
    assert info2["level"].shape == (5, 14, 32) and info2["_level"].all()
    assert info2["targets"]["enemies"].shape == (5,)
    # NEXT_STEP: the step after the end resets every row (no decode), reward 0, flags False
    obs3, r3, term3, trunc3, info3 = env.step(env.action_space.sample())
    assert decoder.calls == 2 and np.all(r3 == 0) and not term3.any() and not trunc3.any() and info3 == {}
    assert np.all(obs3[:, 2 * 9 + 14] == 0)  # progress t / n_segments back to 0
    assert np.all(obs2[:, 2 * 9 + 14] == 1)  # the final observation was returned with the end


def test_same_seed_same_rollout():
    def run(seed):
        env = gym.make_vec("rlcreate/MarioLatent-v0", num_envs=3, n_segments=2,
                           reward=RewardSet([Term("tiles", mean_tile)]))
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(4):
            out.append(env.step(rng.uniform(-1, 1, (3, 32)).astype(np.float32))[0])
        return np.stack(out)

    assert np.array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))  # targets are drawn from the seed


def test_gymnasium_vector_wrappers_accept_it():
    env = gym.make_vec("rlcreate/MarioLatent-v0", num_envs=2, n_segments=2,
                       reward=RewardSet([Term("tiles", mean_tile)]))
    env = gym.wrappers.vector.RecordEpisodeStatistics(env)
    env.reset(seed=0)
    total = np.zeros(2)
    for _ in range(2):
        _, r, _, _, info = env.step(env.action_space.sample())
        total += r
    assert np.allclose(info["episode"]["r"], total) and np.all(info["episode"]["l"] == 2)


def test_mario_tokens_masks_in_info_and_replaced_actions_flagged(column_lm):
    env = gym.make_vec("rlcreate/MarioTokens-v1", num_envs=3, n_columns=4, k=8, lm=column_lm, min_prob=0.004,
                       structure=False, reward=RewardSet([Term("tiles", mean_tile)]))
    obs, info = env.reset(seed=0)
    masks = env.action_masks()
    assert info["action_mask"].shape == (3, 8) and info["_action_mask"].all()
    assert np.array_equal(info["action_mask"], masks) and masks[:, 0].all() and not masks.all()
    blocked = np.array([int(np.flatnonzero(~m)[0]) if (~m).any() else 0 for m in masks])
    actions = np.where(~masks.all(1), blocked, 0)
    actions[0] = 99  # out of range
    top = env.unwrapped.core.topk_ids[:, 0].copy()
    _, _, _, _, info = env.step(actions)
    replaced = (actions == 99) | ~masks[np.arange(3), np.minimum(actions, 7)]
    assert np.array_equal(info["action_replaced"], replaced) and replaced[0]
    assert np.all(info["executed_action"][replaced] == 0) and np.array_equal(info["column"][replaced], top[replaced])
    assert np.array_equal(info["action_mask"], env.action_masks())  # the mask of the new observation
    _, _, _, _, info = env.step(np.zeros(3, int))  # slot 0 is always allowed: nothing replaced
    assert not info["action_replaced"].any() and np.all(info["executed_action"] == 0)


def test_strict_actions_turn_a_masked_action_into_an_error(column_lm):
    from rlcreate.levels.envs import make_mario_tokens

    env = make_mario_tokens(n_columns=4, k=8, lm=column_lm, min_prob=0.004, structure=False,
                            reward=RewardSet([Term("tiles", mean_tile)]), strict_actions=True)
    _, info = env.reset(seed=0)
    assert np.array_equal(info["action_mask"], env.action_masks())
    with pytest.raises(InvalidActionError, match=r"action 99 of env 0 is outside its action mask.*strict_actions=False"):
        env.step(99)
    _, _, _, _, info = env.step(0)  # allowed actions still work
    assert info["executed_action"] == 0 and info["action_replaced"] is False


def test_text_tokens_one_lm_rows_end_apart_next_step_autoreset(text_lm):
    reward = WordCount()
    env = gym.make_vec("rlcreate/TextTokens-v0", num_envs=3, lm=text_lm, reward=reward,
                       prompts=["w1 w2", "w3"], top_k=64, max_new_tokens=4)
    core = env.unwrapped.core
    obs, info = env.reset(seed=0)
    assert core.stepper.batch_size == 3  # one LM, one KV cache for the whole batch
    assert info["action_mask"].shape == (3, 64)
    eos_slot = int(np.flatnonzero(core.topk_ids[0] == EOS)[0])  # top_k = vocab: EOS is always offered
    non_eos = [int(np.flatnonzero((core.topk_ids[i] != EOS) & core.action_masks()[i])[0]) for i in range(3)]
    obs, r, term, trunc, info = env.step(np.array([eos_slot, non_eos[1], non_eos[2]]))
    assert term.tolist() == [True, False, False] and not trunc.any()
    assert reward.calls == [[""]] and info["_text"].tolist() == [True, False, False]
    assert info["ended_by"][0] == "eos" and info["_rewards"].tolist() == [True, False, False]
    # next step: row 0 restarts (reward 0, flags False, progress 0, not scored); the others go on
    obs, r, term, trunc, info = env.step(np.zeros(3, int))
    assert np.all(r == 0) and not term.any() and not trunc.any()
    assert obs[0, -1] == 0.0 and np.allclose(obs[1:, -1], 2 / 4)
    assert reward.calls == [[""]] and "executed_action" in info and not info["_executed_action"][0]
    assert np.array_equal(info["action_mask"], core.action_masks())
    for _ in range(2):  # rows 1 and 2 reach the length cap together: truncated, scored once
        obs, r, term, trunc, info = env.step(np.zeros(3, int))
    assert trunc.tolist() == [False, True, True] and not term.any()
    assert len(reward.calls) == 2 and len(reward.calls[1]) == 2


def test_batch_infos_nests_and_masks():
    rows = [{"rewards": {"a": 1.0}, "text": "x", "level": np.ones((2, 3))}, {}, {"rewards": {"a": 2.0, "b": 0.5}}]
    out = batch_infos(rows)
    assert out["_rewards"].tolist() == [True, False, True]
    assert out["rewards"]["a"].tolist() == [1.0, 0.0, 2.0] and out["rewards"]["_a"].tolist() == [True, False, True]
    assert out["rewards"]["_b"].tolist() == [False, False, True]
    assert out["text"].dtype == object and out["text"].tolist() == ["x", None, None]
    assert out["level"].shape == (3, 2, 3) and out["level"][0].sum() == 6 and out["level"][1].sum() == 0


def test_replaced_action_fraction_is_logged_during_training(column_lm, tmp_path):
    import csv

    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    from rlcreate.levels.envs import make_mario_tokens_vec
    from rlcreate.sb3 import RewardTermsLogger

    venv = make_mario_tokens_vec(n_envs=4, n_columns=4, k=8, lm=column_lm, min_prob=0.004, structure=False,
                                 reward=RewardSet([Term("tiles", mean_tile)]), seed=0)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")  # no masks
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(total_timesteps=128, callback=RewardTermsLogger(128))
    rows = list(csv.DictReader(open(tmp_path / "progress.csv")))
    fractions = [float(r["rollout/actions_replaced"]) for r in rows if r.get("rollout/actions_replaced")]
    assert len(fractions) == 2 and all(0 < f < 1 for f in fractions)  # a uniform policy hits masked slots


def test_text_strict_actions_and_sb3_masks_after_autoreset(text_lm):
    from rlcreate.text.envs import make_text_tokens_env, make_text_tokens_vec_env

    env = make_text_tokens_env(lm=text_lm, reward=WordCount(), prompts=["w1 w2"], top_k=8, max_new_tokens=3,
                               strict_actions=True)
    _, info = env.reset(seed=0)
    assert np.array_equal(info["action_mask"], env.action_masks())
    with pytest.raises(InvalidActionError, match="action -1 of env 0 is outside its action mask"):
        env.step(-1)
    venv = make_text_tokens_vec_env(n_envs=2, lm=text_lm, reward=WordCount(), prompts=["w1 w2"], top_k=8,
                                    max_new_tokens=2, seed=0)
    venv.reset()
    for _ in range(2):
        _, _, done, infos = venv.step(np.array([0, 99]))  # env 1 sends an out-of-range action
    assert done.all() and infos[1]["action_replaced"] and not infos[0]["action_replaced"]
    # after SB3's auto-reset the info's mask belongs to the returned (new episode's) observation
    assert all(np.array_equal(infos[i]["action_mask"], venv.action_masks()[i]) for i in range(2))


def test_call_and_get_attr_reach_the_core():
    env = gym.make_vec("rlcreate/MarioLatent-v0", num_envs=3, n_segments=2, reward=RewardSet([Term("tiles", mean_tile)]))
    env.reset(seed=0)
    env.call("set_progress", 0.25)  # what a trainer does for reward weight schedules
    assert env.get_attr("progress") == (0.25, 0.25, 0.25) and env.call("n_segments") == (2, 2, 2)


def test_per_env_seeds_seed_each_row(text_lm):
    """``reset(seed=[s0, s1, s2])``: row i depends on s_i alone (Gymnasium's per-env convention),
    through later autoresets too."""
    def run(seeds):
        env = gym.make_vec("rlcreate/MarioLatent-v0", num_envs=3, n_segments=2,
                           reward=RewardSet([Term("tiles", mean_tile)]))
        obs, _ = env.reset(seed=seeds)
        out = [obs]
        for _ in range(6):  # two episodes of two segments, with a NEXT_STEP reset between
            out.append(env.step(np.zeros((3, 32), np.float32))[0])
        return np.stack(out)

    a, b = run([1, 2, 3]), run([1, 5, 3])
    assert np.array_equal(a[:, 0], b[:, 0]) and np.array_equal(a[:, 2], b[:, 2])
    assert not np.array_equal(a[:, 1], b[:, 1])
    with pytest.raises(ValueError, match="one per env"):
        gym.make_vec("rlcreate/MarioLatent-v0", num_envs=3, n_segments=2).reset(seed=[1, 2])
    text = gym.make_vec("rlcreate/TextTokens-v0", num_envs=2, lm=text_lm, top_k=4, max_new_tokens=3,
                        reward=WordCount(), prompts=["a", "b", "c", "d", "e", "f", "g", "h"])
    rows = []
    for s in (1, 2, 3, 4, 5):
        text.reset(seed=[4, s])
        rows.append(list(text.core.row_prompts))
    assert len({r[0] for r in rows}) == 1  # row 0 keeps seed 4's prompt
    assert len({r[1] for r in rows}) > 1  # row 1 follows its own seed


def test_sync_make_vec_loads_the_column_lm_once(monkeypatch):
    from rlcreate.levels import envs as level_envs
    from rlcreate.levels.generators.column_lm import ColumnLM

    level_envs._load_column_lm.cache_clear()
    loads, real = [], ColumnLM.load.__func__
    monkeypatch.setattr(ColumnLM, "load", classmethod(lambda cls, path=None: loads.append(path) or real(cls, path)))
    env = gym.make_vec("rlcreate/MarioTokens-v1", num_envs=4, vectorization_mode="sync", n_columns=8)
    env.reset(seed=0)
    assert len(loads) == 1
    lms = {id(e.unwrapped.core.lm) for e in env.envs}
    assert len(lms) == 1
