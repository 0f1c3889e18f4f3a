"""Per-offer form flags for token-level steering (rlcreate.text.form_offers) on a tiny offline LM."""

import numpy as np
import pytest

from rlcreate.recipe import RecipeError
from rlcreate.rewards.compose import RewardSet, Term
from rlcreate.text.form_offers import FormOffersCore, avoid_flagged, follow_lm, letter_table, write_texts
from rlcreate.text.stepping import LMStepper
from tests.tiny_lm import WORDS, tiny_lm

LIPO_W = 'Write two sentences about a pond without using the letter "w".'
LIPO_Z = 'Write two sentences about a pond without using the letter "z".'
HAIKU = "Write a haiku about a pond: three lines of 5, 7 and 5 syllables."


def _core(prompts, n=None, top_k=8, **kw):
    model, tok = tiny_lm()
    reward = RewardSet([Term("zero", lambda texts, **_: [0.0] * len(texts), 1.0)])
    stepper = LMStepper(model, tok, top_k=top_k)
    return FormOffersCore(stepper, reward, prompts, n=n or len(prompts), max_new_tokens=6, **kw)


def test_letter_table_marks_letters_of_each_token():
    _, tok = tiny_lm()
    table = letter_table(tok, len(WORDS))
    w, e = ord("w") - 97, ord("e") - 97
    assert table[WORDS.index("w7"), w] and not table[WORDS.index("w7"), e]
    assert table[WORDS.index("<eos>"), e] and not table[WORDS.index("<eos>"), w]


def test_flags_mark_offers_with_the_banned_letter_only_on_lipogram_rows():
    core = _core([LIPO_W, LIPO_Z, HAIKU])
    obs = core.reset_with([LIPO_W, LIPO_Z, HAIKU])
    d, k = core.stepper.hidden_size, core.k
    assert obs.shape == (3, d + k + 1 + 1 + k) and core.observation_space.contains(obs[0])
    expected_w = np.array([["w" in WORDS[i] for i in ids] for ids in core.topk_ids[:1]], np.float32)[0]
    assert expected_w.sum() >= 1  # the tiny vocabulary is mostly w-tokens
    np.testing.assert_array_equal(obs[0, -k:], expected_w)
    np.testing.assert_array_equal(obs[1, -k:], np.zeros(k))  # no offered token holds a "z"
    np.testing.assert_array_equal(obs[2, -k:], np.zeros(k))  # another form: no flags
    assert list(obs[:, -k - 1]) == [1.0, 1.0, 0.0]  # form-active entry


def test_rule_avoids_flagged_offers_and_start_follows_the_lm():
    core = _core([LIPO_W])
    core.reset_with([LIPO_W])
    rng = np.random.default_rng(0)
    eos_slot = int(np.flatnonzero(core.topk_ids[0] == 2)[0]) if (core.topk_ids[0] == 2).any() else None
    picks = {int(avoid_flagged(core, rng)[0]) for _ in range(20)}
    flags = core.flags()[0]
    allowed = np.flatnonzero(core.action_masks()[0] & (flags < 0.5))
    if len(allowed):  # only unflagged offers are taken
        assert picks <= set(allowed.tolist()) and (eos_slot is None or picks == {eos_slot})
    lm = {int(follow_lm(core, rng)[0]) for _ in range(200)}
    assert len(lm) > 1  # the start samples the LM's top-k, flagged offers included


def test_write_texts_keeps_prompt_order_and_ends_every_row():
    core = _core([LIPO_W, HAIKU], n=2)
    rng = np.random.default_rng(0)
    texts, eos = write_texts(core, [HAIKU, LIPO_W], lambda obs, masks: follow_lm(core, rng))
    assert core.row_prompts == [HAIKU, LIPO_W] and len(texts) == 2 and len(eos) == 2
    assert all(len(t.split()) <= 6 for t in texts)


def test_lm_prior_policy_starts_at_the_lm_with_offer_flags():
    th = pytest.importorskip("torch")
    from rlcreate.sb3.policies import LMPriorPolicy

    core = _core([LIPO_W])
    obs = core.reset_with([LIPO_W])
    d = core.stepper.hidden_size
    policy = LMPriorPolicy(core.observation_space, core.action_space, lambda _: 1e-3, prior_start=d,
                           offer_features=1, kl_to_prior=True, net_arch=[16])
    dist = policy.get_distribution(th.as_tensor(obs), action_masks=core.action_masks())
    lp = core.topk_logprobs[0].astype(np.float64)
    want = np.where(core.action_masks()[0], np.exp(lp - lp.max()), 0.0)
    np.testing.assert_allclose(dist.distribution.probs[0].detach().numpy(), want / want.sum(), atol=1e-5)


def test_recipe_settings_for_form_offers_and_one_form_prompt_splits():
    from rlcreate.recipe import load_recipe
    from rlcreate.text.runs import resolve_prompts, text_settings

    got = resolve_prompts("forms_train:lipogram", "env.kwargs.prompts")
    assert len(got) == 40 and all("without using the letter" in p for p in got)
    with pytest.raises(RecipeError, match="forms_train:sonnet.*lipogram"):
        resolve_prompts("forms_train:sonnet", "env.kwargs.prompts")
    recipe = load_recipe("rlcreate/recipes/text_forms_steer.yaml")
    assert text_settings(recipe)["form_offers"] is True
    recipe.env.kwargs["form_offers"] = "yes"
    with pytest.raises(RecipeError, match="form_offers = 'yes'.*true or false"):
        text_settings(recipe)
