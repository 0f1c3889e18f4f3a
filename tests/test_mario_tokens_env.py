"""MarioTokens-v1: check_env (Gymnasium and SB3), top-k actions and masks, determinism, reward terms,
VecEnv auto-reset contract, per-chunk rewards, MaskablePPO on the VecEnv, the recipe."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rlcreate  # noqa: F401  (registers ids)
from rlcreate.envs.column_tokens import CHUNK, EnvConfigError
from rlcreate.levels import corpus
from rlcreate.levels.envs import DEFAULT_REWARDS, DEFAULT_TARGETS, make_mario_tokens, make_mario_tokens_vec
from rlcreate.levels.generators.column_lm import N_SPECIAL, ColumnLM, build_vocab, default_column_lm_path, small_gpt2
from rlcreate.rewards.base import RewardModule
from rlcreate.rewards.compose import RewardSet, Term

RECIPE = Path(__file__).resolve().parent.parent / "rlcreate" / "recipes" / "mario_tokens.yaml"
N_FEAT = 9


@pytest.fixture(scope="module")
def tiny_lm():
    vocab = build_vocab([b.grid() for b in corpus.training_blocks()])
    model = small_gpt2(len(vocab) + N_SPECIAL, n_positions=64, n_embd=16, n_layer=1, n_head=2, seed=0)
    return ColumnLM.from_model(model, vocab)


def _log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


class Recorder(RewardModule):
    """Test reward: 1.0 per sample, keeps every call's widths and context."""

    def __init__(self):
        super().__init__("recorder")
        self.calls = []

    def score(self, samples, **context):
        self.calls.append(([np.asarray(s).shape[1] for s in samples], context))
        return [1.0] * len(samples)


def test_gymnasium_and_sb3_check_env(tiny_lm):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = make_mario_tokens(n_columns=20, k=4, lm=tiny_lm)
    gym_check(env, skip_render_check=True)
    sb3_check(make_mario_tokens(n_columns=20, k=4, lm=tiny_lm), warn=True)
    assert env.action_space == gym.spaces.Discrete(4)
    # hidden (16) + top-k (4) + last-16 and whole-level features (2 x 9) + progress + 2 targets
    # + control: 2 schedule deficits and 4 offers x 2 target gains
    n_t = len(DEFAULT_TARGETS)
    assert env.observation_space.shape == (16 + 4 + 2 * N_FEAT + 1 + n_t + n_t + 4 * n_t,)
    assert np.isfinite(env.observation_space.low).all() and np.isfinite(env.observation_space.high).all()


def test_action_appends_the_chosen_top_k_column(tiny_lm):
    env = make_mario_tokens(n_columns=6, k=5, lm=tiny_lm, structure=False)
    obs, _ = env.reset(seed=0)
    logits, state = tiny_lm.start(1)
    picks = [3, 0, 4, 1, 2, 0]
    for t, a in enumerate(picks):
        ranked = np.argsort(-_log_softmax(logits)[0], kind="stable")
        assert ranked[0] >= N_SPECIAL  # special tokens are never offered
        # the observed top-k log-probs are the LM's, best first (mapped from [-20, 0] to [0, 1])
        lp = _log_softmax(logits)[0, ranked[:5]]
        assert obs[16:21] == pytest.approx(np.clip(1 + lp / 20, 0, 1), abs=1e-5)
        obs, r, term, trunc, info = env.step(a)
        assert info["column"] == ranked[a]
        if t + 1 < len(picks):
            logits, state = tiny_lm.step(state, [ranked[a]])
    assert term and not trunc
    expected = tiny_lm.decode_tokens([np.argsort(-_log_softmax(logits)[0], kind="stable")[a] for logits, a in
                                      zip(_replay_logits(tiny_lm, env), picks)])
    assert np.array_equal(info["level"], expected)


