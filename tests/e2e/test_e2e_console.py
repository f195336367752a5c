"""The web console in a real browser (Debian's Chromium, driven by Playwright), through the real gateway
and services: an account admin's tasks done the way a person does them, by clicking.

Each test gets the whole system (`console_stack`: registry, sender, matcher and gateway in this
process, the session's broker) and a fresh browser profile; messages are published to Kafka as the
other end-to-end tests publish them, and delivered to the stack's loopback receiver.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, expect
from standardwebhooks.webhooks import Webhook

from gateway.app import build_app
from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from hooks.registry.v1 import endpoints_pb2
from services.common.identity import IDENTITY_HEADER, identity_metadata
from tests.helpers.browser import VIEWPORT, console_page
from tests.helpers.e2e import incoming
from tests.helpers.gateway import identity
from tests.helpers.stack import Stack
from tests.helpers.waiting import eventually

#: How long the page may take to show what the services did (a delivery arriving, a retry).
SLOW = 20_000


def console_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.gateway.port}/console/"


async def sign_in(page: Page, stack: Stack, account: str) -> None:
    """The development sign-in: the console asks for an account before anything else."""
    await page.goto(console_url(stack))
    await expect(page.locator("#signin")).to_be_visible()
    await page.fill("#signin-account", account)
    await page.click("#signin-submit")
    await expect(page.locator("#account")).to_have_text(account)
    await expect(page.locator("h1")).to_have_text("Endpoints")


async def create_endpoint(page: Page, name: str, target: str) -> str:
    """Creates a webhook endpoint with the form (no secret given: hooks generates one); returns its id."""
    await page.click("text=New endpoint")
    await page.fill("#endpoint-name", name)
    await page.fill("#endpoint-target", target)
    await page.click("#save-endpoint")
    await expect(page.locator("h1")).to_contain_text(name)
    match = re.search(r"#/endpoints/([^/?]+)$", page.url)
    assert match, page.url
    return match.group(1)


async def open_page(page: Page, name: str) -> None:
    """Follows the main navigation's link `name` (Endpoints, Filters, Deliveries, Live)."""
    await page.get_by_role("navigation").get_by_role("link", name=name, exact=True).click()


def accept_dialogs(page: Page) -> None:
    """Says yes to the console's confirmations (delete, disable, rotate, retry all)."""
    page.on("dialog", lambda dialog: dialog.accept())


async def test_create_an_endpoint_and_a_filter_publish_watch_it_arrive_open_its_attempts_and_retry_it(
    console_stack, browser
):
    stack, account = console_stack, f"acct-{uuid.uuid4().hex[:8]}"
    async with console_page(browser) as page:
        accept_dialogs(page)
        await sign_in(page, stack, account)
        await expect(page.locator(".empty")).to_contain_text("No endpoints yet")

        endpoint_id = await create_endpoint(page, "receiver", stack.receiver.url("/hook"))
        secret = await page.locator("#generated-secret").input_value()
        assert secret.startswith("whsec_"), secret

        # The builder offers what the applications API lists; the summary says what it matches.
        await open_page(page, "Filters")
        await page.click("text=New filter")
        await page.fill("#filter-name", "high policies")
        await page.check('input[data-app="policies"]')
        await page.check('input[data-app="policies"][data-event-type="policy-triggered"]')
        await page.check('input[data-event-type="policy-triggered"][data-level="high"]')
        assert await page.locator('input[data-level="low"]').count() == 1  # the event type's other level
        await page.check(f'input[data-endpoint="{endpoint_id}"]')
        summary = page.locator("#filter-summary")
        await expect(summary).to_contain_text("Applications: Policies")
        await expect(summary).to_contain_text("Event types: Policies / Policy triggered")
        await expect(summary).to_contain_text("Levels: Policies / Policy triggered: High")
        await page.click("#save-filter")
        row = page.locator("#filters tbody tr")
        await expect(row).to_have_count(1)
        await expect(row.locator(".triggers")).to_have_text("receiver")

        # The dry run: where an event would go, and where another would not.
        await page.select_option("#match-application", "policies")
        await page.select_option("#match-event-type", "policy-triggered")
        await page.select_option("#match-level", "high")
        await page.click("#match")
        await expect(page.locator("#match-result")).to_contain_text("This event would go to:")
        await expect(page.locator("#match-result .routes")).to_contain_text("receiver by high policies")
        await page.select_option("#match-level", "low")
        await page.click("#match")
        await expect(page.locator("#match-result")).to_contain_text("would go nowhere")

        # The live view, then a message published to Kafka as an application publishes it.
        await open_page(page, "Live")
        await expect(page.locator("#live-state")).to_have_text("live")
        message = incoming(account, "policies", "policy-triggered", "high", message={"policy": "cpu > 90%"})
        await stack.produce([json.dumps(message).encode()])
        arrived = page.locator('#live tbody tr[data-status="DELIVERY_STATUS_SUCCEEDED"]')
        await expect(arrived).to_have_count(1, timeout=SLOW)
        await expect(arrived.locator(".event")).to_have_text("policies / policy-triggered / high")

        [request] = stack.receiver.at("/hook")
        assert Webhook(secret).verify(request.body, request.headers)["id"] == message["id"]  # the secret shown

        # Its attempts, then a retry: a second attempt appears on the page as it happens.
        await arrived.locator("text=Attempts").click()
        attempts = page.locator("#attempts tbody tr")
        await expect(attempts).to_have_count(1)
        await expect(attempts.first.locator(".http-status")).to_have_text("200")
        await expect(attempts.first).to_contain_text("✓ succeeded")
        await expect(attempts.first.locator("pre.excerpt")).to_have_text("ok")  # the receiver's answer
        await page.click("#retry")
        await expect(attempts).to_have_count(2, timeout=SLOW)
        await expect(page.locator("h1 .badge")).to_have_text("succeeded", timeout=SLOW)
        first, second = stack.receiver.at("/hook")
        assert first.headers["webhook-id"] == second.headers["webhook-id"]  # one delivery, sent again


