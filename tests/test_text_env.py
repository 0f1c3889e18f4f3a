"""TextTokens-v0: Gymnasium/SB3 checks, VecEnv auto-reset contract, determinism, masks, episode ends,
reward-set calls. A tiny random GPT-2 with an offline word-level tokenizer stands in for the LM."""

import numpy as np
import pytest

from rlcreate.envs.text_tokens import LOGPROB_FLOOR, TextEnvConfigError, TextTokensCore, TextTokensEnv
from rlcreate.rewards.compose import RewardSet, Term
from rlcreate.text.envs import make_text_tokens_env, make_text_tokens_vec_env
from rlcreate.text.loading import PromptError
from rlcreate.text.stepping import LMStepper
from tests.tiny_lm import WORDS, tiny_lm  # noqa: F401

PROMPTS = ["w1 w2 w3", "w4", "w5 w6", "w7 w8 w9 w10"]


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


class Recorder:
    """Reward module: number of words; records every call (texts and prompts)."""

    name = "n_words"
    __name__ = "n_words"

    def __init__(self):
        self.calls = []

    def __call__(self, texts, prompts=None, **context):
        self.calls.append((list(texts), list(prompts), context))
        return [float(len(t.split())) for t in texts]


def vec_env(lm, n=4, reward=None, seed=0, **kw):
    kw.setdefault("max_new_tokens", 5)
    return make_text_tokens_vec_env(n_envs=n, lm=lm, reward=reward or Recorder(), prompts=PROMPTS,
                                    top_k=kw.pop("top_k", 8), seed=seed, **kw)


def test_gymnasium_and_sb3_check_env(lm):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = make_text_tokens_env(lm=lm, reward=Recorder(), prompts=PROMPTS, top_k=8, max_new_tokens=4)
    gym_check(env, skip_render_check=True)
    sb3_check(env, warn=True)
    assert env.observation_space.shape == (32 + 8 + 1,)
    assert np.all(np.isfinite(env.observation_space.low)) and np.all(np.isfinite(env.observation_space.high))


def test_single_env_episode_reward_only_at_end(lm):
    reward = Recorder()
    env = make_text_tokens_env(lm=lm, reward=reward, prompts=PROMPTS, top_k=8, max_new_tokens=6)
    obs, info = env.reset(seed=1)
    assert info["prompt"] in PROMPTS and obs[-1] == 0.0
    rewards, steps = [], 0
    while True:
        obs, r, terminated, truncated, info = env.step(1)
        rewards.append(r)
        steps += 1
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            break
        assert r == 0.0 and set(info) == {"executed_action", "action_replaced", "action_mask"}  # no text yet
    assert len(reward.calls) == 1
    texts, prompts, context = reward.calls[0]
    assert info["text"] == texts[0] and prompts == [info["prompt"]]
    assert info["rewards"] == {"n_words": float(len(texts[0].split()))} and rewards[-1] == info["rewards"]["n_words"]
    assert len(context["token_logprobs"][0]) == steps
    assert (info["ended_by"] == "eos") == terminated


def eos_on_top(stepper, rows=None):
    """Make the stepper offer EOS as its most likely token to ``rows`` of full-batch offers (default
    all rows). Returns a dict whose "on" flag switches the bias."""
    plain_offer = stepper._offer
    switch = {"on": True}

    def offer(logits, hidden):
        if switch["on"] and (rows is None or logits.shape[0] == stepper.batch_size):
            logits = logits.clone()
            logits[slice(None) if rows is None else rows, 2] = 1e4
        return plain_offer(logits, hidden)

    stepper._offer = offer
    return switch


def test_eos_terminates_and_length_cap_truncates(lm):
    model, tok = lm
    stepper = LMStepper(model, tok, top_k=8)
    env = make_text_tokens_env(lm=stepper, reward=Recorder(), prompts=PROMPTS, max_new_tokens=3)
    env.reset(seed=0)
    ids = env.core.topk_ids[0]
    non_eos = int(np.flatnonzero(ids != 2)[0])
    results = [env.step(non_eos)[2:4] for _ in range(3)]
    assert results == [(False, False), (False, False), (False, True)]  # truncated, never terminated

    eos_on_top(stepper)
    env.reset(seed=0)
    obs, r, terminated, truncated, info = env.step(0)
    assert terminated and not truncated and info["ended_by"] == "eos" and info["text"] == ""


