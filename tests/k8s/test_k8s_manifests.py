"""k8s/: every overlay renders with kustomize, validates against the Kubernetes schemas, and says what the
code reads — the ports of the settings' defaults, modules that exist, HOOKS_* variables that are settings
fields — with the locked-down pods, probes, autoscaling and network rules production relies on."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import subprocess
import sys
import tomllib

import kubernetes_validate
import kubernetes_validate.utils
import pytest
from k8s_manifests import (
    COMPONENTS,
    GRPC_COMPONENTS,
    HEALTH_PORT,
    K8S,
    METRICS_PORT,
    MIGRATE_OVERLAYS,
    OVERLAYS,
    ROOT,
    Peer,
    allows,
    by_kind,
    command_of,
    containers,
    env_of,
    main_container,
    pod_peer,
    pod_spec,
    port_of,
    python_module_of,
    quantity,
    render,
    settings_class,
    settings_variables,
    uses_kafka,
    variables_of,
)

from services.common.settings import KafkaSettings
from tests.helpers.groups import SESSION_TIMEOUT_MS

KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
DOCS = ROOT / "docs" / "operations.md"


def workloads(objects: list[dict]) -> list[dict]:
    return [obj for obj in objects if obj["kind"] in ("Deployment", "Job")]


# ---- rendering and schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS + MIGRATE_OVERLAYS)
def test_overlay_renders_with_kustomize(overlay):
    objects = render(overlay)
    assert objects, f"{overlay} renders nothing"
    namespaces = {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces, f"{overlay}: one namespace for all, got {namespaces}"


#: API groups of custom resources, whose schemas kubernetes-validate does not have: their objects are
#: checked by tests of their own (test_cert_manager_objects_have_the_shape_cert_manager_accepts).
CUSTOM_GROUPS = {"cert-manager.io"}


def _group(obj: dict) -> str:
    return obj["apiVersion"].rpartition("/")[0]


@pytest.mark.parametrize("overlay", OVERLAYS + MIGRATE_OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay):
    """Every built-in kind, strictly; only the custom resources' groups may lack a schema."""
    problems = []
    for obj in render(overlay):
        if _group(obj) in CUSTOM_GROUPS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
    assert not problems, "\n".join(problems)


def test_the_schema_check_would_catch_a_misspelt_field():
    """Guards the test above: strict validation really rejects what the API server would."""
    deployment = by_kind(render("prod"), "Deployment")["registry"]
    broken = json.loads(json.dumps(deployment))
    pod_spec(broken)["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# ---- each component: Deployment, Service, ports, commands, probes ------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("component", COMPONENTS)
def test_container_port_is_the_settings_default_port_and_the_service_exposes_it(overlay, component):
    module, settings_module, listen_field, port_name = COMPONENTS[component]
    objects = render(overlay)
    deployment = by_kind(objects, "Deployment")[component]
    container = main_container(deployment)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    expected = {port_name, "metrics"} | ({"health"} if component in GRPC_COMPONENTS else set())
    assert set(ports) == expected, f"{component}: named ports {sorted(expected)}"
    assert ports["metrics"] == METRICS_PORT

    settings = settings_class(settings_module)
    default_port = port_of(settings.model_fields[listen_field].default)
    assert ports[port_name] == default_port, f"{component}: containerPort differs from the settings default"

    env = env_of(container, objects)
    listen = env[f"HOOKS_{listen_field.upper()}"]
    assert listen.rpartition(":")[0] in ("0.0.0.0", "[::]"), f"{component} must listen beyond loopback"
    assert port_of(listen) == default_port
    assert env["HOOKS_METRICS_PORT"] == str(METRICS_PORT)
    assert env["HOOKS_METRICS_ADDRESS"] == "0.0.0.0", "Prometheus scrapes the pod's address, not its loopback"

    service = by_kind(objects, "Service")[component]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    service_ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert service_ports[port_name]["port"] == default_port
    assert service_ports[port_name]["targetPort"] == port_name
    assert service_ports["metrics"]["targetPort"] == "metrics"


def _wait_for(check, timeout: float, what: str, process: subprocess.Popen) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}:\n{process.stderr.read()}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.1)


