"""HTTP transport details: an endpoint's own CA for TLS, and the per-attempt timeout."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import pytest
import pytest_asyncio
from aiohttp import web

from hooks.sender.v1 import deliveries_pb2
from tests.helpers.http import serving
from tests.helpers.sender import (
    create_endpoint,
    deliver,
    get_delivery,
    make_event,
    new_account,
    request_for,
    running_sender,
    wait_for_status,
)
from tests.helpers.waiting import eventually

SUCCEEDED = deliveries_pb2.DELIVERY_STATUS_SUCCEEDED


@pytest.fixture(params=["sqlite"])
def database_url(request, sqlite_url):
    return sqlite_url


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def private_ca(tmp_path):
    """A CA of the test's own and a certificate it signed for 127.0.0.1."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=hooks test CA",
        cwd=tmp_path,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=tmp_path,
    )
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        cwd=tmp_path,
    )
    return tmp_path


@pytest_asyncio.fixture
async def tls_receiver(private_ca):
    received: list[bytes] = []

    async def handle(request):
        received.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{name}", handle)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(private_ca / "server.pem", private_ca / "server.key")
    async with serving(app, ssl_context=context) as port:
        yield f"https://127.0.0.1:{port}", received, (private_ca / "ca.pem").read_text()


async def test_tls_with_the_endpoints_own_ca(sender, tls_receiver):
    base, received, ca_pem = tls_receiver
    account = new_account()
    trusted = await create_endpoint(sender, account, f"{base}/trusted", ca_certificate=ca_pem)
    untrusted = await create_endpoint(sender, account, f"{base}/untrusted")
    [response] = await deliver(sender, request_for(make_event(account), trusted.id, untrusted.id))

    await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
    assert len(received) == 1

    async def failed_once():
        delivery = await get_delivery(sender, account, response.delivery_ids[1])
        return delivery if delivery.attempt_count >= 1 else None

    delivery = await eventually(failed_once)
    assert not delivery.attempts[0].succeeded
    assert "certificate" in delivery.attempts[0].error.lower()
    assert len(received) == 1


async def test_an_attempt_that_takes_too_long_is_retried(registry, sqlite_url, receiver):
    account = new_account()

    async def slow_first(_request, count):
        if count == 0:
            await asyncio.sleep(5)
        return web.Response(text="ok")

    receiver.script["slow"] = slow_first
    async with running_sender(sqlite_url, registry, sender_attempt_timeout_seconds=0.3) as sender:
        endpoint = await create_endpoint(sender, account, receiver.url("slow"))
        [response] = await deliver(sender, request_for(make_event(account), endpoint.id))
        delivery = await wait_for_status(sender, account, response.delivery_ids[0], SUCCEEDED)
    first, second = delivery.attempts
    assert first.error == "timed out after 0.3 s" and first.http_status == 0
    assert 0.25 <= first.latency.ToTimedelta().total_seconds() < 2
    assert second.succeeded
