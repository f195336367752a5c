"""Leading comments read straight from .proto text, for where protoc (grpc_tools, a development
dependency) is not installed, such as the production image, which ships the .proto files only.

It reads just enough of the grammar to name what each comment precedes: the package, messages,
enums and services (nested too), fields (also inside `oneof` and `map<...>`), enum values and
rpcs. A leading comment is, as protoc defines it, the run of comment lines right above an element
with no blank line between them and no code before them on their first line. A test checks that
it gives protoc's answers for every .proto of the repository.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_TOKEN = re.compile(
    r"""
    (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*|\.[A-Za-z_][A-Za-z0-9_.]*|[0-9][A-Za-z0-9_.+-]*|-[0-9][A-Za-z0-9_.+-]*)
  | (?P<symbol>[{}\[\]()<>;=,:.-])
  | (?P<newline>\n)
  | (?P<space>[ \t\r\f\v]+)
    """,
    re.VERBOSE | re.DOTALL,
)

# The " * " margin of continuation lines in a /* ... */ comment.
_BLOCK_MARGIN = re.compile(r"^\s*\* ?")


@dataclass
class Token:
    kind: str
    text: str
    line: int
    #: The leading comment of the element this token starts, if it starts one.
    comment: str | None = None


def tokenize(text: str) -> list[Token]:
    """The code tokens, each carrying the comment block right above it when there is one."""
    tokens: list[Token] = []
    line = 1
    block: list[str] = []  # the current run of comment lines
    block_end = -1  # the line the run ended on
    code_on_line = False  # whether code came before a comment on its line
    position = 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None:
            raise ValueError(f"line {line}: cannot read {text[position:position + 20]!r}")
        kind, value = found.lastgroup, found.group()
        position = found.end()
        if kind == "newline":
            line += 1
            code_on_line = False
            continue
        if kind == "space":
            continue
        if kind in ("line_comment", "block_comment"):
            if code_on_line:  # a trailing comment, not a leading one
                line += value.count("\n")
                continue
            if block and block_end != line - 1:
                block = []  # a blank line between: the earlier run is detached
            if kind == "line_comment":
                block.append(f"{value[2:]}\n")
            else:
                block.extend(_BLOCK_MARGIN.sub(" ", part) + "\n" for part in value[2:-2].split("\n"))
            line += value.count("\n")
            block_end = line
            continue
        comment = "".join(block) if block and block_end == line - 1 else None
        block = []
        tokens.append(Token(kind, value, line, comment))
        code_on_line = True
    return tokens


class _Reader:
    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.index = 0

    def peek(self, ahead: int = 0) -> Token | None:
        at = self.index + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def next(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def skip_statement(self) -> None:
        """Skips to the end of a statement: its `;`, or the end of its balanced `{...}` block
        (braces inside `[...]` options do not end it)."""
        braces = brackets = 0
        while self.peek() is not None:
            token = self.next()
            if token.text == "[":
                brackets += 1
            elif token.text == "]":
                brackets -= 1
            elif token.text == "{":
                braces += 1
            elif token.text == "}":
                braces -= 1
                if braces == 0 and brackets == 0:
                    if self.peek() is not None and self.peek().text == ";":
                        self.next()
                    return
            elif token.text == ";" and braces == 0 and brackets == 0:
                return


def comments_of_text(text: str) -> dict[str, str]:
    """Element full name -> raw leading comment (as protoc's `leading_comments`)."""
    reader = _Reader(tokenize(text))
    names: dict[str, str] = {}
    package = ""

    def note(name: str, token: Token) -> None:
        if token.comment is not None and token.comment.strip():
            names[name] = token.comment

    def message_body(full: str) -> None:
        while reader.peek() is not None and reader.peek().text != "}":
            token = reader.peek()
            if token.text in ("message", "enum") and reader.peek(2) is not None and reader.peek(2).text == "{":
                declaration(f"{full}.", reader.peek(1).text)
            elif token.text == "oneof":
                reader.next()
                reader.next()  # its name
                reader.next()  # {
                message_body(full)
                reader.next()  # }
            elif token.text in ("option", "reserved", "extensions", "extend", ";"):
                reader.skip_statement()
            else:
                field(full)
        return

    def field(full: str) -> None:
        start = reader.peek()
        # [label] type name = number [options];  or  map<k, v> name = number [options];
        words = []
        while reader.peek() is not None and reader.peek().text not in ("=", ";"):
            token = reader.next()
            if token.text == "<":
                while reader.next().text != ">":
                    pass
                words.append("map")
                continue
            words.append(token.text)
        if words:
            note(f"{full}.{words[-1]}", start)
        reader.skip_statement()

    def enum_body(full: str) -> None:
        while reader.peek() is not None and reader.peek().text != "}":
            token = reader.peek()
            if token.text in ("option", "reserved", ";"):
                reader.skip_statement()
                continue
            note(f"{full}.{token.text}", token)
            reader.skip_statement()

    def service_body(full: str) -> None:
        while reader.peek() is not None and reader.peek().text != "}":
            token = reader.peek()
            if token.text == "rpc":
                note(f"{full}.{reader.peek(1).text}", token)
            reader.skip_statement()

    def declaration(prefix: str, _name: str) -> None:
        keyword = reader.next()
        name = reader.next().text
        full = f"{prefix}{name}"
        note(full, keyword)
        reader.next()  # {
        {"message": message_body, "enum": enum_body, "service": service_body}[keyword.text](full)
        reader.next()  # }

    while reader.peek() is not None:
        token = reader.peek()
        if token.text == "package":
            reader.next()
            package = reader.next().text
            reader.skip_statement()
        elif token.text in ("message", "enum", "service"):
            declaration(f"{package}." if package else "", "")
        else:
            reader.skip_statement()
    return names


def comments_of_files(files: list[Path]) -> dict[str, str]:
    names: dict[str, str] = {}
    for path in files:
        names.update(comments_of_text(path.read_text()))
    return names
