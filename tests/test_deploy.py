"""The docker-compose stack, checked offline (no Docker engine runs here): every long-running
service has a health check, every file it mounts or builds from exists, Grafana's data
sources and dashboards are provisioned from deploy/, the collector's pipelines use only
components it defines and send to Jaeger, and the services' tracing is off by default.
(The dashboards' PromQL is checked against the metrics the services export in test_ops.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def mounts(service: dict) -> dict[str, Path]:
    """A service's bind mounts from this repository: container path -> host path."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def test_every_long_running_compose_service_has_a_health_check(compose):
    services = compose["services"]
    assert {"otel-collector", "jaeger", "grafana", "prometheus"} <= set(services)
    one_shot = {name for name, s in services.items() if s.get("restart") == "no"}
    assert "kafka-init" in one_shot and not one_shot & {"otel-collector", "jaeger", "grafana"}
    for name, service in services.items():
        if name not in one_shot:
            test = service.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_every_file_a_compose_service_mounts_or_builds_from_exists(compose):
    for name, service in compose["services"].items():
        for source in mounts(service).values():
            assert source.exists(), f"{name} mounts {source.relative_to(ROOT)}, which is missing"
        build = service.get("build")
        if build:
            context = ROOT / (build if isinstance(build, str) else build["context"])
            assert (context / "Dockerfile").is_file(), f"{name} builds from {context} without a Dockerfile"


def test_grafana_provisions_prometheus_jaeger_and_the_dashboards_from_deploy(compose):
    grafana = compose["services"]["grafana"]
    mounted = mounts(grafana)
    assert mounted["/etc/grafana/provisioning"] == ROOT / "deploy/grafana/provisioning"
    sources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/datasources.yml").read_text())
    by_type = {s["type"]: s for s in sources["datasources"]}
    assert (by_type["prometheus"]["url"], by_type["prometheus"]["isDefault"]) == ("http://prometheus:9090", True)
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    assert by_type["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == \
        by_type["jaeger"]["uid"]
    for source in sources["datasources"]:
        host = urlsplit(source["url"]).hostname
        assert host in compose["services"], f"{source['name']} points at {host}, not a compose service"

    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert mounted[path] == ROOT / "deploy/grafana/dashboards"
    dashboards = [json.loads(p.read_text()) for p in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))]
    assert [d["uid"] for d in dashboards] == ["clinic-backbone"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{path}/clinic-backbone.json"
    prometheus_uid = by_type["prometheus"]["uid"]
    for panel in dashboards[0]["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == prometheus_uid, panel["title"]


def test_the_collector_receives_otlp_and_sends_every_trace_to_jaeger(compose):
    collector = compose["services"]["otel-collector"]
    config_path = collector["command"][0].split("=", 1)[1]
    config = yaml.safe_load(mounts(collector)[config_path].read_text())
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces"}
    for kind in ("receivers", "processors", "exporters"):
        for pipeline in pipelines.values():
            assert set(pipeline[kind]) <= set(config[kind]), f"a {kind[:-1]} the config does not define"
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    assert pipelines["traces"]["processors"][0] == "memory_limiter"  # first, as the collector advises
    assert pipelines["traces"]["processors"][-1] == "batch"
    jaeger = config["exporters"]["otlp/jaeger"]["endpoint"]
    assert jaeger == "jaeger:4317" and "jaeger" in compose["services"]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert (protocols["grpc"]["endpoint"], protocols["http"]["endpoint"]) == ("0.0.0.0:4317", "0.0.0.0:4318")
    health_port = config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1]
    assert f"127.0.0.1:{health_port}/" in " ".join(collector["healthcheck"]["test"])


def test_the_collector_masks_attribute_values_that_read_as_phone_numbers_and_nothing_else(compose):
    collector = compose["services"]["otel-collector"]
    config = yaml.safe_load(mounts(collector)["/etc/otelcol-contrib/config.yaml"].read_text())
    (pattern,) = config["processors"]["redaction/no-phone-numbers"]["blocked_values"]
    masked = re.compile(pattern)  # Go's RE2 and Python agree on this subset
    for phone in ("+16045550142", "604-555-0142", "(604) 555-0142", "1 604 555 0142"):
        assert masked.search(phone), phone
    for value in ("SM0123456789abcdef0123456789abcd", "4bf92f3577b34da6a3ce929d0e0e4736",
                  "21610", "6045550142 texts", "booking.events"):
        assert not masked.search(value), value


def test_the_services_trace_to_the_collector_with_standard_variables_and_tracing_off_by_default(compose):
    collector_ports = {p.split(":")[1] for p in compose["services"]["otel-collector"]["ports"]}
    for name in ("booking", "plans", "notifier", "console"):
        env = compose["services"][name]["environment"]
        assert env["OTEL_SERVICE_NAME"] == name
        assert env["OTEL_SDK_DISABLED"] == "${OTEL_SDK_DISABLED:-true}"
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (endpoint.hostname, str(endpoint.port)) == ("otel-collector", "4318")
        assert str(endpoint.port) in collector_ports
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
