"""The docs stay true to the tree: every file they cite exists, and their Python examples run.

BENCHMARKS.md alone cites a few hundred result files and scripts; a renamed JSON or script would
otherwise leave a reader with a command that cannot be reproduced."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    ROOT / "BENCHMARKS.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "rlcreate" / "models").glob("*/MODEL_CARD.md")),
]
#: a repository path with a file extension; ``{a,b}`` alternatives allowed (shell brace expansion)
CITED = re.compile(
    r"(?<![\w/.-])((?:benchmarks|scripts|rlcreate|docs|tests|envs|rewards)/(?:[\w./-]|\{[\w.,-]+\})+?"
    r"\.(?:json|py|yaml|md|png|npy|log|sh|txt))(?![\w])"
)
#: placeholders the docs use for "your value here" (a seed S, a script X)
PLACEHOLDERS = re.compile(r"_sS\b|/X\.py$")


def expand(path: str) -> list[str]:
    """``a_s{0,1}.json`` -> ``["a_s0.json", "a_s1.json"]``."""
    parts = re.split(r"\{([\w.,-]+)\}", path)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def cited_paths(text: str) -> set[str]:
    found = set()
    for m in CITED.finditer(text):
        if not PLACEHOLDERS.search(m.group(1)):
            found.update(expand(m.group(1)))
    return found


def test_the_citation_pattern_finds_paths_lists_and_brace_alternatives():
    text = (
        "see `benchmarks/a_s{0,1}.json`, --recipes benchmarks/recipes/x.yaml,benchmarks/recipes/y.yaml "
        "and scripts/bench_z.py --help; not https://example.org/scripts/q.py nor benchmarks/p_sS.json"
    )
    assert cited_paths(text) == {
        "benchmarks/a_s0.json",
        "benchmarks/a_s1.json",
        "benchmarks/recipes/x.yaml",
        "benchmarks/recipes/y.yaml",
        "scripts/bench_z.py",
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_the_docs_cite_exists(doc: Path):
    missing = sorted(p for p in cited_paths(doc.read_text()) if not (ROOT / p).exists())
    assert not missing, f"{doc.relative_to(ROOT)} cites files that are not in the tree: {missing}"


def python_examples(doc: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", doc.read_text(), flags=re.S | re.M)


EXAMPLES = [(doc, i, code) for doc in DOCS for i, code in enumerate(python_examples(doc))]


def test_the_readme_has_a_python_example():
    assert any(doc.name == "README.md" for doc, _, _ in EXAMPLES)


@pytest.mark.parametrize("doc,index,code", EXAMPLES, ids=[f"{d.relative_to(ROOT)}#{i}" for d, i, _ in EXAMPLES])
def test_python_examples_in_the_docs_run(doc: Path, index: int, code: str, tmp_path: Path):
    # a fresh interpreter in an empty folder: an example may register rewards or write files
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{doc.name} example {index} failed:\n{done.stderr[-3000:]}"
