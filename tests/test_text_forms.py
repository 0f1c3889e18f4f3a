"""Creative-form rewards, their judges and the form prompts: hand-labelled examples, no model."""

import pytest

from rlcreate.rewards.registry import get_reward
from rlcreate.text.form_judges import (
    MIN_WORDS,
    haiku_exact,
    inflections,
    judge,
    judge_syllables,
    spelling_rhyme,
    spelling_rime,
)
from rlcreate.text.form_prompts import PER_FORM, FormPromptError, form_prompts, split_pools
from rlcreate.text.forms import (
    FORMS,
    TEMPLATES,
    FormError,
    cmu_rhyme,
    cmu_syllables,
    line_initial,
    parse_form_prompt,
    stem_match,
    verse_lines,
    words,
)

# ------------------------------------------------------------- shared checks (hand-labelled)

@pytest.mark.parametrize("text, lines", [
    ("Moon rises\nover hills", ["Moon rises", "over hills"]),
    ("1. Moon rises\n\n2) Over hills\n", ["Moon rises", "Over hills"]),          # numbering, stanza break
    ("- **M**oon rises\n* Over hills", ["Moon rises", "Over hills"]),           # bullets, bold initial
    ("Title\n---\n...\nLast line", ["Title", "Last line"]),                    # no letters: no line
    ("  \n\n", []),
    ("A. apple tree\nI am here", ["apple tree", "I am here"]),                 # letter label, then "I am"
])
def test_verse_lines_hand_labelled(text, lines):
    assert verse_lines(text) == lines


@pytest.mark.parametrize("line, initial", [
    ("Moon rises", "M"), ('"Over the hill"', "O"), ("42 owls", "O"), ("...and so", "A"), ("", ""), ("!!", ""),
])
def test_line_initial_hand_labelled(line, initial):
    assert line_initial(line) == initial


def test_words_keep_inner_apostrophes():
    assert words("Don't stop, it's 5 o’clock!") == ["don't", "stop", "it's", "o'clock"]


@pytest.mark.parametrize("concept, word, same", [
    ("dog", "dogs", True), ("run", "running", True), ("bake", "baked", True), ("bake", "baking", True),
    ("story", "stories", True), ("stop", "stopped", True), ("walk", "walked", True), ("box", "boxes", True),
    ("cat", "catalog", False), ("sing", "sign", False), ("moon", "mood", False), ("hat", "hate", False),
])
def test_inflections_reward_and_judge_agree_on_hand_labels(concept, word, same):
    assert stem_match(concept, word) is same
    assert (word in inflections(concept)) is same


@pytest.mark.parametrize("a, b, rhyme", [
    ("night", "light", True), ("day", "away", True), ("moon", "soon", True), ("stone", "alone", True),
    ("cat", "dog", False), ("night", "night", False), ("tree", "stone", False), ("sing", "song", False),
])
def test_spelling_rhyme_hand_labelled(a, b, rhyme):
    assert spelling_rhyme(a, b) is rhyme


def test_syllable_counters_disagree_by_one_on_some_words():
    # why the haiku judge allows +-1 per line: "silence" is 2 by CMU, 3 by the judge's estimator
    assert cmu_syllables("silence") == 2 and judge_syllables("silence") == 3


def test_cmu_and_spelling_rhyme_differ_where_they_should():
    # pronunciation rhymes that spelling misses, and an eye rhyme that pronunciation rejects
    assert cmu_rhyme("blue", "through") and not spelling_rhyme("blue", "through")
    # an eye rhyme: the spelling judge accepts it (a documented false positive), pronunciation does not
    assert spelling_rhyme("love", "move") and not cmu_rhyme("love", "move")
    assert spelling_rime("night") == "ight" and spelling_rime("stone") == "one"
    assert cmu_rhyme("zorblat", "florblat")  # unknown to CMU: spelling fallback (last three letters)


@pytest.mark.parametrize("word, n", [("the", 1), ("flower", 2), ("beautiful", 3), ("morning", 2), ("water", 2)])
def test_syllable_counters_on_hand_labels(word, n):
    assert cmu_syllables(word) == n
    assert judge_syllables(word) == n


# ------------------------------------------------------------------------ rewards vs judges

ACROSTIC = "Write an acrostic poem about the sea. The first letters of its lines spell SEA, one line per letter."
COUPLET = TEMPLATES["couplet"].format(topic="the night")
HAIKU = TEMPLATES["haiku"].format(topic="a pond")
CONCEPTS = TEMPLATES["concepts"].format(topic="a park", target='"dog", "ball" and "run"')
LIPOGRAM = TEMPLATES["lipogram"].format(topic="a cat", target='"e"')


def _r(name, text, prompt):
    return get_reward(name)([text], prompts=[prompt])[0]


def test_acrostic_reward_and_judge():
    good = "Salt on the wind\nEvery wave returns\nAll the blue goes on"
    assert _r("acrostic", good, ACROSTIC) == 1.0 and judge("acrostic", good, "SEA")
    letters_only = "S\nE\nA"  # initials right, no line has two words
    assert _r("acrostic", letters_only, ACROSTIC) == 0.0 and not judge("acrostic", letters_only, "SEA")
    extra = good + "\nSo it ends"
    assert _r("acrostic", extra, ACROSTIC) == 0.75 and not judge("acrostic", extra, "SEA")


