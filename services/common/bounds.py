"""The bounds of the public API's fields, in one table: what each string, list, number and enum field
of a request accepts, keyed by the field's full proto name.

Two readers, so they cannot drift apart: the services' checks take their numbers from the constants
here or from the ones this table is built of (`hooks_client.limits` and `hooks_client.registration`,
the producers' package, for the names of events and applications), and the gateway's OpenAPI
document (gateway/openapi.py) declares every entry as minLength/maxLength, pattern, minItems/maxItems,
minimum/maximum and the enum's accepted values. What a schema cannot say (a name that must be
registered, a certificate that must parse, a range whose end follows its start) stays in the checks
and in the fields' comments.

Patterns are written for both regex dialects that read them (ECMAScript's, in OpenAPI tools, and
Python's), anchored, and say only which characters a value may hold: `TEXT` for names and ids (no
control characters: C0, DEL, C1, as `hooks_client.limits.text_problem` refuses), `FREE_TEXT` for text
for people (tabs and line breaks allowed), and `NOT_BLANK` where a value must hold something besides
spaces (`check_text(required=True)` strips it first).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hooks_client.limits import STRING_FIELDS
from hooks_client.registration import NAME_PATTERN

#: What a character of stored text may not be: C0 controls, DEL and C1 controls.
_CONTROL = r"\u0000-\u001F\u007F-\u009F"
_TEXT_CHAR = f"[^{_CONTROL}]"
#: Free text for people may hold tabs, line feeds and carriage returns.
_FREE_TEXT_CHAR = r"[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]"
TEXT = f"^{_TEXT_CHAR}*$"
FREE_TEXT = f"^{_FREE_TEXT_CHAR}*$"
NOT_BLANK = f"^{_TEXT_CHAR}*[^\\s{_CONTROL}]{_TEXT_CHAR}*$"
#: A header value: no control character but tab.
HEADER_VALUE = r"^[^\u0000-\u0008\u000A-\u001F\u007F-\u009F]*$"

MAX_ENDPOINT_NAME = 200
MAX_DESCRIPTION = 2000
MAX_TARGET = 2000
MAX_HEADERS = 20
MAX_HEADER_NAME = 100
MAX_HEADER_VALUE = 2000
MAX_CA_CERTIFICATE = 64 * 1024
#: Longest id of an endpoint, a filter or a delivery a caller may name.
MAX_ID = 100
MAX_FILTER_NAME = 200
#: Most entries of a filter's applications, event_types and levels (endpoint_ids is a tenant quota).
MAX_FILTER_ENTRIES = 100
#: Longest endpoint id the sender takes in a list of them (Deliver, BatchGetEndpointStats).
MAX_ENDPOINT_ID = 64
#: At most this many endpoints' figures in one BatchGetEndpointStats call.
MAX_STATS_ENDPOINTS = 1000
#: The highest rate limit an endpoint may set, per period.
MAX_RATE_LIMIT = 100_000
#: An e-mail endpoint's target (services/registry/validation.py applies it with fullmatch).
EMAIL_ADDRESS = (
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
#: The http(s) URLs the document offers as other endpoints' targets: a host of letters, digits, dots
#: and dashes, an optional port, an optional path. The registry takes more (any host urlsplit reads,
#: without credentials); the document names what is safe to send.
HTTP_URL = r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,4})?(?:/[^\s\u0000-\u001F\u007F-\u009F]*)?"

#: A signing secret (services/registry/signing_secrets.py): "whsec_" (optional on input) and the base64
#: of SECRET_MIN_BYTES to SECRET_MAX_BYTES bytes.
SECRET_PREFIX = "whsec_"
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64


def _base64_pattern(min_bytes: int, max_bytes: int) -> str:
    """Standard base64 (padded) of min_bytes to max_bytes bytes: by what the last group holds."""
    char = "[A-Za-z0-9+/]"
    tails = {0: "", 1: f"{char}{{2}}==", 2: f"{char}{{3}}="}
    alternatives = []
    for rest, tail in tails.items():
        groups = [n // 3 for n in range(min_bytes, max_bytes + 1) if n % 3 == rest]
        alternatives.append(f"(?:{char}{{4}}){{{min(groups)},{max(groups)}}}{tail}")
    return "(?:" + "|".join(alternatives) + ")"


SECRET = f"^(?:{SECRET_PREFIX})?{_base64_pattern(SECRET_MIN_BYTES, SECRET_MAX_BYTES)}$"

#: A registered name (application, event type, level): `hooks_client.registration.NAME_PATTERN`.
NAME = f"^{NAME_PATTERN.pattern}$"


@dataclass(frozen=True)
class Bounds:
    """What one field accepts. For a repeated field, `min_items`/`max_items` bound the list and the
    rest bound each item; for a map, `max_items` bounds its entries and the rest its values."""

    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    #: The enum's zero value (`..._UNSPECIFIED`) is refused.
    specified: bool = False


def _id(required: bool = True) -> Bounds:
    """An id a caller names: up to MAX_ID characters of TEXT; not blank where required."""
    return (
        Bounds(min_length=1, max_length=MAX_ID, pattern=NOT_BLANK)
        if required
        else Bounds(max_length=MAX_ID, pattern=TEXT)
    )


def _event_name(field: str) -> Bounds:
    """An event's application, event type or level, as the matcher checks it (`hooks_client.limits`)."""
    limit, required = STRING_FIELDS[field]
    return (
        Bounds(min_length=1, max_length=limit, pattern=NOT_BLANK)
        if required
        else Bounds(max_length=limit, pattern=TEXT)
    )