async def test_the_secret_is_shown_once_at_creation_and_once_at_rotation(console_stack, browser):
    stack, account = console_stack, f"acct-{uuid.uuid4().hex[:8]}"
    async with console_page(browser) as page:
        accept_dialogs(page)
        await sign_in(page, stack, account)
        endpoint_id = await create_endpoint(page, "signed", stack.receiver.url("/signed"))
        first = await page.locator("#generated-secret").input_value()
        await page.reload()
        await expect(page.locator("h1")).to_contain_text("signed")
        assert await page.locator("#secret-panel").count() == 0  # never shown again...
        await expect(page.locator("#settings")).to_contain_text(f"…{first[-4:]}")  # ...only its hint

        await page.click("#rotate-secret")
        second = await page.locator("#generated-secret").input_value()
        assert second.startswith("whsec_") and second != first
        await expect(page.locator("#secret-panel")).to_contain_text("previous secret keeps signing")
        await page.reload()
        await expect(page.locator("h1")).to_contain_text("signed")
        assert await page.locator("#secret-panel").count() == 0
        await expect(page.locator("#settings")).to_contain_text(f"Previous secret…{first[-4:]}")

        # Both secrets verify a delivery during the grace period: the test message shows its result.
        await page.click("#send-test")
        await expect(page.locator("#test-result")).to_contain_text("succeeded", timeout=SLOW)
        await expect(page.locator("#test-result")).to_contain_text("HTTP 200")
        [request] = stack.receiver.at("/signed")
        for secret in (first, second):
            assert Webhook(secret).verify(request.body, request.headers)["application"] == "hooks"

        # The API shows no secret either (what the console read it from was the one answer).
        answer = await stack.http.get(f"/api/hooks/v1/endpoints/{endpoint_id}", headers=identity(account))
        assert answer.json()["generatedSecret"] == ""


async def test_create_per_type_edit_refusing_a_bad_target_naming_the_field_disable_enable_and_delete(
    console_stack, browser
):
    stack, account = console_stack, f"acct-{uuid.uuid4().hex[:8]}"
    async with console_page(browser) as page:
        accept_dialogs(page)
        await sign_in(page, stack, account)
        # One form per type: what the target is, and which fields apply.
        await page.click("text=New endpoint")
        await page.select_option("#endpoint-type", "ENDPOINT_TYPE_EMAIL")
        await expect(page.locator('label[for="endpoint-target"]')).to_have_text("E-mail address")
        await expect(page.locator("#endpoint-headers")).to_be_hidden()
        await expect(page.locator("#endpoint-secret")).to_be_hidden()
        await page.select_option("#endpoint-type", "ENDPOINT_TYPE_SLACK")
        await expect(page.locator('label[for="endpoint-target"]')).to_have_text("Slack incoming webhook URL")
        await expect(page.locator("#endpoint-headers")).to_be_visible()
        await page.select_option("#endpoint-type", "ENDPOINT_TYPE_EMAIL")
        await page.fill("#endpoint-name", "ops mail")
        await page.fill("#endpoint-target", "ops@example.com")
        await page.click("#save-endpoint")
        await expect(page.locator("#settings")).to_contain_text("TypeE-mail")
        await expect(page.locator("#settings")).to_contain_text("ops@example.com")
        await open_page(page, "Endpoints")

        await create_endpoint(page, "editable", stack.receiver.url("/edit"))
        await page.click("#edit")
        await page.fill("#endpoint-target", "ftp://files.example.com/drop")
        await page.fill("#endpoint-description", "the ops team's")
        await page.click("#save-endpoint")
        await expect(page.locator(".form-errors")).to_contain_text(
            "endpoint.target: must be an http:// or https:// URL"
        )
        await expect(page.locator("#endpoint-target")).to_have_class(re.compile("invalid"))
        await page.fill("#endpoint-target", stack.receiver.url("/edited"))
        await page.click("#save-endpoint")
        await expect(page.locator("#settings")).to_contain_text(stack.receiver.url("/edited"))
        await expect(page.locator("#settings")).to_contain_text("the ops team's")

        await page.click("#disable")
        await expect(page.locator("h1 .badge")).to_have_text("disabled")
        await page.click("#enable")
        await expect(page.locator("h1 .badge")).to_have_text("enabled")
        await page.click("#delete")
        await expect(page.locator("h1")).to_have_text("Endpoints")
        await expect(page.locator("#endpoints .endpoint-name")).to_have_text(["ops mail"])  # the other one only


