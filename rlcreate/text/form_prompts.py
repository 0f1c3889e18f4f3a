"""Prompts for the creative forms, with TRAIN / DEV / TEST splits that share no topic and no target.

Every prompt is written from :data:`rlcreate.text.forms.TEMPLATES` (the form and its target are
named in the prompt, so one multi-form recipe trains all forms and the rewards parse the target
back). Topics, target words (acrostic words and concepts, one pool) and banned letters are each
split three ways before any prompt is drawn, so a TEST prompt never repeats a topic, a word or a
letter that training or tuning saw. Sizes per form: TRAIN 40, DEV 15, TEST 100 (a TEST topic serves one
prompt per form). Deterministic: the same call gives the same prompts.

    from rlcreate.text.form_prompts import form_prompts
    rows = form_prompts("test")          # [{"prompt", "form", "topic", "target"}, ...]
"""

from __future__ import annotations

import difflib
import random

from rlcreate.errors import UserError
from rlcreate.text.forms import FORMS, TEMPLATES, parse_form_prompt

__all__ = ["SPLITS", "PER_FORM", "form_prompts", "split_pools", "FormPromptError"]

SPLITS = ("train", "dev", "test")
PER_FORM = {"train": 40, "dev": 15, "test": 100}

# Original lists written for this project (CC0). Topics: short noun phrases a writer would take.
_TOPICS = """the sea at dawn; a city at night; an old bicycle; the first snow; a lighthouse; a kitchen in
summer; a lost key; the last train home; a thunderstorm; a garden after rain; a library; a broken clock;
the desert wind; a mountain lake; a busy market; an empty stadium; a paper boat; the moon over a field;
a grandmother's hands; a fox in winter; a street musician; a harbour; autumn leaves; a forgotten letter;
a rainy window; the smell of bread; a violin; a frozen river; a child's drawing; an abandoned house;
a candle; a spider's web; the morning bus; a quiet forest; a wedding; a hospital at night; a bee;
a volcano; a river delta; a rooftop; a snail; the northern lights; a fishing village; a train station;
a crow; a dusty attic; an orchard; a tide pool; a carnival; a school bell; a tired horse; a meadow;
a glass of water; a sunflower; a bridge in fog; a kite; a cat asleep; a painter's studio; a shipwreck;
a bakery; a winter road; the night sky; a pair of old boots; a swing; a cactus; a waterfall; a clock
tower; a honeybee hive; a radio; a lemon tree; a stone wall; a piano; an owl; a farm at noon; a subway;
a picnic; a canoe; a birthday; a chess game; a whale; a pine forest; a marathon; a well; a tea kettle;
a greenhouse; a ferry; a beehive; a windmill; a cave; a storm at sea; a football match; a pond; a quilt;
a market at dusk; a puppy; the harvest; a snowman; a mirror; a museum; a map; a sailboat; a rose; a
desert town; the city park; a fire in the hearth; a pebble; a mountain village; a hummingbird; the
first day of school; a bus stop; a torn photograph; a field of wheat; a jellyfish; an island; a
thunderclap; a market stall; a sleeping baby; a spring morning; a tram; an ant; a fountain; a lantern;
a snowstorm; a harbour crane; a coral reef; a dandelion; a teacup; a campfire; a cliff; a hot air
balloon; a moth; a bell tower; a seashell; a violin teacher; an old dog; a flooded street; a night
ferry; a village well; a red scarf; a sandcastle; a bonfire; a dragonfly; a rain barrel; a mailbox;
an empty classroom; a lemonade stand; a river otter; a broken umbrella; a hayloft; a ticking watch;
a fog horn; a pumpkin patch; a snowy owl; a rowing boat; an old typewriter; a tulip field"""
# Target words: concrete, common, 3 to 5 letters (acrostic words and concepts share this pool).
_WORDS = """moon star rain tree bird fish wind song door road ship lamp milk rose leaf snow fire gold
bell kite wave hill sand salt ring nest frog wolf bear deer lake corn rice soup cake bread chair table
horse river stone cloud storm light night dream heart house field glass paper plant apple grape lemon
piano clock train truck boat coat shoe hat sock bed bath wall roof path farm barn king queen child
smile laugh dance sing walk run jump swim climb cook bake paint write read sleep wake fly hope love
time year day sun sky sea owl cat dog bee ant egg pen cup box key map fan jar net web toy drum flag
coin mask rope tent seed bone hand face eye ear nose tooth hair lion tiger mouse snake duck goat sheep
cow pig hen baby shirt dress gift card game ball bat glove nail hook lock candle""".split()
_LETTERS = {"train": "eonsrhlcmf", "dev": "wgp", "test": "aitudyb"}