def test_element_bias_offsets_the_offers_but_not_the_recorded_lm_logprobs(tiny_lm):
    """element_bias adds its offset to the logits of columns holding coins before the top-k: the
    offers (and their observed log-probs) follow the offset distribution, while token_logprobs,
    which the likelihood rewards read, stay the LM's own."""
    from rlcreate.levels.generators.column_lm import element_logit_offset

    offset = element_logit_offset(tiny_lm.columns, {"coins": 3.0})
    assert offset[:N_SPECIAL].tolist() == [0.0, 0.0] and set(np.unique(offset)) == {0.0, 3.0}
    env = make_mario_tokens(n_columns=5, k=4, lm=tiny_lm, structure=False, element_bias={"coins": 3.0})
    obs, _ = env.reset(seed=0)
    logits, state = tiny_lm.start(1)
    for a in [1, 0, 3, 2, 0]:
        biased = _log_softmax(logits + offset)[0]
        ranked = np.argsort(-biased, kind="stable")[:4]
        assert obs[16:20] == pytest.approx(np.clip(1 + biased[ranked] / 20, 0, 1), abs=1e-5)
        obs, _, term, _, info = env.step(a)
        assert info["column"] == ranked[a]
        if not term:
            logits, state = tiny_lm.step(state, [ranked[a]])
    own = [_log_softmax(lg)[0, tok] for lg, tok in zip(_replay_logits(tiny_lm, env), tiny_lm.encode_level(info["level"]))]
    assert info["token_logprobs"] == pytest.approx(own, abs=1e-5)
    plain = make_mario_tokens(n_columns=5, k=4, lm=tiny_lm, structure=False)
    plain.reset(seed=0)
    assert not np.array_equal(plain.core.topk_logprobs, env.core.topk_logprobs)
    for bad, match in [({"enemies": 1.0}, r"element_bias keys \['enemies'\] are unknown"),
                       ({"coins": "lots"}, r"element_bias coins = 'lots': must be a finite number"),
                       ([0.5], r"element_bias = \[0.5\]: write a mapping")]:
        with pytest.raises(EnvConfigError, match=match):
            make_mario_tokens(n_columns=5, lm=tiny_lm, element_bias=bad)


def test_element_bias_raises_the_share_of_biased_columns_on_offer(tiny_lm):
    """Over many offers, a coin offset puts more coin columns into the top-k."""
    from rlcreate.levels.tiles import COIN

    share = {}
    for b in (0.0, 2.0):
        env = make_mario_tokens_vec(n_envs=8, n_columns=16, k=8, lm=tiny_lm, structure=False, seed=0,
                                    element_bias={"coins": b})
        env.reset()
        seen = []
        for _ in range(16):
            seen.append((env.core.offered_columns() == COIN).any(axis=2).mean())
            env.step(np.zeros(8, np.int64))
        share[b] = float(np.mean(seen))
    assert share[2.0] > share[0.0] + 0.05


def _replay_logits(lm, env):
    """Logits before each column of the env's finished level, recomputed from the level itself."""
    ids = lm.encode_level(env.core.levels[0], oov="error")
    logits, state = lm.start(1)
    out = [logits]
    for tok in ids[:-1]:
        logits, state = lm.step(state, [tok])
        out.append(logits)
    return out


def test_always_slot_zero_is_greedy_decoding(tiny_lm):
    env = make_mario_tokens(n_columns=12, k=3, lm=tiny_lm, structure=False)
    env.reset(seed=0)
    for _ in range(12):
        _, _, term, _, info = env.step(0)
    greedy = tiny_lm.generate(12, batch=1, top_k=1, seed=0)[0]
    assert term and np.array_equal(info["level"], greedy)


