"""The README is the user's first page: its two commands and its variable table must be true."""

from __future__ import annotations

from tools import envtable


def test_readme_starts_with_the_two_commands():
    text = envtable.README.read_text()
    head = text[: text.index("## ")]
    assert "make run" in head and "make test" in head


def test_env_table_lists_every_variable_the_code_reads():
    text = envtable.README.read_text()
    assert text == envtable.readme_with_table(text), (
        "README.md's variable table is stale: run `.venv/bin/python -m tools.envtable --write`"
    )


def test_every_variable_is_explained():
    missing = [variable for variable, _, description, _ in envtable.rows() if not description]
    assert not missing, f"settings fields without a `#:` comment: {missing}"
