"""Registering an application with hooks' registry at start-up: `register(path_or_mapping)`.

A registration is the whole definition and is idempotent: registering the same document again
changes nothing (the answer's diff says `unchanged`). It never destroys by accident: a definition
that drops event types or levels some account's filters reference is refused (`RemovalsRefused`,
nothing changed) unless `allow_removals=True`; `dry_run=True` answers the diff without changing
anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from hooks.registry.v1 import applications_pb2, applications_pb2_grpc
from hooks_client.registration import InvalidRegistration, document_path, load_registration

#: Where the registry is when neither `target` nor HOOKS_REGISTRY_TARGET says.
DEFAULT_REGISTRY_TARGET = "127.0.0.1:50051"
#: The google.rpc.PreconditionFailure violation type of a refused removal; its subjects name what
#: would be lost: `event_types/<id>` or `event_types/<id>/levels/<id>`.
REMOVAL_VIOLATION_TYPE = "REFERENCED_BY_FILTERS"

_KINDS = {
    applications_pb2.CHANGE_KIND_ADDED: "added",
    applications_pb2.CHANGE_KIND_CHANGED: "changed",
    applications_pb2.CHANGE_KIND_REMOVED: "removed",
}


class RegistrationRefused(Exception):
    """The registry refused the registration for a reason other than the document's content:
    `code` is the gRPC status code, the message is the registry's."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class RemovalsRefused(RegistrationRefused):
    """The definition removes event types or levels that filters reference, and `allow_removals`
    was not given; the message and `removed` name what would be lost. Nothing was changed."""

    def __init__(self, code: grpc.StatusCode, message: str, removed: list[str]):
        super().__init__(code, message)
        #: `event_types/<id>` or `event_types/<id>/levels/<id>`, each referenced by some filter.
        self.removed = removed


@dataclass(frozen=True)
class Registration:
    """The registry's answer: the application as registered (in a dry run: as it would be), whether
    it was new, and what changed."""

    application: applications_pb2.Application
    created: bool
    diff: applications_pb2.RegistrationDiff
    dry_run: bool

    @property
    def changed(self) -> bool:
        return not self.diff.unchanged

    def summary(self) -> list[str]:
        """The diff as lines for people (see `describe_diff`)."""
        return describe_diff(self.diff, created=self.created, dry_run=self.dry_run)


def describe_diff(
    diff: applications_pb2.RegistrationDiff, *, created: bool = False, dry_run: bool = False
) -> list[str]:
    """One line per change, then what it does to filters: what `hooks apps register` prints."""
    would = "would be " if dry_run else ""
    if diff.unchanged:
        return ["no change: the registered definition is already this one"]
    lines = [f"application {would}created"] if created else []
    if diff.previous_title:
        lines.append(f"title {would}changed (was {diff.previous_title!r})")
    for change in diff.event_types:
        detail = f" ({', '.join(change.fields)})" if change.fields else ""
        lines.append(f"event type {change.event_type!r} {would}{_KINDS.get(change.kind, '?')}{detail}")
    for change in diff.levels:
        detail = f" ({', '.join(change.fields)})" if change.fields else ""
        lines.append(f"level {change.event_type!r}/{change.level!r} {would}{_KINDS.get(change.kind, '?')}{detail}")
    if diff.event_types_reordered:
        lines.append(f"event types {would}reordered")
    if diff.filters_losing_references:
        lines.append(
            f"{diff.filters_losing_references} filter(s) of {diff.accounts} account(s) {'would ' if dry_run else ''}lose "
            f"references to removed event types or levels; {diff.filters_disabled} of them {would}disabled"
        )
    return lines


def _details(error: grpc.RpcError) -> list[Any]:
    """The google.rpc.Status details of an error, as the protobuf Any messages they are."""
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            return list(status_pb2.Status.FromString(value).details)
    return []


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of an error's google.rpc.BadRequest detail."""
    found: list[tuple[str, str]] = []
    for detail in _details(error):
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend((v.field, v.description) for v in bad.field_violations)
    return found


def _removals(error: grpc.RpcError) -> list[str]:
    """The subjects of an error's PreconditionFailure violations of type REMOVAL_VIOLATION_TYPE."""
    found: list[str] = []
    for detail in _details(error):
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            found.extend(v.subject for v in failure.violations if v.type == REMOVAL_VIOLATION_TYPE)
    return found


def register(
    path_or_mapping: str | Path | Mapping[str, Any] | applications_pb2.Application,
    *,
    target: str | None = None,
    dry_run: bool = False,
    allow_removals: bool = False,
    credentials: grpc.ChannelCredentials | None = None,
    metadata: Sequence[tuple[str, str]] = (),
    timeout: float = 30.0,
) -> Registration:
    """Registers the application of a registration YAML file (a path), a decoded document (a mapping)
    or an Application message, and returns what changed.

    - `target`: the registry's gRPC address; default HOOKS_REGISTRY_TARGET, else 127.0.0.1:50051.
    - `dry_run`: answer the diff without changing anything.
    - `allow_removals`: allow removing event types and levels that filters reference.
    - `credentials`: TLS channel credentials (e.g. grpc.ssl_channel_credentials(...)); None: plaintext.

    Raises InvalidRegistration (every problem of the document, before anything is sent, or as the
    registry reported them), RemovalsRefused (nothing changed), RegistrationRefused (another refusal)
    or grpc.RpcError (the registry unreachable, after `timeout` seconds)."""
    definition = load_registration(path_or_mapping)
    request = applications_pb2.RegisterApplicationRequest(
        application=definition, dry_run=dry_run, allow_removals=allow_removals
    )
    address = target or os.environ.get("HOOKS_REGISTRY_TARGET") or DEFAULT_REGISTRY_TARGET
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        stub = applications_pb2_grpc.ApplicationServiceStub(channel)
        try:
            response = stub.RegisterApplication(request, metadata=tuple(metadata), timeout=timeout, wait_for_ready=True)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                problems = _violations(error)
                if problems:
                    raise InvalidRegistration([(document_path(field), text) for field, text in problems]) from None
            removed = _removals(error) if code == grpc.StatusCode.FAILED_PRECONDITION else []
            if removed:
                raise RemovalsRefused(code, error.details() or "", removed) from None  # type: ignore[attr-defined]
            if code in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.PERMISSION_DENIED,
                grpc.StatusCode.UNAUTHENTICATED,
            ):
                raise RegistrationRefused(code, error.details() or "") from None  # type: ignore[attr-defined]
            raise
    return Registration(application=response.application, created=response.created, diff=response.diff, dry_run=dry_run)
