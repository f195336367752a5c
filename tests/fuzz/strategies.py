"""Hypothesis strategies of hostile input (the cases of `tests.fuzz.cases`), one per entry.

What is generated: nesting around and above `limits.MAX_DEPTH` and at 45-50 levels (what used to
break sender streams) up to 5,000; NaN, Infinity and 1e999 as raw JSON text and as Python's json
writes them; integers past a double and past Python's 4,300-digit limit; NUL, C0, DEL and C1
characters and lone surrogates ("\\ud800" escapes) in every field; invalid UTF-8 bytes; strings at
and past each length of `limits.STRING_FIELDS` (counted in characters, padded with multi-byte ones
too); records at and past `limits.MAX_MESSAGE_BYTES`; the same `id` from two applications;
unknown fields, wrong types, missing fields, nulls, non-objects, tombstones, truncated JSON;
unreadable identities and out-of-range timestamps.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from services.common.limits import MAX_DEPTH, MAX_MESSAGE_BYTES, STRING_FIELDS
from tests.fuzz.cases import (
    CONTROL_CHARACTERS,
    INVALID_TIMESTAMPS,
    LONE_SURROGATES,
    PADDING,
    VALID_TIMESTAMPS,
    Burst,
    Call,
    CallBatch,
    Drop,
    Edit,
    Fresh,
    Identity,
    KafkaBatch,
    KafkaCase,
    Mangled,
    Nested,
    Padded,
    Post,
    PostBatch,
    Put,
    Raw,
    Record,
    Splice,
    Stamp,
    TwinCalls,
    TwinPosts,
    Twins,
)

# -- values ----------------------------------------------------------------------------------------


controls = st.sampled_from(CONTROL_CHARACTERS)
surrogates = st.sampled_from(LONE_SURROGATES)
wrong_types = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9), max_size=2),
)


def spoiled(valid: str, *, with_surrogates: bool) -> st.SearchStrategy[str]:
    """`valid` with a control character (or a lone surrogate) put in somewhere."""
    characters = st.one_of(controls, surrogates) if with_surrogates else controls
    return st.builds(lambda c, i: valid[:i] + c + valid[i:], characters, st.integers(0, len(valid)))


def near_limit(field: str) -> st.SearchStrategy[str]:
    """Strings of `field` one below, at and past its length limit (in characters), padded with
    characters of 1 to 4 UTF-8 bytes."""
    limit = STRING_FIELDS[field][0]
    return st.builds(lambda n, pad: (pad * n)[:n], st.integers(limit - 1, limit + 2), st.sampled_from(PADDING))


def name_values(field: str, valid: str, *, with_surrogates: bool) -> st.SearchStrategy[Any]:
    """Hostile values of application, event_type or level: spoiled, too long, empty, wrong types,
    and any short text (the oracle tells an unknown name from the registered one)."""
    return st.one_of(
        spoiled(valid, with_surrogates=with_surrogates),
        near_limit(field),
        st.sampled_from(["", " ", "\u3000", valid.upper(), valid + " "]),
        wrong_types,
        st.none(),
        st.text(st.characters(codec="utf-8"), max_size=8),
    )


def account_values(*, with_surrogates: bool) -> st.SearchStrategy[Any]:
    """account_id values that are never a valid account (a valid other account would route nowhere)."""
    limit = STRING_FIELDS["account_id"][0]
    return st.one_of(
        spoiled("acct", with_surrogates=with_surrogates),
        st.integers(limit + 1, limit + 3).map(lambda n: "a" * n),
        st.sampled_from(["", "   "]),
        wrong_types,
        st.none(),
    )


def id_values(*, with_surrogates: bool) -> st.SearchStrategy[Any]:
    """Ids: fresh ones up to and past the limit, spoiled ones, empty, null, wrong types."""
    limit = STRING_FIELDS["id"][0]
    characters = st.one_of(controls, surrogates) if with_surrogates else controls
    return st.one_of(
        st.builds(Fresh, length=st.sampled_from([8, limit - 1, limit, limit + 1]), pad=st.sampled_from(PADDING)),
        st.builds(Fresh, suffix=characters),
        st.sampled_from(["", None]),
        wrong_types,
    )


def json_values(*, with_surrogates: bool, non_finite: bool) -> st.SearchStrategy[Any]:
    """Any JSON value with hostile leaves: control characters and NUL in strings and keys,
    surrogates, huge and non-finite numbers."""
    text = st.text(
        st.one_of(st.characters(codec="utf-8"), controls, *([surrogates] if with_surrogates else [])), max_size=12
    )
    numbers = st.one_of(
        st.integers(-(2**64), 2**64),
        st.sampled_from([2**53 + 1, 10**300, -(10**308)]),
        st.floats(allow_nan=non_finite, allow_infinity=non_finite),
        *([st.sampled_from([10**309, -(10**400)])] if non_finite else []),
    )
    leaves = st.one_of(st.none(), st.booleans(), numbers, text)
    return st.recursive(
        leaves,
        lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(text, children, max_size=3)),
        max_leaves=8,
    )


def sampled(values: tuple | list) -> st.SearchStrategy[Any]:
    """st.sampled_from(values) whose own repr stays short (some values are kilobytes long, and
    hypothesis prints strategies when it explains a failure)."""
    values = tuple(values)
    return st.integers(0, len(values) - 1).map(values.__getitem__)


def depths() -> st.SearchStrategy[int]:
    """Nesting depths: around MAX_DEPTH, 45-50 (protobuf's 100-level limit is two per JSON level),
    and far past any parser's recursion."""
    return st.one_of(st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2), st.integers(45, 50), st.just(5000))


