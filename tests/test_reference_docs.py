"""The generated references (scripts/gen_reference.py): the committed docs/recipe-reference.md and
docs/rewards-reference.md equal freshly generated output, `--check` names a stale file, the ast
reader agrees with the dataclasses it reads, and every registered reward's docstring states what it
measures, its range and how it is gamed."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_reference"] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(gen) -> dict[str, str]:
    return gen.generate()


def test_rewards_registered_outside_the_package_stay_out(gen):
    from rlcreate.rewards import register
    from rlcreate.rewards.registry import _REGISTRY

    @register("test_reference_outsider")
    def outsider(samples, **context):
        return [0.0] * len(samples)

    try:
        names = {r.name for r in gen.read_rewards()}
        assert "test_reference_outsider" not in names and "fluency" in names
    finally:
        _REGISTRY.pop("test_reference_outsider")


def test_committed_references_are_current(generated):
    for name, text in generated.items():
        committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert committed == text, f"docs/{name} is stale: run python scripts/gen_reference.py and commit it"


def test_check_exits_1_and_names_the_stale_file(gen, generated, tmp_path, capsys):
    for name in generated:
        shutil.copy(ROOT / "docs" / name, tmp_path / name)
    assert gen.main(["--check", "--docs", str(tmp_path)]) == 0
    (tmp_path / "rewards-reference.md").write_text(generated["rewards-reference.md"].replace("[0, 1]", "[0, 2]", 1))
    assert gen.main(["--check", "--docs", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "rewards-reference.md" in err and "recipe-reference.md" not in err
    (tmp_path / "recipe-reference.md").unlink()
    assert gen.main(["--check", "--docs", str(tmp_path)]) == 1
    assert "recipe-reference.md" in capsys.readouterr().err


def test_ast_reader_agrees_with_the_recipe_dataclasses(gen):
    """Field names, order and defaults read from the source equal what the dataclasses say at run time."""
    import rlcreate.recipe as recipe

    read = {s.name: s for s in gen.read_sections(ROOT / "rlcreate" / "recipe.py", only_sections=False)}
    classes = {n: c for n, c in vars(recipe).items()
               if dataclasses.is_dataclass(c) and c.__module__ == recipe.__name__}
    assert set(read) == set(classes) and {"Recipe", "EnvSection", "TermSection", "TrainerSection"} <= set(read)
    for name, cls in classes.items():
        assert [f.name for f in read[name].fields] == [f.name for f in dataclasses.fields(cls)], name
        for doc_field, f in zip(read[name].fields, dataclasses.fields(cls)):
            if f.default is not dataclasses.MISSING:
                assert eval(doc_field.default) == f.default, (name, f.name)
            elif f.default_factory is not dataclasses.MISSING:
                assert eval(doc_field.default) == f.default_factory(), (name, f.name)
            else:
                assert doc_field.default is None, (name, f.name)
    assert read["TrainerSection"].fields[1].doc.startswith("Environment steps to train for (SB3;")
    import rlcreate.trl.grpo as grpo  # a trainer's own section, found by its *Section name

    found = {s.name: s for s in gen.read_sections(ROOT / "rlcreate" / "trl" / "grpo.py", only_sections=True)}
    assert set(found) == {"FinetuneSection", "LoraSection"}
    for name, section in found.items():
        assert [f.name for f in section.fields] == [f.name for f in dataclasses.fields(getattr(grpo, name))], name
    assert gen.yaml_paths(list(found.values()) + list(read.values()))["LoraSection"] == "finetune.lora"


def test_a_section_in_another_module_is_found_and_placed(gen, tmp_path):
    src = tmp_path / "plugin.py"
    src.write_text('''
from dataclasses import dataclass, field
from typing import ClassVar

@dataclass
class FinetuneSection:
    """Settings of the fine-tuning command."""
    KIND: ClassVar[str] = "x"
    model: str
    """Hugging Face model id or folder."""
    lora: dict = field(default_factory=lambda: {"r": 8})
    """LoRA settings,
    over two lines."""
    steps: int = field(default=100)

@dataclass
class Helper:
    x: int = 1
''')
    (section,) = gen.read_sections(src, only_sections=True)
    assert section.name == "FinetuneSection" and section.doc == "Settings of the fine-tuning command."
    assert [(f.name, f.type, f.default, f.doc) for f in section.fields] == [
        ("model", "str", None, "Hugging Face model id or folder."),
        ("lora", "dict", "{'r': 8}", "LoRA settings, over two lines."),
        ("steps", "int", "100", "")]
    # not reached from Recipe's fields: placed by its name when `finetune` is a top-level key
    recipe_sections = gen.read_sections(ROOT / "rlcreate" / "recipe.py", only_sections=False)
    paths = gen.yaml_paths(recipe_sections + [section])
    assert paths["EnvSection"] == "env" and paths["TermSection"] == "rewards.<name>" and paths["Recipe"] == ""
    assert paths.get("FinetuneSection") == ("finetune" if "finetune" in gen._top_keys() else None)


def test_docstring_parts_inline_and_in_paragraphs(gen):
    inline = ("Fast-solver playability: the fraction of columns Mario reaches (1.0 = he can\ncross it). Seams "
              "are checked. Range [0, 1]. Gamed by: flat, empty ground — pair it with novelty.")
    assert gen.split_docstring(inline) == ("Fast-solver playability: the fraction of columns Mario reaches "
                                           "(1.0 = he can cross it).", "[0, 1]", "flat, empty ground — pair it "
                                           "with novelty.")
    paragraphs = ("Surprise: how far the text departs, e.g. from the LM.\n\nMeasures: stuff.\n\n"
                  "Range (nats): about -3..10 in practice. More words.\n\n"
                  "Gaming: word salad. Use a sweet spot, e.g.::\n\n    surprise: {weight: 1.0}\n\n"
                  "Args:\n    lm: Range: not this one. Gaming: nor this.")
    assert gen.split_docstring(paragraphs) == ("Surprise: how far the text departs, e.g. from the LM.",
                                               "(nats): about -3..10 in practice",
                                               "word salad. Use a sweet spot, e.g.: `surprise: {weight: 1.0}`")
    assert gen.split_docstring("Just a summary.\n\nArgs:\n    Range: x") == ("Just a summary.", None, None)


def test_every_registered_reward_states_measures_range_and_gaming(gen):
    from rlcreate.rewards import available_rewards
    from rlcreate.rewards.registry import _REGISTRY

    docs = {r.name: r for r in gen.read_rewards()}
    shipped = {n for n in available_rewards() if _REGISTRY[n].__module__.startswith("rlcreate.")}
    assert set(docs) == shipped and len(docs) >= 20
    missing = {n: [part for part in ("summary", "range", "gaming") if not getattr(r, part)] for n, r in docs.items()}
    missing = {n: parts for n, parts in missing.items() if parts}
    assert not missing, f"reward docstrings must say what they measure, their 'Range' and 'Gaming:': {missing}"
    assert docs["fluency"].artifact == "text" and docs["playability"].artifact == "level"
    assert docs["novelty"].artifact == "any" and docs["fluency"].qualname == "rlcreate.text.rewards.Fluency"
