"""The contract: protos lint clean under buf STANDARD, and gen/ is what `make proto` makes of them."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from tools import protogen

ROOT = Path(__file__).resolve().parent.parent


def _differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__", "README.md"])
    found: list[str] = []

    def walk(cmp: filecmp.dircmp, prefix: str) -> None:
        found.extend(f"only in fresh output: {prefix}{n}" for n in cmp.left_only)
        found.extend(f"only in gen/: {prefix}{n}" for n in cmp.right_only)
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        found.extend(f"differs: {prefix}{n}" for n in mismatch + errors)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(comparison, "")
    return found


def test_generated_code_is_fresh(tmp_path):
    protogen.generate(tmp_path)
    stale = _differences(tmp_path, protogen.GEN)
    assert not stale, "gen/ is stale; run `make proto`:\n" + "\n".join(stale)


def test_buf_lint_passes():
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        buf_path = shutil.which("buf")
        assert buf_path, "buf is missing: `make test` installs it from npm (package.json)"
        buf = Path(buf_path)
    result = subprocess.run([str(buf), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "module",
    [
        "hooks.registry.v1.applications_pb2",
        "hooks.registry.v1.endpoints_pb2",
        "hooks.registry.v1.filters_pb2",
        "hooks.sender.v1.deliveries_pb2",
        "hooks.matcher.v1.matcher_pb2",
    ],
)
def test_every_public_rpc_has_an_http_rule(module):
    """Internal RPCs (registration, routing, Deliver, DeliverBatch) are the only ones without one."""
    import importlib

    from google.api import annotations_pb2

    internal = {"RegisterApplication", "Deliver", "DeliverBatch"}
    descriptor = importlib.import_module(module).DESCRIPTOR
    for service in descriptor.services_by_name.values():
        for method in service.methods:
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            has_rule = rule.WhichOneof("pattern") is not None
            assert has_rule != (method.name in internal), f"{service.name}.{method.name}"
            if has_rule:
                path = getattr(rule, rule.WhichOneof("pattern"))
                assert path.startswith("/api/hooks/v1/"), path
