"""The shipped text data: a small reference corpus and the prompt splits.

The files live in ``rlcreate/data/text/`` and are original text written for this project,
released under CC0 (see ``rlcreate/data/text/SOURCES.md``). Read with ``importlib.resources`` so they
work from an installed wheel as well as a source checkout.

Prompt splits (disjoint topics):

* ``train`` (40): what recipes train and fine-tune on.
* ``dev`` (20): for tuning recipes (weights, thresholds, steps) and before/after checks during
  development. The same file as the older name ``heldout``, which stays as an alias: those prompts
  were used to choose recipe weights, so they are tuning data, not a test set.
* ``test`` (30): for reported results only (``rlcreate eval`` on text runs, the text benchmarks).
  Never used to choose a setting; written after the recipes were tuned.
* ``forms_train`` / ``forms_dev`` / ``forms_test``: creative-form prompts (acrostic, couplet, haiku,
  concepts, lipogram; 40 / 15 / 100 per form) from :mod:`rlcreate.text.form_prompts`, splits sharing
  no topic, target word or letter. ``forms_train:lipogram`` (any form after the colon) keeps one form.
"""

from __future__ import annotations

import difflib
import functools
from importlib import resources

from rlcreate.errors import UserError

__all__ = ["reference_corpus", "prompts", "PROMPT_SPLITS", "TextDataError"]

PROMPT_SPLITS = ("train", "dev", "test", "heldout", "forms_train", "forms_dev", "forms_test")
#: split name -> file; ``heldout`` is the dev file under its older name
_SPLIT_FILES = {
    "train": "prompts_train.txt",
    "dev": "prompts_heldout.txt",
    "heldout": "prompts_heldout.txt",
    "test": "prompts_test.txt",
    # creative-form prompts (rlcreate.text.form_prompts writes them; a test checks they match)
    "forms_train": "forms_train.txt",
    "forms_dev": "forms_dev.txt",
    "forms_test": "forms_test.txt",
}


class TextDataError(UserError):
    """Unknown prompt split (the message suggests the closest valid one)."""


@functools.cache
def _read_lines(name: str) -> tuple[str, ...]:
    text = resources.files("rlcreate").joinpath("data", "text", name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def reference_corpus() -> list[str]:
    """The reference corpus: 347 short English prose sentences (original, CC0), one per item."""
    return list(_read_lines("reference_corpus.txt"))


def prompts(split: str = "train") -> list[str]:
    """Creative-writing prompts: ``"train"`` (40), ``"dev"`` (20; alias ``"heldout"``) or ``"test"``
    (30): disjoint topics; report results on ``"test"`` only."""
    if split not in PROMPT_SPLITS:
        close = difflib.get_close_matches(str(split), PROMPT_SPLITS, n=1, cutoff=0.3)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise TextDataError(f"prompts(split={split!r}): unknown split.{hint} Use one of {PROMPT_SPLITS}")
    return list(_read_lines(_SPLIT_FILES[split]))
