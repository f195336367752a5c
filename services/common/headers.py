"""The HTTP headers an endpoint's own headers may not set: one list, which the registry refuses when an
endpoint is written (INVALID_ARGUMENT naming `endpoint.headers["Host"]`) and the sender leaves out when
it sends (an endpoint stored before a name was added here must not set it either)."""

from __future__ import annotations

#: Lower-case names. Two kinds: what belongs to the connection or the message's framing, which the
#: HTTP client sets or which would make it send something else than it means; and what the sender sets
#: itself on every delivery, which a receiver relies on (the Standard Webhooks signature, trace
#: context, the body's type, the sender's name).
RESERVED_HEADERS: frozenset[str] = frozenset(
    {
        # The connection (hop-by-hop, RFC 9110 section 7.6.1) and the framing of the message.
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",
        "expect",
        # Set by the sender on every delivery (services/sender/formatters.py, services/sender/deliverer.py).
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "traceparent",
        "tracestate",
    }
)