async def test_the_delivery_log_searches_and_retries_every_failed_delivery_in_view(console_stack, browser):
    stack, account = console_stack, f"acct-{uuid.uuid4().hex[:8]}"
    stack.receiver.script["/flaky"] = [400]  # the first attempt fails for good (a 4xx is not retried)
    endpoint = await stack.subscribe(account, "/flaky")
    message = incoming(account, "policies", "policy-created")
    await stack.produce([json.dumps(message).encode()])
    await eventually(lambda: stack.receiver.at("/flaky"), message="the first attempt")

    async with console_page(browser) as page:
        accept_dialogs(page)
        await sign_in(page, stack, account)
        await open_page(page, "Deliveries")
        await page.select_option("#search-status", "DELIVERY_STATUS_FAILED")
        await page.select_option("#search-endpoint", endpoint.id)
        await page.click("#delivery-search >> text=Search")
        row = page.locator("#deliveries tbody tr")
        await expect(row).to_have_count(1, timeout=SLOW)
        await expect(row.locator(".status")).to_have_text("failed")
        await expect(row).to_contain_text("HTTP 400")

        # Searched by application (the API's filter): another application's finds none, its own finds it.
        await page.select_option("#search-application", "hooks")
        await page.click("#delivery-search >> text=Search")
        await expect(page.locator(".empty")).to_have_text("No deliveries match.", timeout=SLOW)
        assert await page.locator("#retry-all").count() == 0  # would retry more than the view shows
        await page.select_option("#search-application", "policies")
        await page.click("#delivery-search >> text=Search")
        await expect(row).to_have_count(1, timeout=SLOW)
        assert await page.locator("#retry-all").count() == 0  # would retry more than the view shows
        await page.select_option("#search-application", "")
        await page.click("#delivery-search >> text=Search")

        await page.click("#retry-all")
        await expect(page.locator("#retry-all-result")).to_have_text("Queued 1 failed delivery again.")
        await eventually(lambda: len(stack.receiver.at("/flaky")) == 2, message="the retry is sent")
        await page.select_option("#search-status", "DELIVERY_STATUS_SUCCEEDED")
        await page.click("#delivery-search >> text=Search")
        await expect(row.locator(".status")).to_have_text("succeeded", timeout=SLOW)


@pytest.mark.parametrize("console_stack", [False], indirect=True)
async def test_outside_development_there_is_no_sign_in_and_the_proxy_identity_is_used(console_stack, browser):
    stack, account = console_stack, f"acct-{uuid.uuid4().hex[:8]}"
    hostile = '<img src=x onerror="window.pwned = 1">'  # what a tenant stored is shown as text, never run
    await stack.subscribe(account, "/proxied", {"name": hostile})

    async with console_page(browser) as page:
        sent: list[dict[str, str]] = []
        page.on("request", lambda request: sent.append(request.headers))
        await page.goto(console_url(stack))
        await expect(page.locator(".notice-error")).to_contain_text("Not signed in: missing x-rh-identity")
        assert await page.locator("#signin").count() == 0
        await expect(page.locator("#who")).to_have_text("")
        await page.goto(console_url(stack) + "#/signin")
        await expect(page.locator("main")).to_contain_text("The development sign-in is off")
        assert sent and not any(IDENTITY_HEADER in headers for headers in sent)  # the console sends none itself

    # Behind the platform's proxy every request carries the identity: the console shows that account's.
    async with console_page(browser, extra_http_headers=identity(account)) as page:
        await page.goto(console_url(stack))
        await expect(page.locator("#account")).to_have_text(account)
        await expect(page.locator("#endpoints tbody tr")).to_have_count(1)
        await expect(page.locator("#endpoints .target")).to_have_text(stack.receiver.url("/proxied"))
        await expect(page.locator("#endpoints .endpoint-name")).to_have_text(hostile)
        assert await page.locator("#endpoints img").count() == 0
        assert await page.evaluate("window.pwned") is None


