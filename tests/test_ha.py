"""The compose profile `ha` (three Apache Kafka nodes in KRaft mode, topics at replication 3
and min.insync.replicas 2, idempotent producers), read from docker-compose.yml; and the
proof's load driver against an external broker such as that one. Docker does not run here:
the file is checked, not started."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import yaml

from bench.load.faults import FaultInjector, FaultLog
from devstack.stack import Stack
from services.booking.settings import BookingSettings
from services.console.settings import ConsoleSettings
from services.notifier.settings import NotifierSettings
from services.plans.settings import PlansSettings
from shared.topics import ALL_TOPICS, EVENT_TOPICS

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"booking": BookingSettings, "plans": PlansSettings, "notifier": NotifierSettings,
            "console": ConsoleSettings}
NODES = ["kafka-1", "kafka-2", "kafka-3"]
BOOTSTRAP = "kafka-1:9092,kafka-2:9092,kafka-3:9092"


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_ha_profile_holds_three_kafka_nodes_their_topics_and_the_four_services():
    services = compose()
    ha = {name for name, s in services.items() if "ha" in s.get("profiles", [])}
    assert ha == {"kafka-1", "kafka-2", "kafka-3", "kafka-init-ha", "booking-ha", "plans-ha",
                  "notifier-ha", "console-ha"}
    # the default stack is untouched: no profile, one broker
    assert not any("profiles" in s for name, s in services.items() if name not in ha)


def test_the_three_nodes_form_one_kraft_quorum_and_keep_three_copies_with_two_in_sync():
    services = compose()
    envs = [services[n]["environment"] for n in NODES]
    assert [e["KAFKA_NODE_ID"] for e in envs] == [1, 2, 3]
    assert len({e["CLUSTER_ID"] for e in envs}) == 1
    for node, env in zip(NODES, envs, strict=True):
        assert services[node]["image"] == "apache/kafka:3.9.1"
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert (env["KAFKA_DEFAULT_REPLICATION_FACTOR"], env["KAFKA_MIN_INSYNC_REPLICAS"]) == (3, 2)
        assert (env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"], env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"],
                env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == (3, 3, 2)
        assert (env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"], env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]) == (
            "false",
            "false",
        )
        # inside the compose network by name, from the host on its own published port
        external = re.search(r"EXTERNAL://127\.0\.0\.1:(\d+)", env["KAFKA_ADVERTISED_LISTENERS"]).group(1)
        assert f"INTERNAL://{node}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert services[node]["ports"] == [f"127.0.0.1:{external}:{external}"]
    assert [services[n]["ports"][0].split(":")[1] for n in NODES] == ["19092", "19093", "19094"]


def test_the_ha_topics_are_every_topic_and_its_dlq_at_replication_3_and_min_isr_2():
    init = compose()["kafka-init-ha"]
    script = init["command"][0]
    loop = re.search(r"for t in ([^;]+);", script).group(1).split()
    assert sorted(loop) == sorted(EVENT_TOPICS)
    assert "for name in $$t $$t.dlq" in script  # so: every topic of ALL_TOPICS
    assert len(ALL_TOPICS) == 2 * len(loop)
    assert "--replication-factor 3" in script and "--config min.insync.replicas=2" in script
    assert f"--bootstrap-server {BOOTSTRAP}" in script
    assert init["depends_on"] == {n: {"condition": "service_healthy"} for n in NODES}


def test_every_ha_service_reads_all_it_is_given_and_produces_idempotently_to_the_three_nodes():
    services = compose()
    for name, settings_cls in SETTINGS.items():
        service = services[f"{name}-ha"]
        env = service["environment"]
        ours = {k for k in env if not k.startswith("OTEL_")}  # OTEL_*: the OpenTelemetry SDK's
        assert ours <= settings_cls.env_names(), f"{name}-ha: {sorted(ours - settings_cls.env_names())}"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == BOOTSTRAP
        assert (env["KAFKA_ENABLE_IDEMPOTENCE"], env["KAFKA_TOPIC_REPLICATION"],
                env["KAFKA_TOPIC_MIN_INSYNC_REPLICAS"]) == ("true", "3", "2")
        assert env["OPS_PEERS"] == ("booking=http://booking-ha:8001,plans=http://plans-ha:8002,"
                                    "notifier=http://notifier-ha:8003")
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert "kafka" not in service["depends_on"] and "kafka-init" not in service["depends_on"]
    assert services["booking-ha"]["depends_on"]["kafka-init-ha"] == {"condition": "service_completed_successfully"}
    console = services["console-ha"]["environment"]
    assert (console["CONSOLE_BOOKING_URL"], console["CONSOLE_PLANS_URL"], console["CONSOLE_NOTIFIER_URL"]) == (
        "http://booking-ha:8001", "http://plans-ha:8002", "http://notifier-ha:8003")


async def test_the_ha_settings_make_the_outbox_producer_idempotent_with_acks_from_all_replicas(monkeypatch):
    from shared.kafka import make_producer

    for name, value in compose()["notifier-ha"]["environment"].items():
        monkeypatch.setenv(name, value)
    settings = NotifierSettings()
    assert (settings.topic_replication, settings.topic_min_insync_replicas) == (3, 2)
    producer = make_producer(settings)
    assert producer._txn_manager is not None and producer._sender._acks == -1


def test_the_stack_records_an_external_database_and_broker_for_the_load_driver(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://clinic:clinic@127.0.0.1:5432/clinic")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094")
    stack = Stack(data_dir=tmp_path)
    stack.start_infrastructure()  # starts nothing: both are external
    assert (stack.postgres, stack.broker) == (None, None)
    assert stack.env["DATABASE_URL"] == "postgresql://clinic:clinic@127.0.0.1:5432/clinic"
    assert stack.env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"


def test_the_broker_fault_on_an_external_broker_runs_its_stop_and_start_commands(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_BROKER_STOP_COMMAND", f"echo stopped >> {tmp_path}/broker")
    monkeypatch.setenv("BENCH_BROKER_START_COMMAND", f"echo started >> {tmp_path}/broker")
    log = FaultLog()
    injector = FaultInjector(SimpleNamespace(broker=None, postgres=None), broker_pause=0.01, log=log)
    injector.pause_broker()
    injector.restart_postgres()
    assert (tmp_path / "broker").read_text() == "stopped\nstarted\n"
    assert [what for _, what in log.events] == [
        f"broker stopped (echo stopped >> {tmp_path}/broker)",
        f"broker started again after 0 s (echo started >> {tmp_path}/broker)",
        "PostgreSQL restart skipped: external PostgreSQL"]
    assert log.crashes == []


def test_without_commands_the_broker_fault_on_an_external_broker_is_skipped_and_said(monkeypatch):
    monkeypatch.delenv("BENCH_BROKER_STOP_COMMAND", raising=False)
    monkeypatch.delenv("BENCH_BROKER_START_COMMAND", raising=False)
    log = FaultLog()
    FaultInjector(SimpleNamespace(broker=None, postgres=None), log=log).pause_broker()
    assert [what for _, what in log.events] == [
        "broker fault skipped: external broker and no BENCH_BROKER_STOP_COMMAND and BENCH_BROKER_START_COMMAND"]
