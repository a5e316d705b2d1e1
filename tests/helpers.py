"""Builders for test data shared by several test modules."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from shared.events import Envelope
from shared.events.booking import SessionBooked

EVERY_DAY = [{"weekday": d, "opens": "07:00", "closes": "21:00"} for d in range(1, 8)]


@dataclass
class Network:
    """A clinic network made over the booking API, with its admin key."""

    clinic: dict
    site: dict
    patient: dict
    key: str
    rooms: list[dict] = field(default_factory=list)
    providers: list[dict] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


async def create_network(booking_http, *, language: str = "en", timezone: str = "America/Vancouver",
                         rooms: int = 1, providers: int = 1, hours=EVERY_DAY,
                         name: str = "Test Clinic", clinic: dict | None = None,
                         site: dict | None = None, patient: dict | None = None) -> Network:
    """A clinic with one site (rooms, providers working its hours) and one consenting patient;
    `clinic`, `site` and `patient`: more or other fields for them."""
    from tests.conftest import ADMIN_TOKEN

    clinic = await _ok(booking_http.post("/clinics", json={
        "name": name, "phone": "+1 604 555 0100", **(clinic or {})},
        headers={"X-Admin-Token": ADMIN_TOKEN}))
    auth = {"X-API-Key": clinic["api_key"]}
    site = await _ok(booking_http.post("/sites", headers=auth, json={
        "name": "Main", "address": "1 Main St", "phone": "+1 604 555 0101", "timezone": timezone,
        "hours": hours, **(site or {})}))
    net = Network(clinic, site, {}, clinic["api_key"])
    for i in range(rooms):
        net.rooms.append(await _ok(booking_http.post("/rooms", headers=auth, json={
            "site_id": site["id"], "name": f"Room {i + 1}"})))
    for i in range(providers):
        net.providers.append(await _ok(booking_http.post("/providers", headers=auth, json={
            "name": f"Provider {i + 1}", "hours": [{**h, "site_id": site["id"]} for h in hours]})))
    net.patient = await add_patient(booking_http, net, **{"language": language, **(patient or {})})
    return net


def new_number() -> str:
    """A mobile number (E.164) no other test of this process has: for tests sharing their
    module's services, whose data must not meet (an opt-out, a limit or a text is a number's)."""
    return f"+1604555{next(_numbers):04d}"


_numbers = itertools.count(2000)


def new_address() -> str:
    """An IPv4 address no other test of this process has (limits are per address too)."""
    n = next(_addresses)
    return f"10.{n // 62500 % 250}.{n // 250 % 250}.{n % 250 + 1}"


_addresses = itertools.count(1)


async def add_patient(booking_http, net: Network, **fields) -> dict:
    body = {"given_name": "Pat", "family_name": "Test", "phone": "604-555-0177",
            "sms_consent": True, **fields}
    return await _ok(booking_http.post("/patients", headers=net.headers, json=body))


async def key_everywhere(spine, net: Network) -> None:
    """Wait until the network's API key has reached plans and the notifier (as an event)."""
    from tests.conftest import eventually

    async def known():
        return all([(await spine.plans.http.get("/plan-templates", headers=net.headers)).status_code == 200,
                    (await spine.notifier.http.get("/policy", headers=net.headers)).status_code == 200])

    await eventually(known, timeout=30)


async def _ok(response_coro) -> dict:
    response = await response_coro
    assert response.status_code in (200, 201), response.text
    return response.json()


def session_booked(*, patient_id: UUID | None = None, clinic_id: UUID | None = None,
                   starts_in: timedelta = timedelta(days=5), **overrides) -> Envelope:
    """A valid SessionBooked envelope, as the booking service would publish it."""
    starts = datetime.now(UTC).replace(microsecond=0) + starts_in
    payload = dict(
        booking_id=uuid4(), clinic_name="Test Clinic", clinic_phone="+1 604 555 0100",
        site_id=uuid4(), site_name="Main", site_address="1 Main St", site_phone="+1 604 555 0101",
        site_timezone="America/Vancouver", session_type="iv_infusion", is_dosing=True,
        fasting_rule="solids_6h_clear_liquids_2h", starts_at=starts,
        ends_at=starts + timedelta(minutes=90))
    payload.update(overrides)
    return Envelope.new(SessionBooked(**payload), producer="booking",
                        clinic_id=clinic_id or uuid4(), patient_id=patient_id or uuid4())


async def records_on(bootstrap_servers: str, topic: str) -> list[bytes]:
    """The values of every record of `topic` so far (from the earliest, up to 3 s of reading)."""
    from aiokafka import AIOKafkaConsumer

    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers,
                              auto_offset_reset="earliest", enable_auto_commit=False)
    await reader.start()
    try:
        batch = await reader.getmany(timeout_ms=3000)
    finally:
        await reader.stop()
    return [m.value for msgs in batch.values() for m in msgs]