def test_masks_follow_min_prob_and_masked_actions_fall_back(tiny_lm):
    env = make_mario_tokens(n_columns=4, k=8, lm=tiny_lm, min_prob=0.004, structure=False)
    env.reset(seed=0)
    logits, _ = tiny_lm.start(1)
    probs = np.sort(np.exp(_log_softmax(logits)[0]))[::-1][:8]
    want = probs >= 0.004
    want[0] = True
    mask = env.action_masks()
    assert mask.dtype == bool and mask.shape == (8,)
    assert np.array_equal(mask, want)
    assert 0 < mask.sum() < 8  # the threshold was chosen to split this LM's top 8
    blocked = int(np.flatnonzero(~mask)[0])
    top = env.core.topk_ids[0].copy()
    _, _, _, _, info = env.step(blocked)
    assert info["column"] == top[0]
    top = env.core.topk_ids[0].copy()
    _, _, _, _, info = env.step(99)  # out of range -> the most likely column too
    assert info["column"] == top[0]
    everything = make_mario_tokens(n_columns=4, k=8, lm=tiny_lm, min_prob=0.0, structure=False)
    everything.reset(seed=0)
    assert everything.action_masks().all()


# A 4-column vocabulary: ground, a pipe's left half (top row 10, body rows 11-12), its right half,
# and a right half one row higher that floats over a gap (invalid on its own: pipe_anchored).
_GROUND = "-" * 13 + "X"
_LEFT = "-" * 10 + "<[[X"
_RIGHT = "-" * 10 + ">]]X"
_RIGHT_HIGH = "-" * 9 + ">]]-X"
PIPE_VOCAB = [_GROUND, _LEFT, _RIGHT, _RIGHT_HIGH]


def test_structure_rule_on_known_columns():
    from rlcreate.levels.envs import MarioStructure
    from rlcreate.levels.tiles import CHAR_TO_ID

    cols = np.array([[CHAR_TO_ID[c] for c in col] for col in PIPE_VOCAB], np.int8)
    rule = MarioStructure(cols, N_SPECIAL)
    ground, left, right, high = (N_SPECIAL + i for i in range(4))
    assert rule.column_ok.tolist() == [False] * N_SPECIAL + [True, True, True, False]
    cand = np.array([[ground, left, right, high]] * 2)
    # level start: no right half may come first
    assert rule.allowed(None, cand[:1], last=False).tolist() == [[True, True, False, False]]
    # after a left half only its exact right half; after ground anything but a right half
    assert rule.allowed(np.array([left, ground]), cand, last=False).tolist() == \
        [[False, False, True, False], [True, True, False, False]]
    # the last column may not open a pipe
    assert rule.allowed(np.array([ground]), cand[:1], last=True).tolist() == [[True, False, False, False]]


@pytest.fixture(scope="module")
def pipe_lm():
    model = small_gpt2(len(PIPE_VOCAB) + N_SPECIAL, n_positions=32, n_embd=8, n_layer=1, n_head=1, seed=0)
    return ColumnLM.from_model(model, PIPE_VOCAB)


@pytest.mark.parametrize("structure", [True, False])
def test_structure_mask_keeps_pipes_whole(pipe_lm, structure):
    from rlcreate.levels.tiles import PIPE_BL, PIPE_BR, PIPE_TL, PIPE_TR
    from rlcreate.levels.validity import valid_mask

    # k = the whole vocabulary: the rule alone decides what is allowed
    venv = make_mario_tokens_vec(n_envs=16, n_columns=12, k=4, lm=pipe_lm, seed=0, min_prob=0.0,
                                 structure=structure)
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(12):
        masks = venv.action_masks()
        _, _, done, infos = venv.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    levels = np.stack([i["level"] for i in infos])
    valid = valid_mask(levels)
    # validity accepts half pipes at a window's edges; a finished level also closes them there
    closed = ~np.isin(levels[:, :, 0], [PIPE_TR, PIPE_BR]).any(1) & ~np.isin(levels[:, :, -1], [PIPE_TL, PIPE_BL]).any(1)
    if structure:
        assert valid.all() and closed.all()
    else:  # without the rule, random choices break pipes
        assert not (valid & closed).all()


