"""google.api.http path templates: variables (nested, with patterns), wildcards, the `:verb`."""

from __future__ import annotations

import pytest

from gateway.path_template import TemplateError, parse


def test_variables_and_verbs():
    retry = parse("/api/hooks/v1/deliveries/{id}:retry")
    assert retry.variables == ("id",) and retry.verb == "retry"
    assert retry.match("/api/hooks/v1/deliveries/d-1:retry") == {"id": "d-1"}
    assert retry.match("/api/hooks/v1/deliveries/d-1") is None
    assert retry.match("/api/hooks/v1/deliveries/a/b:retry") is None
    watch = parse("/api/hooks/v1/deliveries:watch")
    assert watch.match("/api/hooks/v1/deliveries:watch") == {}
    assert watch.match("/api/hooks/v1/deliveries") is None
    nested = parse("/v1/endpoints/{endpoint.id}")
    assert nested.match("/v1/endpoints/e%20x") == {"endpoint.id": "e x"}
    assert nested.openapi_path() == "/v1/endpoints/{endpoint_id}"


def test_patterns_and_wildcards():
    books = parse("/v1/{name=shelves/*/books/*}")
    assert books.match("/v1/shelves/s1/books/b2") == {"name": "shelves/s1/books/b2"}
    assert books.match("/v1/shelves/s1") is None
    assert books.openapi_path() == "/v1/{name}"
    rest = parse("/v1/files/{path=**}")
    assert rest.match("/v1/files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert parse("/v1/*/x").match("/v1/anything/x") == {}


def test_specificity_puts_verbs_and_literals_first():
    templates = [parse(t) for t in ["/v1/d/{id}", "/v1/d/{id}:retry", "/v1/d/x"]]
    ordered = sorted(templates, key=lambda t: t.specificity, reverse=True)
    assert [t.template for t in ordered] == ["/v1/d/{id}:retry", "/v1/d/x", "/v1/d/{id}"]


@pytest.mark.parametrize("bad", ["v1/x", "/v1//x", "/v1/{id", "/v1/{1id}", "/v1/x:", "/v1/{a=b c}"])
def test_bad_templates_are_refused(bad):
    with pytest.raises(TemplateError):
        parse(bad)
