"""Registration with the seed's semantics, and reading applications."""

from __future__ import annotations

import grpc

from hooks.registry.v1 import applications_pb2 as pb
from services.common.identity import IDENTITY_HEADER, identity_metadata
from tests.helpers.registry import expect_error, expect_invalid

ME = identity_metadata("acct-1")


def shape(app: pb.Application) -> list:
    return [(et.id, et.title, [(lv.id, lv.title) for lv in et.levels]) for et in app.event_types]


async def get(registry, name: str) -> pb.Application:
    return (await registry.apps.GetApplication(pb.GetApplicationRequest(name=name), metadata=ME)).application


async def test_register_creates_then_updates_in_place(registry):
    first = await registry.register("policies", "Policies", [("triggered", ["low", "high"]), ("resolved", [])])
    assert first.created is True
    assert first.application.name == "policies"
    assert shape(first.application) == [
        ("triggered", "Triggered", [("low", "Low"), ("high", "High")]),
        ("resolved", "Resolved", []),
    ]
    again = await registry.register("policies", "Policies", [("triggered", ["low", "high"]), ("resolved", [])])
    assert again.created is False
    assert shape(again.application) == shape(first.application)
    # Nothing changed: the update time stays.
    assert again.application.update_time == first.application.update_time
    assert again.application.create_time == first.application.create_time


async def test_reregistration_diff_cases(registry):
    await registry.register("policies", "Policies", [("a", ["x", "y"]), ("b", ["z"]), ("c", [])])

    # title change
    await registry.register("policies", "Policy engine", [("a", ["x", "y"]), ("b", ["z"]), ("c", [])])
    app = await get(registry, "policies")
    assert app.title == "Policy engine"

    # add an event type and a level
    await registry.register("policies", "Policy engine", [("a", ["x", "y", "w"]), ("b", ["z"]), ("c", []), ("d", [])])
    assert [et.id for et in (await get(registry, "policies")).event_types] == ["a", "b", "c", "d"]
    assert [lv.id for lv in (await get(registry, "policies")).event_types[0].levels] == ["x", "y", "w"]

    # remove an event type and a level
    await registry.register("policies", "Policy engine", [("a", ["x", "w"]), ("c", []), ("d", [])])
    app = await get(registry, "policies")
    assert [(et.id, [lv.id for lv in et.levels]) for et in app.event_types] == [("a", ["x", "w"]), ("c", []), ("d", [])]

    # reorder event types and levels
    await registry.register("policies", "Policy engine", [("d", []), ("a", ["w", "x"]), ("c", [])])
    app = await get(registry, "policies")
    assert [(et.id, [lv.id for lv in et.levels]) for et in app.event_types] == [("d", []), ("a", ["w", "x"]), ("c", [])]

    # levels to none
    await registry.register("policies", "Policy engine", [("d", []), ("a", []), ("c", [])])
    app = await get(registry, "policies")
    assert [(et.id, len(et.levels)) for et in app.event_types] == [("d", 0), ("a", 0), ("c", 0)]

    # an event type's title changes
    response = await registry.apps.RegisterApplication(
        pb.RegisterApplicationRequest(
            application=pb.Application(
                name="policies", title="Policy engine", event_types=[pb.EventType(id="d", title="Dee")]
            )
        )
    )
    assert shape(response.application) == [("d", "Dee", [])]
    assert response.application.update_time.ToDatetime() >= response.application.create_time.ToDatetime()


async def test_registration_validation(registry):
    bad = pb.Application(
        name="bad name!",
        title="",
        event_types=[
            pb.EventType(id="ok", title="Ok", levels=[pb.Level(id="l", title="L"), pb.Level(id="l", title="Again")]),
            pb.EventType(id="", title="No id"),
            pb.EventType(id="ok", title="Duplicate"),
            pb.EventType(id="x" * 101, title="Too long"),
            pb.EventType(id="fine", title=""),
        ],
    )
    violations = await expect_invalid(
        registry.apps.RegisterApplication(pb.RegisterApplicationRequest(application=bad)),
        "application.name",
        "application.title",
        "application.event_types[0].levels[1].id",
        "application.event_types[1].id",
        "application.event_types[2].id",
        "application.event_types[3].id",
        "application.event_types[4].title",
    )
    assert "duplicates" in violations["application.event_types[2].id"]
    # Nothing was stored.
    await expect_error(
        registry.apps.GetApplication(pb.GetApplicationRequest(name="bad name!"), metadata=ME), grpc.StatusCode.NOT_FOUND
    )
    await expect_invalid(registry.apps.RegisterApplication(pb.RegisterApplicationRequest()), "application.name")
    too_many = pb.Application(
        name="big", title="Big", event_types=[pb.EventType(id=f"e{i}", title="E") for i in range(501)]
    )
    await expect_invalid(
        registry.apps.RegisterApplication(pb.RegisterApplicationRequest(application=too_many)),
        "application.event_types",
    )


async def test_builtin_application(registry):
    app = await get(registry, "hooks")
    assert app.title == "Hooks"
    assert shape(app) == [("endpoint-disabled", "Endpoint disabled", []), ("test", "Test", [])]
    error = await expect_error(registry.register("hooks", "Mine", [("x", [])]), grpc.StatusCode.FAILED_PRECONDITION)
    assert "hooks" in error.details()


async def test_builtin_registration_is_idempotent_across_restarts(database_url):
    from hooks.registry.v1 import applications_pb2_grpc
    from services.common.channels import channel
    from tests.helpers.registry import running_registry

    for _ in range(2):
        async with running_registry(database_url) as (_server, port):
            async with channel(f"127.0.0.1:{port}") as ch:
                stub = applications_pb2_grpc.ApplicationServiceStub(ch)
                listed = await stub.ListApplications(pb.ListApplicationsRequest(), metadata=ME)
                assert [a.name for a in listed.applications] == ["hooks"]


async def test_get_and_list(registry):
    await expect_error(
        registry.apps.GetApplication(pb.GetApplicationRequest(name="nope"), metadata=ME), grpc.StatusCode.NOT_FOUND
    )
    await expect_invalid(registry.apps.GetApplication(pb.GetApplicationRequest(name=""), metadata=ME), "name")
    for name in ["zeta", "alpha", "mid"]:
        await registry.register(name)
    seen = []
    token = ""
    while True:
        page = await registry.apps.ListApplications(
            pb.ListApplicationsRequest(page_size=2, page_token=token), metadata=ME
        )
        assert len(page.applications) <= 2
        seen += [a.name for a in page.applications]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["alpha", "hooks", "mid", "zeta"]
    await expect_invalid(
        registry.apps.ListApplications(pb.ListApplicationsRequest(page_size=-1), metadata=ME), "page_size"
    )
    await expect_invalid(
        registry.apps.ListApplications(pb.ListApplicationsRequest(page_token="garbage!"), metadata=ME), "page_token"
    )


async def test_reading_needs_an_identity_but_registration_does_not(registry):
    await expect_error(registry.apps.ListApplications(pb.ListApplicationsRequest()), grpc.StatusCode.UNAUTHENTICATED)
    await expect_error(
        registry.apps.GetApplication(
            pb.GetApplicationRequest(name="hooks"), metadata=((IDENTITY_HEADER, "not base64"),)
        ),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert (await registry.register("internal")).created
