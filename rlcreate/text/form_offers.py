"""Token-level steering on a creative form: what each offered token does to the form.

A policy over ``rlcreate/TextTokens-v0`` picks one of the LM's top-k offers per step but observes
only the LM's hidden state and the offers' log-probs, not which token each slot holds: on a
lipogram it cannot tell an offer that spells the banned letter from one that does not (and an MLP's
k outputs are tied to rank positions, whose tokens change every step). :class:`FormOffersCore`
adds what a token-level policy needs to act on the form, per row and per offered slot:

==========  ===========================================================================
form        per-slot flags: *breaks* the form / *moves it on*
==========  ===========================================================================
lipogram    breaks: the token's text holds the banned letter (either case); moves on: never
acrostic    breaks: the text so far keeps the acrostic and the text with this token does not
            (a line's first letter is not the word's next letter, or a line beyond the word's
            length starts); moves on: the token starts a line with the right letter, ends a
            line of >= 2 words while letters remain, or is EOS after the last full line (lines,
            words and initials as the judge reads them: :func:`~rlcreate.text.forms.verse_lines`,
            :func:`~rlcreate.text.forms.words`, :func:`~rlcreate.text.forms.line_initial`);
            ``strict_acrostic`` (opt-in) also breaks it at the token that completes a line's first
            word as a lone letter other than A / I ("C," / "S.A.T") or as all capitals ("HAPPY"):
            the letter lists and capitals with which the acrostic flags alone were gamed
couplet     (opt-in: ``forms`` lists it) breaks: the text so far can still be a two-line couplet
            and the text with this token cannot: a line ends with < 3 words, a third line starts,
            line 2 ends (newline or EOS) on a word that does not rhyme with line 1's end word, or
            EOS before two lines; moves on: the token ends a line of >= 3 words (line 2: on a
            rhyme), completes on line 2 (>= 3 words) a word rhyming with line 1's end word when no
            earlier word of line 2 rhymes, or is EOS after the full couplet. Rhyme: the reward's
            :func:`~rlcreate.text.forms.cmu_rhyme` (CMU pronunciations, spelling fallback);
            the judge checks spelling rimes instead
==========  ===========================================================================

(rows of other forms, or of forms left out of ``forms``, get 0 everywhere).

Word pieces (couplet): a token may be part of a word (" n" + "ight"). The flags read the text as it
stands after the offer, so a word is only *final* when its line ends: a rhyme failure is charged at
the token that ends line 2 (the newline or EOS), never at the word's first piece, and the "rhyme
arrives" flag on the piece that completes a rhyming word is provisional -- a further piece that
extends the word (" bright" + "ness") is not flagged, and ending the line on it then breaks the
form. Only the first rhyming word of line 2 is flagged, so stringing rhymes ("light night bright")
earns the bonus once. The layout is the one :class:`rlcreate.sb3.policies.LMPriorPolicy`
reads with ``offer_features: 2`` and ``prior_start: hidden_size``: ``[hidden (d), top-k log-probs
(k), progress (1), form active (2), flags (k x 2, slot-major)]``: its offer head scores each offer
from its own two flags (pointer-style, so "avoid what breaks the form" is one weight to learn,
wherever the offer sits in the ranking). The policy starts at the LM's own top-k distribution (the
flags are ignored until PPO learns a weight for them), so the untrained start is the ``lm_topk``
sampler.

Dense credit (``form_penalty`` > 0): a row that takes a flagged offer is charged ``form_penalty``
at that token, on top of the reward set's total at the text's end. Measured on the lipogram: with
the form reward alone (partial credit per clean word, paid at the end) one bad token costs about
1/30 of a reward unit, the same order as the KL coefficient (0.03), so the KL-optimal policy only
scales flagged offers by about exp(-1) -- which is what PPO learnt (flagged mass 0.21 -> 0.14). A
penalty of 1 per bad token makes avoiding them worth ~30x the KL cost. ``form_bonus`` > 0 pays a
row at each token that moves its form on (an acrostic's line credit where it is earned, so
breaking the text into lines pays at once). ``flag_scale`` multiplies
the observed flags: the policy's offer head learns one weight per flag at Adam's step size
(~learning rate per update), so a scale of s lets it reach a logit shift s times larger in the
same number of updates.

The flags are features, not a rule: a hand-written rule that never takes a flagged offer
(:func:`avoid_flagged`) is constrained decoding, and the benchmark reports it next to the learnt
policy, so what RL adds over writing the rule by hand is visible. Hand-written here: no library
maps a tokenizer's vocabulary to letter or line flags.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from rlcreate.envs.text_tokens import TextTokensCore
from rlcreate.text.forms import cmu_rhyme, line_initial, parse_form_prompt, verse_lines, words

__all__ = [
    "FORM_OFFER_FORMS",
    "FormOffersCore",
    "letter_table",
    "acrostic_prefix_ok",
    "acrostic_offer_flags",
    "couplet_prefix_ok",
    "couplet_offer_flags",
    "avoid_flagged",
    "follow_lm",
    "write_texts",
]

#: forms whose offers can get flags (others observe zeros)
FORM_OFFER_FORMS = ("lipogram", "acrostic", "couplet")
#: the forms flagged unless ``forms`` says otherwise (couplet is opt-in)
DEFAULT_FORMS = ("lipogram", "acrostic")


@functools.lru_cache(maxsize=4)
def _token_texts(tokenizer: Any, vocab: int) -> tuple[str, ...]:
    """Each token's text as it enters a decoded text (special tokens: "", as decoding skips them)."""
    return tuple(tokenizer.batch_decode([[i] for i in range(vocab)], skip_special_tokens=True))