async def test_pause_keeps_deliveries_pending_and_resume_sends_them(console_stack, browser):
    stack, account = console_stack, f"acct-{uuid.uuid4().hex[:8]}"
    paused = await stack.subscribe(account, "/paused")
    await stack.subscribe(account, "/running")
    async with console_page(browser) as page:
        accept_dialogs(page)
        await sign_in(page, stack, account)
        await page.click(f'#endpoints tr[data-id="{paused.id}"] .endpoint-name')
        await page.click("#pause")
        await expect(page.locator("h1 .badge")).to_have_text("paused")
        await expect(page.locator("#settings")).to_contain_text("Paused since")

        await stack.produce([json.dumps(incoming(account, "policies", "policy-created")).encode()])
        await eventually(lambda: stack.receiver.at("/running"), message="the endpoint not paused gets it")
        await page.reload()
        await expect(page.locator("#health")).to_contain_text("Pending1", timeout=SLOW)
        assert stack.receiver.at("/paused") == []  # kept, not sent

        await page.click("#resume")
        await expect(page.locator("h1 .badge")).to_have_text("enabled")
        await eventually(lambda: stack.receiver.at("/paused"), message="the kept delivery goes out on resume")
        await page.reload()
        await expect(page.locator("#health")).to_contain_text("Pending0", timeout=SLOW)
        await expect(page.locator("#health")).to_contain_text("100% of 1")


async def test_the_endpoints_page_shows_each_endpoints_health_at_a_glance(console_stack, browser, tmp_path):
    """Also the README's screenshot (docs/console-endpoints.png): HOOKS_CONSOLE_SCREENSHOT=path writes it."""
    stack, account = console_stack, "000001"
    stack.receiver.script["/gone"] = [410, 410]  # the receiver says the endpoint is gone: hooks disables it
    stack.receiver.script["/down"] = [503] * 100  # failing, retried
    # Each gets the policies' events (not hooks' own endpoint-disabled event when legacy-crm is disabled).
    policies = {"applications": ["policies"]}
    healthy = await stack.subscribe(account, "/billing", {"name": "billing-webhook"}, **policies)
    slack = {"name": "ops-slack", "type": endpoints_pb2.ENDPOINT_TYPE_SLACK}
    await stack.subscribe(account, "/slack", slack, **policies)
    failing = await stack.subscribe(account, "/down", {"name": "inventory-sync"}, **policies)
    await stack.subscribe(account, "/gone", {"name": "legacy-crm"}, **policies)
    teams = {"name": "support-teams", "type": endpoints_pb2.ENDPOINT_TYPE_TEAMS}
    paused = await stack.subscribe(account, "/teams", teams, **policies)
    answer = await stack.http.post(f"/api/hooks/v1/endpoints/{paused.id}:pause", json={}, headers=identity(account))
    assert answer.json()["paused"] is True
    for level in ("high", "low"):
        message = incoming(account, "policies", "policy-triggered", level, message={"policy": "cpu > 90%"})
        await stack.produce([json.dumps(message).encode()])
    await eventually(lambda: len(stack.receiver.at("/billing")) == 2, message="both reach the healthy endpoint")
    await eventually(lambda: len(stack.receiver.at("/down")) >= 4, message="the failing endpoint is retried")

    async with console_page(browser) as page:
        await sign_in(page, stack, account)
        await expect(page.locator("#health-note")).to_contain_text("Attempts of the last 24 hours")
        row = page.locator(f'#endpoints tr[data-id="{healthy.id}"]')
        await expect(row.locator(".health-last")).to_contain_text("✓")
        await expect(row.locator(".health-last")).to_contain_text("(200)")
        await expect(row.locator(".health-rate")).to_have_text("100% of 2")
        await expect(row.locator(".health-failing")).to_have_text("—")
        row = page.locator(f'#endpoints tr[data-id="{failing.id}"]')
        await expect(row.locator(".health-last")).to_contain_text("✗")
        await expect(row.locator(".health-last")).to_contain_text("(503)")
        await expect(row.locator(".health-rate")).to_contain_text("0% of")
        await expect(row.locator(".health-failing time")).to_have_count(1)
        await expect(row.locator(".health-pending")).to_have_text("2")  # both messages still being retried
        row = page.locator("#endpoints tr", has_text="legacy-crm")
        await expect(row.locator(".badge")).to_have_text("disabled")
        await expect(row.locator(".disabled-reason")).not_to_be_empty()
        row = page.locator(f'#endpoints tr[data-id="{paused.id}"]')
        await expect(row.locator(".badge")).to_have_text("paused")
        await expect(row.locator(".health-pending")).to_have_text("2")  # kept until it is resumed
        await expect(row.locator(".health-last")).to_have_text("never")
        box = await page.locator("#health-note").bounding_box()
        assert box is not None
        clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": box["y"] + box["height"] + 24}
        await page.screenshot(path=str(tmp_path / "endpoints.png"), clip=clip)  # taken every run: it must work
        if os.environ.get("HOOKS_CONSOLE_SCREENSHOT"):
            await page.screenshot(path=os.environ["HOOKS_CONSOLE_SCREENSHOT"], clip=clip)


