"""Per-offer form flags for token-level steering (rlcreate.text.form_offers) on a tiny offline LM."""

import numpy as np
import pytest

from rlcreate.recipe import RecipeError
from rlcreate.rewards.compose import RewardSet, Term
from rlcreate.text.form_offers import (
    FormOffersCore,
    acrostic_offer_flags,
    acrostic_prefix_ok,
    avoid_flagged,
    couplet_offer_flags,
    couplet_prefix_ok,
    follow_lm,
    letter_table,
    write_texts,
)
from rlcreate.text.stepping import LMStepper
from tests.tiny_lm import WORDS, tiny_lm

LIPO_W = 'Write two sentences about a pond without using the letter "w".'
LIPO_Z = 'Write two sentences about a pond without using the letter "z".'
HAIKU = "Write a haiku about a pond: three lines of 5, 7 and 5 syllables."
ACRO_WAVE = "Write an acrostic poem about a pond. The first letters of its lines spell WAVE, one line per letter."
ACRO_SOCK = "Write an acrostic poem about a pond. The first letters of its lines spell SOCK, one line per letter."


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
    assert not table[WORDS.index("<eos>")].any()  # special tokens never reach the text: no letters


def test_flags_mark_offers_with_the_banned_letter_only_on_lipogram_rows():
    core = _core([LIPO_W, LIPO_Z, HAIKU])
    obs = core.reset_with([LIPO_W, LIPO_Z, HAIKU])
    d, k = core.stepper.hidden_size, core.k
    assert obs.shape == (3, d + k + 1 + 2 + 2 * k) and core.observation_space.contains(obs[0])
    expected_w = np.array([["w" in WORDS[i] for i in ids] for ids in core.topk_ids[:1]], np.float32)[0]
    assert expected_w.sum() >= 1  # the tiny vocabulary is mostly w-tokens
    slots = obs[:, -2 * k :].reshape(3, k, 2)  # slot-major: (breaks, moves on) per offer
    np.testing.assert_array_equal(slots[0, :, 0], expected_w)
    np.testing.assert_array_equal(core.flags()[0], expected_w)
    np.testing.assert_array_equal(slots[1], np.zeros((k, 2)))  # no offered token holds a "z"
    np.testing.assert_array_equal(slots[2], np.zeros((k, 2)))  # another form: no flags
    np.testing.assert_array_equal(slots[0, :, 1], np.zeros(k))  # a lipogram has nothing to move on
    np.testing.assert_array_equal(obs[:, -2 * k - 2 : -2 * k], [[1, 1], [1, 1], [0, 0]])  # form active


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
    policy = LMPriorPolicy(
        core.observation_space,
        core.action_space,
        lambda _: 1e-3,
        prior_start=d,
        offer_features=2,
        kl_to_prior=True,
        net_arch=[16],
    )
    dist = policy.get_distribution(th.as_tensor(obs), action_masks=core.action_masks())
    lp = core.topk_logprobs[0].astype(np.float64)
    want = np.where(core.action_masks()[0], np.exp(lp - lp.max()), 0.0)
    np.testing.assert_allclose(dist.distribution.probs[0].detach().numpy(), want / want.sum(), atol=1e-5)


def test_recipe_settings_for_form_offers_and_one_form_prompt_splits():
    from rlcreate.recipe import load_recipe
    from rlcreate.text.runs import resolve_prompts, text_settings

    got = resolve_prompts("forms_train:lipogram", "env.kwargs.prompts")
    assert len(got) == 40 and all("without using the letter" in p for p in got)
    both = resolve_prompts("forms_train:lipogram,acrostic", "env.kwargs.prompts")
    assert len(both) == 80 and set(got) < set(both) and sum("acrostic" in p for p in both) == 40
    with pytest.raises(RecipeError, match="forms_train:sonnet.*lipogram"):
        resolve_prompts("forms_train:sonnet", "env.kwargs.prompts")
    recipe = load_recipe("rlcreate/recipes/text_forms_steer.yaml")
    assert text_settings(recipe)["form_offers"] == {"form_penalty": 1.0, "form_bonus": 0.25, "flag_scale": 16.0}
    recipe.env.kwargs["form_offers"] = "yes"
    with pytest.raises(RecipeError, match="form_offers = 'yes'.*true or false"):
        text_settings(recipe)
    recipe.env.kwargs["form_offers"] = {"penalty": 1.0}
    with pytest.raises(RecipeError, match="form_offers = .*form_penalty"):
        text_settings(recipe)


