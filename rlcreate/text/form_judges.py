"""Judges of the creative forms: did a text satisfy its form? (yes / no, independent of the reward).

The reward modules (:mod:`rlcreate.text.forms`) give partial credit and count with the CMU
dictionary; the judges decide pass / fail with other code and other sources, so a policy that
learns a quirk of the reward's counter is not credited for it:

==========  =============================================================================
form        passes when (judge's own method)
==========  =============================================================================
acrostic    exactly one line per letter of the word, initials spell it, every line >= 2 words
couplet     an even number (>= 2) of lines, each >= 3 words; every pair (1-2, 3-4, ...) ends in
            different words with the same *spelling rime* (:func:`spelling_rime`: from the last
            vowel group of the spelling to the end, a silent final ``e`` taken with it) -- the
            reward uses CMU pronunciations instead
haiku       exactly three lines whose syllables, by the ``syllables`` package's estimator (not
            the CMU dictionary the reward uses), are 5-7-5 within +-1 per line (two counters
            disagree by one on many words; :func:`haiku_exact` gives the strict count)
concepts    >= 12 words and every concept appears as itself or a *generated* inflection
            (:func:`inflections`: plural, 3rd person, past, -ing, comparatives, with e-drop,
            y->i and consonant doubling) -- the reward strips suffixes instead
lipogram    >= 12 words and the letter occurs nowhere in the text (not even outside words)
==========  =============================================================================

What a line, a word and an initial are is shared with the rewards (:func:`~rlcreate.text.forms.verse_lines`,
:func:`~rlcreate.text.forms.words`, :func:`~rlcreate.text.forms.line_initial`), and unit-tested
against hand-labelled examples. A judge says nothing about sense: read the texts, and report
perplexity under the base LM and diversity next to satisfaction.
"""

from __future__ import annotations

import re

from rlcreate.text.forms import FORMS, FormError, line_initial, verse_lines, words

__all__ = [
    "judge",
    "judge_many",
    "spelling_rime",
    "spelling_rhyme",
    "judge_syllables",
    "inflections",
    "haiku_exact",
    "MIN_WORDS",
]

MIN_WORDS = 12


def judge_syllables(word: str) -> int:
    """Syllables by the ``syllables`` package's estimator (rule-based, no CMU lookup)."""
    import syllables

    return max(1, syllables.estimate(word)) if re.search(r"[a-z]", word) else 0


def spelling_rime(word: str) -> str:
    """The rime of a word's spelling: from its last vowel group to the end; a final silent ``e``
    after a consonant takes the vowel group before it (``stone`` -> ``one``, ``night`` -> ``ight``,
    ``day`` -> ``ay``, ``sky`` -> ``y``)."""
    w = re.sub(r"[^a-z]", "", word.lower())
    body = w[:-1] if len(w) > 2 and w.endswith("e") and w[-2] not in "aeiouy" else w
    groups = list(re.finditer(r"[aeiouy]+", body))
    if not groups:
        return w
    return w[groups[-1].start() :]


def spelling_rhyme(a: str, b: str) -> bool:
    """Different words whose spelling rimes are equal (``light``/``night``, ``day``/``away``)."""
    a, b = a.lower(), b.lower()
    return bool(a and b and a != b and spelling_rime(a) == spelling_rime(b))


def inflections(word: str) -> set[str]:
    """The word and its regular inflections, generated forwards: ``-s/-es/-ies``, ``-ed/-d/-ied``,
    ``-ing`` (e-drop, consonant doubling), ``-er/-est``."""
    w = word.lower()
    out = {w}
    cons = "bcdfghjklmnpqrstvwxz"
    if w.endswith(("s", "x", "z", "ch", "sh")):
        out.add(w + "es")
    elif w.endswith("y") and len(w) > 1 and w[-2] in cons:
        out |= {w[:-1] + "ies", w[:-1] + "ied", w[:-1] + "ier", w[:-1] + "iest"}
    else:
        out.add(w + "s")
    if w.endswith("e"):
        out |= {w + "d", w[:-1] + "ing", w + "r", w + "st"}
    else:
        out |= {w + "ed", w + "ing", w + "er", w + "est"}
    if len(w) >= 3 and w[-1] in cons and w[-1] not in "wxy" and w[-2] in "aeiou" and w[-3] in cons:
        out |= {w + w[-1] + "ed", w + w[-1] + "ing", w + w[-1] + "er", w + w[-1] + "est"}  # stop -> stopped
    return out


def haiku_exact(text: str) -> bool:
    """Three lines of exactly 5, 7 and 5 syllables by the judge's counter."""
    lines = verse_lines(text)
    return len(lines) == 3 and [sum(judge_syllables(w) for w in words(ln)) for ln in lines] == [5, 7, 5]


def judge(form: str, text: str, target: str = "") -> bool:
    """Whether ``text`` satisfies ``form`` with ``target`` (see the module table)."""
    if form not in FORMS:
        raise FormError(f"form {form!r} is not a known form; use one of {FORMS}")
    lines = verse_lines(text)
    if form == "acrostic":
        word = re.sub(r"[^A-Z]", "", target.upper())
        return (
            bool(word)
            and len(lines) == len(word)
            and all(line_initial(ln) == ch and len(words(ln)) >= 2 for ln, ch in zip(lines, word))
        )
    if form == "couplet":
        if len(lines) < 2 or len(lines) % 2:
            return False
        ws = [words(ln) for ln in lines]
        return all(len(w) >= 3 for w in ws) and all(
            spelling_rhyme(ws[i][-1], ws[i + 1][-1]) for i in range(0, len(ws), 2)
        )
    if form == "haiku":
        if len(lines) != 3:
            return False
        counts = [sum(judge_syllables(w) for w in words(ln)) for ln in lines]
        return all(abs(c - t) <= 1 for c, t in zip(counts, (5, 7, 5)))
    text_words = words(text)
    if form == "concepts":
        concepts = [c.strip() for c in target.split(",") if c.strip()]
        present = set(text_words)
        return len(text_words) >= MIN_WORDS and bool(concepts) and all(inflections(c) & present for c in concepts)
    letter = target.strip().lower()  # lipogram
    return len(text_words) >= MIN_WORDS and len(letter) == 1 and letter not in text.lower()


def judge_many(forms, texts, targets) -> list[bool]:
    """:func:`judge` over parallel lists."""
    return [judge(f, t, g) for f, t, g in zip(forms, texts, targets)]