def test_vec_env_auto_reset_contract(lm):
    reward = Recorder()
    env = vec_env(lm, n=3, reward=reward, max_new_tokens=4)
    obs = env.reset()
    assert obs.shape == (3, 41) and obs.dtype == np.float32
    for t in range(4):
        obs, rewards, dones, infos = env.step(np.ones(3, dtype=np.int64))
        if t < 3:
            assert not dones.any() and np.all(rewards == 0)
    # Rows that did not stop at EOS are truncated at step 4; all rows end, all restart.
    assert dones.all() and len(reward.calls) >= 1
    for info, r in zip(infos, rewards):
        assert set(info) >= {"text", "prompt", "rewards", "terminal_observation", "TimeLimit.truncated"}
        assert info["TimeLimit.truncated"] == (info["ended_by"] == "length")
        assert info["terminal_observation"].shape == (41,) and r == info["rewards"]["n_words"]
    assert np.all(obs[:, -1] == 0.0)  # the returned obs are the new episodes' first observations


def test_rows_restart_individually_and_reward_sees_each_text_once(lm):
    model, tok = lm
    stepper = LMStepper(model, tok, top_k=8)
    reward = Recorder()
    env = make_text_tokens_vec_env(n_envs=3, lm=stepper, reward=reward, prompts=PROMPTS, max_new_tokens=6, seed=5)
    env.reset()
    switch = eos_on_top(stepper, rows=[1])
    switch["on"] = False
    finished = []
    for t in range(6):
        switch["on"] = t == 0  # the offer made after step 0 puts EOS on top of row 1
        ids = env.core.topk_ids
        acts = np.array([int(np.flatnonzero(row != 2)[0]) for row in ids])
        if t == 1:
            assert ids[1, 0] == 2
            acts[1] = 0  # row 1 emits EOS at its second token
        prompts_before = list(env.core.row_prompts)
        obs, rewards, dones, infos = env.step(acts)
        for i in np.flatnonzero(dones):
            assert infos[i]["prompt"] == prompts_before[i]
            finished.append((t, i, infos[i]["text"]))
        if t == 1:
            assert dones.tolist() == [False, True, False] and obs[1, -1] == 0.0 and obs[0, -1] > 0
            assert infos[1]["ended_by"] == "eos" and not infos[1]["TimeLimit.truncated"]
    assert [(t, i) for t, i, _ in finished] == [(1, 1), (5, 0), (5, 2)]
    called = [(txt, p) for texts, prompts, _ in reward.calls for txt, p in zip(texts, prompts)]
    assert len(called) == 3 and [c[0] for c in called] == [f[2] for f in finished]
    assert [len(texts) for texts, _, _ in reward.calls] == [1, 2]  # one call per step with finished rows


def test_spliced_row_continues_like_a_fresh_sequence(lm):
    """After an individual restart, a row's observations equal those of a fresh batch-1 env."""
    model, tok = lm
    stepper = LMStepper(model, tok, top_k=8)
    env = make_text_tokens_vec_env(n_envs=2, lm=stepper, reward=Recorder(), prompts=["w1 w2 w3"],
                                   max_new_tokens=6, seed=0)
    single = make_text_tokens_env(lm=(model, tok), reward=Recorder(), prompts=["w1 w2 w3"], top_k=8,
                                  max_new_tokens=6)
    env.reset()
    switch = eos_on_top(stepper, rows=[1])
    env.step(np.array([3, 3]))  # row 1 now has EOS on top
    switch["on"] = False
    obs, _, dones, _ = env.step(np.array([3, 0]))  # row 1 ends and restarts; row 0 keeps going
    assert dones.tolist() == [False, True]
    ref, _ = single.reset(seed=0)
    np.testing.assert_allclose(obs[1], ref, atol=1e-5)
    for action in (2, 5, 1):
        obs, _, dones, _ = env.step(np.array([4, action]))
        ref, *_ = single.step(action)
        np.testing.assert_allclose(obs[1], ref, atol=1e-5)


def test_same_seed_same_texts(lm):
    def run(seed):
        env = vec_env(lm, n=4, seed=seed, max_new_tokens=5)
        env.reset()
        rng = np.random.default_rng(123)
        texts = []
        for _ in range(12):
            _, _, dones, infos = env.step(rng.integers(0, 8, size=4))
            texts += [(infos[i]["prompt"], infos[i]["text"]) for i in np.flatnonzero(dones)]
        return texts

    a, b = run(7), run(7)
    assert a == b and len(a) >= 8
    assert run(8) != a  # another seed draws other prompts