nestings = st.builds(Nested, depths(), st.sampled_from(["list", "object", "mixed"]))


#: Raw JSON number texts no JSON library writes, and strings with lone-surrogate escapes.
RAW_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 5000, "1e-999", "-0")
RAW_STRINGS = ('"\\ud800"', '"a\\udfffb"', '{"\\ud83d": 1}', '["\\u0000", "\\u001f"]', '"\\ud83d\\ude00"')


unknown_names = st.one_of(
    st.sampled_from(["extra", "__proto__", "constructor", "ID", "Id", "accountId", "msg", "", "id "]),
    st.text(st.characters(codec="utf-8"), max_size=6),
)


KNOWN_RECORD_FIELDS = ("id", "application", "event_type", "level", "account_id", "timestamp", "message")


# -- Kafka records ---------------------------------------------------------------------------------


def record_edits() -> st.SearchStrategy[Edit]:
    message = st.one_of(
        st.builds(Put, st.just("message"), json_values(with_surrogates=True, non_finite=True)),
        st.builds(Splice, st.just("message"), nestings),
        st.builds(Splice, st.just("message"), sampled(RAW_NUMBERS + RAW_STRINGS)),
    )
    names = st.one_of(
        *(
            st.builds(Put, st.just(field), name_values(field, valid, with_surrogates=True))
            for field, valid in (("application", "fuzz"), ("event_type", "hit"), ("level", "low"))
        )
    )
    return st.one_of(
        message,
        names,
        st.builds(Put, st.just("account_id"), account_values(with_surrogates=True)),
        st.builds(Put, st.just("id"), id_values(with_surrogates=True)),
        st.builds(
            Put,
            st.just("timestamp"),
            st.one_of(st.sampled_from(VALID_TIMESTAMPS + tuple(INVALID_TIMESTAMPS)), wrong_types, st.none()),
        ),
        st.builds(Drop, st.sampled_from(KNOWN_RECORD_FIELDS)),
        st.builds(Splice, st.sampled_from(KNOWN_RECORD_FIELDS[:6]), sampled(RAW_NUMBERS[:5] + RAW_STRINGS[:2])),
        st.builds(
            Put,
            unknown_names.filter(lambda name: name not in KNOWN_RECORD_FIELDS),
            json_values(with_surrogates=False, non_finite=False),
        ),
    )