def test_episode_rewards_at_the_end(tiny_lm):
    env = make_mario_tokens(n_columns=20, k=4, lm=tiny_lm)
    obs, _ = env.reset(seed=1)
    env.action_space.seed(1)
    for t in range(20):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        if t < 19:
            assert r == 0.0 and "rewards" not in info and not term
    assert term and not trunc
    assert set(info["rewards"]) == set(DEFAULT_REWARDS)
    w = {k: v["weight"] for k, v in DEFAULT_REWARDS.items()}
    assert r == pytest.approx(sum(w[k] * v for k, v in info["rewards"].items()), rel=1e-5)
    assert info["level"].shape == (14, 20) and info["level"].dtype == np.int8
    assert set(info["targets"]) == set(DEFAULT_TARGETS)
    assert info["token_logprobs"].shape == (20,) and (info["token_logprobs"] <= 0).all()
    assert obs[16 + 4 + 2 * N_FEAT] == 1.0  # progress


def test_whole_level_reward_gets_targets(tiny_lm):
    rec = Recorder()
    env = make_mario_tokens(n_columns=5, k=2, lm=tiny_lm, reward=RewardSet([Term("rec", rec)]),
                            targets={"enemies": [1.0, 2.0]})
    env.reset(seed=0)
    for _ in range(5):
        _, r, _, _, info = env.step(1)
    assert len(rec.calls) == 1 and rec.calls[0][0] == [5]
    ctx = rec.calls[0][1]
    assert ctx["targets"]["enemies"][0] == pytest.approx(info["targets"]["enemies"])
    assert 1.0 <= info["targets"]["enemies"] <= 2.0
    assert "position" not in ctx and r == 1.0


def test_reward_every_column_scores_16_column_chunks(tiny_lm):
    rec = Recorder()
    env = make_mario_tokens(n_columns=40, k=2, lm=tiny_lm, reward=RewardSet([Term("rec", rec)]),
                            reward_every="column")
    env.reset(seed=0)
    scored = []
    for t in range(40):
        _, r, _, _, info = env.step(0)
        if "rewards" in info:
            scored.append(t + 1)
            assert r == 1.0
        else:
            assert r == 0.0
    assert scored == [CHUNK, 2 * CHUNK, 40]
    assert [c[0] for c in rec.calls] == [[16], [16], [8]]
    assert [float(c[1]["position"][0]) for c in rec.calls] == pytest.approx([8 / 40, 24 / 40, 36 / 40])
    from rlcreate.levels.solver import N_PHASES

    assert all(c[1]["seam_state"].shape == (1, 14 * N_PHASES) for c in rec.calls)
    assert not rec.calls[0][1]["seam_state"].any()  # first chunk: a fresh start


def test_same_seed_same_levels(tiny_lm):
    def run(seed):
        env = make_mario_tokens(n_columns=8, k=4, lm=tiny_lm)
        env.reset(seed=seed)
        env.action_space.seed(seed)
        for _ in range(8):
            _, _, _, _, info = env.step(env.action_space.sample())
        return info["level"], info["targets"]

    a, b = run(3), run(3)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    c = run(4)
    assert c[1] != a[1] and not np.array_equal(c[0], a[0])


def test_vecenv_auto_reset_contract_and_masks(tiny_lm):
    venv = make_mario_tokens_vec(n_envs=3, n_columns=5, k=4, lm=tiny_lm, seed=0)
    obs = venv.reset()
    assert obs.shape == (3, 16 + 4 + 2 * N_FEAT + 1 + 2 + (1 + 4) * 2)  # ... targets, control
    assert venv.action_masks().shape == (3, 4)
    assert len(venv.env_method("action_masks")) == 3 and venv.has_attr("action_masks")
    progress = 16 + 4 + 2 * N_FEAT
    for t in range(5):
        obs, rewards, done, infos = venv.step(np.array([0, 1, 2]))
        assert done.all() == (t == 4) and done.any() == (t == 4)
    for info in infos:
        assert info["terminal_observation"][progress] == 1.0
        assert info["TimeLimit.truncated"] is False
        assert info["level"].shape == (14, 5) and set(info["rewards"]) == set(DEFAULT_REWARDS)
    assert (obs[:, progress] == 0).all()  # already the next episode's first observation
    assert rewards.dtype == np.float32 and rewards.shape == (3,)
    # rows differ by their actions; each is the column the LM offered in that slot
    assert not np.array_equal(infos[0]["level"], infos[2]["level"])