_REGISTERED = Bounds(min_length=1, max_length=100, pattern=NAME)

FIELD_BOUNDS: dict[str, Bounds] = {
    # hooks.registry.v1 (services/registry/validation.py, filters.py, ownership.py)
    "hooks.registry.v1.Endpoint.id": _id(),
    "hooks.registry.v1.Endpoint.name": Bounds(min_length=1, max_length=MAX_ENDPOINT_NAME, pattern=NOT_BLANK),
    "hooks.registry.v1.Endpoint.description": Bounds(max_length=MAX_DESCRIPTION, pattern=FREE_TEXT),
    "hooks.registry.v1.Endpoint.type": Bounds(specified=True),
    # An http(s) URL, or for ENDPOINT_TYPE_EMAIL an address: the type says which (OpenAPI 3.0 cannot).
    "hooks.registry.v1.Endpoint.target": Bounds(
        min_length=1, max_length=MAX_TARGET, pattern=f"^(?:{HTTP_URL}|{EMAIL_ADDRESS})$"
    ),
    "hooks.registry.v1.Endpoint.secret": Bounds(pattern=f"^$|{SECRET}"),
    "hooks.registry.v1.Endpoint.headers": Bounds(
        max_items=MAX_HEADERS, max_length=MAX_HEADER_VALUE, pattern=HEADER_VALUE
    ),
    "hooks.registry.v1.Endpoint.ca_certificate": Bounds(max_length=MAX_CA_CERTIFICATE, pattern=FREE_TEXT),
    "hooks.registry.v1.RateLimit.requests": Bounds(minimum=0, maximum=MAX_RATE_LIMIT),
    "hooks.registry.v1.GetEndpointRequest.id": _id(),
    "hooks.registry.v1.DeleteEndpointRequest.id": _id(),
    "hooks.registry.v1.ListEndpointsRequest.name_contains": Bounds(max_length=MAX_ENDPOINT_NAME, pattern=TEXT),
    "hooks.registry.v1.Filter.id": _id(),
    "hooks.registry.v1.Filter.name": Bounds(max_length=MAX_FILTER_NAME, pattern=TEXT),
    "hooks.registry.v1.Filter.applications": replace(_REGISTERED, max_items=MAX_FILTER_ENTRIES),
    "hooks.registry.v1.Filter.event_types": Bounds(max_items=MAX_FILTER_ENTRIES),
    "hooks.registry.v1.Filter.levels": Bounds(max_items=MAX_FILTER_ENTRIES),
    "hooks.registry.v1.Filter.endpoint_ids": replace(_id(), min_items=1),
    "hooks.registry.v1.EventTypeRef.application": _REGISTERED,
    "hooks.registry.v1.EventTypeRef.event_type": _REGISTERED,
    "hooks.registry.v1.LevelRef.application": _REGISTERED,
    "hooks.registry.v1.LevelRef.event_type": _REGISTERED,
    "hooks.registry.v1.LevelRef.level": _REGISTERED,
    "hooks.registry.v1.PauseEndpointRequest.id": _id(),
    "hooks.registry.v1.ResumeEndpointRequest.id": _id(),
    "hooks.registry.v1.GetFilterRequest.id": _id(),
    "hooks.registry.v1.DeleteFilterRequest.id": _id(),
    "hooks.registry.v1.ListFiltersRequest.endpoint_id": _id(required=False),
    "hooks.registry.v1.GetApplicationRequest.name": _id(),
    # hooks.sender.v1 (services/sender/servicer.py): an id is required, and looked up as it is (one
    # that names nothing is NOT_FOUND); the filters of a list take any text.
    "hooks.sender.v1.GetDeliveryRequest.id": Bounds(min_length=1),
    "hooks.sender.v1.RetryDeliveryRequest.id": Bounds(min_length=1),
    "hooks.sender.v1.SendTestMessageRequest.endpoint_id": Bounds(min_length=1),
    "hooks.sender.v1.BatchGetEndpointStatsRequest.endpoint_ids": Bounds(
        min_items=1, max_items=MAX_STATS_ENDPOINTS, min_length=1, max_length=MAX_ENDPOINT_ID, pattern=TEXT
    ),
    # hooks.matcher.v1 (services/matcher/servicer.py, with hooks_client.limits' rules)
    "hooks.matcher.v1.PublishMessageRequest.application": _event_name("application"),
    "hooks.matcher.v1.PublishMessageRequest.event_type": _event_name("event_type"),
    "hooks.matcher.v1.PublishMessageRequest.level": _event_name("level"),
    "hooks.matcher.v1.PublishMessageRequest.id": _event_name("id"),
    "hooks.matcher.v1.MatchMessageRequest.application": _event_name("application"),
    "hooks.matcher.v1.MatchMessageRequest.event_type": _event_name("event_type"),
    "hooks.matcher.v1.MatchMessageRequest.level": _event_name("level"),
}
