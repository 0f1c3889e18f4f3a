"""Control targets in the column-token env: what the policy observes, the shaping, the offer head."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from rlcreate.envs.latent_level import EnvConfigError, TargetSpec
from rlcreate.envs.target_control import TargetControl
from rlcreate.levels import tiles as T
from rlcreate.levels.rewards import TARGET_MEASURES, TargetMatch
from rlcreate.sb3.policies import LMPriorPolicy, PolicyConfigError

H = T.HEIGHT
SPECS = [TargetSpec("enemies", 0.0, 2.0), TargetSpec("gaps", 0.0, 1.0)]


def column(ground: bool = True, enemy: bool = False) -> np.ndarray:
    col = np.zeros(H, np.int64)
    if ground:
        col[-1] = T.GROUND
    if enemy:
        col[-2] = T.ENEMY
    return col


def grid(cols: list[np.ndarray]) -> np.ndarray:
    return np.stack(cols, 1)[None]  # (1, H, w)


def test_offer_gains_count_enemies_and_start_of_gap_runs_only():
    control = TargetControl(SPECS, TARGET_MEASURES, n_columns=32)
    offered = np.stack([column(), column(enemy=True), column(ground=False)])[None]  # (1, k=3, H)
    # after a ground column: the hole starts a gap run, the enemy adds one enemy
    obs = control.observe(grid([column()]), np.array([[1.0, 0.5]]), offered)
    gains = obs[0, 2:].reshape(3, 2) * 2  # slot-major, halved in the observation
    assert gains.tolist() == [[0, 0], [1, 0], [0, 1]]
    # after a hole: another hole continues the same run (no new gap)
    obs = control.observe(grid([column(ground=False)]), np.array([[1.0, 0.5]]), offered)
    assert (obs[0, 2:].reshape(3, 2) * 2)[2].tolist() == [0, 0]


def test_gain_table_of_a_column_vocabulary_equals_measuring_every_pair():
    """With the token env's column vocabulary, gains come from a lazily built table: the same
    values as measuring each [last, offer] window (and [offer] at the level start)."""
    rng = np.random.default_rng(0)
    vocab = np.stack([column(g, e) for g in (True, False) for e in (True, False)])  # (4, H)
    vocab[1, 3] = T.ENEMY  # a column with two enemies
    grid_path = TargetControl(SPECS, TARGET_MEASURES, n_columns=32)
    table_path = TargetControl(SPECS, TARGET_MEASURES, n_columns=32, columns=vocab)
    n, k = 5, 3
    for t in range(4):
        last = rng.integers(0, len(vocab), size=n) if t else np.full(n, -1)
        prefix = vocab[last].T[None].transpose(2, 1, 0) if t else np.zeros((n, H, 0), np.int64)
        offer_ids = rng.integers(0, len(vocab), size=(n, k))
        targets = rng.uniform(0, 1, size=(n, 2))
        want = grid_path.observe(prefix, targets, vocab[offer_ids])
        got = table_path.observe(prefix, targets, vocab[offer_ids], last_ids=last, offer_ids=offer_ids)
        assert np.array_equal(got, want)
    assert table_path._built.sum() >= 2  # rows are built on demand


def test_deficit_is_half_on_schedule_and_moves_with_the_counts():
    control = TargetControl(SPECS, TARGET_MEASURES, n_columns=32)
    offered = np.stack([column()] * 2)[None]
    target = np.array([[1.0, 0.0]])  # 1 enemy per 16 columns, no gaps
    flat16 = grid([column()] * 16)
    behind = control.observe(flat16, target, offered)[0, :2]
    on = control.observe(grid([column()] * 15 + [column(enemy=True)]), target, offered)[0, :2]
    ahead = control.observe(grid([column(enemy=True)] * 16), target, offered)[0, :2]
    assert on.tolist() == [0.5, 0.5]
    assert behind[0] > 0.5 > ahead[0] and behind[1] == 0.5


def test_shaping_sums_to_zero_per_level_and_rewards_steps_toward_the_schedule():
    control = TargetControl(SPECS, TARGET_MEASURES, n_columns=4, shaping=2.0)
    control.reset(2)
    target = np.array([[16.0, 0.0], [16.0, 0.0]])  # 1 enemy per column wanted (16 per 16 columns)
    levels = np.stack([np.stack([column(enemy=True)] * 4, 1), np.stack([column()] * 4, 1)])
    steps = [control.shaping(levels[:, :, :t], target, done=t == 4) for t in range(1, 5)]
    assert np.allclose(np.sum(steps, 0), 0.0)            # returns unchanged (Ng et al. 1999)
    assert steps[0][0] == 0.0 and steps[0][1] < 0.0       # the enemy kept to the schedule, the floor fell behind


def test_target_without_a_measure_and_shaping_without_targets_are_config_errors():
    with pytest.raises(EnvConfigError, match=r"targets \['difficulty'\]: no measure"):
        TargetControl([TargetSpec("difficulty", 0, 1)], TARGET_MEASURES, 32)
    with pytest.raises(EnvConfigError, match="target_shaping = 1.0"):
        TargetControl([], TARGET_MEASURES, 32, shaping=1.0)


def test_env_observes_control_and_its_shaped_return_equals_the_unshaped_one():
    from rlcreate.levels.envs import make_mario_tokens_vec

    kw = dict(n_envs=3, n_columns=16, k=4, seed=0, reward={"targets": {"reward": "target_match", "weight": 2.0}})
    plain, shaped = make_mario_tokens_vec(**kw), make_mario_tokens_vec(**kw, target_shaping=2.0)
    k, n_targets = 4, 2
    assert shaped.observation_space.shape == plain.observation_space.shape
    obs = shaped.reset()
    plain.reset()
    assert obs.shape[1] >= 128 + k + (1 + k) * n_targets
    returns = np.zeros((2, 3))
    per_step = []
    for _ in range(16):
        a = np.zeros(3, np.int64)  # the LM's most likely column: both envs write the same levels
        _, r0, _, info0 = plain.step(a)
        _, r1, _, info1 = shaped.step(a)
        returns += [r0, r1]
        per_step.append(r1)
    assert np.allclose(returns[0], returns[1], atol=1e-4)
    assert np.any(np.abs(np.array(per_step[:-1])) > 0)  # the shaping did speak before the last step
    assert [i["rewards"]["targets"] for i in info0] == [i["rewards"]["targets"] for i in info1]
    expected = TargetMatch().score([i["level"] for i in info1], targets={
        k: np.array([i["targets"][k] for i in info1]) for k in ("enemies", "gaps")})
    assert np.allclose([i["rewards"]["targets"] for i in info1], expected)


def test_offer_head_starts_at_zero_and_scores_slots_by_what_the_level_lacks():
    d, k, f = 4, 3, 2
    low = np.concatenate([np.full(d, -1.0), np.zeros(k + f + k * f)])
    space = spaces.Box(low.astype(np.float32), np.ones_like(low, np.float32))
    policy = LMPriorPolicy(space, spaces.Discrete(k), lambda _: 1e-3, prior_start=d, offer_features=f)
    obs = th.zeros(1, d + k + f + k * f)
    obs[0, d:d + k] = th.tensor([1.0, 0.9, 0.8])        # scaled log-probs: slot 0 most likely
    obs[0, -k * f:] = th.tensor([0, 0, 1, 0, 0, 1.0])   # slot 1 adds an enemy, slot 2 a gap
    obs[0, -k * f - f:-k * f] = th.tensor([0.9, 0.1])   # enemies behind schedule, gaps ahead
    p0 = policy.get_distribution(obs).distribution.probs.detach()
    prior = th.softmax(policy.prior_logits(obs), -1)
    assert th.allclose(p0, prior, atol=1e-6)             # starts exactly at the LM
    with th.no_grad():
        policy.offer_net.bias.copy_(th.tensor([0.0, 0.0, 3.0, 3.0]))  # "add what the level lacks"
    p1 = policy.get_distribution(obs).distribution.probs.detach()
    assert p1[0, 1] > p0[0, 1] and p1[0, 2] < p0[0, 2]
    assert any(p is policy.offer_net.weight for g in policy.optimizer.param_groups for p in g["params"])


def test_offer_guidance_makes_the_reference_the_lm_plus_a_control_prior():
    d, k, f = 4, 3, 2
    low = np.concatenate([np.full(d, -1.0), np.zeros(k + f + k * f)])
    space = spaces.Box(low.astype(np.float32), np.ones_like(low, np.float32))
    obs = th.zeros(1, d + k + f + k * f)
    obs[0, d:d + k] = th.tensor([1.0, 0.9, 0.8])
    obs[0, -k * f:] = th.tensor([0, 0, 1, 0, 0, 1.0])   # slot 1 adds an enemy, slot 2 a gap
    obs[0, -k * f - f:-k * f] = th.tensor([1.0, 0.0])   # enemies behind schedule, gaps ahead
    guided = LMPriorPolicy(space, spaces.Discrete(k), lambda _: 1e-3, prior_start=d, offer_features=f,
                           offer_guidance=4.0)
    probs = guided.get_distribution(obs).distribution.probs.detach()[0]
    expected = th.softmax(guided.lm_logits(obs)[0] + th.tensor([0.0, 4.0, -4.0]), -1)  # LM + 4 x (lacks - has)
    assert th.allclose(probs, expected, atol=1e-5)
    # the KL reference is the guided LM (same top-k mass as the LM): the policy starts at KL 0 from it
    ref = guided.prior_logits(obs)[0]
    assert th.allclose(th.softmax(ref, -1), expected, atol=1e-5)
    assert th.allclose(th.logsumexp(ref, -1), th.logsumexp(guided.lm_logits(obs)[0], -1), atol=1e-5)
    with pytest.raises(PolicyConfigError, match="offer_guidance = 4.0: .* needs offer_features > 0"):
        LMPriorPolicy(space, spaces.Discrete(k), lambda _: 1e-3, prior_start=d, offer_guidance=4.0)
    with pytest.raises(PolicyConfigError, match="offer_guidance = -1.0: must be a finite number >= 0"):
        LMPriorPolicy(space, spaces.Discrete(k), lambda _: 1e-3, prior_start=d, offer_features=f, offer_guidance=-1.0)


def test_offer_features_that_do_not_fit_are_a_policy_error():
    d, k = 4, 3
    low = np.concatenate([np.full(d, -1.0), np.zeros(k + 2 * k)])  # room for 2 x 3 gains but not 2 deficits
    space = spaces.Box(low.astype(np.float32), np.ones_like(low, np.float32))
    with pytest.raises(PolicyConfigError, match="offer_features = 2, offer_structure = 0: their contexts and 3 slots x values do not fit"):
        LMPriorPolicy(space, spaces.Discrete(k), lambda _: 1e-3, prior_start=d, offer_features=2)


def test_playable_only_writes_levels_the_solver_crosses_where_free_sampling_does_not():
    from rlcreate.levels.envs import make_mario_tokens_vec
    from rlcreate.levels.solver import solve_batch

    def sample(playable_only: bool) -> np.ndarray:
        venv = make_mario_tokens_vec(n_envs=16, n_columns=96, k=32, seed=0, playable_only=playable_only,
                                     reward={"targets": {"reward": "target_match"}})
        venv.reset()
        rng = np.random.default_rng(0)
        for _ in range(96):  # the LM's own distribution over the allowed offers
            p = np.exp(venv.core.topk_logprobs) * venv.core.action_masks()
            _, _, _, infos = venv.step(np.array([rng.choice(32, p=row / row.sum()) for row in p]))
        return solve_batch(np.stack([i["level"] for i in infos]))[0]

    assert sample(True).all()
    assert not sample(False).all()


def test_a_mario_in_the_bottom_row_is_dead():
    from rlcreate.levels.envs import SolverSeam

    seam = SolverSeam()
    state = np.zeros((2, T.HEIGHT, seam.phases), bool)
    state[0, -1, -1] = True                 # falling in the pit row
    state[1, -2, 0] = True                  # standing on the ground
    assert seam.alive(state.reshape(2, -1)).tolist() == [False, True]


def test_playable_margin_shortens_the_longest_jump_the_mask_allows():
    from rlcreate.levels.envs import SolverSeam, make_mario_tokens
    from rlcreate.levels.solver import APEX_STEPS

    def crosses(seam: SolverSeam, gap: int) -> bool:
        level = np.zeros((1, T.HEIGHT, 20 + gap + 1), np.int8)
        level[0, -1, :20] = T.GROUND
        level[0, -1, 20 + gap:] = T.GROUND
        state = seam.initial(1)
        for c in range(level.shape[2]):  # column by column, as the env's mask sees it
            state = seam.advance(level[:, :, c:c + 1], state)
            if not seam.alive(state)[0]:
                return False
        return True

    full, margin = SolverSeam(), SolverSeam(apex_steps=APEX_STEPS - 1)
    assert crosses(full, 9) and not crosses(full, 10)      # the solver's calibrated widest gap
    assert crosses(margin, 8) and not crosses(margin, 9)   # one column shorter
    with pytest.raises(EnvConfigError, match="playable_margin = 3"):
        make_mario_tokens(n_columns=8, k=4, playable_margin=3)


def test_term_shaping_pays_each_segment_as_it_closes_and_leaves_returns_unchanged():
    from rlcreate.levels.envs import make_mario_tokens_vec
    from rlcreate.levels.objectives import Rhythm

    kw = dict(n_envs=3, n_columns=48, k=4, seed=0, reward={"objective": {"reward": "rhythm", "weight": 3.0}})
    plain, shaped = make_mario_tokens_vec(**kw), make_mario_tokens_vec(**kw, shape_terms=["objective"])
    plain.reset()
    shaped.reset()
    rng = np.random.default_rng(0)
    returns, steps = np.zeros((2, 3)), []
    for _ in range(48):
        a = np.array([rng.choice(np.flatnonzero(m)) for m in shaped.action_masks()])
        _, r0, _, _ = plain.step(a)
        _, r1, _, info = shaped.step(a)
        returns += [r0, r1]
        steps.append(r1 - r0)
    assert np.allclose(returns[0], returns[1], atol=1e-4)
    steps = np.array(steps)  # (48, 3) shaping alone
    closes = [15, 31, 47]
    assert np.all(np.delete(steps, closes, axis=0) == 0)  # silent inside a segment
    levels = np.stack([i["level"] for i in info])
    seg = [Rhythm().score(list(levels[:, :, : 16 * (j + 1)])) for j in range(2)]
    # first close: 3 * rhythm(16 columns) * 16 / 48; second: the potential's change
    assert np.allclose(steps[15], 3.0 * np.array(seg[0]) / 3, atol=1e-5)
    assert np.allclose(steps[31], 3.0 * (2 * np.array(seg[1]) - np.array(seg[0])) / 3, atol=1e-5)


def test_shape_terms_must_name_reward_terms():
    from rlcreate.levels.envs import make_mario_tokens_vec

    with pytest.raises(EnvConfigError, match=r"shape_terms \['objectiv'\]: not terms"):
        make_mario_tokens_vec(n_envs=1, n_columns=16, k=4, reward={"objective": {"reward": "rhythm"}},
                              shape_terms=["objectiv"])
    with pytest.raises(EnvConfigError, match=r"shape_terms \['novelty'\]: these terms keep state"):
        make_mario_tokens_vec(n_envs=1, n_columns=16, k=4, reward={"novelty": {"reward": "novelty"}},
                              shape_terms=["novelty"])
    with pytest.raises(EnvConfigError, match=r"shape_terms \['objective'\]: these terms keep state"):
        make_mario_tokens_vec(n_envs=1, n_columns=16, k=4, shape_terms=["objective"],
                              reward={"objective": {"reward": "rhythm", "transform": "normalize"}})
