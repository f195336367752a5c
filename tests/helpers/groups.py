"""The tests' Kafka consumer groups. The embedded broker (Tansu) holds a group join for about half the
consumer's session timeout, so the tests' consumers and in-process matchers use a short one: a join
then costs about a second instead of three. (Heartbeats come from librdkafka's own thread, so a busy
event loop does not make a member miss its session.)"""

SESSION_TIMEOUT_MS = 2000
