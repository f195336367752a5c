"""A real browser for the console's tests: Debian's Chromium (/usr/bin/chromium, which
tools/ensure-chromium installs and `make test` runs) driven by Playwright; Playwright's own browser
download is not used.

    async with chromium() as browser:
        async with console_page(browser) as page:              # a fresh profile (storage, cookies)
            await page.goto(f"http://127.0.0.1:{port}/console/")

`console_page` fails the test on any uncaught JavaScript error of the page.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from playwright.async_api import Browser, Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
#: How long an action (a click, a fill) or an `expect` waits for its element or its text: the console
#: answers in milliseconds, but make test runs three workers on two cores.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless Chromium; as root it runs without its sandbox (which needs an unprivileged user)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: run tools/ensure-chromium (make test does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def console_page(browser: Browser, *, extra_http_headers: dict[str, str] | None = None) -> AsyncIterator[Page]:
    """A page in a context of its own; `extra_http_headers` go with every request the page makes
    (what the platform's proxy adds, e.g. x-rh-identity)."""
    context = await browser.new_context(viewport=VIEWPORT, extra_http_headers=extra_http_headers)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