@functools.lru_cache(maxsize=4)
def _letter_table(tokenizer: Any, vocab: int) -> np.ndarray:
    texts = _token_texts(tokenizer, vocab)
    table = np.zeros((vocab, 26), bool)
    for i, t in enumerate(texts):
        low = t.lower()
        for j, ch in enumerate(string.ascii_lowercase):
            if ch in low:
                table[i, j] = True
    return table


def letter_table(tokenizer: Any, vocab: int) -> np.ndarray:
    """``(vocab, 26)`` bool: token ``i`` decodes to text holding letter ``j`` (a-z, either case).
    Special tokens (EOS) decode to nothing: they never reach the text, so they hold no letter."""
    return _letter_table(tokenizer, int(vocab))


def _split_lines(text: str, ended: bool) -> tuple[list[str], str]:
    """(the finished verse lines, the open one or ""); ``ended``: the text stops here (EOS), so
    its open line is finished too. A line is finished by the newline after it."""
    raw = text.replace("\r", "").split("\n")
    done, last = verse_lines("\n".join(raw[:-1])), verse_lines(raw[-1])
    if ended:
        return done + last, ""
    return done, last[0] if last else ""


_FIRST_WORD = re.compile(r"[A-Za-z]+")


def _letter_or_caps_start(line: str, finished: bool) -> bool:
    """The line's first word, once complete, is a lone letter other than A / I ("C, A, H") or all
    capitals ("HAPPY ALLAHABAD"): how acrostics were gamed. A lone letter at the open end of an
    unfinished line may go on with the next token ("E" + "very"), so it is not judged yet; two
    capitals are (no ordinary word starts with them)."""
    m = _FIRST_WORD.search(line)
    if m is None:
        return False
    w = m.group(0)
    if len(w) >= 2:
        return w.isupper()
    return (m.end() < len(line) or finished) and w.upper() not in "AI"


def acrostic_prefix_ok(text: str, word: str, strict: bool = False, ended: bool = False) -> bool:
    """Can ``text`` still become an acrostic of ``word``? At most one line per letter and every
    line's initial so far the word's letter at its position (lines as the judge reads them).
    ``strict``: also no line whose first word is a lone letter (other than A / I) or all capitals
    (``ended``: the text stops here, so its last line's first word is complete)."""
    lines = verse_lines(text)
    if len(lines) > len(word) or not all(line_initial(ln) == ch for ln, ch in zip(lines, word)):
        return False
    if strict:
        done, open_line = _split_lines(text, ended)
        return not any(_letter_or_caps_start(ln, True) for ln in done) and not _letter_or_caps_start(open_line, False)
    return True