def test_action_masks_block_invalid_slots_and_fallback(lm):
    model, tok = lm
    # Vocabulary 64 with UNK and PAD suppressed: only 62 real tokens, so slots 62 and 63 are masked.
    env = make_text_tokens_vec_env(n_envs=2, lm=(model, tok), reward=Recorder(), prompts=PROMPTS, top_k=64,
                                   max_new_tokens=4, seed=0)
    env.reset()
    masks = np.stack(env.env_method("action_masks"))
    assert masks.shape == (2, 64) and masks[:, :62].all() and not masks[:, 62:].any()
    from sb3_contrib.common.maskable.utils import get_action_masks
    np.testing.assert_array_equal(get_action_masks(env), masks)
    top = env.core.topk_ids[:, 0].copy()
    env.step(np.array([63, 63]))  # masked slots emit the most likely token instead
    assert [h[-1] for h in env.core.stepper._history] == top.tolist()
    assert np.all(env.core.observe()[:, 32 + 62:32 + 64] == LOGPROB_FLOOR)


def test_min_new_tokens_masks_eos(lm):
    model, tok = lm
    stepper = LMStepper(model, tok, top_k=8)
    eos_on_top(stepper)
    env = TextTokensEnv(TextTokensCore(stepper, Recorder(), PROMPTS, n=1, max_new_tokens=4, min_new_tokens=2))
    env.reset(seed=0)
    assert not env.action_masks()[0] and env.action_masks()[1:].all()
    _, _, terminated, _, _ = env.step(0)  # EOS is masked: falls back to slot 1, the episode goes on
    assert not terminated
    env.step(1)
    assert env.action_masks()[0]  # from min_new_tokens on, EOS may be picked
    assert env.step(0)[2]


def test_real_reward_set_terms_in_info(lm):
    rs = RewardSet([Term("n_words", Recorder(), weight=2.0), Term("const", lambda texts, **kw: [1.0] * len(texts))])
    env = vec_env(lm, n=2, reward=rs, max_new_tokens=2)
    env.reset()
    env.step(np.array([1, 1]))
    _, rewards, dones, infos = env.step(np.array([1, 1]))
    for r, info in zip(rewards, infos):
        if "rewards" in info:
            assert set(info["rewards"]) == {"n_words", "const"}
            assert r == pytest.approx(2.0 * info["rewards"]["n_words"] + 1.0)


def test_bad_arguments_are_named(lm):
    from rlcreate.envs.text_tokens import TextTokensCore
    from rlcreate.text.stepping import LMStepper

    # the factories default to the offline text reward; the core itself needs one
    with pytest.raises(TextEnvConfigError, match=r"reward = None: pass a RewardSet"):
        TextTokensCore(LMStepper(lm[0], lm[1]), None, PROMPTS)
    with pytest.raises(TextEnvConfigError, match=r"max_new_tokens = 0"):
        make_text_tokens_env(lm=lm, reward=Recorder(), prompts=PROMPTS, max_new_tokens=0)
    with pytest.raises(TextEnvConfigError, match=r"min_new_tokens = 9: must be between 0 and max_new_tokens \(4\)"):
        make_text_tokens_env(lm=lm, reward=Recorder(), prompts=PROMPTS, max_new_tokens=4, min_new_tokens=9)
    with pytest.raises(TextEnvConfigError, match=r"non-empty list"):
        make_text_tokens_env(lm=lm, reward=Recorder(), prompts=[])
    with pytest.raises(PromptError, match=r"prompt 1 is empty"):
        make_text_tokens_env(lm=lm, reward=Recorder(), prompts=["w1", ""])
    with pytest.raises(PromptError, match=r"prompt 0 is 4 tokens long .* limit of 2"):
        make_text_tokens_env(lm=lm, reward=Recorder(), prompts=["w1 w2 w3 w4"], max_prompt_tokens=2)
    with pytest.raises(TextEnvConfigError, match=r"lm = int"):
        make_text_tokens_env(lm=3, reward=Recorder(), prompts=PROMPTS)


def test_maskable_ppo_learns_a_few_steps(lm):
    from sb3_contrib import MaskablePPO
    env = vec_env(lm, n=4, max_new_tokens=4)
    model = MaskablePPO("MlpPolicy", env, n_steps=8, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=32)
    assert model.num_timesteps == 32
