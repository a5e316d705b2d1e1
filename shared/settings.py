"""Settings every service shares; each service subclasses with its own env prefix.

A few infrastructure settings may also be given once for all services without the
prefix (`DATABASE_URL`, `KAFKA_BOOTSTRAP_SERVERS`, ...); the prefixed name wins.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.kafka_security import KAFKA_SECURITY_ENV, KafkaSecuritySettings

# field name -> unprefixed environment variable that every service reads
SHARED_ENV = {
    "database_url": "DATABASE_URL",
    "database_direct_url": "DATABASE_DIRECT_URL",
    "db_statement_cache_size": "DATABASE_STATEMENT_CACHE_SIZE",
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "kafka_enable_idempotence": "KAFKA_ENABLE_IDEMPOTENCE",
    "topic_partitions": "KAFKA_TOPIC_PARTITIONS",
    "topic_replication": "KAFKA_TOPIC_REPLICATION",
    "topic_min_insync_replicas": "KAFKA_TOPIC_MIN_INSYNC_REPLICAS",
    "topic_prefix": "KAFKA_TOPIC_PREFIX",
    "kafka_session_timeout_ms": "KAFKA_SESSION_TIMEOUT_MS",
    "kafka_heartbeat_interval_ms": "KAFKA_HEARTBEAT_INTERVAL_MS",
    "log_level": "LOG_LEVEL",
    "log_format": "LOG_FORMAT",
    "ops_token": "OPS_TOKEN",
    "ops_peers": "OPS_PEERS",
    "online_code_key": "ONLINE_CODE_KEY",  # booking and notifier (shared/sealed.py)
    **KAFKA_SECURITY_ENV,
}


class _SharedEnvSource(PydanticBaseSettingsSource):
    """Reads the unprefixed shared variables (lower priority than the prefixed ones)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = SHARED_ENV.get(field_name)
        return (os.environ.get(name) if name else None), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {f: os.environ[e] for f, e in SHARED_ENV.items() if e in os.environ}


class ServiceSettings(KafkaSecuritySettings):
    """Base settings: where PostgreSQL and Kafka are (and how to reach Kafka securely:
    `shared.kafka_security`), the HTTP port, tuning knobs."""

    model_config = SettingsConfigDict(extra="ignore", env_prefix="")

    service_name: ClassVar[str] = "service"

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        description="PostgreSQL URL; the service keeps its tables in its own schema there.",
    )
    database_direct_url: str = Field("", description=(
        "PostgreSQL URL of a direct session (not through PgBouncer in transaction mode), for "
        "what needs one: LISTEN, the outbox relay's leader lock, migrations. Empty: "
        "`database_url`."))
    db_statement_cache_size: int = Field(100, ge=0, description=(
        "Prepared statements asyncpg keeps per connection of `database_url`. 0 behind "
        "PgBouncer in transaction mode before 1.21 (from 1.21 on, with its "
        "max_prepared_statements set, the cache may stay on)."))
    db_schema: str = Field("", description="Schema owned by this service (default: its name).")
    db_pool_size: int = 10
    db_pool_min_size: int = Field(4, ge=0, description=(
        "Connections of `database_url` the pool keeps open while idle (at most "
        "`db_pool_size`). The notifier's dispatcher uses 4 at once when many texts fall due "
        "together (a claim, the results of 2 batches, its upkeep): opened only then, after "
        "a quiet spell closed them (asyncpg closes idle ones after 5 minutes), they cost a "
        "5,000-text burst 10-15% of its time."))
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_enable_idempotence: bool = Field(
        False, description="Idempotent producer: on for Apache Kafka, off for tansu."
    )
    kafka_session_timeout_ms: int = Field(
        10000,
        description="Consumer group session timeout; "
        "the broker's first assignment waits about half of it.",
    )
    kafka_heartbeat_interval_ms: int = 3000
    topic_partitions: int = 6
    topic_replication: int = Field(1, ge=1, description=(
        "Replication factor of topics a service creates at start-up (3 on a replicated Kafka)."))
    topic_min_insync_replicas: int = Field(
        1,
        ge=1,
        description=(
            "min.insync.replicas of topics a service creates (2 with replication 3); "
            "1: the broker's default."
        ),
    )
    topic_prefix: str = Field(
        "",
        description="Namespace for topic names, e.g. 'staging.' when environments share a cluster.",
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    http_workers: int = Field(1, ge=1, le=32, description="HTTP worker processes")
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line (for log shippers); text: for people."
    )
    ops_token: str = Field(
        "",
        description="Token for the /ops endpoints and the ops CLI (header X-Ops-Token); "
        "empty: /ops disabled.",
    )
    ops_peers: str = Field(
        "booking=http://127.0.0.1:8001,plans=http://127.0.0.1:8002,notifier=http://127.0.0.1:8003",
        description="name=url of every service, for the ops overview and dashboard.",
    )
    ops_max_lag: int = Field(
        1000, description="Consumer lag (events) above which a service is unhealthy."
    )
    ops_max_outbox_age_seconds: float = Field(
        60.0, description="Oldest unsent outbox row age above which a service is unhealthy."
    )
    consumer_max_records: int = 500
    outbox_batch_size: int = 500
    outbox_poll_seconds: float = 1.0
    dlq_replay_batch_size: int = Field(100, ge=1, le=1000, description=(
        "Dead letters a 'replay all' job replays per transaction."))
    retention_processed_events_days: float = Field(14.0, gt=0, description=(
        "How long a consumer remembers the events it processed (to skip redeliveries). It must "
        "exceed how long the broker keeps events and how far back a consumer group may re-read "
        "(Kafka's log.retention and offsets.retention: 7 days by default): an event redelivered "
        "after its row is gone is handled again."))
    retention_outbox_days: float = Field(
        7.0, gt=0, description="How long sent outbox rows are kept."
    )
    retention_dead_letters_days: float = Field(30.0, gt=0, description=(
        "How long replayed and discarded dead letters (and their actions) are kept; pending "
        "ones are kept until resolved."))
    retention_batch_size: int = Field(
        1000, ge=1, le=100_000, description="Rows deleted per statement."
    )
    retention_interval_seconds: float = Field(300.0, gt=0, description="How often the purge runs.")
    audit_retention_days: int = Field(2190, ge=365, description=(
        "How long the audit trail is kept (whole UTC days; HIPAA asks for six years)."))
    trusted_proxies: str = Field("", description=(
        "Addresses or networks (comma-separated) of reverse proxies whose X-Forwarded-For names "
        "the client (sign-in limits, audit entries)."))

    @property  # shadows pydantic's deprecated `schema()` classmethod, on purpose
    def schema(self) -> str:  # type: ignore[override]
        return self.db_schema or self.service_name

    @property
    def direct_database_url(self) -> str:
        """Where a session of its own goes (`database_direct_url`, else `database_url`)."""
        return self.database_direct_url or self.database_url

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SharedEnvSource(settings_cls), dotenv_settings,
                file_secret_settings)

    @classmethod
    def env_names(cls) -> set[str]:
        """Every environment variable this class reads (used by the compose contract test)."""
        prefix = cls.model_config.get("env_prefix", "")
        names = {f"{prefix}{name}".upper() for name in cls.model_fields}
        return names | set(SHARED_ENV.values())
