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


def test_every_dead_letter_reason_is_explained():
    """The reasons are a closed set (an enum in the protos); the README's table says what causes each."""
    from hooks.matcher.v1 import dead_letters_pb2

    text = envtable.README.read_text()
    table = text[text.index("| `hooks.error.reason` |") :].split("\n\n", 1)[0]
    listed = {line.split("`")[1] for line in table.splitlines()[2:]}
    codes = {
        name.removeprefix("DEAD_LETTER_REASON_").lower()
        for name in dead_letters_pb2.DeadLetterReason.keys()
        if name != "DEAD_LETTER_REASON_UNSPECIFIED"
    }
    assert listed == codes