def kafka_cases() -> st.SearchStrategy[KafkaCase]:
    """Edited records (most), twins, records at the size limit, records that are no message, and
    bursts of large ones."""
    sizes = st.one_of(
        st.integers(MAX_MESSAGE_BYTES - 2, MAX_MESSAGE_BYTES + 2),
        st.sampled_from([MAX_MESSAGE_BYTES - 4096, MAX_MESSAGE_BYTES + 4096]),
    )
    malformed = st.one_of(
        st.builds(
            Raw,
            st.sampled_from([None, b"", b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true", b"{", b"{}", b" "]),
        ),
        st.builds(
            Mangled,
            st.just("corrupt"),
            st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80"]),
        ),
        st.builds(Mangled, st.just("truncate"), keep=st.sampled_from([0, 1, 2, 40, 120, 300])),
        st.builds(Mangled, st.sampled_from(["bom", "utf16"])),
    )
    edited = st.builds(Record, st.lists(record_edits(), min_size=1, max_size=2, unique_by=lambda e: e.field).map(tuple))
    return st.one_of(
        edited,
        edited,
        st.builds(Twins, st.sampled_from(["hit", "plain"])),
        st.builds(Record, st.just(()), sizes),
        malformed,
        st.builds(Burst, st.sampled_from([8, 20]), st.sampled_from([64 * 1024, 230_000])),
    )


#: Record keys: none, empty, any bytes (invalid UTF-8, NUL), and a long one.
record_keys = st.one_of(st.none(), st.binary(max_size=40), st.just(b"\xff\xfe\x00k"), st.just(b"k" * 20_000))
#: Record headers: names any text but NUL and surrogates (confluent-kafka cuts a name at NUL and cannot
#: encode a surrogate: no producer can send them), values any bytes; a few, or many.
header_names = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)
record_headers = st.one_of(
    st.lists(st.tuples(header_names, st.binary(max_size=60)), max_size=4),
    st.just([(f"h{index}", b"\x00\xff" * 8) for index in range(300)]),
).map(tuple)


def kafka_batches() -> st.SearchStrategy[KafkaBatch]:
    return st.builds(
        KafkaBatch,
        st.integers(0, 1),
        st.lists(kafka_cases(), min_size=1, max_size=3).map(tuple),
        key=record_keys,
        headers=record_headers,
    )


# -- PublishMessage calls --------------------------------------------------------------------------


identities = st.builds(Identity, st.sampled_from(["control", "long", "deep", "garbage", "missing"]))


stamps = st.builds(
    Stamp,
    st.sampled_from([0, 1_795_000_000, -62135596800, 253402300799, -62135596801, 253402300800, -(2**62), 2**62]),
    st.sampled_from([0, 999_999_999, 1_000_000_000, -1]),
)


def _grpc_string(field: str, valid: str) -> st.SearchStrategy[str]:
    # Protobuf strings are UTF-8 by contract: a client cannot even encode a lone surrogate.
    return st.one_of(
        spoiled(valid, with_surrogates=False),
        near_limit(field),
        st.sampled_from(["", " ", valid.upper()]),
        st.text(st.characters(codec="utf-8"), max_size=8),
    )


def publish_cases() -> st.SearchStrategy[Call | TwinCalls]:
    limit = STRING_FIELDS["id"][0]
    big = st.builds(Padded, st.sampled_from([MAX_MESSAGE_BYTES - 8192, MAX_MESSAGE_BYTES + 8192]))
    # Protobuf parses 100 levels: a JSON array is two (Value, ListValue), an object three (Value,
    # Struct, its map entry). Past 49 arrays the client cannot even build the request; objects
    # reach the limit at 33, just past MAX_DEPTH: the server must still answer INVALID_ARGUMENT.
    message = st.one_of(
        json_values(with_surrogates=False, non_finite=True),
        st.builds(
            Nested,
            st.one_of(st.integers(MAX_DEPTH - 2, MAX_DEPTH + 2), st.integers(45, 49)),
            st.sampled_from(["list", "object", "mixed"]),
        ),
        big,
    )
    field = st.one_of(
        st.tuples(st.just("application"), _grpc_string("application", "fuzz")),
        st.tuples(st.just("event_type"), _grpc_string("event_type", "hit")),
        st.tuples(st.just("level"), _grpc_string("level", "low")),
        st.tuples(
            st.just("id"),
            st.one_of(
                st.builds(Fresh, length=st.sampled_from([8, limit, limit + 1]), pad=st.sampled_from(PADDING)),
                st.builds(Fresh, suffix=controls),
                st.just(""),
            ),
        ),
        st.tuples(st.just("message"), message),
        st.tuples(st.just("timestamp"), stamps),
    )
    return st.one_of(
        st.builds(Call, st.lists(field, min_size=1, max_size=2, unique_by=lambda f: f[0]).map(tuple)),
        st.builds(Call, st.just(()), identities),
        st.builds(Call, st.just(()), unset_message=st.just(True)),
        st.just(TwinCalls()),
    )


def call_batches() -> st.SearchStrategy[CallBatch]:
    return st.builds(CallBatch, st.lists(publish_cases(), min_size=1, max_size=3).map(tuple))


# -- gateway POST bodies ---------------------------------------------------------------------------


#: The fields of PublishMessageRequest in protobuf's JSON mapping (both spellings are accepted).
KNOWN_BODY_FIELDS = ("application", "event_type", "eventType", "level", "message", "timestamp", "id")


def body_edits() -> st.SearchStrategy[Edit]:
    big = st.builds(Padded, st.sampled_from([MAX_MESSAGE_BYTES - 8192, MAX_MESSAGE_BYTES + 8192]))
    message = st.one_of(
        st.builds(Put, st.just("message"), json_values(with_surrogates=True, non_finite=True)),
        st.builds(Put, st.just("message"), big),
        st.builds(Splice, st.just("message"), nestings),
        st.builds(Splice, st.just("message"), sampled(RAW_NUMBERS + RAW_STRINGS)),
    )
    names = st.one_of(
        *(
            st.builds(Put, st.just(field), name_values(field, valid, with_surrogates=True))
            for field, valid in (("application", "fuzz"), ("event_type", "hit"), ("level", "low"))
        )
    )
    return st.one_of(
        message,
        names,
        st.builds(Put, st.just("id"), id_values(with_surrogates=True)),
        st.builds(
            Put,
            st.just("timestamp"),
            st.one_of(st.sampled_from(VALID_TIMESTAMPS + tuple(INVALID_TIMESTAMPS)), wrong_types),
        ),
        st.builds(Drop, st.sampled_from(["application", "event_type", "level", "message", "id"])),
        st.builds(Splice, st.sampled_from(["application", "level", "id"]), sampled(RAW_NUMBERS[:5] + RAW_STRINGS[:2])),
        st.builds(
            Put,
            unknown_names.filter(lambda name: name not in KNOWN_BODY_FIELDS),
            json_values(with_surrogates=False, non_finite=False),
        ),
    )


def gateway_cases() -> st.SearchStrategy[Post | TwinPosts]:
    return st.one_of(
        st.builds(Post, st.lists(body_edits(), min_size=1, max_size=2, unique_by=lambda e: e.field).map(tuple)),
        st.builds(Post, identity=identities),
        st.builds(
            Post,
            raw=sampled(
                [b"", b"[]", b'"text"', b"42", b"null", b"{", b"\xff\xfe", b'{"application": "fu\xffzz"}', b"[" * 5000]
            ),
        ),
        st.just(TwinPosts()),
    )


def post_batches() -> st.SearchStrategy[PostBatch]:
    return st.builds(PostBatch, st.lists(gateway_cases(), min_size=1, max_size=3).map(tuple))