def acrostic_offer_flags(
    text: str, offers: Sequence[str], is_eos: Sequence[bool], word: str, strict: bool = False
) -> np.ndarray:
    """``(len(offers), 2)`` float32 for an acrostic of ``word`` written so far as ``text``: per offered
    token text, [breaks the acrostic, moves it on] (see the module table; ``strict``: see
    :func:`acrostic_prefix_ok`). All 0 once ``text`` has broken it: no offer can save it then."""
    out = np.zeros((len(offers), 2), np.float32)
    if not acrostic_prefix_ok(text, word, strict):
        return out
    lines = verse_lines(text)
    line_done = len(words(text.split("\n")[-1])) >= 2  # the line being written holds two words already
    for j, (offer, eos) in enumerate(zip(offers, is_eos)):
        after = text + offer
        if not acrostic_prefix_ok(after, word, strict, ended=bool(eos)):
            out[j, 0] = 1.0
        elif len(verse_lines(after)) > len(lines):  # starts a line with the right letter
            out[j, 1] = 1.0
        elif line_done and len(lines) < len(word) and "\n" in offer:  # ends a full line, letters remain
            out[j, 1] = 1.0
        elif line_done and len(lines) == len(word) and eos:  # the poem is complete
            out[j, 1] = 1.0
    return out


@functools.lru_cache(maxsize=65536)
def _rhymes(a: str, b: str) -> bool:
    return cmu_rhyme(a, b)


def couplet_prefix_ok(text: str, ended: bool = False) -> bool:
    """Can ``text`` still become a two-line couplet (``ended``: is it one, the text stopping here)?
    At most two lines, every finished line >= 3 words, line 2 (once finished) ending on a word that
    rhymes with line 1's end word, and two lines by the end (lines as the judge reads them)."""
    done, open_line = _split_lines(text, ended)
    if len(done) + bool(open_line) > 2 or any(len(words(ln)) < 3 for ln in done):
        return False
    if len(done) == 2 and not _rhymes(words(done[0])[-1], words(done[1])[-1]):
        return False
    return not (ended and len(done) < 2)


def couplet_offer_flags(text: str, offers: Sequence[str], is_eos: Sequence[bool]) -> np.ndarray:
    """``(len(offers), 2)`` float32 for a couplet written so far as ``text``: per offered token text,
    [breaks the couplet, moves it on] (see the module table). All 0 once ``text`` has broken it."""
    out = np.zeros((len(offers), 2), np.float32)
    if not couplet_prefix_ok(text):
        return out
    done, open_line = _split_lines(text, False)
    before = words(open_line)
    for j, (offer, eos) in enumerate(zip(offers, is_eos)):
        after = text + offer
        if not couplet_prefix_ok(after, ended=bool(eos)):
            out[j, 0] = 1.0
            continue
        done_after, open_after = _split_lines(after, bool(eos))
        if eos or len(done_after) > len(done):  # the couplet complete, or a full line ended
            out[j, 1] = 1.0
        elif len(done_after) == 1:  # on line 2: does a rhyme arrive with this token?
            end1, now = words(done_after[0])[-1], words(open_after)
            if (
                len(now) >= 3
                and now != before
                and _rhymes(end1, now[-1])
                and not any(_rhymes(end1, w) for w in now[:-1])
            ):
                out[j, 1] = 1.0
    return out