async def test_a_page_of_a_thousand_endpoints_takes_one_list_call_and_ten_stats_calls(console_stack, browser):
    stack, account = console_stack, f"acct-{uuid.uuid4().hex[:8]}"
    metadata = identity_metadata(account)
    gate = asyncio.Semaphore(8)

    async def create(number: int) -> None:
        async with gate:
            await stack.endpoints.CreateEndpoint(
                endpoints_pb2.CreateEndpointRequest(
                    endpoint=endpoints_pb2.Endpoint(
                        name=f"endpoint-{number:04}",
                        type=endpoints_pb2.ENDPOINT_TYPE_WEBHOOK,
                        target=stack.receiver.url(f"/many/{number}"),
                        enabled=True,
                    )
                ),
                metadata=metadata,
            )

    await asyncio.gather(*(create(number) for number in range(1000)))  # the account's quota, all of it

    async with console_page(browser) as page:
        await sign_in(page, stack, account)
        calls: list[str] = []
        page.on("request", lambda request: calls.append(request.url))
        started = time.monotonic()
        await page.select_option("#endpoint-page-size", "1000")
        await expect(page.locator("#endpoints tbody tr")).to_have_count(1000)
        await expect(page.locator("#health-note")).to_contain_text("Attempts of the last 24 hours")
        shown = time.monotonic() - started
        api = [urlsplit(url).path for url in calls if "/api/" in url]
        assert api.count("/api/hooks/v1/endpoints") == 1, api
        assert api.count("/api/hooks/v1/endpoints:batchGetStats") == 10, api  # 100 ids a call, never one each
        assert len(api) == 11, api
        await expect(page.locator("#endpoints tbody tr").last.locator(".health-rate")).to_have_text("no attempts")
        assert shown < 10, f"a page of 1,000 endpoints took {shown:.1f} s"


async def test_the_live_view_resumes_after_the_gateway_restarts_without_missing_a_delivery(console_stack, browser):
    stack, account = console_stack, f"acct-{uuid.uuid4().hex[:8]}"
    await stack.subscribe(account, "/live")
    port = stack.gateway.port
    async with console_page(browser) as page:
        await sign_in(page, stack, account)
        await open_page(page, "Live")
        await expect(page.locator("#live-state")).to_have_text("live")
        await stack.produce([json.dumps(incoming(account, "policies", "policy-created")).encode()])
        rows = page.locator('#live tbody tr[data-status="DELIVERY_STATUS_SUCCEEDED"]')
        await expect(rows).to_have_count(1, timeout=SLOW)

        # The gateway goes away; a delivery happens meanwhile; a new gateway comes up on the same port.
        await stack.gateway.stop()
        await expect(page.locator("#live-state")).not_to_have_text("live")
        await stack.produce([json.dumps(incoming(account, "policies", "policy-created")).encode()])
        await eventually(lambda: len(stack.receiver.at("/live")) == 2, message="delivered while no one watched")
        settings = {"registry_target": stack.registry_target, "sender_target": stack.sender_target}
        restarted = GatewayServer(build_app(GatewaySettings(gateway_development=True, **settings)), 0.5)
        await restarted.start(f"127.0.0.1:{port}")
        try:
            # The console reconnects with the last event's id and is given what it missed.
            await expect(page.locator("#live-state")).to_have_text("live", timeout=SLOW)
            await expect(rows).to_have_count(2, timeout=SLOW)
        finally:
            await restarted.stop()
