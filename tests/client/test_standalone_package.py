"""`pip install ./client` in a fresh virtualenv gives a working hooks_client on its own (none of the
services' packages), and its example and the snippets of client/README.md register and publish against
the real system, as written."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.stack import running_stack
from tests.helpers.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("client-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT / "client")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


def run_in(
    venv: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKS_", "PYTHON"))}
    return subprocess.run(
        [str(venv / "bin" / "python"), *args], capture_output=True, text=True, timeout=120,
        env={**clean, **(env or {})}, cwd=cwd or venv,
    )  # fmt: skip


def test_the_package_stands_alone(client_venv):
    probe = run_in(
        client_venv,
        "-c",
        "import hooks_client, hooks.matcher.v1.matcher_pb2, importlib.util as u;"
        "print(hooks_client.__file__); print([m for m in ('services', 'sqlalchemy', 'cli', 'gateway') if u.find_spec(m)])",
    )
    assert probe.returncode == 0, probe.stderr
    location, missing = probe.stdout.splitlines()
    assert str(client_venv) in location and missing == "[]"
    # What a producer type-checks against ships with it.
    assert (
        run_in(
            client_venv,
            "-c",
            "import hooks_client, pathlib; print((pathlib.Path(hooks_client.__file__).parent / 'py.typed').exists())",
        ).stdout.strip()
        == "True"
    )


async def test_its_example_registers_and_publishes(client_venv, sqlite_url, kafka, topics):
    async with running_stack(sqlite_url, kafka.bootstrap_servers, topics) as stack:
        await stack.subscribe("000001", "/hook")
        env = {
            "HOOKS_REGISTRY_TARGET": stack.registry_target,
            "HOOKS_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
            "HOOKS_KAFKA_TOPIC": stack.kafka.topic,
            "HOOKS_MATCHER_TARGET": stack.matcher_target,
        }
        ran = await asyncio.to_thread(
            run_in, client_venv, str(ROOT / "examples" / "hooks_client_quickstart.py"), env=env
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        ids = [
            line.split(": ", 1)[1].split()[0] for line in ran.stdout.splitlines() if line.startswith("published over")
        ]
        assert len(ids) == 2, ran.stdout
        assert "refused before sending (invalid_value)" in ran.stdout
        await eventually(lambda: set(ids) <= {json.loads(r.body)["id"] for r in stack.receiver.at("/hook")})
        again = await asyncio.to_thread(
            run_in, client_venv, str(ROOT / "examples" / "hooks_client_quickstart.py"), env=env
        )
        assert again.returncode == 0 and "no change" in again.stdout, again.stdout + again.stderr


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (ROOT / "client" / "README.md").read_text(), re.S)


async def test_its_readme_examples_run_as_written(client_venv, sqlite_url, kafka, topics, tmp_path):
    """client/README.md's snippets, each saved as a script and run from the checkout as a newcomer would:
    register, then (with the README's own schema'd document registered over it, removing nothing)
    publish over Kafka, asyncio and gRPC; every message is delivered, none dead-lettered."""
    register_block, *publish_blocks = readme_blocks("python")
    (document,) = readme_blocks("yaml")
    async with running_stack(sqlite_url, kafka.bootstrap_servers, topics) as stack:
        await stack.subscribe("000001", "/hook")
        env = {
            "HOOKS_REGISTRY_TARGET": stack.registry_target,
            "HOOKS_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
            "HOOKS_KAFKA_TOPIC": stack.kafka.topic,
            "HOOKS_MATCHER_TARGET": stack.matcher_target,
        }

        async def run_block(number: int, code: str) -> str:
            script = tmp_path / f"block{number}.py"
            script.write_text(code)
            ran = await asyncio.to_thread(run_in, client_venv, str(script), env=env, cwd=ROOT)
            assert ran.returncode == 0, f"README block {number}:\n{code}\n{ran.stdout}{ran.stderr}"
            return ran.stdout

        assert "application created" in await run_block(0, register_block)
        (tmp_path / "policies.yaml").write_text(document)
        summary = await run_block(
            1,
            f"from hooks_client import register\nprint(*register({str(tmp_path / 'policies.yaml')!r}).summary(), sep='\\n')",
        )
        assert "removed" not in summary and "changed (schema)" in summary, summary
        ids: list[str] = []
        for number, code in enumerate(publish_blocks, start=2):
            printed = re.findall(
                r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", await run_block(number, code)
            )
            assert printed, f"README block {number} printed no id"
            ids += printed
        await eventually(
            lambda: set(ids) <= {json.loads(r.body)["id"] for r in stack.receiver.at("/hook")},
            message=f"{ids} delivered",
        )
        assert not await stack.dead_letters.read()
