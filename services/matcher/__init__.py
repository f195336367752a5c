"""The matcher: consumes `hooks.outbox`, validates, dead-letters, routes through the registry and hands
each event to a sender; also serves hooks.matcher.v1 (PublishMessage, MatchMessage)."""