def test_acrostic_prefix_check_on_hand_labelled_texts():
    assert acrostic_prefix_ok("", "SEA")
    assert acrostic_prefix_ok("Sun on the water\nEvery", "SEA")
    assert acrostic_prefix_ok("1. **S**un\n\n- Ev", "SEA")  # markers and blank lines are no lines
    assert acrostic_prefix_ok("Sun\nEbb\nAir\n", "SEA")  # a trailing newline starts no line yet
    assert not acrostic_prefix_ok("Here is a poem:\nSun", "SEA")  # a preamble line has the wrong initial
    assert not acrostic_prefix_ok("Sun\nAir", "SEA")
    assert not acrostic_prefix_ok("Sun\nEbb\nAir\nMore", "SEA")  # one line too many


def test_acrostic_offer_flags_on_hand_labelled_states():
    offers = [" Sun", "\n", ".\n", "Here", " and", "E", ""]
    eos = [False] * 6 + [True]

    def flags(text):
        return [tuple(int(x) for x in row) for row in acrostic_offer_flags(text, offers, eos, "SEA")]

    # at the start: "Sun" starts line 1 right, "Here"/"and"/"E" break it, a newline or EOS changes nothing
    assert flags("") == [(0, 1), (0, 0), (0, 0), (1, 0), (1, 0), (1, 0), (0, 0)]
    # one word on line 1: no line is full yet, so no newline moves the poem on
    assert flags("Sun")[1:3] == [(0, 0), (0, 0)]
    # two words on line 1: a newline ends it (with or without a full stop); "E" goes on line 1
    assert flags("Sun rises")[1:3] == [(0, 1), (0, 1)] and flags("Sun rises")[5] == (0, 0)
    # at line 2's start: "E" starts it right, "Sun"/"Here"/"and" break it
    assert flags("Sun rises\n") == [(1, 0), (0, 0), (0, 0), (1, 0), (1, 0), (0, 1), (0, 0)]
    # the last line full: EOS completes the poem, a new line would be one too many
    done = flags("Sun rises\nEbb flows\nAll is calm")
    assert done[6] == (0, 1) and done[1] == (0, 0)
    assert flags("Sun rises\nEbb flows\nAll is calm\n")[0] == (1, 0)
    assert flags("Here is a poem") == [(0, 0)] * 7  # broken: nothing left to save


def test_acrostic_flags_mark_wrong_initials_until_the_form_is_broken():
    core = _core([ACRO_WAVE, ACRO_SOCK, HAIKU])
    obs = core.reset_with([ACRO_WAVE, ACRO_SOCK, HAIKU])
    k = core.k
    letters = np.array([[bool(core._texts[t].strip()) for t in ids] for ids in core.topk_ids])
    np.testing.assert_array_equal(obs[:, -2 * k - 2], [1.0, 1.0, 0.0])
    both = core.offer_flags()
    np.testing.assert_array_equal(both[0, :, 0], np.zeros(k))  # every tiny token starts with "w": WAVE ok
    np.testing.assert_array_equal(both[0, :, 1], letters[0])  # ... and starts its first line
    np.testing.assert_array_equal(both[1, :, 0], letters[1])  # SOCK: all but EOS break it
    np.testing.assert_array_equal(both[1, :, 1], np.zeros(k))
    slot = int(np.flatnonzero(letters[1])[0])
    core.step(np.array([int(np.argmax(letters[0])), slot, 0]))
    np.testing.assert_array_equal(core.offer_flags()[1], np.zeros((k, 2)))  # broken: nothing left to save
    assert core.violations.tolist() == [0, 1, 0] and core.advances.tolist() == [1, 0, 0]