def test_vecenv_seed_fixes_targets(tiny_lm):
    def targets(seed):
        venv = make_mario_tokens_vec(n_envs=4, n_columns=3, k=2, lm=tiny_lm)
        venv.seed(seed)
        obs = venv.reset()
        control = venv.core.control.size(2)  # the control entries follow the 2 targets
        return obs[:, -2 - control:-control]

    assert np.array_equal(targets(5), targets(5))
    assert not np.array_equal(targets(5), targets(6))


def test_maskable_ppo_respects_masks_on_the_vecenv(tiny_lm):
    from sb3_contrib import MaskablePPO

    # min_prob close to 1: only slot 0 is ever allowed, so every sampled action must be 0
    venv = make_mario_tokens_vec(n_envs=4, n_columns=8, k=4, lm=tiny_lm, seed=0, min_prob=0.99, structure=False)
    model = MaskablePPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, seed=0,
                        policy_kwargs={"net_arch": [16]})
    model.learn(total_timesteps=32)
    assert model.num_timesteps >= 32
    assert (model.rollout_buffer.actions == 0).all()
    masks = model.rollout_buffer.action_masks.reshape(-1, 4)  # stored flat per env
    assert masks[:, 0].all() and not masks[:, 1:].any()


@pytest.mark.parametrize("kwargs, match", [
    ({"n_columns": 65}, r"n_columns = 65 exceeds the column LM's context of 64"),
    ({"n_columns": 0}, r"n_columns = 0: must be an integer >= 1"),
    ({"k": 0}, r"k = 0: must be an integer in \[1, "),
    ({"k": 10_000}, r"k = 10000: must be an integer in \[1, "),
    ({"reward_every": "step"}, r"reward_every = 'step': use one of \('end', 'column'\)"),
    ({"min_prob": 1.0}, r"min_prob = 1.0: must be in \[0, 1\)"),
    ({"render_mode": "human"}, r"render_mode = 'human': use None, 'ansi' or 'rgb_array'"),
])
def test_bad_arguments(tiny_lm, kwargs, match):
    with pytest.raises(EnvConfigError, match=match):
        make_mario_tokens(lm=tiny_lm, **{"n_columns": 8, **kwargs})


def test_bad_lm_and_step_before_reset(tiny_lm):
    with pytest.raises(EnvConfigError, match=r"lm = int: pass a ColumnLM"):
        make_mario_tokens(lm=3)
    env = make_mario_tokens(n_columns=4, lm=tiny_lm)
    with pytest.raises(EnvConfigError, match=r"step\(\) before reset\(\)"):
        env.step(0)


