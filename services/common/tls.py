"""Service identity: mutual TLS between hooks' own processes, off unless HOOKS_TLS_* name the files.

With a certificate, its key and the CA that signs hooks' certificates (the cert-manager Secret layout:
`tls.crt`, `tls.key`, `ca.crt`):

- every gRPC server listens with TLS and *requires* a client certificate signed by that CA: a caller
  without one never completes the handshake, whatever method it wanted (gRPC Python cannot ask for a
  client certificate without requiring it, and the public RPCs trust the `x-rh-identity` header, so
  they must not be open to any caller either: the gateway, which checks nothing else, presents its own);
- every client channel (`services.common.channels.channel`) presents the process's certificate and
  accepts only servers the CA signed, for the name in the target (`registry`, `sender-headless`...);
- `CallerCheck` decides per method: the internal RPCs (those without a `google.api.http` route: route
  resolution, delivery targets, registration, Deliver) answer only callers whose certificate names one
  of HOOKS_TLS_INTERNAL_CALLERS (when set), so the internet-facing gateway's certificate cannot read
  signing secrets; a call with no verified certificate at all is UNAUTHENTICATED.

The files are read when a server starts or a channel is made: a renewed certificate takes effect at the
next restart (SECURITY.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.api import annotations_pb2
from google.protobuf import descriptor_pool

from services.common.interceptors import BehaviourInterceptor, Rpc, StreamedResponse, UnaryResponse


@dataclass(frozen=True)
class TlsFiles:
    """Where a process's certificate, its key, and hooks' CA are (PEM files)."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    def _read(self) -> tuple[bytes, bytes, bytes]:
        return self.cert_file.read_bytes(), self.key_file.read_bytes(), self.ca_file.read_bytes()

    def server_credentials(self) -> grpc.ServerCredentials:
        """TLS with this certificate; clients must present one the CA signed."""
        cert, key, ca = self._read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """TLS to servers the CA signed, presenting this certificate."""
        cert, key, ca = self._read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def internal_methods(service_names: Iterable[str]) -> frozenset[str]:
    """The full method paths (`/pkg.Service/Method`) of the services' RPCs that have no
    `google.api.http` annotation: the ones only hooks' own processes and operators call."""
    pool = descriptor_pool.Default()
    methods = set()
    for name in service_names:
        try:
            service = pool.FindServiceByName(name)
        except KeyError:
            continue  # health, reflection: not hooks' own
        for method in service.methods:
            if not method.GetOptions().HasExtension(annotations_pb2.http):
                methods.add(f"/{service.full_name}/{method.name}")
    return frozenset(methods)


def caller_names(context: grpc.aio.ServicerContext) -> set[str]:
    """The names (DNS or IP SANs, else the common name) of the verified client certificate; empty
    when the caller presented none."""
    return {identity.decode() for identity in context.peer_identities() or ()}


class CallerCheck(BehaviourInterceptor):
    """Installed when TLS is on: a call whose caller presented no verified certificate is
    UNAUTHENTICATED (the handshake already refuses such callers; this holds should a listener ever
    accept them); an internal method called by a certificate not named in `internal_callers` (when
    that is not empty) is PERMISSION_DENIED."""

    def __init__(self, internal: frozenset[str], internal_callers: frozenset[str]):
        self._internal = internal
        self._callers = internal_callers

    async def _refusal(self, context: grpc.aio.ServicerContext, method: str) -> None:
        names = caller_names(context)
        if not names:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a client certificate of hooks' CA is required")
        if self._callers and method in self._internal and not names & self._callers:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this certificate may not call internal methods")

    def wrap_unary_response(self, behaviour: UnaryResponse, rpc: Rpc) -> UnaryResponse:
        async def checked(request_or_iterator: object, context: grpc.aio.ServicerContext) -> object:
            await self._refusal(context, rpc.method)
            return await behaviour(request_or_iterator, context)

        return checked

    def wrap_streamed_response(self, behaviour: StreamedResponse, rpc: Rpc) -> StreamedResponse:
        async def checked(request_or_iterator: object, context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
            await self._refusal(context, rpc.method)
            async for response in behaviour(request_or_iterator, context):
                yield response

        return checked
