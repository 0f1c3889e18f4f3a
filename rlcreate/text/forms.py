"""Creative forms as reward modules: acrostic, rhyming couplets, haiku, concept inclusion, lipogram.

Each form has a prompt template (the form and its target are named in the prompt, so one
multi-form recipe can train all of them) and a shaped reward in [0, 1] that gives partial credit
on the way to the form. Per-sample targets come, in this order, from the call's context (TRL passes
dataset columns as keywords: ``form=[...]``, ``target=[...]``) or from the prompt itself, parsed
with :func:`parse_form_prompt`. A form reward returns ``None`` ("not applicable") for a prompt
of another form, so in a multi-form run ``rewards/<form>/mean`` is that form's learning curve.

The reward modules are deliberately *not* the judges: :mod:`rlcreate.text.form_judges` reports
form satisfaction with other code and other sources (a different syllable counter, a different
rhyme rule, a different inflection matcher) so that a policy that exploits a quirk of the reward's
counter does not score on the judge. Shared, hand-labelled checks (what a line is, its initial,
its words) live here and are used by both.

Sources: pronunciations from the CMU Pronouncing Dictionary through the ``pronouncing`` package
(rhymes and syllables), with spelling fallbacks written here for words it lacks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rlcreate.errors import UserError
from rlcreate.rewards.base import RewardModule
from rlcreate.rewards.registry import register
from rlcreate.text.rewards import as_texts

__all__ = [
    "FORMS",
    "TEMPLATES",
    "FormError",
    "parse_form_prompt",
    "form_targets",
    "verse_lines",
    "line_initial",
    "words",
    "cmu_syllables",
    "cmu_rhyme",
    "stem_match",
    "AcrosticReward",
    "CoupletReward",
    "HaikuReward",
    "ConceptsReward",
    "LipogramReward",
    "FORM_REWARDS",
]

FORMS = ("acrostic", "couplet", "haiku", "concepts", "lipogram")

#: the prompt of each form; ``{target}`` is the acrostic word, the three concepts ("a, b and c")
#: or the banned letter. :func:`parse_form_prompt` inverts these.
TEMPLATES = {
    "acrostic": "Write an acrostic poem about {topic}. The first letters of its lines spell {target}, "
    "one line per letter.",
    "couplet": "Write a rhyming couplet about {topic}: two lines whose last words rhyme.",
    "haiku": "Write a haiku about {topic}: three lines of 5, 7 and 5 syllables.",
    "concepts": "Write two sentences about {topic} that use the words {target}.",
    "lipogram": "Write two sentences about {topic} without using the letter {target}.",
}
_PARSERS = {
    "acrostic": re.compile(
        r"^Write an acrostic poem about (?P<topic>.+?)\. The first letters of its lines "
        r"spell (?P<target>[A-Z]+), one line per letter\.$"
    ),
    "couplet": re.compile(r"^Write a rhyming couplet about (?P<topic>.+?): two lines whose last words rhyme\.$"),
    "haiku": re.compile(r"^Write a haiku about (?P<topic>.+?): three lines of 5, 7 and 5 syllables\.$"),
    "concepts": re.compile(
        r"^Write two sentences about (?P<topic>.+?) that use the words "
        r"(?P<target>\"[a-z]+\", \"[a-z]+\" and \"[a-z]+\")\.$"
    ),
    "lipogram": re.compile(
        r"^Write two sentences about (?P<topic>.+?) without using the letter "
        r"\"(?P<target>[a-z])\"\.$"
    ),
}


class FormError(UserError):
    """A form reward got a prompt/target it cannot use; the message names the value and the fix."""


def parse_form_prompt(prompt: str) -> tuple[str, str, str] | None:
    """``(form, topic, target)`` of a prompt written from :data:`TEMPLATES`, else ``None``.

    ``target``: the acrostic word (upper case), the concepts as ``"a,b,c"``, the banned letter, or
    ``""`` for forms without one."""
    for form, rx in _PARSERS.items():
        m = rx.match(prompt.strip())
        if m:
            target = m.groupdict().get("target") or ""
            if form == "concepts":
                target = ",".join(re.findall(r"\"([a-z]+)\"", target))
            if form == "lipogram":
                target = target.lower()
            return form, m["topic"], target
    return None


def form_targets(n: int, context: dict) -> list[tuple[str, str] | None]:
    """Per sample ``(form, target)`` from dataset columns ``form``/``target`` when the caller passes
    them, else parsed from ``prompts``; ``None`` for a sample whose form is unknown."""
    forms, targets, prompts = context.get("form"), context.get("target"), context.get("prompts")
    if forms is not None:
        if isinstance(forms, str):
            forms = [forms] * n
        targets = [""] * n if targets is None else ([targets] * n if isinstance(targets, str) else list(targets))
        if len(forms) != n or len(targets) != n:
            raise FormError(
                f"got {len(forms)} forms / {len(targets)} targets for {n} completions; pass one "
                "per completion (repeat a prompt's columns for each of its completions)"
            )
        return [(str(f), str(t)) for f, t in zip(forms, targets)]
    if prompts is None:
        raise FormError(
            "a form reward needs the prompts (or form=/target= columns): call it as "
            "reward(completions, prompts=[...]) with prompts written from rlcreate.text.forms.TEMPLATES"
        )
    if isinstance(prompts, str):
        prompts = [prompts] * n
    prompts = as_texts(prompts, "prompt")
    if len(prompts) != n:
        raise FormError(f"got {len(prompts)} prompts for {n} completions; pass one prompt per completion")
    out: list[tuple[str, str] | None] = []
    for p in prompts:
        parsed = parse_form_prompt(p)
        out.append(None if parsed is None else (parsed[0], parsed[2]))
    return out


# ------------------------------------------------------------------ shared checks (hand-labelled tests)

_MARKER = re.compile(r"^\s*(?:[-*•>#]+|\d+\s*[.):]|[A-Za-z]\s*[.):](?=\s))\s*")
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")


def verse_lines(text: str) -> list[str]:
    """The lines of a poem: newline-separated, stripped of list markers (``-``, ``1.``, ``#``) and
    markdown emphasis, keeping only lines with at least one letter. A blank line (stanza break) is
    no line. Example: ``"1. Moon rises\\n\\n**O**ver hills"`` -> ``["Moon rises", "Over hills"]``."""
    out = []
    for raw in text.replace("\r", "").split("\n"):
        line = _MARKER.sub("", raw.strip()).replace("*", "").replace("_", " ").strip()
        if _WORD.search(line):
            out.append(line)
    return out


def words(text: str) -> list[str]:
    """Lower-cased words (letters and inner apostrophes): ``"Don't stop!"`` -> ``["don't", "stop"]``."""
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def line_initial(line: str) -> str:
    """The first letter of a line (upper case), skipping quotes, digits and punctuation; ``""`` if none."""
    m = re.search(r"[A-Za-z]", line)
    return m.group(0).upper() if m else ""


# ---------------------------------------------------------------------- pronunciation (reward side)


def _cmu_phones(word: str) -> list[str]:
    import pronouncing  # CMU dict; loaded on first use

    return pronouncing.phones_for_word(word.lower().strip("'"))


def _vowel_groups(word: str) -> int:
    """Spelling fallback: vowel groups, a final silent 'e' dropped (``"stone"`` 1, ``"table"`` 2)."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return 0
    n = len(re.findall(r"[aeiouy]+", w))
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and n > 1:
        n -= 1
    return max(1, n)


def cmu_syllables(word: str) -> int:
    """Syllables of a word: the CMU dictionary's first pronunciation, else vowel groups of its spelling."""
    import pronouncing

    phones = _cmu_phones(word)
    return pronouncing.syllable_count(phones[0]) if phones else _vowel_groups(word)


def cmu_rhyme(a: str, b: str) -> bool:
    """Two different words rhyme: some CMU pronunciations share the part from the last stressed
    vowel on; for a word the dictionary lacks, the spellings share their last three letters."""
    import pronouncing

    a, b = a.lower().strip("'"), b.lower().strip("'")
    if not a or not b or a == b:
        return False
    pa, pb = _cmu_phones(a), _cmu_phones(b)
    if pa and pb:
        ra = {pronouncing.rhyming_part(p) for p in pa}
        return bool(ra & {pronouncing.rhyming_part(p) for p in pb})
    return len(a) >= 3 and len(b) >= 3 and a[-3:] == b[-3:]


def _strip_suffix(w: str) -> str:
    """Crude suffix-stripping stem: ``running`` -> ``run``, ``stories`` -> ``story``, ``baked`` -> ``bak``."""
    for suf, repl in (
        ("ies", "y"),
        ("ied", "y"),
        ("ier", "y"),
        ("iest", "y"),
        ("ing", ""),
        ("est", ""),
        ("es", ""),
        ("ed", ""),
        ("er", ""),
        ("s", ""),
    ):
        if w.endswith(suf) and len(w) - len(suf) >= 2:
            w = w[: -len(suf)] + repl
            if len(w) >= 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":  # runn -> run
                w = w[:-1]
            break
    return w


def stem_match(concept: str, word: str) -> bool:
    """``word`` is ``concept`` or a regular inflection of it, by suffix stripping (reward side):
    the stripped word equals the concept, the concept minus a final ``e`` (``baked`` -> ``bake``),
    or the stripped concept. Irregular forms (``ran``) do not match."""
    concept, word = concept.lower(), word.lower()
    if word == concept:
        return True
    stem = _strip_suffix(word)
    return stem != word and (stem == concept or stem + "e" == concept or stem == _strip_suffix(concept))


# ---------------------------------------------------------------------------------- rewards


class _FormReward(RewardModule):
    artifact = "text"
    form = ""

    def score(self, samples: Sequence[Any], **context: Any) -> list[float | None]:
        texts = as_texts(samples)
        out: list[float | None] = []
        for text, ft in zip(texts, form_targets(len(texts), context)):
            out.append(None if ft is None or ft[0] != self.form else float(self.score_one(text, ft[1])))
        return out

    def score_one(self, text: str, target: str) -> float:
        raise NotImplementedError


@register("acrostic")
class AcrosticReward(_FormReward):
    """Acrostic: the initials of the lines spell the target word.

    Measures: over ``max(len(word), lines)`` positions, the share of lines whose first letter is the
    word's letter at that position *and* that hold at least two words; extra lines or missing lines
    cost their share. The target is the prompt's word (or a ``target`` column).

    Range: [0, 1]; 1 = exactly one two-word-or-longer line per letter, initials spelling the word.

    Gaming: any words starting with the right letters score, sense or not ("Mmm mmm\\nOoo ooo");
    a list of words beginning with each letter is not a poem. Pair it with fluency under the base LM,
    relevance to the prompt and a no-repetition term (the default recipe does).
    """

    form = "acrostic"

    def score_one(self, text: str, target: str) -> float:
        word = re.sub(r"[^A-Z]", "", target.upper())
        if not word:
            raise FormError(f"acrostic target {target!r} has no letters; the prompt must name a word")
        lines = verse_lines(text)
        hits = sum(1 for i, ln in enumerate(lines[: len(word)]) if line_initial(ln) == word[i] and len(words(ln)) >= 2)
        return hits / max(len(word), len(lines))


@register("couplet")
class CoupletReward(_FormReward):
    """Rhyming couplets: consecutive pairs of lines end in rhyming words.

    Measures: lines are paired (1-2, 3-4, ...); a pair counts when both lines hold at least three
    words and their last words rhyme by pronunciation (CMU dictionary via ``pronouncing``: same
    phonemes from the last stressed vowel on; the same word twice does not rhyme); a word missing
    from the dictionary falls back to its spelling (last three letters). Score = rhyming pairs /
    ``ceil(lines / 2)``, so an unpaired line costs a pair's share; a text with fewer than two lines
    scores 0.

    Range: [0, 1].

    Gaming: two unrelated lines ending in "cat" / "hat" score 1; so do short nonsense lines with
    three words. Pair it with fluency, relevance and no-repetition terms.
    """

    form = "couplet"

    def score_one(self, text: str, target: str) -> float:
        lines = verse_lines(text)
        if len(lines) < 2:
            return 0.0
        hits = 0
        for i in range(0, len(lines) - 1, 2):
            wa, wb = words(lines[i]), words(lines[i + 1])
            if len(wa) >= 3 and len(wb) >= 3 and cmu_rhyme(wa[-1], wb[-1]):
                hits += 1
        return hits / ((len(lines) + 1) // 2)


@register("haiku")
class HaikuReward(_FormReward):
    """Haiku: three lines of 5, 7 and 5 syllables.

    Measures: syllables per line counted with the CMU dictionary (first pronunciation; vowel groups
    of the spelling for unknown words); each of the first three lines earns
    ``max(0, 1 - |count - target| / target)``; the sum is divided by ``max(3, lines)``, so missing
    or extra lines cost.

    Range: [0, 1]; 1 = exactly 5-7-5 by the CMU count.

    Gaming: syllable counts say nothing about imagery or sense ("la la la la la"); the CMU count
    differs from other counters on some words, which the judge (another counter) exposes. Pair it
    with fluency, relevance and no-repetition terms.
    """

    form = "haiku"
    TARGET = (5, 7, 5)

    def score_one(self, text: str, target: str) -> float:
        lines = verse_lines(text)
        total = 0.0
        for ln, want in zip(lines, self.TARGET):
            got = sum(cmu_syllables(w) for w in words(ln))
            total += max(0.0, 1.0 - abs(got - want) / want)
        return total / max(3, len(lines))


@register("concepts")
class ConceptsReward(_FormReward):
    """Concept inclusion (CommonGen's task): the text uses all three given words, inflections allowed.

    Measures: the share of the three concepts matched by some word of the text (equal, or equal
    after suffix stripping: ``dogs``, ``running``, ``baked``), times ``min(1, words / 12)`` so
    that a bare list of the three words does not score.

    Range: [0, 1].

    Gaming: the three words dropped into an incoherent sentence, or listed inside twelve filler
    words, score 1. Pair it with fluency and relevance.
    """

    form = "concepts"

    def score_one(self, text: str, target: str) -> float:
        concepts = [c.strip().lower() for c in target.split(",") if c.strip()]
        if not concepts:
            raise FormError(f"concepts target {target!r}: give the words separated by commas, e.g. 'dog,ball,park'")
        ws = words(text)
        found = sum(1 for c in concepts if any(stem_match(c, w) for w in ws))
        return found / len(concepts) * min(1.0, len(ws) / 12)


@register("lipogram")
class LipogramReward(_FormReward):
    """Lipogram: the text never uses the given letter.

    Measures: the share of words without the banned letter, times ``min(1, words / 12)`` (an empty
    or two-word text does not pass by saying nothing); any use of the letter outside words (digits,
    symbols) is ignored.

    Range: [0, 1]; 1 = twelve or more words, none with the letter.

    Gaming: broken words that skip the letter ("th hous"), or text in another language or of
    numbers and names. Pair it with fluency under the base LM and relevance to the prompt.
    """

    form = "lipogram"

    def score_one(self, text: str, target: str) -> float:
        letter = target.strip().lower()
        if len(letter) != 1 or not letter.isalpha():
            raise FormError(f"lipogram target {target!r}: give one letter, e.g. 'e'")
        ws = words(text)
        if not ws:
            return 0.0
        clean = sum(1 for w in ws if letter not in w)
        return clean / len(ws) * min(1.0, len(ws) / 12)


FORM_REWARDS = {
    "acrostic": AcrosticReward,
    "couplet": CoupletReward,
    "haiku": HaikuReward,
    "concepts": ConceptsReward,
    "lipogram": LipogramReward,
}
