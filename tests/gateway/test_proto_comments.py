"""The OpenAPI descriptions' source: comments from protoc's source info, or, where grpc_tools is not
installed (the production image), from the .proto text; both must give the same answers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gateway import proto_comments
from gateway.proto_source import comments_of_text
from tests.gateway.harness import ROOT, TEST_PROTOS

PROTOS = ROOT / "protos"


@pytest.mark.parametrize(
    "root, files",
    [
        (PROTOS, sorted(PROTOS.rglob("*.proto"))),  # ours and the vendored googleapis ones
        (TEST_PROTOS, sorted(TEST_PROTOS.rglob("*.proto"))),
    ],
    ids=["protos", "test-protos"],
)
def test_the_text_reader_gives_protocs_answers(root, files):
    by_protoc = proto_comments._comments_by_protoc([root, PROTOS], files)
    by_text = proto_comments._comments_by_parser(files)
    assert by_protoc and by_text == by_protoc


def test_without_grpc_tools_the_comments_come_from_the_text(monkeypatch):
    with_protoc = proto_comments.load_comments([PROTOS])
    monkeypatch.setitem(sys.modules, "grpc_tools", None)  # import grpc_tools now raises ImportError
    assert proto_comments.load_comments([PROTOS]) == with_protoc
    assert with_protoc["hooks.registry.v1.EndpointService.CreateEndpoint"].startswith("Creates an endpoint.")
    assert with_protoc["hooks.registry.v1.EndpointType.ENDPOINT_TYPE_SLACK"] == "A Slack incoming webhook."


def test_leading_comments_only():
    text = """
syntax = "proto3";
package p.v1;

// Detached: a blank line follows.

// About M,
// on two lines.
message M {
  string a = 1;  // trailing, not a's leading comment
  // About b.
  map<string, int32> b = 2 [deprecated = true];
  oneof choice {
    // About c.
    string c = 3;
  }
  /* About N. */
  message N {}
}
"""
    assert {k: v.strip() for k, v in comments_of_text(text).items()} == {
        "p.v1.M": "About M,\n on two lines.",
        "p.v1.M.b": "About b.",
        "p.v1.M.c": "About c.",
        "p.v1.M.N": "About N.",
    }


def test_missing_protos_mean_no_descriptions(tmp_path: Path):
    assert proto_comments.load_comments([tmp_path / "nowhere"]) == {}
