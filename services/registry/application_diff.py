"""What a registration changes: the registered definition against the new one, as a RegistrationDiff
(without its filter counts, which need the database: see applications.py).

Event types and levels are identified by their ids: a changed title is a change, not a rename into
something else. The order of what stays is compared as a relative order, so adding an event type at
the top is one addition, not a change of every position below it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hooks.registry.v1 import applications_pb2

ADDED = applications_pb2.CHANGE_KIND_ADDED
CHANGED = applications_pb2.CHANGE_KIND_CHANGED
REMOVED = applications_pb2.CHANGE_KIND_REMOVED


@dataclass
class Removals:
    """What a registration removes: event type ids, and (event type, level) of event types that stay."""

    event_types: list[str] = field(default_factory=list)
    levels: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.event_types or self.levels)


def _kept_order_differs(before: list[str], after: list[str]) -> bool:
    kept = set(before) & set(after)
    return [key for key in before if key in kept] != [key for key in after if key in kept]


def diff_applications(
    before: applications_pb2.Application | None, after: applications_pb2.Application
) -> tuple[applications_pb2.RegistrationDiff, Removals]:
    """The diff from `before` (None: not registered yet) to `after`, each event type's
    `schema_version` filled in; and what it removes."""
    diff = applications_pb2.RegistrationDiff()
    removals = Removals()
    old_types = {et.id: et for et in before.event_types} if before is not None else {}
    new_types = {et.id: et for et in after.event_types}
    if before is not None and before.title != after.title:
        diff.previous_title = before.title
    for et in after.event_types:
        old = old_types.get(et.id)
        if old is None:
            diff.event_types.add(event_type=et.id, kind=ADDED)
            continue
        fields = []
        if old.title != et.title:
            fields.append("title")
        if old.schema_version != et.schema_version:
            fields.append("schema")
        old_levels = {level.id: level for level in old.levels}
        new_levels = {level.id: level for level in et.levels}
        if _kept_order_differs(list(old_levels), list(new_levels)):
            fields.append("levels_order")
        if fields:
            diff.event_types.add(event_type=et.id, kind=CHANGED, fields=fields)
        for level in et.levels:
            previous = old_levels.get(level.id)
            if previous is None:
                diff.levels.add(event_type=et.id, level=level.id, kind=ADDED)
            elif previous.title != level.title:
                diff.levels.add(event_type=et.id, level=level.id, kind=CHANGED, fields=["title"])
        for level_id in old_levels:
            if level_id not in new_levels:
                diff.levels.add(event_type=et.id, level=level_id, kind=REMOVED)
                removals.levels.append((et.id, level_id))
    for et_id in old_types:
        if et_id not in new_types:
            diff.event_types.add(event_type=et_id, kind=REMOVED)
            removals.event_types.append(et_id)
    diff.event_types_reordered = _kept_order_differs(list(old_types), list(new_types))
    diff.unchanged = before is not None and not (
        diff.previous_title or diff.event_types or diff.levels or diff.event_types_reordered
    )
    return diff, removals
