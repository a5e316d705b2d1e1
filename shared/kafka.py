"""Kafka plumbing: topic creation, the producer the outbox relay uses, the FastStream broker."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from shared.settings import ServiceSettings
from shared.topics import ALL_TOPICS

log = logging.getLogger(__name__)


async def ensure_topics(bootstrap: str, partitions: int, topics=ALL_TOPICS, *, prefix: str = "",
                        replication: int = 1, timeout: float = 60.0) -> list[str]:
    """Create the topics that are missing (retrying while the broker comes up)."""
    topics = [prefix + t for t in topics]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                try:
                    await admin.create_topics(
                        [NewTopic(t, num_partitions=partitions, replication_factor=replication)
                         for t in missing])
                except TopicAlreadyExistsError:
                    pass  # another service created it meanwhile
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
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.service_name}-relay",
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=2,
        max_batch_size=1024 * 1024,
        request_timeout_ms=15000,
    )


def make_broker(settings: ServiceSettings) -> KafkaBroker:
    """The FastStream broker a service consumes with."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        enable_idempotence=settings.kafka_enable_idempotence,
        logger=logging.getLogger(f"{settings.service_name}.kafka"),
        log_level=logging.DEBUG,  # per-batch "Received"/"Processed" lines only at DEBUG
    )