def test_dense_penalty_charges_the_token_that_breaks_the_form():
    core = _core([LIPO_W, LIPO_Z, ACRO_WAVE], form_penalty=0.5, form_bonus=0.25, flag_scale=4.0)
    obs = core.reset_with([LIPO_W, LIPO_Z, ACRO_WAVE])
    k = core.k
    assert set(np.unique(obs[0, -2 * k :])) <= {0.0, 4.0} and core.observation_space.contains(obs[0])
    flags = core.flags()
    bad = int(np.flatnonzero(flags[0] * core.action_masks()[0])[0])
    good = int(np.flatnonzero(core.offer_flags()[2, :, 1] * core.action_masks()[2])[0])
    _, rewards, terminated, truncated, _ = core.step(np.array([bad, 0, good]))
    assert not (terminated | truncated).any()  # the zero reward set pays nothing before the end
    np.testing.assert_allclose(rewards, [-0.5, 0.0, 0.25])
    with pytest.raises(Exception, match="form_penalty = -1"):
        _core([LIPO_W], form_penalty=-1)


COUPLET = "Write a rhyming couplet about a pond: two lines whose last words rhyme."


def test_couplet_prefix_check_on_hand_labelled_texts():
    assert couplet_prefix_ok("")
    assert couplet_prefix_ok("The moon is bright tonight\nThe stars")
    assert couplet_prefix_ok("The moon is bright tonight\n\n1. The stars all shine with light")  # blank/marker
    assert couplet_prefix_ok("The moon is bright tonight\nThe stars all shine with light", ended=True)
    assert couplet_prefix_ok("The moon is bright tonight\nThe stars all shine with light\n")  # no 3rd line yet
    assert not couplet_prefix_ok("The moon\nThe stars")  # line 1 ended with 2 words
    assert not couplet_prefix_ok("The moon is bright tonight\nThe stars are out\n")  # out / tonight: no rhyme
    assert not couplet_prefix_ok("The moon is bright tonight\nThe stars all shine so bright\nAnd")  # a 3rd line
    assert not couplet_prefix_ok("The moon is bright tonight", ended=True)  # one line only
    assert not couplet_prefix_ok("The moon is bright tonight\nThe stars all shine tonight\n")  # the same word
    # pronunciation, not spelling: sea / free rhyme (different rimes), and a word piece does not
    assert couplet_prefix_ok("We sail upon the sea\nThe wind is wild and free\n")
    assert not couplet_prefix_ok("The moon is bright tonight\nThe stars all shine so brigh\n")


def test_couplet_offer_flags_on_hand_labelled_states():
    offers = ["\n", " light", " lamp", "ness", " n", "ight", ".\n", ""]
    eos = [False] * 7 + [True]

    def flags(text):
        return [tuple(int(x) for x in row) for row in couplet_offer_flags(text, offers, eos)]

    line1 = "The moon is bright tonight"
    # line 1 has 5 words: a newline ends it (moves on); EOS after one line breaks the couplet
    got = flags(line1)
    assert got[0] == (0, 1) and got[6] == (0, 1) and got[7] == (1, 0) and got[1] == (0, 0)
    # line 1 with two words: ending it breaks the form
    assert flags("The moon")[0] == (1, 0) and flags("The moon")[6] == (1, 0)
    # " light" as line 2's second word: a rhyme, but the line is too short to count
    assert flags(line1 + "\nThe")[1] == (0, 0) and flags(line1 + "\nThe stars")[1] == (0, 1)
    # line 2 with three words: " light" brings the rhyme, " lamp" does not (no break: the line goes on)
    got = flags(line1 + "\nThe stars all")
    assert got[1] == (0, 1) and got[2] == (0, 0)
    assert got[0] == (1, 0) and got[7] == (1, 0)  # ending line 2 on "all" breaks it
    # word pieces: " n" is no rhyme yet; "ight" completes "night" (moves on); "ness" would spoil "light"
    assert flags(line1 + "\nThe stars all")[4] == (0, 0)
    assert flags(line1 + "\nThe stars all n")[5] == (0, 1)
    on_light = flags(line1 + "\nThe stars all shine with light")
    assert on_light[3] == (0, 0)  # "lightness" is not flagged: the line has not ended
    assert on_light[0] == (0, 1) and on_light[6] == (0, 1) and on_light[7] == (0, 1)  # newline or EOS ends it right
    assert on_light[1] == (0, 0)  # a second rhyme word earns nothing more
    assert flags(line1 + "\nThe stars all shine with lightness")[0] == (1, 0)  # ends on no rhyme: breaks
    # after the couplet: EOS completes it, a new line breaks it
    got = flags(line1 + "\nThe stars all shine with light\n")
    assert got[7] == (0, 1) and got[1] == (1, 0) and got[0] == (0, 0)
    assert flags(line1 + "\nThe stars are out\n") == [(0, 0)] * 8  # broken: nothing left to save


