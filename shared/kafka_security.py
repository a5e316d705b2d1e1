"""Kafka security for managed clusters (Strimzi, MSK, Confluent Cloud, ...): TLS and SASL
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER with OAuth client credentials) from the
environment. Every client a service makes gets the same options (`client_options`): the
FastStream broker's consumers and producer, the outbox relay's producer, the admin client
that creates topics, the lag reader's and the console's consumers."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, Literal

import httpx
from aiokafka.abc import AbstractTokenProvider
from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLOAuthBearer,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
_PASSWORD_MECHANISMS = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256,
                        "SCRAM-SHA-512": SASLScram512}


class KafkaSecuritySettings(BaseSettings):
    """The Kafka security settings (read without a prefix too: `KAFKA_SECURITY_PROTOCOL`...)."""

    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: SaslMechanism = Field(
        "PLAIN", description="With SASL_*: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.")
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = Field("", description="PLAIN and SCRAM credentials.")
    kafka_sasl_oauth_token_url: str = Field(
        "", description="OAUTHBEARER: the OAuth token endpoint (client credentials grant).")
    kafka_sasl_oauth_client_id: str = ""
    kafka_sasl_oauth_client_secret: str = ""
    kafka_sasl_oauth_scope: str = ""
    kafka_sasl_oauth_extensions: str = Field(
        "", description="OAUTHBEARER SASL extensions, key=value,... (Confluent Cloud: "
        "logicalCluster=lkc-...,identityPoolId=pool-...).")
    kafka_ssl_cafile: str = Field(
        "",
        description="PEM file of the CAs that sign the brokers' certificates; empty: the system's.",
    )
    kafka_ssl_certfile: str = Field(
        "",
        description="Client certificate (PEM) for mutual TLS, e.g. Strimzi's `tls` authentication.",
    )
    kafka_ssl_keyfile: str = ""
    kafka_ssl_key_password: str = ""

    @model_validator(mode="after")
    def _credentials_given(self) -> KafkaSecuritySettings:
        if not self.kafka_security_protocol.startswith("SASL_"):
            return self
        if self.kafka_sasl_mechanism == "OAUTHBEARER":
            if any("=" not in pair for pair in self.kafka_sasl_oauth_extensions.split(",") if pair):
                raise ValueError("KAFKA_SASL_OAUTH_EXTENSIONS is key=value,key=value")
            missing = [n for n in ("token_url", "client_id", "client_secret")
                       if not getattr(self, f"kafka_sasl_oauth_{n}")]
            if missing:
                raise ValueError("KAFKA_SASL_MECHANISM=OAUTHBEARER needs "
                                 + ", ".join(f"KAFKA_SASL_OAUTH_{n.upper()}" for n in missing))
        elif not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(f"KAFKA_SASL_MECHANISM={self.kafka_sasl_mechanism} needs "
                             "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        return self


KAFKA_SECURITY_ENV = {name: name.upper() for name in KafkaSecuritySettings.model_fields}
"""Field name -> the unprefixed environment variable every service reads."""


def ssl_context(s: KafkaSecuritySettings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (hostnames checked), else None."""
    if s.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=s.kafka_ssl_cafile or None, certfile=s.kafka_ssl_certfile or None,
        keyfile=s.kafka_ssl_keyfile or None, password=s.kafka_ssl_key_password or None)
    return context


def faststream_security(s: KafkaSecuritySettings) -> BaseSecurity | None:
    """The settings as FastStream's security object (for `KafkaBroker(security=...)`)."""
    protocol = s.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context, use_ssl = ssl_context(s), protocol.endswith("SSL")
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    if s.kafka_sasl_mechanism == "OAUTHBEARER":
        return SASLOAuthBearer(ssl_context=context, use_ssl=use_ssl)
    return _PASSWORD_MECHANISMS[s.kafka_sasl_mechanism](
        s.kafka_sasl_username, s.kafka_sasl_password, ssl_context=context, use_ssl=use_ssl)


def token_provider(s: KafkaSecuritySettings) -> AbstractTokenProvider | None:
    """The OAUTHBEARER token provider, or None for the other mechanisms."""
    if not (
        s.kafka_security_protocol.startswith("SASL_") and s.kafka_sasl_mechanism == "OAUTHBEARER"
    ):
        return None
    extensions = dict(
        pair.split("=", 1) for pair in s.kafka_sasl_oauth_extensions.split(",") if pair
    )
    return ClientCredentialsTokenProvider(
        s.kafka_sasl_oauth_token_url, s.kafka_sasl_oauth_client_id,
        s.kafka_sasl_oauth_client_secret, scope=s.kafka_sasl_oauth_scope, extensions=extensions)


def client_options(s: KafkaSecuritySettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin client (the same ones
    FastStream derives from `faststream_security`)."""
    from faststream.kafka.security import parse_security

    options = parse_security(faststream_security(s))
    provider = token_provider(s)
    if provider is not None:
        options["sasl_oauth_token_provider"] = provider
    return options


class ClientCredentialsTokenProvider(AbstractTokenProvider):
    """OAUTHBEARER tokens from an OAuth 2.0 token endpoint (client credentials grant, the
    client authenticated with HTTP Basic as Kafka's own Java client does), kept until a
    minute before they expire and shared by every connection of the client."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, *, scope: str = "",
                 extensions: dict[str, str] | None = None, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.token_url = token_url
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._scope = scope
        self._extensions = extensions or {}
        self._timeout = timeout
        self._transport = transport
        self._token = ""
        self._expires_at = 0.0
        self._lock: asyncio.Lock | None = None

    async def token(self) -> str:
        """A valid access token (fetched again a minute before the last one expires)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._token or time.monotonic() >= self._expires_at:
                await self._fetch()
        return self._token

    async def _fetch(self) -> None:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
            response = await http.post(self.token_url, data=form, auth=self._auth)
        response.raise_for_status()
        body = response.json()
        self._token = body["access_token"]
        lifetime = float(body.get("expires_in", 300))
        self._expires_at = time.monotonic() + max(lifetime - 60, lifetime / 2)

    def extensions(self) -> dict[str, str]:
        """SASL extensions sent with the token (e.g. Confluent Cloud's logicalCluster)."""
        return dict(self._extensions)
