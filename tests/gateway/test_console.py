"""The console's files and /console/config.json as the gateway serves them (the console itself, in a
browser, is tests/e2e/test_e2e_console.py): what the page learns first, the headers that keep it to
its own origin, that every file it loads is part of the project (offline: no CDN), and that only
development turns the sign-in on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli.run import SERVICES, child_environment
from gateway.console import STATIC
from gateway.settings import GatewaySettings
from tests.helpers.gateway import identity, running_gateway

MODULE_IMPORT = re.compile(r"""^\s*(?:import|export)\b[^'"]*?\bfrom\s*["']([^"']+)["']""", re.MULTILINE)


async def test_config_says_whether_the_gateway_is_in_development_and_whose_identity_arrived():
    async with running_gateway(GatewaySettings()) as client:
        answer = await client.get("/console/config.json")
        assert answer.status_code == 200
        assert answer.json() == {"development": False, "account": None, "apiBase": "/api/hooks/v1"}
        # Behind the platform's proxy the request carries the caller's identity: the page shows whose.
        assert (await client.get("/console/config.json", headers=identity("acct-7"))).json()["account"] == "acct-7"
        unreadable = await client.get("/console/config.json", headers={"x-rh-identity": "not base64"})
        assert unreadable.json()["account"] is None
    async with running_gateway(GatewaySettings(gateway_development=True)) as client:
        assert (await client.get("/console/config.json")).json()["development"] is True


async def test_the_page_and_its_files_are_served_without_an_identity_and_kept_to_this_origin():
    async with running_gateway(GatewaySettings()) as client:
        moved = await client.get("/console")
        assert (moved.status_code, moved.headers["location"]) == (301, "/console/")
        page = await client.get("/console/")
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert '<script type="module" src="/console/app.js">' in page.text
        script = await client.get("/console/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")  # what a module script needs
        assert (await client.get("/console/console.css")).headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/console/missing.js", "/console/%2e%2e/settings.py", "/console/../app.py"])
async def test_only_the_console_files_are_served(path):
    async with running_gateway(GatewaySettings()) as client:
        answer = await client.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "import" not in answer.text


def test_every_file_the_page_loads_is_part_of_the_project():
    """Offline: the page's scripts and styles come from static/, and every module imports only its siblings."""
    files = {path.name for path in STATIC.iterdir()}
    index = (STATIC / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="([^"#]+)"', index)
    assert loaded, "index.html loads nothing"
    for reference in loaded:
        assert reference.startswith("/console/"), reference
        assert reference.removeprefix("/console/") in files, reference
    for module in STATIC.glob("*.js"):
        for target in MODULE_IMPORT.findall(module.read_text()):
            assert target.startswith("./") and target[2:] in files, f"{module.name} imports {target}"
    assert "url(http" not in (STATIC / "console.css").read_text()
    assert "@import" not in (STATIC / "console.css").read_text()


def test_hooks_run_puts_the_gateway_in_development_and_production_does_not(monkeypatch):
    assert GatewaySettings().gateway_development is False  # the default everywhere else (k8s, the image)
    env = child_environment({}, SERVICES, "127.0.0.1:9092", Path("var"))
    assert env["HOOKS_GATEWAY_DEVELOPMENT"] == "true"
    monkeypatch.setenv("HOOKS_GATEWAY_DEVELOPMENT", env["HOOKS_GATEWAY_DEVELOPMENT"])
    assert GatewaySettings().gateway_development is True
    # What the operator says wins.
    assert (
        child_environment({"HOOKS_GATEWAY_DEVELOPMENT": "false"}, SERVICES, "x:1", Path("var"))[
            "HOOKS_GATEWAY_DEVELOPMENT"
        ]
        == "false"
    )