def test_render_ansi(tiny_lm):
    env = make_mario_tokens(n_columns=4, k=2, lm=tiny_lm, render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == ""
    env.step(0)
    env.step(1)
    lines = env.render().splitlines()
    assert len(lines) == 14 and all(len(line) == 2 for line in lines)


def test_recipe_loads_and_its_env_kwargs_build(tiny_lm):
    from rlcreate.recipe import build_reward_set, load_recipe

    recipe = load_recipe(RECIPE)
    assert recipe.env_id == "rlcreate/MarioTokens-v1" and recipe.trainer["algo"] == "maskable_ppo"
    venv = make_mario_tokens_vec(n_envs=2, targets=recipe.targets, reward=build_reward_set(recipe), seed=0,
                                 lm=tiny_lm, **{**recipe.env_kwargs, "n_columns": 4})
    venv.reset()
    assert venv.action_space.n == recipe.env_kwargs.get("k", 8)


@pytest.mark.slow
@pytest.mark.skipif(not (default_column_lm_path() / "config.json").is_file(),
                    reason="the shipped column LM (rlcreate/models/mario-column-lm) is not trained yet")
def test_shipped_lm_through_gymnasium_make():
    from gymnasium.utils.env_checker import check_env as gym_check

    env = gym.make("rlcreate/MarioTokens-v1", n_columns=32)
    gym_check(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    for _ in range(32):
        _, r, term, _, info = env.step(0)
    assert term and info["level"].shape == (14, 32)
    assert info["rewards"]["playability"] > 0.0


@pytest.mark.slow
@pytest.mark.skipif(not (default_column_lm_path() / "config.json").is_file(),
                    reason="the shipped column LM (rlcreate/models/mario-column-lm) is not trained yet")
def test_shipped_lm_random_allowed_choices_give_valid_levels():
    from rlcreate.levels.validity import valid_mask

    # any policy that respects the masks writes structurally valid levels (measured: 64 of 64;
    # without the structure mask 2 of 64); the floor leaves room for enemy_not_embedded, which
    # the mask cannot promise
    venv = make_mario_tokens_vec(n_envs=16, n_columns=64, seed=0)
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(64):
        masks = venv.action_masks()
        _, _, done, infos = venv.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    assert done.all()
    assert valid_mask(np.stack([i["level"] for i in infos])).mean() >= 0.9


def test_playable_only_without_a_seam_is_a_config_error(tiny_lm):
    from rlcreate.envs.column_tokens import ColumnTokensCore
    from rlcreate.levels.envs import FEATURE_NAMES, segment_features

    with pytest.raises(EnvConfigError, match="playable_only = True needs a seam"):
        ColumnTokensCore(tiny_lm, RewardSet([Term("rec", Recorder())]), segment_features, len(FEATURE_NAMES), n_columns=8, k=4,
                         playable_only=True)


def test_topk_offers_equal_a_plain_numpy_top_k_with_and_without_ties():
    """The torch fast path of topk_offers gives exactly the ids, order and log-probs of a plain
    numpy top-k (argpartition of the log-probs, stable sort); rows with equal logits fall back to it."""
    import rlcreate.envs.token_stream as token_stream
    from rlcreate.envs.token_stream import topk_offers

    def reference(logits, k):
        logp = _log_softmax(logits)
        ids = np.argpartition(-logp, k - 1, axis=1)[:, :k]
        ids = np.take_along_axis(ids, np.argsort(-np.take_along_axis(logp, ids, 1), axis=1, kind="stable"), 1)
        return ids, np.take_along_axis(logp, ids, 1).astype(np.float32)

    rng = np.random.default_rng(0)
    for trial in range(60):
        logits = (rng.standard_normal((8, 300)) * 3).astype(np.float32)
        if trial % 3 == 1:  # many exact ties
            logits = (rng.integers(-20, 20, (8, 300)) / 4).astype(np.float32)
        logits[:, :2] = -np.inf  # special tokens
        for k in (1, 5, 32):
            ids, logp = topk_offers(logits, k)
            want_ids, want_logp = reference(logits, k)
            assert np.array_equal(ids, want_ids) and np.allclose(logp, want_logp, rtol=0, atol=1e-6)
    # the edges of the fast path: a tie between the k-th and (k + 1)-th, a tie inside the top k,
    # only k finite logits (the (k + 1)-th is -inf), and a row whose top k come in vocabulary order
    base = np.linspace(5.0, -5.0, 40, dtype=np.float32)
    rows = [base.copy() for _ in range(4)]
    rows[0][4] = rows[0][5]
    rows[1][1] = rows[1][2]
    rows[2][5:] = -np.inf
    rows[3] = base[::-1].copy()
    logits = np.stack(rows)
    ids, _ = topk_offers(logits, 5)
    assert np.array_equal(ids, reference(logits, 5)[0])
    assert ids[2].tolist() == [0, 1, 2, 3, 4] and ids[3].tolist() == [39, 38, 37, 36, 35]
    assert token_stream._topk_without_ties(logits[[0]], 5) is None and token_stream._topk_without_ties(logits[[1]], 5) is None
    assert np.array_equal(token_stream._topk_without_ties(logits[[2, 3]], 5), ids[[2, 3]])