def test_couplet_reward_and_judge():
    good = "The stars come out across the night\nAnd fill the quiet sky with light"
    assert _r("couplet", good, COUPLET) == 1.0 and judge("couplet", good)
    no_rhyme = "The stars come out across the night\nAnd the sky is very dark"
    assert _r("couplet", no_rhyme, COUPLET) == 0.0 and not judge("couplet", no_rhyme)
    same_word = "I walk alone into the night\nYou sleep alone inside the night"
    assert _r("couplet", same_word, COUPLET) == 0.0 and not judge("couplet", same_word)
    odd = good + "\nAnd then the morning"
    assert _r("couplet", odd, COUPLET) == 0.5 and not judge("couplet", odd)


def test_haiku_reward_and_judge():
    good = "An old silent pond\nA frog jumps into the pond\nSplash! Water again"
    assert _r("haiku", good, HAIKU) == 1.0 and judge("haiku", good) and haiku_exact(good)
    prose = "A frog jumps into the old pond and the water splashes everywhere around it."
    assert _r("haiku", prose, HAIKU) < 0.2 and not judge("haiku", prose)


def test_concepts_reward_and_judge():
    good = "The dogs ran across the park after a red ball while the children were running behind them."
    assert _r("concepts", good, CONCEPTS) == 1.0 and judge("concepts", good, "dog,ball,run")
    listed = "dog ball run"
    assert _r("concepts", listed, CONCEPTS) == pytest.approx(3 / 12) and not judge("concepts", listed, "dog,ball,run")
    two = "The dogs played in the park all afternoon with the children and their parents nearby."
    assert _r("concepts", two, CONCEPTS) == pytest.approx(1 / 3) and not judge("concepts", two, "dog,ball,run")


def test_lipogram_reward_and_judge():
    good = "A cat sat on a warm mat all day long, as calm as a cloud that drifts away in spring."
    assert "e" not in good and len(words(good)) >= MIN_WORDS
    assert _r("lipogram", good, LIPOGRAM) == 1.0 and judge("lipogram", good, "e")
    short = "A cat sat."
    assert _r("lipogram", short, LIPOGRAM) == pytest.approx(3 / 12) and not judge("lipogram", short, "e")
    one_e = good.replace("warm", "sweet")
    assert _r("lipogram", one_e, LIPOGRAM) < 1.0 and not judge("lipogram", one_e, "e")


def test_form_rewards_skip_other_forms_and_read_columns():
    r = get_reward("haiku")
    assert r(["An old silent pond"], prompts=[COUPLET]) == [None]
    assert r(["anything"], prompts=["Tell me a story."]) == [None]
    # TRL-style call with dataset columns instead of a parsable prompt
    vals = get_reward("acrostic")(prompts=["any"], completions=["Salt on it\nEvery day\nAll of it"],
                                  form=["acrostic"], target=["SEA"])
    assert vals == [1.0]


def test_form_reward_errors_name_the_value():
    with pytest.raises(FormError, match="needs the prompts"):
        get_reward("lipogram")(["text"])
    with pytest.raises(FormError, match="give one letter"):
        get_reward("lipogram")(["text"], form=["lipogram"], target=["ab"])
    with pytest.raises(FormError, match="not a known form"):
        judge("sonnet", "text")


# ---------------------------------------------------------------------------------- prompts

def test_prompt_splits_share_no_topic_word_or_letter():
    pools = split_pools()
    for key in ("topics", "words", "letters"):
        for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
            assert not set(pools[a][key]) & set(pools[b][key]), (key, a, b)
    rows = {s: form_prompts(s) for s in ("train", "dev", "test")}
    targets = {s: {t for r in rows[s] for t in r["target"].lower().split(",") if t} for s in rows}
    topics = {s: {r["topic"] for r in rows[s]} for s in rows}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not targets[a] & targets[b] and not topics[a] & topics[b]


def test_test_split_has_100_distinct_prompts_per_form_that_parse_back():
    rows = form_prompts("test")
    for form in FORMS:
        mine = [r for r in rows if r["form"] == form]
        assert len(mine) == PER_FORM["test"] == 100 and len({r["prompt"] for r in mine}) == 100
        for r in mine:
            assert parse_form_prompt(r["prompt"]) == (form, r["topic"], r["target"])
    assert form_prompts("test") == rows  # deterministic


def test_shipped_prompt_files_match_the_generator():
    from rlcreate.text.data import prompts

    for split in ("train", "dev", "test"):
        assert prompts(f"forms_{split}") == [r["prompt"] for r in form_prompts(split)]


def test_unknown_split_suggests():
    with pytest.raises(FormPromptError, match="Did you mean 'test'"):
        form_prompts("tset")


def test_multi_form_recipe_scores_each_form_only_on_its_prompts():
    """The shipped recipe builds, and through the TRL adapter each form term scores its own
    prompts and returns None (not applicable) on the others: rewards/<form>/mean is per form."""
    from rlcreate.recipe import build_reward_set, load_recipe
    from rlcreate.rewards.trl_adapter import trl_reward_funcs

    recipe = load_recipe("rlcreate/recipes/text_forms.yaml")
    funcs = {f.__name__: f for f in trl_reward_funcs(build_reward_set(recipe))}
    assert set(FORMS) <= set(funcs)
    prompts = [ACROSTIC, HAIKU]
    completions = ["Salt on the wind\nEvery wave returns\nAll the blue goes on",
                   "An old silent pond\nA frog jumps into the pond\nSplash! Water again"]
    assert funcs["acrostic"](prompts=prompts, completions=completions) == [1.0, None]
    assert funcs["haiku"](prompts=prompts, completions=completions) == [None, 1.0]
    assert funcs["lipogram"](prompts=prompts, completions=completions) == [None, None]
