"""schemathesis' hooks for tests/gateway/test_openapi.py (SCHEMATHESIS_HOOKS names this module).

The OpenAPI document declares every bound a request's fields have on their own (services/common/
bounds.py); what makes a request valid beyond them, OpenAPI 3.0 cannot say: that a name is registered
or an endpoint exists (the registry answers 400 naming the field), that one field goes with another (a
time range's end after its start, an e-mail type with an address), that a certificate parses. Here
schemathesis' *positive* cases, those it promises the API accepts, are made to hold these too, with
the data the test set up: the application `policies`, and the endpoint HOOKS_FUZZ_ENDPOINT_ID of the
account. Negative cases are left as schemathesis made them (the API must refuse every one), but for
an update's mask (see `_negative`).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import schemathesis
from schemathesis.core.parameters import ParameterLocation

from services.common.bounds import TEXT

#: Registered by the test (tests.helpers.gateway.register_policies).
APPLICATION, EVENT_TYPE, LEVEL = "policies", "policy-triggered", "high"
EMAIL_TARGET = "ops@example.com"
#: A loopback port nothing listens on (the test stack's sender may reach loopback): a test send to an
#: endpoint schemathesis made fails at once, where a name to resolve could outlast the request's timeout.
WEB_TARGET = "http://127.0.0.1:9/hooks"


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keeps every failure but two that are not. One, use_after_free on GET /endpoints/{id}/deliveries.
    An endpoint's deliveries are a log that outlives it (their attempts, their replay), listed after
    the endpoint is deleted as GET /deliveries?endpointId= lists them; the check expects every path
    under a deleted resource to be 404. The other, "schema-valid request rejected" for a case whose
    path parameter is not schema-valid (`_breaks_a_path_pattern`)."""
    usage = getattr(failure, "usage", "")
    if (
        type(failure).__name__ == "UseAfterFree"
        and usage.startswith("GET ")
        and usage.split("?")[0].endswith("/deliveries")
    ):
        return False
    return not (type(failure).__name__ == "RejectedPositiveData" and _breaks_a_path_pattern(case))


def _breaks_a_path_pattern(case: Any) -> bool:
    """Whether a path parameter holds a control character, which the pattern the document declares for
    every path parameter (an id: services/common/bounds.py) excludes. schemathesis' stateful phase,
    where a link finds no value in an earlier answer (a create refused), fills the parameter without
    its pattern (seen: ids holding U+001B and U+0084) and reports the 400 naming it as "schema-valid
    request rejected"; it is not schema-valid. (filter_case is not asked in the stateful phase.)"""
    values = (case.path_parameters or {}).values()
    # Percent-decoded as the gateway decodes it: a value taken from a link may arrive already encoded.
    return any(isinstance(v, str) and not re.match(TEXT, unquote(v)) for v in values)


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """The endpoint the filters' cases name stays: schemathesis reuses the ids answers show it, and a
    DELETE of this one would turn every later filter it makes invalid."""
    method = case.operation.label.partition(" ")[0]
    return not (method == "DELETE" and (case.path_parameters or {}).get("id") == os.environ["HOOKS_FUZZ_ENDPOINT_ID"])


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    if meta is None:
        return case
    if not meta.generation.mode.is_positive:
        _negative(case)
        return case
    method, _, path = case.operation.label.partition(" ")
    if isinstance(case.query, dict):
        _positive_query(case.query)
    if isinstance(case.body, dict):
        _positive_body(method, path, case.body)
    return case


def _negative(case: Any) -> None:
    """An update with an explicit mask ignores the body's other fields (AIP-134: only the named ones
    change), so a body made to break the schema would test nothing beside a valid mask: the mask goes,
    and the body's fields are the mask."""
    components = case.meta.components
    body, query = components.get(ParameterLocation.BODY), components.get(ParameterLocation.QUERY)
    if isinstance(case.query, dict) and "updateMask" in case.query and body is not None and not body.mode.is_positive:
        if query is None or query.mode.is_positive:
            del case.query["updateMask"]


def _positive_query(query: dict[str, Any]) -> None:
    # A page token is one the API made for the same query (services/common/paging.py): start at the first page.
    query.pop("pageToken", None)
    # On an update, an explicit mask that names a field the body lacks clears it (AIP-134), which a
    # required field refuses: let the fields present in the body be the mask.
    query.pop("updateMask", None)
    _time_range(query)


def _positive_body(method: str, path: str, body: dict[str, Any]) -> None:
    _time_range(body)
    if path.startswith("/api/hooks/v1/messages"):
        body.update(application=APPLICATION, eventType=EVENT_TYPE, level=LEVEL)
    elif path.startswith("/api/hooks/v1/filters"):
        _registered_names(body)
    elif path.startswith("/api/hooks/v1/endpoints") and not path.endswith(":test"):
        _endpoint(method, body)


def _time_range(values: dict[str, Any]) -> None:
    """A range ends after it starts (the sender refuses created_before <= created_after)."""
    after, before = values.get("createdAfter"), values.get("createdBefore")
    if isinstance(after, str) and isinstance(before, str):
        try:
            empty = datetime.fromisoformat(before) <= datetime.fromisoformat(after)
        except ValueError:
            return
        if empty:
            del values["createdBefore"]


def _registered_names(body: dict[str, Any]) -> None:
    """What a filter names exists: the registered application, its event type and level, and an
    endpoint of the account."""
    if body.get("applications"):
        body["applications"] = [APPLICATION]
    if body.get("eventTypes"):
        body["eventTypes"] = [{"application": APPLICATION, "eventType": EVENT_TYPE}]
    if body.get("levels"):
        body["levels"] = [{"application": APPLICATION, "eventType": EVENT_TYPE, "level": LEVEL}]
    if "endpointIds" in body:
        body["endpointIds"] = [os.environ["HOOKS_FUZZ_ENDPOINT_ID"]]


def _endpoint(method: str, body: dict[str, Any]) -> None:
    """The target the type wants (an update does not know the type: it leaves the target alone),
    header names that are HTTP tokens hooks does not set itself, a rate limit's period with its
    number, no certificate (one that parses is no pattern)."""
    if "target" in body:
        if method == "PATCH":
            del body["target"]
        else:
            body["target"] = EMAIL_TARGET if body.get("type") == "ENDPOINT_TYPE_EMAIL" else WEB_TARGET
    if isinstance(body.get("headers"), dict):
        body["headers"] = {f"X-Fuzz-{index}": value for index, value in enumerate(body["headers"].values())}
    if body.get("caCertificate"):
        del body["caCertificate"]
    rate = body.get("rateLimit")
    if isinstance(rate, dict):
        if rate.get("requests"):
            rate["period"] = "RATE_LIMIT_PERIOD_SECOND"
        else:
            rate.pop("period", None)
    if method == "PATCH" and not body:
        body["description"] = "changed by schemathesis"
