"""The student-edition switch (book/_ext/student_edition.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from docutils import nodes
from docutils.utils import new_document
from sphinx_exercise.nodes import solution_node

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))

import student_edition  # noqa: E402


@pytest.mark.parametrize(
    "value, expected", [("", "full"), ("full", "full"), (" Student ", "student")]
)
def test_edition_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("AEVB_EDITION", value)
    assert student_edition.edition() == expected


def test_a_misspelt_edition_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AEVB_EDITION", "students")
    with pytest.raises(ValueError, match="full, student"):
        student_edition.edition()


def page_with_solutions() -> nodes.document:
    document = new_document("page")
    document += nodes.paragraph(text="an exercise")
    document += solution_node("", nodes.paragraph(text="the answer"))
    document += nodes.container("", nodes.literal_block(text="secret = 42"),
                                classes=["cell", "tag_solution", "tag_hide-input"])
    document += nodes.container("", nodes.literal_block(text="kept = 1"), classes=["cell"])
    return document


def test_the_student_edition_drops_solutions_and_solution_cells(monkeypatch):
    monkeypatch.setenv("AEVB_EDITION", "student")
    document = page_with_solutions()
    student_edition.remove_solutions(SimpleNamespace(), document)
    text = document.astext()
    assert "answer" not in text and "secret" not in text
    assert "an exercise" in text and "kept = 1" in text


def test_the_full_edition_keeps_them(monkeypatch):
    monkeypatch.delenv("AEVB_EDITION", raising=False)
    document = page_with_solutions()
    student_edition.remove_solutions(SimpleNamespace(), document)
    assert "answer" in document.astext() and "secret" in document.astext()
