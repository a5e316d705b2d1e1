"""Kafka plumbing: topic creation, the producer the outbox relay uses, the FastStream broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from shared import tracing
from shared.kafka_security import client_options, faststream_security, token_provider
from shared.settings import ServiceSettings
from shared.topics import ALL_TOPICS

log = logging.getLogger(__name__)


async def ensure_service_topics(settings: ServiceSettings) -> list[str]:
    """Create the missing topics as the settings say (partitions, replication, min ISR, prefix)."""
    s = settings
    return await ensure_topics(s.kafka_bootstrap_servers, s.topic_partitions, prefix=s.topic_prefix,
                               replication=s.topic_replication,
                               min_insync_replicas=s.topic_min_insync_replicas,
                               options=client_options(s))


async def ensure_topics(bootstrap: str, partitions: int, topics: Iterable[str] = ALL_TOPICS, *,
                        prefix: str = "",
                        replication: int = 1, min_insync_replicas: int = 1,
                        options: dict[str, Any] | None = None, timeout: float = 60.0) -> list[str]:
    """Create the topics that are missing (retrying while the broker comes up), with
    `replication` copies and, above 1, `min.insync.replicas`; `options`: the clients'
    security options (`shared.kafka_security.client_options`)."""
    topics = [prefix + t for t in topics]
    configs = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas > 1 else {}
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                    **(options or {}))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another service made it
                    await admin.create_topics(
                        [NewTopic(t, num_partitions=partitions, replication_factor=replication,
                                  topic_configs=configs) for t in missing])
            return missing
        except (KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("waiting for the broker (%s)", type(exc).__name__)
            await asyncio.sleep(1.0)
        finally:
            await admin.close()


def make_producer(settings: ServiceSettings) -> AIOKafkaProducer:
    """The producer the outbox relay publishes with: acks from all replicas, small linger."""
    return AIOKafkaProducer(
        **client_options(settings),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.service_name}-relay",
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=2,
        max_batch_size=1024 * 1024,
        request_timeout_ms=15000,
    )


def make_broker(settings: ServiceSettings) -> KafkaBroker:
    """The FastStream broker a service consumes with (its consumers and producer get the
    settings' TLS and SASL options)."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        enable_idempotence=settings.kafka_enable_idempotence,
        security=faststream_security(settings),
        sasl_oauth_token_provider=token_provider(settings),
        logger=logging.getLogger(f"{settings.service_name}.kafka"),
        log_level=logging.DEBUG,  # per-batch "Received"/"Processed" lines only at DEBUG
        middlewares=tracing.broker_middlewares(),  # a span per batch, while tracing is on
    )
