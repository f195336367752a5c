"""Settings every service shares. Each service's settings.py subclasses `CommonSettings`.

Every variable has the prefix HOOKS_; the README's table lists them all (a test checks it). A setting
that was renamed is still read under its old name for a release (`CommonSettings.RENAMED`), with one
warning a process naming the new one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AfterValidator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.tls import TlsFiles

#: Where each gRPC service listens by default, and so where the others reach it by default.
REGISTRY_ADDRESS = "127.0.0.1:50051"
SENDER_ADDRESS = "127.0.0.1:50052"
MATCHER_ADDRESS = "127.0.0.1:50053"

_log = logging.getLogger(__name__)
#: The old names already warned about in this process (one warning each).
_warned: set[str] = set()


def checked_by(parse: Callable[[str], object]) -> AfterValidator:
    """For `Annotated[str, checked_by(parse)]`: a text setting `parse` must accept (its ValueError is
    the setting's error), kept as written (the settings' properties parse it again where it is used)."""

    def check(value: str) -> str:
        parse(value)
        return value

    return AfterValidator(check)


def _warn_renamed(old: str, new: str) -> None:
    if old not in _warned:
        _warned.add(old)
        _log.warning("%s is deprecated and will stop being read in a later release: set %s instead", old, new)


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKS_", extra="ignore", frozen=True)

    #: Old field name -> new field name, of settings renamed in this release: the old environment
    #: variable (and keyword) is still read when the new one is not given, with a warning.
    RENAMED: ClassVar[Mapping[str, str]] = {}

    #: debug, info, warning, error
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: "json" for machines, "console" for people; "auto" picks console on a terminal.
    log_format: Literal["auto", "json", "console"] = "auto"
    #: Seconds a stopping server lets in-flight calls finish.
    shutdown_grace_seconds: float = 10.0
    #: Largest gRPC message a server accepts, in bytes.
    grpc_max_message_bytes: int = 4 * 1024 * 1024
    #: Port of the Prometheus /metrics endpoint; 0 turns it off.
    metrics_port: int = 0
    #: Address the /metrics endpoint binds to: loopback unless a scraper elsewhere needs it (k8s: 0.0.0.0).
    metrics_address: str = "127.0.0.1"
    #: Where clients reach the registry (gRPC target, e.g. dns:///registry:50051).
    registry_target: str = REGISTRY_ADDRESS
    #: Where the matcher reaches the senders; dns:///sender-headless:50052 balances over replicas.
    sender_target: str = SENDER_ADDRESS
    #: Where clients reach the matcher.
    matcher_target: str = MATCHER_ADDRESS

    # Mutual TLS between hooks' processes (services/common/tls.py, SECURITY.md): all three files or none.
    #: PEM certificate of this process (cert-manager's tls.crt); with the key and CA it turns on mutual TLS for its gRPC server and channels. Empty: plaintext.
    tls_cert_file: str = ""
    #: PEM private key of that certificate (tls.key).
    tls_key_file: str = ""
    #: PEM CA that signs hooks' certificates (ca.crt): servers accept only clients it signed, clients only servers it signed.
    tls_ca_file: str = ""
    #: Certificate names (DNS SAN or common name), comma-separated, that may call the internal RPCs (route resolution, delivery targets, RegisterApplication, Deliver); empty: any certificate of the CA.
    tls_internal_callers: str = ""
    #: host:port of a plaintext listener that answers grpc.health.v1 only, for probes that cannot present a certificate (the kubelet's gRPC probes); empty: none.
    health_listen_address: str = ""

    @model_validator(mode="before")
    @classmethod
    def _renamed_settings(cls, data: Any) -> Any:
        """Values given under a renamed setting's old name (environment variable or keyword) moved to
        the new name, unless that is given too (then the old one is ignored); each warned about once."""
        if not cls.RENAMED or not isinstance(data, dict):
            return data
        prefix = str(cls.model_config.get("env_prefix", ""))
        environment = {name.lower(): value for name, value in os.environ.items()}
        data = dict(data)
        for old, new in cls.RENAMED.items():
            old_variable, new_variable = (prefix + old).upper(), (prefix + new).upper()
            if old in data:
                given = data.pop(old)
                _warn_renamed(old, new)
                data.setdefault(new, given)
            if old_variable.lower() in environment:
                _warn_renamed(old_variable, new_variable)
                data.setdefault(new, environment[old_variable.lower()])
        return data

    @model_validator(mode="after")
    def _tls_files_together(self) -> CommonSettings:
        given = [bool(self.tls_cert_file), bool(self.tls_key_file), bool(self.tls_ca_file)]
        if any(given) and not all(given):
            raise ValueError("HOOKS_TLS_CERT_FILE, HOOKS_TLS_KEY_FILE and HOOKS_TLS_CA_FILE go together")
        return self

    @property
    def tls(self) -> TlsFiles | None:
        """The certificate files, or None when mutual TLS is off."""
        if not self.tls_cert_file:
            return None
        return TlsFiles(Path(self.tls_cert_file), Path(self.tls_key_file), Path(self.tls_ca_file))

    @property
    def internal_callers(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.tls_internal_callers.split(",") if name.strip())


class KafkaSettings(BaseSettings):
    """The Kafka connection, passed through to confluent-kafka (librdkafka)."""

    model_config = SettingsConfigDict(env_prefix="HOOKS_KAFKA_", extra="ignore", frozen=True)

    #: Kafka brokers, comma-separated host:port (the embedded broker of `make run` by default).
    bootstrap_servers: str = "127.0.0.1:9092"
    #: The topic applications publish to.
    topic: str = "hooks.outbox"
    #: Where invalid or unroutable messages go, with the reason in headers.
    dlq_topic: str = "hooks.outbox.dlq"
    #: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    security_protocol: str = "PLAINTEXT"
    #: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (with SASL_*).
    sasl_mechanism: str = ""
    #: SASL user name.
    sasl_username: str = ""
    #: SASL password (put it in a Secret).
    sasl_password: str = ""
    #: Path of a PEM CA bundle to verify the brokers with.
    ssl_ca_location: str = ""
    #: Create the topics at start when they are missing (dev and tests; off in production).
    create_topics: bool = False
    #: Partitions of topics created by hooks.
    topic_partitions: int = 4

    def client_config(self) -> dict[str, str]:
        """The librdkafka settings for a producer, consumer or admin client."""
        config = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config
