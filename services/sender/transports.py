"""Sending one attempt: an HTTP POST through a shared keep-alive session behind the SSRF guard, or an
e-mail over SMTP. Each returns an `Outcome` the retry policy judges."""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

import aiohttp
import aiosmtplib
import yarl

from services.common.lru import LruCache
from services.common.network_policy import NetworkPolicy
from services.sender.network_policy import AddressRefused, GuardedConnector
from services.sender.retry_policy import Verdict, parse_retry_after, verdict_for_status

RESPONSE_BODY_BYTES = 4096
#: Distinct endpoint URLs kept parsed (the cache starts over when full).
URL_CACHE_SIZE = 10_000
#: TLS contexts kept for endpoints' own CAs, the least recently used dropped beyond (each holds the
#: system's trust store too: about 1 MB).
SSL_CONTEXT_CACHE_SIZE = 32


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    http_status: int = 0
    response_body: str = ""
    error: str = ""
    retry_after: float | None = None


class HttpTransport:
    """One aiohttp session per sender (keep-alive connections are reused across deliveries)."""

    def __init__(self, policy: NetworkPolicy, timeout_seconds: float, concurrency: int):
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._ssl_contexts: LruCache[str, ssl.SSLContext] = LruCache(SSL_CONTEXT_CACHE_SIZE)
        self._urls: dict[str, yarl.URL] = {}

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = GuardedConnector(self._policy, limit=self._concurrency, limit_per_host=0, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False, auto_decompress=True
            )
        return self._session

    def ssl_context(self, ca_pem: str) -> ssl.SSLContext | bool:
        """The system's trust store plus the endpoint's CA (True, the default verification, when it
        has none), one context per distinct CA among the SSL_CONTEXT_CACHE_SIZE used last."""
        if not ca_pem.strip():
            return True
        key = hashlib.sha256(ca_pem.encode()).hexdigest()
        context = self._ssl_contexts.get(key)
        if context is None:
            context = ssl.create_default_context()
            context.load_verify_locations(cadata=ca_pem)
            self._ssl_contexts.put(key, context)
        return context

    def _url(self, url: str) -> yarl.URL | str:
        """The parsed URL, one parse per distinct target (aiohttp would parse the string per request)."""
        parsed = self._urls.get(url)
        if parsed is None:
            try:
                parsed = yarl.URL(url)
            except (ValueError, TypeError):
                return url  # aiohttp reports it as it would have
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            self._urls[url] = parsed
        return parsed

    async def post(self, url: str, body: bytes, headers: dict[str, str], ca_pem: str = "") -> Outcome:
        """POSTs the body; the endpoint's CA is used for https:// only (redirects are not followed,
        so a plain http:// target never needs one). A request that cannot be built from what it was
        given (a header value with a control character, a host name IDNA cannot encode) fails
        without retry, naming why."""
        target = self._url(url)
        ssl_option: ssl.SSLContext | bool = True
        if _scheme(target) == "https":
            try:
                ssl_option = self.ssl_context(ca_pem)
            except (ssl.SSLError, ValueError) as exc:
                return Outcome(Verdict.FAILED, error=f"the endpoint's CA certificate is unusable: {exc}")
        try:
            async with self._session_now().post(
                target, data=body, headers=headers, ssl=ssl_option, allow_redirects=False
            ) as response:
                raw = await response.content.read(RESPONSE_BODY_BYTES)
                text = raw.decode("utf-8", errors="replace")
                verdict = verdict_for_status(response.status)
                error = ""
                if verdict is not Verdict.SUCCEEDED:
                    error = f"HTTP {response.status}"
                    if 300 <= response.status < 400:
                        error += " (redirects are not followed)"
                retry_after = None
                if response.status in (429, 503):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                return Outcome(verdict, response.status, text, error, retry_after)
        except aiohttp.ClientConnectorError as exc:
            refused = exc.os_error if isinstance(exc.os_error, AddressRefused) else exc.__cause__
            if isinstance(refused, AddressRefused):
                return Outcome(Verdict.FAILED, error=str(refused))
            return Outcome(Verdict.RETRY, error=f"connection failed: {exc}")
        except AddressRefused as exc:
            return Outcome(Verdict.FAILED, error=str(exc))
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return Outcome(Verdict.RETRY, error=f"timed out after {self._timeout.total:g} s")
        except aiohttp.InvalidURL as exc:
            return Outcome(Verdict.FAILED, error=f"invalid URL: {exc}")
        except aiohttp.ClientError as exc:
            return Outcome(Verdict.RETRY, error=f"{type(exc).__name__}: {exc}")
        except ValueError as exc:  # aiohttp and the idna codec refuse what they cannot put on the wire
            return Outcome(Verdict.FAILED, error=f"the request cannot be sent: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _scheme(url: yarl.URL | str) -> str:
    if isinstance(url, yarl.URL):
        return url.scheme
    return url.split(":", 1)[0].lower()


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str = ""
    password: str = ""
    tls: str = "none"  # none, starttls, tls


class SmtpTransport:
    def __init__(self, settings: SmtpSettings, timeout_seconds: float):
        self.settings = settings
        self._timeout = timeout_seconds

    async def send(self, message: EmailMessage) -> Outcome:
        s = self.settings
        try:
            response = await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.username or None,
                password=s.password or None,
                use_tls=s.tls == "tls",
                start_tls=True if s.tls == "starttls" else False,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return Outcome(Verdict.FAILED, error=f"recipient refused: {exc}")
        except aiosmtplib.SMTPResponseException as exc:
            verdict = Verdict.RETRY if exc.code >= 400 and exc.code < 500 else Verdict.FAILED
            return Outcome(verdict, error=f"SMTP {exc.code}: {exc.message}")
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(Verdict.RETRY, error=f"SMTP: {type(exc).__name__}: {exc}")
        _errors, reply = response
        return Outcome(Verdict.SUCCEEDED, response_body=str(reply)[:RESPONSE_BODY_BYTES])
