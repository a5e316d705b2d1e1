"""Kafka security from the environment (TLS, SASL PLAIN/SCRAM/OAUTHBEARER) reaches every
client a service makes: the outbox relay's producer, the FastStream broker's consumers and
producer, the admin client that creates topics, the lag reader's and the console's consumers.
The clients are constructed with the settings and inspected; no SASL broker is needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from services.booking.settings import BookingSettings
from services.console.live import Hub
from services.notifier.settings import NotifierSettings
from shared import kafka
from shared.kafka_security import ClientCredentialsTokenProvider, client_options
from shared.runtime import ServiceRuntime
from tests.tls_helpers import self_signed_ca

ROOT = Path(__file__).resolve().parent.parent


def _client_security(client) -> dict:
    """What an aiokafka client will connect with."""
    ctx = client._ssl_context
    return {"protocol": client._security_protocol, "mechanism": client._sasl_mechanism,
            "username": client._sasl_plain_username, "password": client._sasl_plain_password,
            "ca": [dict(c["subject"][0])["commonName"] for c in ctx.get_ca_certs()] if ctx else None,
            "token_provider": type(client._sasl_oauth_token_provider).__name__}


SCRAM_OVER_TLS = {"protocol": "SASL_SSL", "mechanism": "SCRAM-SHA-512", "username": "relay-user",
                  "password": "s3cret-scram", "ca": ["kcb test CA"], "token_provider": "NoneType"}


@pytest.fixture
def scram_env(monkeypatch, tmp_path):
    ca, _ = self_signed_ca(tmp_path)
    for name, value in {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                        "KAFKA_SASL_USERNAME": "relay-user", "KAFKA_SASL_PASSWORD": "s3cret-scram",
                        "KAFKA_SSL_CAFILE": str(ca)}.items():
        monkeypatch.setenv(name, value)


async def test_scram_over_tls_from_the_environment_reaches_the_relay_producer_and_the_brokers_consumers(scram_env):
    settings = BookingSettings()
    producer = kafka.make_producer(settings)
    assert _client_security(producer.client) == SCRAM_OVER_TLS

    runtime = ServiceRuntime(settings, ROOT / "services" / "booking" / "migrations")
    # every subscriber's consumer is built by the broker's builder, with these options
    consumer = runtime.broker.config.broker_config.builder(group_id="booking-test")
    assert _client_security(consumer._client) == SCRAM_OVER_TLS
    # and the broker's own producer (FastStream publishers) connects with the same ones
    options = runtime.broker._connection_kwargs
    assert (options["security_protocol"], options["sasl_mechanism"], options["sasl_plain_username"]) \
        == ("SASL_SSL", "SCRAM-SHA-512", "relay-user")


async def test_scram_over_tls_reaches_the_lag_readers_consumers(scram_env, monkeypatch):
    async def no_broker(self):
        return None

    monkeypatch.setattr(AIOKafkaConsumer, "start", no_broker)
    runtime = ServiceRuntime(NotifierSettings(), ROOT / "services" / "notifier" / "migrations")
    consumer = await runtime.lag_reader._consumer("notifier")
    assert _client_security(consumer._client) == SCRAM_OVER_TLS


async def test_scram_over_tls_reaches_the_admin_client_that_creates_topics(scram_env, monkeypatch):
    made = []

    class RecordingAdmin(kafka.AIOKafkaAdminClient):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            made.append(self)

        async def start(self):
            raise OSError("no broker in this test")

        async def close(self):
            return None

    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", RecordingAdmin)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    settings = BookingSettings()
    with pytest.raises(OSError):
        await kafka.ensure_topics(settings.kafka_bootstrap_servers, 1, options=client_options(settings),
                                  timeout=-1)
    assert _client_security(made[0]._client) == SCRAM_OVER_TLS


async def test_scram_over_tls_reaches_the_consoles_live_consumer(scram_env, monkeypatch):
    from services.console.settings import ConsoleSettings

    seen = []

    async def record_and_stop(self):
        seen.append(self)
        raise asyncio.CancelledError

    monkeypatch.setattr(AIOKafkaConsumer, "start", record_and_stop)
    settings = ConsoleSettings()
    with pytest.raises(asyncio.CancelledError):
        await Hub().run(settings.kafka_bootstrap_servers, "", client_options(settings))
    assert _client_security(seen[0]._client) == SCRAM_OVER_TLS


async def test_tls_alone_with_a_client_certificate_is_mutual_tls_without_sasl(monkeypatch, tmp_path):
    ca, key = self_signed_ca(tmp_path)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(ca))
    monkeypatch.setenv("KAFKA_SSL_CERTFILE", str(ca))
    monkeypatch.setenv("KAFKA_SSL_KEYFILE", str(key))
    producer = kafka.make_producer(NotifierSettings())
    security = _client_security(producer.client)
    assert (security["protocol"], security["ca"]) == ("SSL", ["kcb test CA"])
    assert producer.client._ssl_context.check_hostname is True


async def test_a_prefixed_kafka_password_wins_over_the_shared_one(scram_env, monkeypatch):
    monkeypatch.setenv("NOTIFIER_KAFKA_SASL_USERNAME", "notifier-user")
    monkeypatch.setenv("NOTIFIER_KAFKA_SASL_PASSWORD", "notifier-secret")
    producer = kafka.make_producer(NotifierSettings())
    assert (producer.client._sasl_plain_username, producer.client._sasl_plain_password) \
        == ("notifier-user", "notifier-secret")
    assert kafka.make_producer(BookingSettings()).client._sasl_plain_username == "relay-user"


async def test_plaintext_is_the_default_and_adds_no_options():
    settings = BookingSettings()
    assert client_options(settings) == {}
    assert _client_security(kafka.make_producer(settings).client)["protocol"] == "PLAINTEXT"


def test_sasl_without_credentials_is_refused_naming_the_missing_settings(monkeypatch):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        BookingSettings()
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv("KAFKA_SASL_OAUTH_CLIENT_ID", "kcb")
    with pytest.raises(ValidationError, match="KAFKA_SASL_OAUTH_TOKEN_URL, KAFKA_SASL_OAUTH_CLIENT_SECRET"):
        BookingSettings()


def test_an_unknown_mechanism_is_refused(monkeypatch):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "GSSAPI")
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        BookingSettings()


@pytest.fixture
async def token_endpoint():
    """A real OAuth token endpoint on a free local port: answers the client credentials grant
    for client `kcb` with secret `oauth-secret`, a new token each time, valid 3600 s."""
    calls: list[dict] = []

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        calls.append({"authorization": request.headers.get("Authorization"), **form})
        if request.headers.get("Authorization") != "Basic a2NiOm9hdXRoLXNlY3JldA==":
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response({"access_token": f"token-{len(calls)}", "token_type": "Bearer",
                                  "expires_in": 3600})

    app = web.Application()
    app.router.add_post("/oauth2/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/oauth2/token", calls
    finally:
        await runner.cleanup()


async def test_oauthbearer_tokens_come_from_the_token_endpoint_once_and_reach_every_client(
        token_endpoint, monkeypatch, tmp_path):
    url, calls = token_endpoint
    ca, _ = self_signed_ca(tmp_path)
    for name, value in {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                        "KAFKA_SASL_OAUTH_TOKEN_URL": url, "KAFKA_SASL_OAUTH_CLIENT_ID": "kcb",
                        "KAFKA_SASL_OAUTH_CLIENT_SECRET": "oauth-secret",
                        "KAFKA_SASL_OAUTH_SCOPE": "kafka",
                        "KAFKA_SASL_OAUTH_EXTENSIONS": "logicalCluster=lkc-1234,identityPoolId=pool-ab",
                        "KAFKA_SSL_CAFILE": str(ca)}.items():
        monkeypatch.setenv(name, value)
    settings = BookingSettings()
    producer = kafka.make_producer(settings)
    consumer = ServiceRuntime(settings, ROOT / "services" / "booking" / "migrations") \
        .broker.config.broker_config.builder(group_id="booking-test")
    for client in (producer.client, consumer._client):
        security = _client_security(client)
        assert (security["protocol"], security["mechanism"], security["token_provider"]) \
            == ("SASL_SSL", "OAUTHBEARER", "ClientCredentialsTokenProvider")

    provider = producer.client._sasl_oauth_token_provider
    assert await provider.token() == "token-1"
    assert await provider.token() == "token-1"  # kept until a minute before it expires
    assert calls == [{"authorization": "Basic a2NiOm9hdXRoLXNlY3JldA==",
                      "grant_type": "client_credentials", "scope": "kafka"}]
    assert provider.extensions() == {"logicalCluster": "lkc-1234", "identityPoolId": "pool-ab"}


async def test_an_oauth_token_is_fetched_again_once_it_is_about_to_expire(token_endpoint):
    url, calls = token_endpoint
    provider = ClientCredentialsTokenProvider(url, "kcb", "oauth-secret")
    assert await provider.token() == "token-1"
    provider._expires_at = 0.0  # the minute before expiry has come
    assert await provider.token() == "token-2"
    assert len(calls) == 2


async def test_a_refused_oauth_client_is_an_error_not_an_empty_token(token_endpoint):
    url, _ = token_endpoint
    provider = ClientCredentialsTokenProvider(url, "kcb", "wrong-secret")
    with pytest.raises(Exception, match="401"):
        await provider.token()


async def test_topics_a_service_creates_get_the_replication_and_min_isr_of_the_settings(monkeypatch):
    created = []

    class RecordingAdmin:
        def __init__(self, **kwargs):
            pass

        async def start(self):
            return None

        async def list_topics(self):
            return ["booking.events"]

        async def create_topics(self, topics):
            created.extend(topics)

        async def close(self):
            return None

    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", RecordingAdmin)
    monkeypatch.setenv("KAFKA_TOPIC_REPLICATION", "3")
    monkeypatch.setenv("KAFKA_TOPIC_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("KAFKA_TOPIC_PARTITIONS", "12")
    missing = await kafka.ensure_service_topics(BookingSettings())
    assert missing == ["plans.events", "notifier.events", "booking.events.dlq",
                       "plans.events.dlq", "notifier.events.dlq"]
    assert {(t.name, t.num_partitions, t.replication_factor, tuple(t.topic_configs.items()))
            for t in created} == {(name, 12, 3, (("min.insync.replicas", "2"),)) for name in missing}
