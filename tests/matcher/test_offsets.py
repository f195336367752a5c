"""Offsets are stored per partition as a watermark: never past a message still in flight."""

from __future__ import annotations

from services.matcher.offsets import Watermarks


def test_watermark_waits_for_the_lowest_message_in_flight():
    marks = Watermarks()
    state = None
    for offset in range(10, 15):
        state = marks.begin("t", 0, offset)
    assert state is not None
    assert marks.finish(state, 12) is None  # 10 and 11 still in flight
    assert marks.finish(state, 11) is None
    assert marks.finish(state, 10) == 13  # 10-12 done: the next to read is 13
    assert marks.finish(state, 14) is None  # 13 still in flight
    assert marks.finish(state, 13) == 15  # all done: one past the last


def test_partitions_are_independent():
    marks = Watermarks()
    zero = marks.begin("t", 0, 0)
    one = marks.begin("t", 1, 7)
    marks.begin("t", 0, 1)
    assert marks.finish(one, 7) == 8
    assert marks.finish(zero, 1) is None
    assert marks.finish(zero, 0) == 2
    assert marks.in_flight() == 0


def test_revoked_partition_stores_nothing_and_a_new_assignment_starts_fresh():
    marks = Watermarks()
    old = marks.begin("t", 0, 5)
    marks.forget([("t", 0)])
    assert marks.finish(old, 5) is None
    new = marks.begin("t", 0, 5)
    assert new is not old
    assert marks.finish(new, 5) == 6