def test_couplet_flags_are_opt_in_and_charge_the_breaking_token():
    default = _core([COUPLET, LIPO_W])
    default.reset_with([COUPLET, LIPO_W])
    assert default.active().tolist() == [False, True]  # couplet rows get no flags unless asked
    np.testing.assert_array_equal(default.offer_flags()[0], np.zeros((default.k, 2)))
    core = _core([COUPLET], forms=["couplet"], form_penalty=1.0, form_bonus=0.25)
    core.reset_with([COUPLET])
    assert core.active().tolist() == [True]
    texts = [core._texts[t] for t in core.topk_ids[0]]
    eos = np.isin(core.topk_ids[0], core._eos).tolist()
    np.testing.assert_array_equal(core.offer_flags()[0], couplet_offer_flags("", texts, eos))
    with pytest.raises(Exception, match="forms = \\['sonnet'\\]"):
        _core([COUPLET], forms=["sonnet"])


def test_strict_acrostic_breaks_lone_letter_and_all_capital_line_starts():
    # hand-labelled: the letter lists and capitals the plain acrostic flags let through
    assert acrostic_prefix_ok("C, A, T\nA, B\nT", "CAT") and not acrostic_prefix_ok("C, A, T", "CAT", strict=True)
    assert not acrostic_prefix_ok("S.A.T.A.M.E.", "SUN", strict=True)
    assert not acrostic_prefix_ok("HAPPY ALLAHABAD\n", "HOPE", strict=True)
    assert not acrostic_prefix_ok("NEST, one line per letter", "NEST", strict=True)
    assert acrostic_prefix_ok("Nested within our love\nEscape our own path", "NEST", strict=True)
    assert acrostic_prefix_ok("Cats sleep\nA bird sings\nI", "CAI", strict=True)  # A and I are words
    assert acrostic_prefix_ok("Cats sleep\nE", "CE", strict=True)  # "E" may still become "Every"
    assert not acrostic_prefix_ok("Cats sleep\nE", "CE", strict=True, ended=True)  # ... not if the text stops
    offers = [",", "very", " day", "VERY", ""]
    eos = [False] * 4 + [True]
    got = [tuple(int(x) for x in r) for r in acrostic_offer_flags("Sun rises\nE", offers, eos, "SEA", strict=True)]
    assert got == [(1, 0), (0, 0), (1, 0), (1, 0), (1, 0)]  # "E," "E day" "EVERY" break; "Every" goes on
    plain = [tuple(int(x) for x in r) for r in acrostic_offer_flags("Sun rises\nE", offers, eos, "SEA")]
    assert plain == [(0, 0)] * 5


def test_recipe_settings_for_couplet_and_strict_acrostic_options():
    from rlcreate.recipe import load_recipe
    from rlcreate.text.runs import text_settings

    recipe = load_recipe("rlcreate/recipes/text_couplet_steer.yaml")
    assert text_settings(recipe)["form_offers"]["forms"] == ["couplet"]
    recipe.env.kwargs["form_offers"] = {"forms": ["sonnet"]}
    with pytest.raises(RecipeError, match="form_offers.forms = \\['sonnet'\\].*couplet"):
        text_settings(recipe)
    recipe.env.kwargs["form_offers"] = {"strict_acrostic": True, "forms": ["acrostic"]}
    assert text_settings(recipe)["form_offers"]["strict_acrostic"] is True
    core = _core([ACRO_SOCK], strict_acrostic=True)
    assert core.strict_acrostic
    with pytest.raises(Exception, match="strict_acrostic = 'yes'"):
        _core([ACRO_SOCK], strict_acrostic="yes")