@pytest.mark.parametrize("component", list(COMPONENTS))
def test_the_deployment_command_serves_with_the_manifests_environment(component, tmp_path, kafka, topics):
    """`python -m <module>` as the prod Deployment runs it, with the prod ConfigMaps' environment (ports
    moved to free ones, SQLite databases in place of the Secrets, the test broker in place of the
    cluster's Kafka, certificates of a CA made here in place of cert-manager's Secret): it answers its
    probe (the plaintext health port for the gRPC services, as the kubelet asks, and over mutual TLS
    on its gRPC port), serves /metrics on HOOKS_METRICS_PORT, and exits 0 on SIGTERM within the pod's
    grace period."""
    import signal
    import urllib.request

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.common.broker import free_port
    from services.common.channels import channel
    from tests.helpers.certificates import Authority

    objects = render("prod")
    deployment = by_kind(objects, "Deployment")[component]
    container = main_container(deployment)
    module = python_module_of(command_of(container))
    listen_port, metrics_port, health_port = free_port(), free_port(), free_port()
    manifest_env = env_of(container, objects)
    env = {name: value for name, value in manifest_env.items() if value is not None}
    assert env["HOOKS_TLS_CERT_FILE"], "prod turns mutual TLS on"
    authority = Authority.create(tmp_path / "tls")
    files = authority.issue(component)
    env.update(
        {
            "HOOKS_TLS_CERT_FILE": str(files.cert_file),
            "HOOKS_TLS_KEY_FILE": str(files.key_file),
            "HOOKS_TLS_CA_FILE": str(files.ca_file),
        }
    )
    if component in GRPC_COMPONENTS:
        assert port_of(manifest_env["HOOKS_HEALTH_LISTEN_ADDRESS"]) == container["livenessProbe"]["grpc"]["port"]
        env["HOOKS_HEALTH_LISTEN_ADDRESS"] = f"127.0.0.1:{health_port}"
    env.update(
        {
            f"HOOKS_{COMPONENTS[component][2].upper()}": f"127.0.0.1:{listen_port}",
            "HOOKS_METRICS_PORT": str(metrics_port),
            "HOOKS_REGISTRY_DATABASE_URL": f"sqlite:///{tmp_path / 'registry.db'}",
            "HOOKS_SENDER_DATABASE_URL": f"sqlite:///{tmp_path / 'sender.db'}",
            "PATH": "/usr/bin:/bin",
        }
    )
    if "HOOKS_KAFKA_BOOTSTRAP_SERVERS" in env:
        env.update(
            {
                "HOOKS_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                "HOOKS_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
                "HOOKS_KAFKA_SASL_MECHANISM": "",
                "HOOKS_KAFKA_SSL_CA_LOCATION": "",
                "HOOKS_KAFKA_TOPIC": topics["outbox"],
                "HOOKS_KAFKA_DLQ_TOPIC": topics["dlq"],
            }
        )
    if component == "matcher":
        env["HOOKS_MATCHER_SESSION_TIMEOUT_MS"] = str(SESSION_TIMEOUT_MS)
    process = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if component == "gateway":
            probe = container["livenessProbe"]["httpGet"]["path"]
            _wait_for(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{listen_port}{probe}", timeout=2).status == 200,
                60,
                f"gateway {probe}",
                process,
            )
        else:

            def serving() -> bool:  # the kubelet's probe: plaintext, on the health port
                with grpc.insecure_channel(f"127.0.0.1:{health_port}") as ch:
                    answer = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
                    return answer.status == health_pb2.HealthCheckResponse.SERVING

            _wait_for(serving, 60, f"{component} health", process)

            async def serving_over_tls() -> int:  # what the gateway's /readyz asks, with a client certificate
                async with channel(f"127.0.0.1:{listen_port}", tls=authority.issue("gateway")) as ch:
                    answer = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                    return answer.status

            import asyncio

            assert asyncio.run(serving_over_tls()) == health_pb2.HealthCheckResponse.SERVING
        _wait_for(
            lambda: b"# HELP" in urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read(),
            20,
            f"{component} /metrics on HOOKS_METRICS_PORT (the manifests' `metrics` port)",
            process,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(pod_spec(deployment)["terminationGracePeriodSeconds"])
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"{component} did not stop within the grace period after SIGTERM") from None
        process.stderr.close()
    assert code == 0, f"{component} exited with {code} on SIGTERM"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grpc_services_have_native_grpc_probes_on_their_plaintext_health_port(overlay):
    """The kubelet's gRPC probes cannot present a client certificate: with mutual TLS on the gRPC port,
    they ask the health-only listener (HOOKS_HEALTH_LISTEN_ADDRESS) on the container port `health`."""
    objects = render(overlay)
    for component in GRPC_COMPONENTS:
        container = main_container(by_kind(objects, "Deployment")[component])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["health"] == HEALTH_PORT != ports["grpc"]
        listen = env_of(container, objects)["HOOKS_HEALTH_LISTEN_ADDRESS"]
        assert listen == f"0.0.0.0:{HEALTH_PORT}", f"{component}: the kubelet probes the pod's address"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": HEALTH_PORT}, f"{component} {probe}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_has_http_probes_on_healthz_and_readyz(overlay):
    container = main_container(by_kind(render(overlay), "Deployment")["gateway"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    sources = "\n".join(path.read_text() for path in (ROOT / "gateway").glob("*.py"))
    for path in ("/healthz", "/readyz"):
        assert f'"{path}"' in sources, f"the gateway's code does not serve {path}"


def _all_containers(overlays=OVERLAYS + MIGRATE_OVERLAYS):
    for overlay in overlays:
        for workload in workloads(render(overlay)):
            for container in containers(workload):
                yield overlay, workload, container


def test_python_commands_name_modules_that_exist_and_import():
    modules = {
        python_module_of(command_of(container))
        for _, _, container in _all_containers()
        if python_module_of(command_of(container))
    }
    assert modules == {module for module, *_ in COMPONENTS.values()}
    for module in sorted(modules):
        assert importlib.util.find_spec(module) is not None, f"{module} does not exist"
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"`python -m {module}` has no __main__"
    # Importing the entry points (each guards its start with `if __name__ == "__main__"`), in a fresh process.
    code = "; ".join(f"import {module}.__main__" for module in sorted(modules))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_hooks_commands_exist_in_the_cli():
    commands = {
        tuple(command_of(container)) for _, _, container in _all_containers() if command_of(container)[0] == "hooks"
    }
    assert commands == {("hooks", "db", "upgrade")}
    hooks = ROOT / ".venv" / "bin" / "hooks"
    result = subprocess.run([str(hooks), "db", "upgrade", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"`hooks db upgrade --help` failed:\n{result.stdout}\n{result.stderr}"


def test_every_container_runs_an_explicit_command_of_the_one_image():
    for overlay in OVERLAYS + MIGRATE_OVERLAYS:
        images = {c["image"] for w in workloads(render(overlay)) for c in containers(w)}
        assert len(images) == 1, f"{overlay}: one image for every component, got {images}"
    for overlay, workload, container in _all_containers():
        assert command_of(container), f"{overlay} {workload['metadata']['name']}/{container['name']} has no command"


# ---- configuration -----------------------------------------------------------------------------------


def test_every_hooks_variable_in_the_manifests_is_read_by_the_settings_of_its_component():
    known = settings_variables()
    kafka = variables_of(KafkaSettings)
    for overlay, _workload, container in _all_containers():
        objects = render(overlay)
        env = {name for name in env_of(container, objects) if name.startswith("HOOKS_")}
        unknown = env - known
        assert not unknown, f"{overlay} {container['name']}: not read by any settings class: {sorted(unknown)}"
        module = python_module_of(command_of(container))
        if module is None:
            continue  # the hooks CLI reads several services' settings
        component = next(name for name, spec in COMPONENTS.items() if spec[0] == module)
        settings = settings_class(COMPONENTS[component][1])
        allowed = variables_of(settings) | (kafka if uses_kafka(module) else set())
        assert env <= allowed, f"{overlay} {component} is given what it does not read: {sorted(env - allowed)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_settings_and_credentials_reach_the_kafka_clients(overlay):
    objects = render(overlay)
    for component in ("matcher", "sender"):
        container = main_container(by_kind(objects, "Deployment")[component])
        env = env_of(container, objects)
        assert uses_kafka(COMPONENTS[component][0])
        for field in ("bootstrap_servers", "security_protocol", "topic", "dlq_topic"):
            assert env.get(f"HOOKS_KAFKA_{field.upper()}"), f"{component}: HOOKS_KAFKA_{field.upper()}"
        secret_refs = {
            item["name"]: item["valueFrom"]["secretKeyRef"]
            for item in container["env"]
            if "secretKeyRef" in item.get("valueFrom", {})
        }
        for name in ("HOOKS_KAFKA_SASL_USERNAME", "HOOKS_KAFKA_SASL_PASSWORD"):
            assert secret_refs[name]["name"] == "hooks-kafka", f"{component}: {name} comes from the Secret"
        ca = env["HOOKS_KAFKA_SSL_CA_LOCATION"]
        if ca:
            mounts = [m["mountPath"] for m in container["volumeMounts"]]
            assert any(ca.startswith(path + "/") for path in mounts), f"{component}: {ca} is not mounted"


def test_secrets_hold_the_credentials_and_are_documented():
    """Database URLs and passwords never sit in a ConfigMap; every Secret the pods use is in the runbook."""
    docs = DOCS.read_text()
    for overlay, _workload, container in _all_containers():
        for name, value in env_of(container, render(overlay)).items():
            if name.endswith(("_DATABASE_URL", "_PASSWORD", "_USERNAME")):
                assert value is None, f"{overlay} {container['name']}: {name} must come from a Secret"
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert f"`{ref['name']}`" in docs, f"Secret {ref['name']} is not in docs/operations.md"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_clients_target_services_that_exist(overlay):
    objects = render(overlay)
    services = by_kind(objects, "Service")
    env = env_of(main_container(by_kind(objects, "Deployment")["matcher"]), objects)
    for variable in ("HOOKS_REGISTRY_TARGET", "HOOKS_SENDER_TARGET", "HOOKS_MATCHER_TARGET"):
        target = env[variable]
        assert target.startswith("dns:///"), f"{variable}={target}: use the dns resolver"
        host, _, port = target.removeprefix("dns:///").partition(":")
        assert host in services, f"{variable} names Service {host}, which does not exist"
        assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_matcher_balances_over_every_sender_through_the_headless_service(overlay):
    from services.common.channels import SERVICE_CONFIG

    objects = render(overlay)
    headless = by_kind(objects, "Service")["sender-headless"]
    assert headless["spec"]["clusterIP"] == "None"
    sender = by_kind(objects, "Deployment")["sender"]
    assert headless["spec"]["selector"] == sender["spec"]["selector"]["matchLabels"]
    assert [p["port"] for p in headless["spec"]["ports"]] == [50052]
    matcher_env = env_of(main_container(by_kind(objects, "Deployment")["matcher"]), objects)
    assert matcher_env["HOOKS_SENDER_TARGET"] == "dns:///sender-headless:50052"
    assert json.loads(SERVICE_CONFIG)["loadBalancingConfig"] == [{"round_robin": {}}]


# ---- pods: locked down ---------------------------------------------------------------------------------


def test_every_pod_is_locked_down_with_a_writable_tmp_only():
    for overlay, workload, container in _all_containers():
        where = f"{overlay} {workload['kind']}/{workload['metadata']['name']}/{container['name']}"
        spec = pod_spec(workload)
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, where
        assert pod_context["runAsUser"] != 0, where
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["capabilities"] == {"drop": ["ALL"]}, where
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp must be an emptyDir"


def test_every_container_has_requests_within_limits():
    for overlay, workload, container in _all_containers():
        where = f"{overlay} {workload['metadata']['name']}/{container['name']}"
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            request = quantity(resources["requests"][resource])
            limit = quantity(resources["limits"][resource])
            assert 0 < request <= limit, f"{where}: {resource} request {request} > limit {limit}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_stop_within_their_grace_period(overlay):
    """preStop pause + the server's drain (HOOKS_SHUTDOWN_GRACE_SECONDS) fit before the kubelet's SIGKILL."""
    objects = render(overlay)
    for deployment in by_kind(objects, "Deployment").values():
        container = main_container(deployment)
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        drain = float(env_of(container, objects)["HOOKS_SHUTDOWN_GRACE_SECONDS"])
        assert pause + drain < pod_spec(deployment)["terminationGracePeriodSeconds"], deployment["metadata"]["name"]


# ---- scaling and availability --------------------------------------------------------------------------


def test_sender_and_gateway_autoscale_in_production_without_a_fixed_replica_count():
    objects = render("prod")
    deployments = by_kind(objects, "Deployment")
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    assert set(hpas) == {"sender", "gateway"}
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert "replicas" not in deployments[name]["spec"], f"{name}: the HPA owns the replica count"


def test_development_runs_one_of_each_with_debug_logs():
    objects = render("dev")
    assert not by_kind(objects, "HorizontalPodAutoscaler")
    for name, deployment in by_kind(objects, "Deployment").items():
        assert deployment["spec"].get("replicas", 1) == 1, name
        env = env_of(main_container(deployment), objects)
        assert env["HOOKS_LOG_LEVEL"] == "debug", name
    prod = by_kind(render("prod"), "Deployment")
    for name, deployment in by_kind(objects, "Deployment").items():
        small = main_container(deployment)["resources"]["requests"]
        large = main_container(prod[name])["resources"]["requests"]
        assert quantity(small["cpu"]) < quantity(large["cpu"]), name
        assert quantity(small["memory"]) < quantity(large["memory"]), name


def test_production_logs_json_and_pins_the_image_to_the_released_version():
    for overlay in ("prod", "prod/migrate"):
        objects = render(overlay)
        for workload in workloads(objects):
            for container in containers(workload):
                image = container["image"]
                name, _, tag = image.rpartition(":")
                assert "/" in name and tag == PROJECT_VERSION, f"{overlay}: {image} is not pinned to {PROJECT_VERSION}"
                if workload["kind"] == "Deployment" and container in pod_spec(workload)["containers"]:
                    env = env_of(container, objects)
                    assert env["HOOKS_LOG_FORMAT"] == "json"
                    assert env["HOOKS_LOG_LEVEL"] == "info"
    prod = by_kind(render("prod"), "Deployment")
    assert prod["registry"]["spec"]["replicas"] >= 2
    assert prod["matcher"]["spec"]["replicas"] >= 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_matcher_replicas_do_not_exceed_the_outbox_partitions(overlay):
    objects = render(overlay)
    matcher = by_kind(objects, "Deployment")["matcher"]
    env = env_of(main_container(matcher), objects)
    assert matcher["spec"].get("replicas", 1) <= int(env["HOOKS_KAFKA_TOPIC_PARTITIONS"])
    assert "replicas <= partitions" in (K8S / "base" / "matcher.yaml").read_text()
    assert "replicas <= partitions" in DOCS.read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget_that_lets_a_node_drain(overlay):
    objects = render(overlay)
    budgets = by_kind(objects, "PodDisruptionBudget")
    for name, deployment in by_kind(objects, "Deployment").items():
        assert budgets[name]["spec"]["selector"] == deployment["spec"]["selector"]
        # maxUnavailable, not minAvailable: a single-replica Deployment can still be evicted.
        assert budgets[name]["spec"]["maxUnavailable"] == 1


# ---- migrations ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_upgrades_both_databases_with_the_services_image(overlay):
    objects = render(overlay)
    job = by_kind(render(f"{overlay}/migrate"), "Job")["hooks-db-upgrade"]
    job_container = pod_spec(job)["containers"][0]
    assert command_of(job_container) == ["hooks", "db", "upgrade"]
    refs = {
        item["name"]: item["valueFrom"]["secretKeyRef"]["name"] for item in job_container["env"] if "valueFrom" in item
    }
    deployments = by_kind(objects, "Deployment")
    for name in ("registry", "sender"):
        container = main_container(deployments[name])
        (service_ref,) = [i for i in container["env"] if i["name"] == f"HOOKS_{name.upper()}_DATABASE_URL"]
        # The same Secret as the service, so the Job migrates the database the service will use.
        assert refs[f"HOOKS_{name.upper()}_DATABASE_URL"] == service_ref["valueFrom"]["secretKeyRef"]["name"]
        assert container["image"] == job_container["image"]
        # The services migrate at start too (a no-op after the Job): the startup probe leaves time for it.
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    # Not part of the main render: a Job's template is immutable, so each release re-creates it first.
    assert not by_kind(objects, "Job")
    # Whatever Secrets the Job needs exist before the services are applied (dev generates its own).
    generated = set(by_kind(render(f"{overlay}/migrate"), "Secret"))
    assert generated == {s for s in by_kind(objects, "Secret")}


FAKE_KUBECTL = """#!/usr/bin/env bash
# A fake kubectl (there is no cluster here): records its arguments, renders with the real one,
# and fails `wait` when FAKE_WAIT_FAILS is set.
echo "$*" >> "$FAKE_KUBECTL_LOG"
case "$1" in
  kustomize) exec "$REAL_KUBECTL" "$@" ;;
esac
for arg in "$@"; do
  if [[ "$arg" == wait && -n "${FAKE_WAIT_FAILS:-}" ]]; then exit 1; fi
done
exit 0
"""


def _deploy(tmp_path, overlay, wait_fails=False):
    from k8s_manifests import KUBECTL

    fake = tmp_path / "kubectl"
    fake.write_text(FAKE_KUBECTL)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {"PATH": "/usr/bin:/bin", "KUBECTL": str(fake), "FAKE_KUBECTL_LOG": str(log), "REAL_KUBECTL": str(KUBECTL)}
    if wait_fails:
        env["FAKE_WAIT_FAILS"] = "1"
    result = subprocess.run(
        ["bash", str(K8S / "deploy.sh"), overlay], env=env, capture_output=True, text=True, timeout=120
    )
    calls = [line for line in log.read_text().splitlines() if not line.startswith("kustomize")]
    return result, calls


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deploy_script_migrates_to_completion_before_applying_the_services(tmp_path, overlay):
    (name,) = by_kind(render(overlay), "Namespace")
    result, calls = _deploy(tmp_path, overlay)
    assert result.returncode == 0, result.stderr
    overlay_dir = K8S / "overlays" / overlay
    assert calls[:5] == [
        f"apply -f {overlay_dir}/namespace.yaml",
        f"-n {name} delete job hooks-db-upgrade --ignore-not-found --wait=true",
        f"apply -k {overlay_dir}/migrate",
        f"-n {name} wait --for=condition=complete --timeout=15m job/hooks-db-upgrade",
        f"apply -k {overlay_dir}",
    ]
    assert [c.split()[-2] for c in calls[5:]] == [
        "deployment/registry",
        "deployment/sender",
        "deployment/matcher",
        "deployment/gateway",
    ]

    failing = tmp_path / "failing"
    failing.mkdir()
    result, calls = _deploy(failing, overlay, wait_fails=True)
    assert result.returncode == 1
    assert "migration failed" in result.stderr
    assert f"apply -k {overlay_dir}" not in calls, "the services were applied although the migration failed"


# ---- network -------------------------------------------------------------------------------------------


CALL_GRAPH = {
    ("gateway", "registry"),
    ("gateway", "sender"),
    ("gateway", "matcher"),
    ("matcher", "registry"),
    ("matcher", "sender"),
    ("sender", "registry"),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_exactly_the_call_graph(overlay):
    objects = render(overlay)
    policies = list(by_kind(objects, "NetworkPolicy").values())
    deployments = by_kind(objects, "Deployment")
    namespace = deployments["registry"]["metadata"]["namespace"]
    own = (("kubernetes.io/metadata.name", namespace),)
    pods = {name: pod_peer(d) for name, d in deployments.items()}
    pods = {name: Peer(p.labels, own, p.ip, True, p.ports) for name, p in pods.items()}
    service_port = {name: dict(p.ports)[COMPONENTS[name][3]] for name, p in pods.items()}
    for source in pods:
        for destination in pods:
            if source == destination:
                continue
            expected = (source, destination) in CALL_GRAPH
            got = allows(policies, pods[source], pods[destination], service_port[destination])
            assert got == expected, f"{source} -> {destination}:{service_port[destination]} allowed={got}"

    outside = Peer(namespace_labels=(("kubernetes.io/metadata.name", "ingress-nginx"),), in_namespace=False)
    for name, pod in pods.items():
        reachable = allows(policies, outside, pod, service_port[name])
        assert reachable == (name == "gateway"), f"from outside the namespace to {name}: {reachable}"
        prometheus = Peer(namespace_labels=(("kubernetes.io/metadata.name", "monitoring"),), in_namespace=False)
        assert allows(policies, prometheus, pod, METRICS_PORT), f"Prometheus cannot scrape {name}"
        assert not allows(policies, outside, pod, METRICS_PORT), f"{name}'s metrics are open to all"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_each_component_out_only_where_it_must(overlay):
    objects = render(overlay)
    policies = list(by_kind(objects, "NetworkPolicy").values())
    deployments = by_kind(objects, "Deployment")
    pods = {name: pod_peer(d) for name, d in deployments.items()}
    # Pods of other namespaces (they carry their namespace's labels) and addresses outside the cluster.
    postgresql = Peer(ip="10.20.0.5", in_namespace=False, namespace_labels=(("x", "db"),))
    kafka = Peer(ip="10.30.0.7", in_namespace=False, namespace_labels=(("x", "kafka"),))
    smtp = Peer(ip="10.50.0.25", in_namespace=False, namespace_labels=(("x", "mail"),))
    public_postgresql = Peer(ip="198.51.100.7", in_namespace=False)
    public_smtp = Peer(ip="203.0.113.25", in_namespace=False)
    database_subnet = Peer(ip="10.20.0.9", in_namespace=False)  # prod's external-services.yaml
    webhook = Peer(ip="203.0.113.10", in_namespace=False)
    webhook_v6 = Peer(ip="2606:4700::10", in_namespace=False)
    metadata_service = Peer(ip="169.254.169.254", in_namespace=False)
    internal_web = Peer(ip="10.40.0.9", in_namespace=False)
    internal_v6 = Peer(ip="fd00:10::9", in_namespace=False)
    # NAT64 (DNS64 in an IPv6-only cluster): 10.40.0.9 and the metadata address, and a public webhook.
    internal_nat64 = Peer(ip="64:ff9b::a28:9", in_namespace=False)
    metadata_nat64 = Peer(ip="64:ff9b::a9fe:a9fe", in_namespace=False)
    webhook_nat64 = Peer(ip="64:ff9b::cb00:710a", in_namespace=False)  # 203.0.113.10
    dns = Peer(ip="10.96.0.10", in_namespace=False)
    expectations = [
        # (source, destination, port, protocol, allowed)
        ("registry", postgresql, 5432, "TCP", True),
        ("sender", postgresql, 5432, "TCP", True),
        ("matcher", postgresql, 5432, "TCP", False),
        ("gateway", postgresql, 5432, "TCP", False),
        ("matcher", kafka, 9092, "TCP", True),
        ("matcher", kafka, 9093, "TCP", True),
        ("sender", kafka, 9093, "TCP", True),
        ("registry", kafka, 9092, "TCP", False),
        ("gateway", kafka, 9092, "TCP", False),
        ("sender", webhook, 443, "TCP", True),
        ("sender", webhook, 8443, "TCP", True),
        ("sender", webhook_v6, 443, "TCP", True),
        ("sender", webhook_nat64, 443, "TCP", True),
        ("sender", metadata_service, 80, "TCP", False),
        ("sender", internal_web, 443, "TCP", False),
        ("sender", smtp, 587, "TCP", True),
        ("sender", smtp, 25, "TCP", True),
        ("sender", public_smtp, 465, "TCP", True),
        ("registry", public_postgresql, 5432, "TCP", True),
        ("registry", database_subnet, 5432, "TCP", overlay == "prod"),
        ("sender", database_subnet, 5432, "TCP", overlay == "prod"),
        ("sender", database_subnet, 443, "TCP", False),
        # Rules add up: the ports of PostgreSQL, Kafka and SMTP must not open the inner ranges.
        *(
            (source, inner, port, "TCP", False)
            for source in ("sender", "registry", "matcher")
            for inner in (metadata_service, internal_web, internal_v6, internal_nat64, metadata_nat64)
            for port in (5432, 9092, 9096, 25, 465, 587, 80, 443)
        ),
        ("registry", webhook, 443, "TCP", False),
        ("matcher", webhook, 443, "TCP", False),
        ("gateway", webhook, 443, "TCP", False),
    ]
    for source, destination, port, protocol, expected in expectations:
        got = allows(policies, pods[source], destination, port, protocol)
        assert got == expected, f"{source} -> {destination.ip}:{port} allowed={got}, expected {expected}"
    for name, pod in pods.items():
        for protocol in ("UDP", "TCP"):
            assert allows(policies, pod, dns, 53, protocol), f"{name} cannot resolve names ({protocol})"

    job = by_kind(render(f"{overlay}/migrate"), "Job")["hooks-db-upgrade"]
    migration = Peer(labels=tuple(sorted(job["spec"]["template"]["metadata"]["labels"].items())))
    assert allows(policies, migration, postgresql, 5432)
    assert not allows(policies, migration, webhook, 443)
    assert not allows(policies, migration, internal_web, 5432)


#: What every egress rule to 0.0.0.0/0 or ::/0 must except: private, shared (CGNAT), loopback, link-local
#: (cloud metadata) and "this network"; unique local, link-local, site-local and loopback for IPv6, and the
#: IPv4 ones in their NAT64 form (64:ff9b::/96: a NAT64 gateway reaches private IPv4 addresses too).
_REQUIRED_IPV4_EXCEPT = {
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "0.0.0.0/8",
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
REQUIRED_EXCEPT = {
    "0.0.0.0/0": _REQUIRED_IPV4_EXCEPT,
    "::/0": {"fc00::/7", "fe80::/10", "fec0::/10", "::1/128"}
    | {
        str(ipaddress.ip_network((int(_NAT64.network_address) | int(network.network_address), 96 + network.prefixlen)))
        for network in map(ipaddress.ip_network, _REQUIRED_IPV4_EXCEPT)
    },
}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_egress_rule_reaches_everywhere_without_excepting_the_inner_ranges(overlay):
    """NetworkPolicy rules add up: one rule to 0.0.0.0/0 without the excepts opens the private and
    metadata ranges on its ports whatever the other rules except."""
    checked = 0
    for policy in by_kind(render(overlay), "NetworkPolicy").values():
        for index, rule in enumerate(policy["spec"].get("egress", [])):
            for peer in rule.get("to", []):
                block = peer.get("ipBlock")
                if block is None:
                    continue
                cidr = str(ipaddress.ip_network(block["cidr"]))
                if ipaddress.ip_network(cidr).prefixlen == 0:
                    checked += 1
                    missing = REQUIRED_EXCEPT[cidr] - {str(ipaddress.ip_network(e)) for e in block.get("except", [])}
                    assert not missing, (
                        f"{policy['metadata']['name']} egress[{index}] to {cidr} lacks except {sorted(missing)}"
                    )
                else:
                    assert ipaddress.ip_network(cidr).prefixlen >= 16, f"{policy['metadata']['name']}: {cidr} is wide"
    assert checked >= 8, "the webhook, database, Kafka and SMTP rules reach the internet, IPv4 and IPv6"


# ---- service identity: certificates ---------------------------------------------------------------


#: The fields of cert-manager.io/v1 objects the manifests use, with their types (cert-manager's CRDs
#: are not in kubernetes-validate's schemas, so their shape is checked here), and the key usages it accepts.
CERTIFICATE_FIELDS = {
    "secretName": str,
    "duration": str,
    "renewBefore": str,
    "privateKey": dict,
    "usages": list,
    "dnsNames": list,
    "issuerRef": dict,
    "isCA": bool,
    "commonName": str,
}
PRIVATE_KEY_FIELDS = {"algorithm": {"RSA", "ECDSA", "Ed25519"}, "size": int, "rotationPolicy": {"Never", "Always"}}
KEY_USAGES = {
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
}


def _duration_hours(text: str) -> float:
    assert text.endswith("h") and text[:-1].isdigit(), f"{text}: cert-manager durations here are whole hours"
    return float(text[:-1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cert_manager_objects_have_the_shape_cert_manager_accepts(overlay):
    objects = render(overlay)
    custom = [obj for obj in objects if _group(obj) in CUSTOM_GROUPS]
    assert {obj["kind"] for obj in custom} <= {"Certificate", "Issuer"}
    namespaces = {obj["metadata"].get("namespace") for obj in objects if obj["kind"] == "Deployment"}
    issuers = by_kind(objects, "Issuer")
    for obj in custom:
        where = f"{overlay} {obj['kind']}/{obj['metadata']['name']}"
        assert obj["apiVersion"] == "cert-manager.io/v1", where
        assert obj["metadata"].get("namespace") in namespaces, f"{where}: in the namespace of the pods"
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}, where
        spec = obj["spec"]
        if obj["kind"] == "Issuer":
            (kind,) = spec  # exactly one issuer type
            assert kind in ("selfSigned", "ca"), where
            if kind == "ca":
                assert set(spec["ca"]) == {"secretName"} and spec["ca"]["secretName"], where
            continue
        assert set(spec) <= set(CERTIFICATE_FIELDS), f"{where}: unknown fields {set(spec) - set(CERTIFICATE_FIELDS)}"
        for field, kind in CERTIFICATE_FIELDS.items():
            if field in spec:
                assert isinstance(spec[field], kind), f"{where}: {field}"
        assert spec["secretName"] and (spec.get("dnsNames") or spec.get("commonName")), where
        assert set(spec["issuerRef"]) == {"name", "kind", "group"}, where
        assert spec["issuerRef"]["group"] == "cert-manager.io" and spec["issuerRef"]["kind"] == "Issuer", where
        assert spec["issuerRef"]["name"] in issuers, f"{where}: issuer {spec['issuerRef']['name']} is not in the render"
        assert set(spec.get("usages", [])) <= KEY_USAGES, where
        key = spec.get("privateKey", {})
        assert set(key) <= set(PRIVATE_KEY_FIELDS), where
        for field, allowed in PRIVATE_KEY_FIELDS.items():
            if field in key and isinstance(allowed, set):
                assert key[field] in allowed, f"{where}: privateKey.{field}"
        if "duration" in spec and "renewBefore" in spec:
            assert _duration_hours(spec["renewBefore"]) < _duration_hours(spec["duration"]), where


def _tls_secret(deployment: dict, container: dict, env: dict) -> str:
    """The Secret mounted where HOOKS_TLS_* point (the three files in one folder, cert-manager's names)."""
    folder = env["HOOKS_TLS_CERT_FILE"].rpartition("/")[0]
    assert env["HOOKS_TLS_CERT_FILE"] == f"{folder}/tls.crt"
    assert env["HOOKS_TLS_KEY_FILE"] == f"{folder}/tls.key"
    assert env["HOOKS_TLS_CA_FILE"] == f"{folder}/ca.crt"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
    assert mount.get("readOnly") is True
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    secret = volumes[mount["name"]]["secret"]
    assert "items" not in secret and not secret.get("optional"), "all three keys, and no pod without them"
    return secret["secretName"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_component_presents_a_certificate_cert_manager_keeps_for_the_names_its_clients_dial(overlay):
    objects = render(overlay)
    certificates = {c["spec"]["secretName"]: c for c in by_kind(objects, "Certificate").values()}
    deployments = by_kind(objects, "Deployment")
    names_of = {}
    for name, deployment in deployments.items():
        container = main_container(deployment)
        env = env_of(container, objects)
        secret = _tls_secret(deployment, container, env)
        assert secret == f"hooks-tls-{name}"
        certificate = certificates[secret]["spec"]
        names_of[name] = set(certificate["dnsNames"])
        assert "client auth" in certificate["usages"], f"{name} calls other components"
        if name in GRPC_COMPONENTS:
            assert "server auth" in certificate["usages"], name
    # Each target a client dials names a host that the server's certificate covers.
    matcher_env = env_of(main_container(deployments["matcher"]), objects)
    for variable, server in (
        ("HOOKS_REGISTRY_TARGET", "registry"),
        ("HOOKS_SENDER_TARGET", "sender"),
        ("HOOKS_MATCHER_TARGET", "matcher"),
    ):
        host = matcher_env[variable].removeprefix("dns:///").rpartition(":")[0]
        assert host in names_of[server], f"{variable}: {host} is not a name of {server}'s certificate"
    assert "sender" in names_of["sender"], "the gateway reaches the senders through the Service `sender`"
    # Internal RPCs: the matcher, the sender and operators; not the internet-facing gateway.
    for name in GRPC_COMPONENTS:
        env = env_of(main_container(deployments[name]), objects)
        callers = set(env["HOOKS_TLS_INTERNAL_CALLERS"].split(","))
        assert names_of["matcher"] & callers and names_of["sender"] & callers, name
        assert not names_of["gateway"] & callers, f"{name}: the gateway's certificate may call internal RPCs"
        admins = callers - names_of["matcher"] - names_of["sender"]
        assert admins and all(any(a in set(c["spec"]["dnsNames"]) for c in certificates.values()) for a in admins)


def test_production_signs_with_the_operators_ca_and_development_with_its_own():
    prod = by_kind(render("prod"), "Issuer")
    assert set(prod) == {"hooks-ca"} and prod["hooks-ca"]["spec"] == {"ca": {"secretName": "hooks-ca"}}
    assert "`hooks-ca`" in DOCS.read_text(), "the CA Secret production needs is in the runbook"
    dev = render("dev")
    issuers = by_kind(dev, "Issuer")
    assert issuers["hooks-selfsigned"]["spec"] == {"selfSigned": {}}
    assert issuers["hooks-ca"]["spec"] == {"ca": {"secretName": "hooks-ca"}}
    root = by_kind(dev, "Certificate")["hooks-ca"]["spec"]
    assert root["isCA"] is True and root["secretName"] == "hooks-ca"
    assert root["issuerRef"]["name"] == "hooks-selfsigned"
