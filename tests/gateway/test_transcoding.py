"""Generic transcoding, shown on the test-only Echo service: its routes exist only because its
descriptor carries `google.api.http` annotations, and no gateway code names it."""

from __future__ import annotations

import pytest

from gateway.app import default_targets
from gateway.http_routes import Match, Router, build_routes, default_file_descriptors
from gateway.settings import GatewaySettings
from tests.helpers.gateway import identity


async def test_an_annotated_rpc_gets_its_route_with_nested_path_variables(echo_gateway):
    response = await echo_gateway.get(
        "/api/testing/v1/rooms/r1/echoes/e%2F1",
        headers={
            **identity("acct-9"),
            "x-request-id": "req-42",
            "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-42"
    body = response.json()
    assert "traceparent" in body["metadataKeys"]
    assert body["request"]["id"] == "e/1"  # a percent-encoded "/" stays inside its variable
    assert body["request"]["room"]["id"] == "r1"
    assert body["account"] == "acct-9"
    assert "x-rh-identity" in body["metadataKeys"] and "x-request-id" in body["metadataKeys"]
    # JSON mapping: lowerCamelCase names, every field printed, INPUT_ONLY ones never.
    assert body["request"]["pageSize"] == 0 and body["request"]["color"] == "COLOR_UNSPECIFIED"
    assert "secret" not in body
    assert response.headers["content-type"].startswith("application/json")


async def test_query_parameters_fill_the_other_fields(echo_gateway):
    response = await echo_gateway.get(
        "/api/testing/v1/rooms/r1/echoes/e1",
        params=[
            ("page_size", "25"),
            ("tags", "a"),
            ("tags", "b"),
            ("color", "COLOR_BLUE"),
            ("colors", "COLOR_RED"),
            ("colors", "COLOR_BLUE"),
            ("loud", "true"),
            ("since", "2026-01-02T03:04:05Z"),
            ("room.displayName", "Blue room"),
            ("room.capacity", "12"),
            ("displayName", "camel case accepted"),
        ],
        headers=identity(),
    )
    assert response.status_code == 200, response.text
    echoed = response.json()["request"]
    assert echoed["pageSize"] == 25
    assert echoed["tags"] == ["a", "b"]
    assert echoed["color"] == "COLOR_BLUE"
    assert echoed["colors"] == ["COLOR_RED", "COLOR_BLUE"]
    assert echoed["loud"] is True
    assert echoed["since"] == "2026-01-02T03:04:05Z"
    assert echoed["room"] == {"id": "r1", "displayName": "Blue room", "capacity": "12"}
    assert echoed["displayName"] == "camel case accepted"


@pytest.mark.parametrize(
    "params, field",
    [
        ({"nope": "1"}, "nope"),
        ({"page_size": "many"}, "page_size"),
        ({"loud": "maybe"}, "loud"),
        ({"room": "x"}, "room"),
        ({"room.id": "x"}, "room.id"),  # bound by the path
        ({"id": "x"}, "id"),
    ],
)
async def test_bad_query_parameters_are_400_naming_the_field(echo_gateway, params, field):
    response = await echo_gateway.get("/api/testing/v1/rooms/r1/echoes/e1", params=params, headers=identity())
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3
    violations = body["details"][0]["fieldViolations"]
    assert violations[0]["field"] == field


async def test_bad_values_are_400(echo_gateway):
    for params in ({"color": "COLOR_GREEN"}, {"page_size": "99999999999"}, {"since": "yesterday"}):
        response = await echo_gateway.get("/api/testing/v1/rooms/r1/echoes/e1", params=params, headers=identity())
        assert response.status_code == 400, (params, response.text)
        assert response.json()["code"] == 3


async def test_a_null_is_no_value_but_for_a_json_value_field(echo_gateway):
    """json_format would read a null as the field left out; the OpenAPI document offers no null."""
    response = await echo_gateway.post("/api/testing/v1/rooms/r/echoes:shout", json={"loud": None}, headers=identity())
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["fieldViolations"] == [{"field": "loud", "description": "is null"}]


async def test_an_enum_is_given_by_name_not_by_number(echo_gateway):
    """json_format would take a number; the OpenAPI document offers names only, so the gateway does too."""
    for params in ({"color": "2"}, {"colors": ["COLOR_RED", "0"]}):
        response = await echo_gateway.get("/api/testing/v1/rooms/r1/echoes/e1", params=params, headers=identity())
        assert response.status_code == 400, (params, response.text)
        violation = response.json()["details"][0]["fieldViolations"][0]
        assert violation["field"] in ("color", "colors[1]")
        assert "COLOR_RED" in violation["description"] and "UNSPECIFIED" not in violation["description"]


async def test_body_star_with_a_verb_and_the_path_winning(echo_gateway):
    response = await echo_gateway.post(
        "/api/testing/v1/rooms/r2/echoes:shout",
        json={"id": "e5", "room": {"id": "ignored", "display_name": "proto names accepted"}, "tags": ["x"]},
        headers=identity(),
    )
    assert response.status_code == 200, response.text
    echoed = response.json()["request"]
    assert echoed["id"] == "e5" and echoed["tags"] == ["x"]
    assert echoed["room"] == {"id": "r2", "displayName": "proto names accepted", "capacity": "0"}


async def test_body_field_and_response_body(echo_gateway):
    response = await echo_gateway.put(
        "/api/testing/v1/echoes/e7?pageSize=3", json={"displayName": "Room 7", "capacity": 7}, headers=identity()
    )
    assert response.status_code == 200, response.text
    # response_body "request": only that field of the response, as the whole body.
    assert response.json()["id"] == "e7"
    assert response.json()["pageSize"] == 3
    assert response.json()["room"]["displayName"] == "Room 7"


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"tags": "not-a-list"}', "invalid request"),
        (b'{"unknownField": 1}', "invalid request"),
        (b'{"since": 12}', "invalid request"),
        (b'{"room": {"capacity": "lots"}}', "invalid request"),
        (b"[" * 20_000 + b"]" * 20_000, "not JSON"),  # nested too deep to parse
    ],
)
async def test_bad_bodies_are_400(echo_gateway, body, fragment):
    response = await echo_gateway.post(
        "/api/testing/v1/rooms/r2/echoes:shout",
        content=body,
        headers={**identity(), "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["message"]


async def test_query_parameters_are_refused_when_the_body_is_everything(echo_gateway):
    response = await echo_gateway.post("/api/testing/v1/rooms/r2/echoes:shout?tags=x", json={}, headers=identity())
    assert response.status_code == 400


async def test_page_size_above_1000_is_400_and_1000_passes(echo_gateway):
    response = await echo_gateway.get(
        "/api/testing/v1/rooms/r/echoes/e", params={"pageSize": "1001"}, headers=identity()
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["fieldViolations"][0]["field"] == "page_size"
    response = await echo_gateway.get(
        "/api/testing/v1/rooms/r/echoes/e", params={"pageSize": "1000"}, headers=identity()
    )
    assert response.status_code == 200


async def test_an_rpc_without_an_http_rule_gets_no_route(echo_modules):
    echo_pb2, _ = echo_modules
    routes = build_routes([echo_pb2.DESCRIPTOR], {"testing.v1": "127.0.0.1:1"})
    names = {route.method.name for route in routes}
    assert names == {"Echo", "Fail", "Count"}
    assert sum(route.method.name == "Echo" for route in routes) == 3  # additional_bindings


def test_the_hooks_routes_come_from_the_annotations_and_internal_rpcs_have_none():
    settings = GatewaySettings(registry_target="r:1", sender_target="s:2", matcher_target="m:3")
    routes = build_routes(default_file_descriptors(), default_targets(settings))
    by_name = {(r.http_method, r.template.template): r for r in routes}
    assert by_name[("GET", "/api/hooks/v1/deliveries:watch")].target == "s:2"
    assert by_name[("POST", "/api/hooks/v1/messages:match")].target == "m:3"
    assert by_name[("PATCH", "/api/hooks/v1/endpoints/{endpoint.id}")].target == "r:1"
    assert ("GET", "/api/hooks/v1/endpoints/{endpoint_id}/deliveries") in by_name
    methods = {r.method.name for r in routes}
    assert not methods & {
        "RegisterApplication",
        "Deliver",
        "ResolveRoutes",
        "WatchChanges",
        "GetDeliveryTarget",
        "DisableEndpoint",
    }
    assert len(routes) == 24


def test_a_path_with_a_custom_verb_belongs_to_the_verbs_routes():
    """GET /deliveries/d1:retry is not GetDelivery of an id "d1:retry": it is the path of RetryDelivery,
    which allows POST only, as the OpenAPI document lists it."""
    settings = GatewaySettings(registry_target="r:1", sender_target="s:2", matcher_target="m:3")
    router = Router(build_routes(default_file_descriptors(), default_targets(settings)))
    assert router.find("GET", "/api/hooks/v1/deliveries/d1:retry") == ["POST"]
    assert router.find("OPTIONS", "/api/hooks/v1/endpoints/e1:test") == ["POST"]
    found = router.find("POST", "/api/hooks/v1/deliveries/d1:retry")
    assert isinstance(found, Match) and found.variables == {"id": "d1"}
    assert sorted(router.find("OPTIONS", "/api/hooks/v1/endpoints/e1")) == ["DELETE", "GET", "PATCH"]
    found = router.find("GET", "/api/hooks/v1/endpoints/e1")
    assert isinstance(found, Match) and found.route.method.name == "GetEndpoint"


async def test_unknown_route_is_404_and_wrong_method_is_405(echo_gateway):
    response = await echo_gateway.get("/api/testing/v1/nowhere", headers=identity())
    assert response.status_code == 404
    assert response.json()["code"] == 5
    response = await echo_gateway.delete("/api/testing/v1/rooms/r/echoes/e", headers=identity())
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["message"]
    response = await echo_gateway.get("/nowhere")
    assert response.status_code == 404 and response.json()["code"] == 5


async def test_request_bodies_are_bounded(echo_gateway):
    big = b'{"id": "' + b"x" * (64 * 1024) + b'"}'
    response = await echo_gateway.post(
        "/api/testing/v1/rooms/r/echoes:shout", content=big, headers={**identity(), "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == 8

    async def chunks():  # no Content-Length: the limit holds while reading
        for _ in range(20):
            yield b" " * 8192

    response = await echo_gateway.post("/api/testing/v1/rooms/r/echoes:shout", content=chunks(), headers=identity())
    assert response.status_code == 413
    assert "larger than" in response.json()["message"]
