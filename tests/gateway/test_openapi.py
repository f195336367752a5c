"""The OpenAPI document: generated from the same annotations and the protos' comments, valid OpenAPI 3,
a schema for every message; and schemathesis, against the whole system behind the gateway, finds no
5xx and no response that breaks the document."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import urljoin

from openapi_spec_validator import validate

from gateway.app import GATEWAY_KEY
from gateway.http_routes import default_file_descriptors
from services.common.bounds import FIELD_BOUNDS
from tests.gateway.schemathesis_hooks import WEB_TARGET
from tests.helpers.gateway import ROOT, identity, running_gateway

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
HERE = Path(__file__).parent


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


async def test_the_document_is_valid_openapi_with_every_route_and_the_messages_they_carry(echo_gateway, full_gateway):
    response = await full_gateway.get("/api/hooks/v1/openapi.json")  # no identity needed
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "/", "description": "The gateway serving this document."}]
    operations = {(method.upper(), _shape(path)) for path, item in document["paths"].items() for method in item}
    routes = {(r.http_method, _shape(r.template.openapi_path())) for r in full_gateway.app[GATEWAY_KEY].routes}
    assert operations == routes and len(routes) == len(full_gateway.app[GATEWAY_KEY].routes)
    # One path per resource: GET /endpoints/{id} and PATCH /endpoints/{endpoint.id} are one path.
    shapes = [_shape(path) for path in document["paths"]]
    assert len(shapes) == len(set(shapes))
    schemas = document["components"]["schemas"]
    assert "google.rpc.Status" in schemas and "hooks.events.v1.Event" in schemas
    assert "hooks.registry.v1.RegisterApplicationRequest" not in schemas  # an internal call's

    # Descriptions are the proto comments.
    create = document["paths"]["/api/hooks/v1/endpoints"]["post"]
    assert create["summary"] == "Creates an endpoint."
    assert create["description"].startswith("Creates an endpoint. A signing secret is generated")
    endpoint = schemas["hooks.registry.v1.Endpoint"]
    assert endpoint["properties"]["name"]["description"] == "Unique within the account; 1 to 200 characters."
    assert endpoint["properties"]["id"]["readOnly"] is True
    assert endpoint["properties"]["secret"]["writeOnly"] is True
    assert endpoint["properties"]["createTime"] == {"type": "string", "format": "date-time", "readOnly": True}
    assert "required" not in endpoint  # a response's: every field is there
    assert "ENDPOINT_TYPE_SLACK" in schemas["hooks.registry.v1.EndpointType"]["enum"]
    assert "A Slack incoming webhook." in schemas["hooks.registry.v1.EndpointType"]["description"]

    # What a request carries: the bounds the services enforce (services.common.bounds), no other field.
    created = schemas["hooks.registry.v1.EndpointInput"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/hooks.registry.v1.EndpointInput"
    }
    assert set(created["required"]) == {"name", "type", "target"} and created["additionalProperties"] is False
    name = created["properties"]["name"]
    assert (name["minLength"], name["maxLength"]) == (1, 200)
    assert re.fullmatch(_python(name["pattern"]), "ops team") and not re.fullmatch(_python(name["pattern"]), "  ")
    assert not re.fullmatch(_python(name["pattern"]), "ops\x00")
    assert "ENDPOINT_TYPE_UNSPECIFIED" not in created["properties"]["type"]["enum"]
    assert "ENDPOINT_TYPE_EMAIL" in created["properties"]["type"]["enum"]
    assert created["properties"]["headers"]["maxProperties"] == 20
    assert created["properties"]["rateLimit"]["allOf"] == [
        {"$ref": "#/components/schemas/hooks.registry.v1.RateLimitInput"}
    ]
    assert schemas["hooks.registry.v1.RateLimitInput"]["properties"]["requests"]["maximum"] == 100_000
    assert schemas["hooks.registry.v1.FilterInput"]["properties"]["endpointIds"]["minItems"] == 1
    publish = schemas["hooks.matcher.v1.PublishMessageRequest"]["properties"]
    assert (publish["application"]["minLength"], publish["application"]["maxLength"]) == (1, 255)
    assert "minLength" not in publish["level"]  # an event type may have no levels

    # Errors: each a google.rpc.Status as the gateway sends it, declared where the calls answer them.
    assert set(create["responses"]) == {"200", "400", "401", "409", "413", "429", "5XX"}
    get = document["paths"]["/api/hooks/v1/endpoints/{id}"]["get"]
    assert set(get["responses"]) == {"200", "400", "401", "404", "5XX"}
    not_found = document["components"]["responses"]["NotFound"]
    assert not_found["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/google.rpc.Status"}

    # Path variables, query parameters for the rest, the body mapping, response_body.
    # A nested path variable's parameter name has "_" for ".": OpenAPI tools read "{a.b}" as an attribute.
    # PATCH /endpoints/{endpoint.id} is filed under the one path of the endpoint, its parameter `id`.
    update = document["paths"]["/api/hooks/v1/endpoints/{id}"]["patch"]
    assert [(p["name"], p["in"]) for p in update["parameters"]] == [("id", "path"), ("updateMask", "query")]
    assert update["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/hooks.registry.v1.EndpointUpdate"
    }
    # An update's body: any writable field, at least one; none required, `type` (immutable) not at all.
    patch = schemas["hooks.registry.v1.EndpointUpdate"]
    assert "required" not in patch and "type" not in patch["properties"] and patch["minProperties"] == 1
    assert update["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/hooks.registry.v1.Endpoint"
    }
    # Links from a create to the calls on what it created (schemathesis' stateful phase follows them).
    links = document["paths"]["/api/hooks/v1/endpoints"]["post"]["responses"]["200"]["links"]
    assert links["EndpointService_GetEndpoint"]["parameters"] == {"id": "$response.body#/id"}
    assert links["EndpointService_UpdateEndpoint"]["parameters"] == {"id": "$response.body#/id"}
    assert links["DeliveryService_SendTestMessage"]["parameters"] == {"endpoint_id": "$response.body#/id"}
    listing = document["paths"]["/api/hooks/v1/deliveries"]["get"]
    assert [p["name"] for p in listing["parameters"]] == [
        "pageSize",
        "pageToken",
        "endpointId",
        "status",
        "eventId",
        "createdAfter",
        "createdBefore",
        "application",
    ]
    assert listing["parameters"][0]["schema"] == {"type": "integer", "format": "int32", "minimum": 0, "maximum": 1000}
    assert listing["parameters"][3]["schema"] == {"$ref": "#/components/schemas/hooks.sender.v1.DeliveryStatus"}
    assert listing["parameters"][2]["schema"] == {"type": "string"}  # any text: the sender looks it up as it is
    by_endpoint = document["paths"]["/api/hooks/v1/endpoints/{endpoint_id}/deliveries"]["get"]
    assert [p["name"] for p in by_endpoint["parameters"]][0] == "endpoint_id"
    assert "endpointId" not in [p["name"] for p in by_endpoint["parameters"]]
    retry = document["paths"]["/api/hooks/v1/deliveries/{id}:retry"]["post"]
    assert retry["requestBody"]["content"]["application/json"]["schema"]["properties"] == {}
    watch = document["paths"]["/api/hooks/v1/deliveries:watch"]["get"]
    assert "text/event-stream" in watch["responses"]["200"]["content"]
    # Resumable: the events' ids are resume tokens, sent back as Last-Event-ID or resumeToken.
    assert {(p["name"], p["in"]) for p in watch["parameters"]} >= {
        ("resumeToken", "query"),
        ("Last-Event-ID", "header"),
    }
    assert "`id:`" in watch["responses"]["200"]["description"]
    assert not [path for path in document["paths"] if "testing" in path]

    # A test-only proto's routes appear in its gateway's document, described by its comments.
    echo = (await echo_gateway.get("/api/hooks/v1/openapi.json")).json()
    validate(echo)
    operation = echo["paths"]["/api/testing/v1/rooms/{room_id}/echoes/{id}"]["get"]
    assert operation["summary"] == "Echoes the request back."
    names = [p["name"] for p in operation["parameters"]]
    assert names[:2] == ["room_id", "id"]
    assert {"pageSize", "tags", "color", "room.displayName", "room.capacity", "since"} <= set(names)
    assert "room.id" not in names[2:]
    assert {"/api/testing/v1/rooms/{room_id}/echoes:shout", "/api/testing/v1/echoes/{id}"} <= set(echo["paths"])
    assert "Hidden" not in json.dumps(echo["paths"])


async def test_the_reference_page_renders_the_document_with_assets_the_gateway_serves():
    """/api/hooks/v1/docs: Swagger UI (the swagger-ui-bundle-v2 package's files, no CDN) on the served
    document, without an identity, as a browser opens it; its URLs are relative to the page."""
    async with running_gateway() as client:
        page = await client.get("/api/hooks/v1/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        html = page.text
        assert 'url: "openapi.json"' in html and "SwaggerUIBundle(" in html
        referenced = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert "docs/assets/swagger-ui-bundle.js" in referenced and "docs/assets/swagger-ui.css" in referenced
        assert not [url for url in referenced if "//" in url or url.startswith("/")]  # nothing from elsewhere
        kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
        for url in referenced:
            asset = await client.get(urljoin("/api/hooks/v1/docs", url))
            assert asset.status_code == 200, url
            assert kinds[Path(url).suffix] in asset.headers["content-type"], (url, asset.headers["content-type"])
        bundle = await client.get("/api/hooks/v1/docs/assets/swagger-ui-bundle.js")
        assert "SwaggerUIBundle" in bundle.text
        document = await client.get(urljoin("/api/hooks/v1/docs", "openapi.json"))
        assert document.status_code == 200 and document.json()["openapi"].startswith("3.")
        # Only the description is public: the API beside it still wants an identity.
        assert (await client.get("/api/hooks/v1/docs/assets/../../endpoints")).status_code == 401
        assert (await client.get("/api/hooks/v1/docs/assets/nothing.js")).status_code == 404


def _python(pattern: str) -> str:
    """An OpenAPI (ECMAScript) pattern of the document as Python's re reads it: the same, anchors aside."""
    return pattern.removeprefix("^").removesuffix("$")


async def test_redocly_finds_no_error_and_no_warning(full_gateway, tmp_path):
    """Redocly's recommended rules (redocly.yaml says which are off, and why) on the served document."""
    redocly = ROOT / "node_modules" / ".bin" / "redocly"
    assert redocly.exists(), "redocly is missing: `make test` installs it from npm (package.json)"
    document = tmp_path / "openapi.json"
    document.write_bytes((await full_gateway.get("/api/hooks/v1/openapi.json")).content)
    process = await asyncio.create_subprocess_exec(
        str(redocly),
        "lint",
        str(document),
        "--config",
        str(ROOT / "redocly.yaml"),
        "--format",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true", "NO_COLOR": "1"},
    )
    output, errors = await asyncio.wait_for(process.communicate(), 120)
    report = json.loads(output)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, json.dumps(report["problems"], indent=1)
    assert process.returncode == 0, errors.decode()


async def test_schemathesis_with_every_check_and_phase_finds_nothing(full_gateway, tmp_path):
    """schemathesis against the whole system behind the gateway, every check (among them: schema-valid
    requests are accepted and schema-violating ones refused, Allow names the document's methods, a
    deleted resource is gone) in every phase. What a valid request is beyond the schema (a registered
    application, an existing endpoint) comes from tests/gateway/schemathesis_hooks.py, its settings
    from tests/gateway/schemathesis.toml."""
    fuzzer = identity("acct-fuzz")
    created = await full_gateway.post(
        "/api/hooks/v1/endpoints",
        json={"name": "fuzz target", "type": "ENDPOINT_TYPE_WEBHOOK", "target": WEB_TARGET},
        headers=fuzzer,
    )
    assert created.status_code == 200, created.text
    base = str(full_gateway.base_url).rstrip("/")
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{base}/api/hooks/v1/openapi.json",
        "--url",
        base,
        "--header",
        f"x-rh-identity: {fuzzer['x-rh-identity']}",
        "--checks",
        "all",
        "--exclude-operation-id",
        "DeliveryService_WatchDeliveries",  # an endless stream
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "8",
        "--max-time",
        "60",
        "--request-timeout",
        "10",
        "--seed",
        "1",
        # One worker: CPython 3.11.7's ast module is not thread-safe (gh-106905, "AST constructor
        # recursion depth mismatch"), and hypothesis parses lambda sources with it in each worker.
        "--workers",
        "1",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={
            **os.environ,
            "NO_COLOR": "1",
            "SCHEMATHESIS_HOOKS": "tests.gateway.schemathesis_hooks",
            "PYTHONPATH": str(ROOT),
            "HOOKS_FUZZ_ENDPOINT_ID": created.json()["id"],
        },
    )
    output, _ = await asyncio.wait_for(process.communicate(), 180)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-8000:]
    summary = text[text.rindex("SUMMARY") :]
    assert "Failures:" not in summary and "Errors:" not in summary, summary


def test_every_bound_names_a_field_of_its_kind():
    """services/common/bounds.py is keyed by field names: a misspelt or outgrown one would bound nothing."""
    fields = {}
    pending = [m for file in default_file_descriptors() for m in file.message_types_by_name.values()]
    while pending:
        message = pending.pop()
        pending.extend(message.nested_types)
        fields.update({field.full_name: field for field in message.fields})
    for name, bounds in FIELD_BOUNDS.items():
        field = fields.get(name)
        assert field is not None, f"{name} is no field"
        entry = (
            field.message_type if field.message_type is not None and field.message_type.GetOptions().map_entry else None
        )
        value = entry.fields_by_name["value"] if entry is not None else field
        if bounds.min_items is not None or bounds.max_items is not None:
            assert field.is_repeated, name
        if bounds.min_length is not None or bounds.max_length is not None or bounds.pattern is not None:
            assert value.type == value.TYPE_STRING, name
        if bounds.minimum is not None or bounds.maximum is not None:
            assert value.cpp_type in (value.CPPTYPE_INT32, value.CPPTYPE_INT64, value.CPPTYPE_UINT32), name
        if bounds.specified:
            assert value.enum_type is not None, name
