"""Templates are files: the built-ins validate, user files override them, bad ones fail naming `template`."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.errors import InvalidArgument, NotFound
from services.judge.prompts import GRADE, REPAIR, TRANSLATE, TemplateLibrary, parse


def test_builtin_templates_have_their_placeholders():
    library = TemplateLibrary()
    grade = library.load("", GRADE)
    assert grade.name == "helpfulness"
    assert '{"reasoning"' in grade.text and "6 - Highly helpful" in grade.text
    assert library.load("translate", TRANSLATE).name == "translate"
    assert library.load("repair", REPAIR).render(error="bad").startswith("Your previous answer could not be used: bad")


def test_render_is_one_pass_so_user_text_is_never_expanded():
    template = parse("Q: {{prompt}}\nA: {{ response }}", "t", GRADE)
    text = template.render(prompt="say {{response}}", response="{{prompt}} and {braces}", language="German")
    assert text == "Q: say {{response}}\nA: {{prompt}} and {braces}"


def test_template_without_a_placeholder_is_invalid():
    with pytest.raises(InvalidArgument, match=r"lacks the placeholder\(s\) \{\{response\}\}") as info:
        parse("Grade this: {{prompt}}", "mine", GRADE)
    assert info.value.field == "template"


def test_unknown_placeholder_is_invalid():
    with pytest.raises(InvalidArgument, match=r"unknown placeholder\(s\) \{\{respnse\}\}") as info:
        parse("{{prompt}} {{response}} {{respnse}}", "typo", GRADE)
    assert info.value.field == "template"


def test_user_directory_overrides_the_builtin(tmp_path: Path):
    (tmp_path / "helpfulness.txt").write_text("Rate {{prompt}} -> {{response}} in {{language}}", encoding="utf-8")
    template = TemplateLibrary(tmp_path).load("helpfulness", GRADE)
    assert template.text.startswith("Rate ")
    assert template.sha256 != TemplateLibrary().load("helpfulness", GRADE).sha256


def test_template_from_an_artifact_uri(tmp_path: Path):
    path = tmp_path / "paper_prompt.txt"
    path.write_text("Paper prompt. {{prompt}} / {{response}}", encoding="utf-8")
    library = TemplateLibrary(roots=[str(tmp_path)])
    assert library.load(path.as_uri(), GRADE).text.startswith("Paper prompt.")
    with pytest.raises(NotFound) as info:
        library.load((tmp_path / "missing.txt").as_uri(), GRADE)
    assert info.value.field == "template"


def test_a_uri_outside_the_roots_is_refused_even_through_a_symlink(tmp_path: Path):
    (tmp_path / "outside.txt").write_text("{{prompt}} {{response}}", encoding="utf-8")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    for uri in ((tmp_path / "outside.txt").as_uri(), (root / "link.txt").as_uri(), "file:///etc/hostname"):
        with pytest.raises(InvalidArgument, match="outside the judge's template roots") as info:
            TemplateLibrary(roots=[str(root)]).load(uri, GRADE)
        assert info.value.field == "template"


def test_only_small_regular_files_are_read(tmp_path: Path):
    import os

    os.mkfifo(tmp_path / "fifo.txt")  # opened with O_NONBLOCK: refused without waiting for a writer
    (tmp_path / "big.txt").write_text("{{prompt}} {{response}}" + " " * 100, encoding="utf-8")
    library = TemplateLibrary(roots=[str(tmp_path), "/dev"], max_bytes=64)
    with pytest.raises(InvalidArgument, match="not a regular file"):
        library.load((tmp_path / "fifo.txt").as_uri(), GRADE)
    with pytest.raises(InvalidArgument, match="not a regular file"):
        library.load("file:///dev/zero", GRADE)
    with pytest.raises(InvalidArgument, match=r"larger than max_template_bytes \(64\)"):
        library.load((tmp_path / "big.txt").as_uri(), GRADE)


@pytest.mark.parametrize("spec", ["no-such-template", "../etc/passwd", "a b"])
def test_unknown_or_unsafe_names_are_invalid(spec: str):
    with pytest.raises(InvalidArgument) as info:
        TemplateLibrary().load(spec, GRADE)
    assert info.value.field == "template"


def test_a_translation_template_is_not_a_grading_template():
    with pytest.raises(InvalidArgument, match="lacks"):
        TemplateLibrary().load("translate", GRADE)