class FormOffersCore(TextTokensCore):
    """:class:`~rlcreate.envs.text_tokens.TextTokensCore` whose observation ends with the form
    flags of the offered tokens (see the module table). Same actions and masks; with
    ``form_penalty`` > 0, taking a flagged offer costs that much at that step (dense credit)."""

    def __init__(
        self,
        stepper: Any,
        reward: Any,
        prompts: Sequence[str],
        form_penalty: float = 0.0,
        form_bonus: float = 0.0,
        flag_scale: float = 1.0,
        forms: Sequence[str] = DEFAULT_FORMS,
        strict_acrostic: bool = False,
        **kwargs: Any,
    ):
        super().__init__(stepper, reward, prompts, **kwargs)
        if isinstance(forms, str) or not all(f in FORM_OFFER_FORMS for f in forms):
            raise self._config_error(
                f"forms = {forms!r} (env.kwargs.form_offers): list some of {list(FORM_OFFER_FORMS)}, e.g. [couplet]"
            )
        self.forms = tuple(forms)
        if not isinstance(strict_acrostic, bool):
            raise self._config_error(
                f"strict_acrostic = {strict_acrostic!r} (env.kwargs.form_offers): write true or false"
            )
        self.strict_acrostic = strict_acrostic
        for name, v in (("form_penalty", form_penalty), ("form_bonus", form_bonus), ("flag_scale", flag_scale)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise self._config_error(f"{name} = {v!r} (env.kwargs.form_offers): must be a finite number >= 0")
        if flag_scale <= 0:
            raise self._config_error(f"flag_scale = {flag_scale!r} (env.kwargs.form_offers): must be > 0, e.g. 1")
        self.form_penalty, self.form_bonus, self.flag_scale = float(form_penalty), float(form_bonus), float(flag_scale)
        vocab = int(getattr(stepper, "vocab_size", 0) or len(stepper.tokenizer))
        self._letters = letter_table(stepper.tokenizer, vocab)
        self._texts = _token_texts(stepper.tokenizer, vocab)
        self._banned = np.full(self.n, -1, np.int64)  # per row: banned letter index, -1 = no lipogram
        self._word: list[str] = [""] * self.n  # per row: acrostic word, "" = no acrostic
        self._couplet = np.zeros(self.n, bool)  # per row: a couplet
        self.violations = np.zeros(self.n, np.int64)  # flagged offers taken in the current text
        self.advances = np.zeros(self.n, np.int64)  # acrostic lines started with the right letter
        low, high = self.observation_space.low, self.observation_space.high
        self.observation_space = spaces.Box(
            np.concatenate([low, np.zeros(2 + 2 * self.k, np.float32)]),
            np.concatenate([high, np.ones(2, np.float32), np.full(2 * self.k, self.flag_scale, np.float32)]),
            dtype=np.float32,
        )

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _target(prompt: str, forms: tuple[str, ...]) -> tuple[int, str, bool]:
        """(banned letter index or -1, acrostic word or "", a couplet) for a form in ``forms``."""
        parsed = parse_form_prompt(prompt)
        if parsed is None or parsed[0] not in forms:
            return -1, "", False
        if parsed[0] == "acrostic":
            return -1, "".join(ch for ch in parsed[2].upper() if ch.isalpha()), False
        if parsed[0] == "couplet":
            return -1, "", True
        return string.ascii_lowercase.index(parsed[2]), "", False

    def _set_targets(self, rows: Sequence[int] | None = None) -> None:
        for i in range(self.n) if rows is None else rows:
            self._banned[i], self._word[i], self._couplet[i] = self._target(self.row_prompts[i], self.forms)
            self.violations[i] = self.advances[i] = 0

    def reset(self, rng: np.random.Generator, rows: Sequence[int] | None = None) -> np.ndarray:
        super().reset(rng, rows)
        self._set_targets(rows)
        return self.observe()

    def reset_with(self, prompts: Sequence[str]) -> np.ndarray:
        """Start every row on the given prompts (one per row, in order): for evaluation on a fixed
        prompt list, where :meth:`reset` would draw prompts at random."""
        if len(prompts) != self.n:
            raise self._config_error(f"reset_with got {len(prompts)} prompts for {self.n} rows")
        offer = self.stepper.start(list(prompts))
        self._started = True
        self._set_offers(offer.hidden, offer.topk_logprobs, offer.topk_ids)
        self.t[:] = 0
        self.row_prompts = list(prompts)
        self.emitted = [[] for _ in range(self.n)]
        self.token_logprobs = [[] for _ in range(self.n)]
        self._set_targets()
        return self.observe()

    def offer_flags(self) -> np.ndarray:
        """``(n, k, 2)`` float32 per offer: [breaks the form, moves the form on] (see the module)."""
        out = np.zeros((self.n, self.k, 2), np.float32)
        lipo = np.flatnonzero(self._banned >= 0)
        if len(lipo):
            out[lipo, :, 0] = self._letters[self.topk_ids[lipo], self._banned[lipo, None]]
        for i, (word, couplet) in enumerate(zip(self._word, self._couplet)):
            if word or couplet:
                text = "".join(self._texts[t] for t in self.emitted[i])
                offers = [self._texts[t] for t in self.topk_ids[i]]
                is_eos = np.isin(self.topk_ids[i], self._eos).tolist()
                out[i] = (
                    acrostic_offer_flags(text, offers, is_eos, word, self.strict_acrostic)
                    if word
                    else couplet_offer_flags(text, offers, is_eos)
                )
        return out

    def flags(self) -> np.ndarray:
        """``(n, k)`` float32: 1 where an offered token breaks its row's form."""
        return self.offer_flags()[..., 0]

    def active(self) -> np.ndarray:
        """``(n,)`` bool: the row's form has flags."""
        return (self._banned >= 0) | np.array([bool(w) for w in self._word]) | self._couplet

    def observe(self) -> np.ndarray:
        base = super().observe()
        active = np.repeat(self.active().astype(np.float32)[:, None], 2, axis=1)
        slots = self.flag_scale * self.offer_flags().reshape(self.n, 2 * self.k)  # slot-major
        return np.concatenate([base, active, slots], axis=1).astype(np.float32)

    def step(self, actions: np.ndarray, active: np.ndarray | None = None):
        """:meth:`TextTokensCore.step`, minus ``form_penalty`` for each row that took a flagged
        offer and plus ``form_bonus`` for each row whose token moved its form on (at a text's end ``info["form_violations"]``: how many flagged offers it took,
        and ``info["rewards"]["form_steps"]``: what the per-token credit added up to)."""
        slots = np.asarray(actions).reshape(-1).astype(np.int64)
        broke, advanced = np.zeros(self.n, bool), np.zeros(self.n, bool)
        if slots.shape[0] == self.n:  # else the base step raises its own error
            taken = self.offer_flags()[np.arange(self.n), np.clip(slots, 0, self.k - 1)] > 0.5
            broke, advanced = taken[:, 0], taken[:, 1]
            if active is not None:
                broke &= active
                advanced &= active
        self.violations += broke
        self.advances += advanced
        obs, rewards, terminated, truncated, infos = super().step(actions, active)
        rewards = rewards - self.form_penalty * broke.astype(np.float32) + self.form_bonus * advanced.astype(np.float32)
        for i in np.flatnonzero(terminated | truncated):
            infos[i]["form_violations"] = int(self.violations[i])
            if isinstance(infos[i].get("rewards"), dict):  # logged with the terms: rewards/form_steps
                credit = self.form_bonus * float(self.advances[i]) - self.form_penalty * float(self.violations[i])
                infos[i]["rewards"]["form_steps"] = credit
        return obs, rewards, terminated, truncated, infos


# ------------------------------------------------------------------ samplers over a FormOffersCore


def follow_lm(core: FormOffersCore, rng: np.random.Generator) -> np.ndarray:
    """A slot per row from the LM's top-k distribution (masked slots excluded): the policy's
    untrained start."""
    lp = core.topk_logprobs.astype(np.float64)
    p = np.where(core.action_masks(), np.exp(lp - lp.max(axis=1, keepdims=True)), 0.0)
    p /= p.sum(axis=1, keepdims=True)
    return np.array([rng.choice(len(row), p=row) for row in p])


def avoid_flagged(core: FormOffersCore, rng: np.random.Generator) -> np.ndarray:
    """The hand-written rule: the LM's top-k distribution with flagged offers removed (all kept
    when every allowed offer is flagged): constrained decoding, no learning."""
    lp = core.topk_logprobs.astype(np.float64)
    masks = core.action_masks()
    ok = masks & (core.flags() < 0.5)
    ok = np.where(ok.any(axis=1, keepdims=True), ok, masks)
    p = np.where(ok, np.exp(lp - lp.max(axis=1, keepdims=True)), 0.0)
    p /= p.sum(axis=1, keepdims=True)
    return np.array([rng.choice(len(row), p=row) for row in p])


def write_texts(
    core: FormOffersCore, prompts: Sequence[str], choose: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[list[str], list[bool]]:
    """One text per prompt (``len(prompts) == core.n``): ``choose(obs, masks) -> slots`` picks every
    step until each row ends (EOS or the length cap). Returns the texts and whether each ended
    with EOS (False = cut at ``max_new_tokens``). Rows are scored by the core's reward, so pass a
    core built with a cheap reward and score the texts afterwards."""
    obs = core.reset_with(prompts)
    texts: list[str | None] = [None] * core.n
    eos = [False] * core.n
    while any(t is None for t in texts):
        active = np.array([t is None for t in texts])
        obs, _, terminated, truncated, infos = core.step(choose(obs, core.action_masks()), active=active)
        for i in np.flatnonzero(terminated | truncated):
            texts[i], eos[i] = infos[i]["text"], bool(terminated[i])
    return [str(t) for t in texts], eos