class FormPromptError(UserError):
    """Unknown split; the message names the valid ones."""


def _topics() -> list[str]:
    return [" ".join(t.split()) for t in _TOPICS.replace("\n", " ").split(";")]


def split_pools() -> dict[str, dict[str, list[str]]]:
    """Per split: ``topics``, ``words`` (targets) and ``letters``; disjoint across splits.

    Words that occur inside any topic are left out of every split, so a target never echoes a
    topic of another split."""
    rng = random.Random(20261203)
    topics = sorted(set(_topics()))
    topic_words = {w for t in topics for w in t.replace("'", " ").split()}
    pool = sorted({w for w in _WORDS if w not in topic_words})
    rng.shuffle(topics)
    rng.shuffle(pool)
    t_cut = (len(topics) - 100 - 15, len(topics) - 100)  # TEST needs 100 topics: one haiku/couplet each
    w_cut = (len(pool) * 5 // 10, len(pool) * 6 // 10)
    return {
        "train": {"topics": topics[: t_cut[0]], "words": pool[: w_cut[0]], "letters": list(_LETTERS["train"])},
        "dev": {
            "topics": topics[t_cut[0] : t_cut[1]],
            "words": pool[w_cut[0] : w_cut[1]],
            "letters": list(_LETTERS["dev"]),
        },
        "test": {"topics": topics[t_cut[1] :], "words": pool[w_cut[1] :], "letters": list(_LETTERS["test"])},
    }


def _target(form: str, rng: random.Random, pools: dict) -> tuple[str, str]:
    """(target as written in the prompt, target as the reward reads it)."""
    if form == "acrostic":
        w = rng.choice([w for w in pools["words"] if 3 <= len(w) <= 5]).upper()
        return w, w
    if form == "concepts":
        a, b, c = rng.sample(pools["words"], 3)
        return f'"{a}", "{b}" and "{c}"', f"{a},{b},{c}"
    if form == "lipogram":
        x = rng.choice(pools["letters"])
        return f'"{x}"', x
    return "", ""


def form_prompts(split: str, forms: tuple[str, ...] = FORMS, per_form: int | None = None) -> list[dict]:
    """Rows ``{"prompt", "form", "topic", "target"}`` of a split, forms interleaved (one of each
    form in turn), ``per_form`` per form (default :data:`PER_FORM`)."""
    if split not in SPLITS:
        close = difflib.get_close_matches(str(split), SPLITS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise FormPromptError(f"form_prompts(split={split!r}): unknown split.{hint} Use one of {SPLITS}")
    pools = split_pools()[split]
    n = PER_FORM[split] if per_form is None else per_form
    by_form = {}
    for form in forms:
        rng = random.Random(f"{split}-{form}")
        topics = list(pools["topics"])
        rng.shuffle(topics)
        rows = []
        for i in range(n):
            topic = topics[i % len(topics)]
            written, target = _target(form, rng, pools)
            rows.append(
                {
                    "prompt": TEMPLATES[form].format(topic=topic, target=written),
                    "form": form,
                    "topic": topic,
                    "target": target,
                }
            )
        by_form[form] = rows
    return [by_form[f][i] for i in range(n) for f in forms]


def one_form_prompts(spec: str) -> list[str]:
    """``forms_<split>:<form>``: the prompts of one form (or of ``<form>,<form>``) in a forms split, in order. (It lives here,
    not in :mod:`rlcreate.text.data`, so the data module never imports the form rewards.)"""
    from rlcreate.text.data import PROMPT_SPLITS, TextDataError, prompts

    name, _, form = spec.partition(":")
    chosen = form.split(",")  # several forms: forms_train:lipogram,acrostic
    if name not in PROMPT_SPLITS or not name.startswith("forms_") or not all(f in FORMS for f in chosen):
        raise TextDataError(
            f"prompts(split={spec!r}): write forms_train, forms_dev or forms_test, a colon and one of {FORMS} "
            "(or several, comma-separated), e.g. 'forms_train:lipogram'"
        )
    return [p for p in prompts(name) if (parse_form_prompt(p) or ("",))[0] in chosen]
