"""`google.api.http` path templates: parsing, matching a request path, and the OpenAPI form.

The grammar (google/api/http.proto):

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    Verb     = ":" LITERAL ;

A variable without a pattern matches one segment; `**` matches the rest of the path. Matching is
done on the raw (still percent-encoded) path, so an encoded `/` inside a variable stays inside it;
each captured value is decoded afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote


class TemplateError(ValueError):
    """A path template that does not follow the grammar."""


@dataclass(frozen=True)
class PathTemplate:
    template: str
    #: Field paths of the variables, in order (e.g. "endpoint.id").
    variables: tuple[str, ...]
    #: The part after the last ":" of the last segment, or "".
    verb: str
    #: How many literal segments it has; more literal segments make a route more specific.
    literal_count: int
    regex: re.Pattern = field(repr=False, compare=False)

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The decoded variable values when `raw_path` matches, else None."""
        found = self.regex.fullmatch(raw_path)
        if found is None:
            return None
        return {name: unquote(found.group(f"v{i}")) for i, name in enumerate(self.variables)}

    def openapi_path(self) -> str:
        """The template as an OpenAPI path: `{name=a/*}` becomes `{name}`, and `{endpoint.id}` becomes
        `{endpoint_id}` (see `openapi_name`)."""
        return re.sub(r"\{([^}=]+)(=[^}]*)?\}", lambda m: "{" + openapi_name(m.group(1)) + "}", self.template)

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: routes with a verb, then more literal segments, then fewer variables, win."""
        return (1 if self.verb else 0, self.literal_count, -len(self.variables))


def openapi_name(variable: str) -> str:
    """A path variable's OpenAPI parameter name: dots become underscores, because OpenAPI tools fill
    path templates with format-style substitution, where `{endpoint.id}` means an attribute."""
    return variable.replace(".", "_")


_LITERAL = re.compile(r"^[A-Za-z0-9._~\-]+$")
# One segment of a variable's value: anything but "/" (the verb, when there is one, is matched after).
_ONE_SEGMENT = r"[^/]+"
_REST = r"[^?#]*"


def parse(template: str) -> PathTemplate:
    if not template.startswith("/"):
        raise TemplateError(f"{template!r}: a path template starts with '/'")
    body = template[1:]
    verb = ""
    # The verb is the ":" suffix after the last segment (outside any variable).
    depth = 0
    for i, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == ":" and depth == 0:
            verb = body[i + 1 :]
            body = body[:i]
            if not _LITERAL.match(verb):
                raise TemplateError(f"{template!r}: bad verb {verb!r}")
            break
    parts: list[str] = []
    variables: list[str] = []
    literal_count = 0
    for segment in _split_segments(body, template):
        if segment.startswith("{"):
            inner = segment[1:-1]
            name, _, pattern = inner.partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", name):
                raise TemplateError(f"{template!r}: bad variable {name!r}")
            group = f"v{len(variables)}"
            variables.append(name)
            parts.append(f"(?P<{group}>{_pattern_regex(pattern or '*', template)})")
        elif segment == "*":
            parts.append(_ONE_SEGMENT)
        elif segment == "**":
            parts.append(_REST)
        elif _LITERAL.match(segment):
            literal_count += 1
            parts.append(re.escape(segment))
        else:
            raise TemplateError(f"{template!r}: bad segment {segment!r}")
    regex = "/" + "/".join(parts) + (re.escape(":" + verb) if verb else "")
    return PathTemplate(template, tuple(variables), verb, literal_count, re.compile(regex))


def _split_segments(body: str, template: str) -> list[str]:
    """Splits on "/" outside variables (a variable's pattern may hold "/")."""
    segments, current, depth = [], "", 0
    for char in body:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise TemplateError(f"{template!r}: unbalanced braces")
        if char == "/" and depth == 0:
            segments.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise TemplateError(f"{template!r}: unbalanced braces")
    segments.append(current)
    if any(s == "" for s in segments):
        raise TemplateError(f"{template!r}: empty segment")
    return segments


def _pattern_regex(pattern: str, template: str) -> str:
    parts = []
    for segment in pattern.split("/"):
        if segment == "*":
            parts.append(_ONE_SEGMENT)
        elif segment == "**":
            parts.append(_REST)
        elif _LITERAL.match(segment):
            parts.append(re.escape(segment))
        else:
            raise TemplateError(f"{template!r}: bad variable pattern {pattern!r}")
    return "/".join(parts)
