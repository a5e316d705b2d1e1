"""Texts people send us, through the whole system (booking and notifier in this process,
real PostgreSQL and broker, signed Twilio webhooks): an opt-out is the number's, every
network that has the number sees its texts, HELP is always answered, and only the defined
replies change state. The tests share their module's booking and notifier: each has its own
numbers (`Stack.family`, `Stack.number`) and networks, and reads only their rows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
from twilio.request_validator import RequestValidator

from services.notifier import inbox, store
from services.notifier.dispatcher import Dispatcher
from shared.db import SHARED_MIGRATIONS, apply_migrations, create_pool, discover_migrations
from shared.events import parse_envelope
from shared.pagination import encode_cursor
from tests.conftest import (
    RunningService,
    eventually,
    service_settings,
    sharable,
    start_service,
    stop_service,
)
from tests.helpers import Network, add_patient, create_network, new_number
from tests.test_notifier_claims import ANY_HOUR, HeldSender, book, confirmations, pool  # noqa: F401

pytestmark = pytest.mark.shared_services

TOKEN = "test-twilio-auth-token"
_sids = count(1)


@dataclass
class Stack:
    """The services, as one test sees them: its numbers, its networks and their rows."""

    booking: RunningService
    notifier: RunningService
    family: str = field(default_factory=new_number)
    """This test's family phone: every network's first patient (`network`) has it."""
    numbers: list[str] = field(default_factory=list)
    clinics: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.numbers.append(self.family)

    @property
    def db(self):
        return self.notifier.runtime.db

    def number(self) -> str:
        """Another number of this test's (E.164)."""
        self.numbers.append(new_number())
        return self.numbers[-1]

    async def network(self, **fields) -> Network:
        """A network of this test's, its first patient on the family phone."""
        net = await create_network(self.booking.http, patient={"phone": self.family}, **fields)
        self.clinics.append(net.clinic["id"])
        return net

    async def text_in(self, number: str, body: str, *, sid: str | None = None,
                      **extra: str) -> httpx.Response:
        """`body` texted from `number` to our sender, posted as Twilio does (signed)."""
        params = {"MessageSid": sid or f"SM{next(_sids):032d}", "From": number,
                  "To": "+15005550006", "Body": body, "AccountSid": "AC" + "0" * 32, **extra}
        signature = RequestValidator(TOKEN).compute_signature(
            "http://notifier/twilio/inbound", params)
        r = await self.notifier.http.post("/twilio/inbound", data=params,
                                          headers={"X-Twilio-Signature": signature})
        assert r.status_code == 200, r.text
        return r

    async def events(self, event_type: str) -> list:
        """The notifier's events of `event_type` about this test's networks."""
        rows = await self.db.fetch("SELECT value FROM outbox WHERE event_type = $1 ORDER BY id",
                                   event_type)
        return [e for e in map(parse_envelope, (r["value"] for r in rows))
                if str(e.clinic_id) in self.clinics]

    async def recorded(self) -> list[tuple[str, str]]:
        """What the notifier sent to this test's numbers (recorded instead of sent: no Twilio
        account here)."""
        return [(r["to_e164"], r["body"]) for r in await self.db.fetch(
            "SELECT to_e164, body FROM recorded_sms WHERE to_e164 = ANY($1) ORDER BY id",
            self.numbers)]

    async def opted_out(self) -> list[tuple[str, str]]:
        """This test's numbers that stand opted out, and how."""
        return [tuple(r) for r in await self.db.fetch(
            "SELECT phone_e164, source FROM number_opt_outs WHERE phone_e164 = ANY($1)"
            " ORDER BY phone_e164", self.numbers)]

    async def count(self, table: str, column: str = "clinic_id") -> int:
        """The rows of `table` that are this test's: by its networks (`clinic_id`) or by its
        numbers (a column of phone numbers)."""
        ours = self.numbers if column != "clinic_id" else [UUID(c) for c in self.clinics]
        return await self.db.fetchval(
            f"SELECT count(*) FROM {table} WHERE {column} = ANY($1)", ours)

    async def book(self, net: Network, patient: dict, *, days: int = 5, hour: int = 10,
                   session_type: str = "iv_infusion") -> dict:
        start = (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=days)).replace(
            hour=hour, minute=0, second=0, microsecond=0)
        r = await self.booking.http.post("/bookings", headers=net.headers, json={
            "patient_id": patient["id"], "site_id": net.site["id"],
            "session_type": session_type, "starts_at": start.isoformat()})
        assert r.status_code == 201, r.text
        return r.json()

    async def staff(self, net: Network, path: str, **params) -> dict:
        """A notifier read with the network's key (once the key has reached the notifier)."""
        async def answered():
            r = await self.notifier.http.get(path, headers=net.headers, params=params)
            return r if r.status_code != 401 else None
        r = await eventually(answered)
        assert r.status_code == 200, r.text
        return r.json()

    async def patient(self, net: Network, patient: dict) -> dict:
        r = await self.booking.http.get(f"/patients/{patient['id']}", headers=net.headers)
        return r.json()

    async def make_due(self, patient: dict, kind: str | None = None) -> None:
        """Bring a patient's pending texts (of `kind`) forward: they fall due now."""
        await self.db.execute("UPDATE texts SET due_at = now() WHERE patient_id = $1"
                              " AND status = 'pending' AND ($2::text IS NULL OR kind = $2)",
                              UUID(patient["id"]), kind)

    async def texts(self, patient: dict) -> list[dict]:
        return [dict(r) for r in await self.db.fetch(
            "SELECT kind, status, status_reason FROM texts WHERE patient_id = $1 ORDER BY id",
            UUID(patient["id"]))]


@contextlib.asynccontextmanager
async def running_inbound(infra, namespace) -> AsyncIterator[tuple[RunningService, RunningService]]:
    """booking and the notifier (answering signed webhooks), started together."""
    started = await asyncio.gather(
        start_service("booking", service_settings("booking", infra, namespace)),
        start_service("notifier", service_settings(
            "notifier", infra, namespace, twilio_auth_token=TOKEN,
            public_base_url="http://notifier", dispatch_poll_seconds=0.2,
            sender_name="Northwind Texts", sender_phone="+1 800 555 0199")),
        return_exceptions=True)
    try:
        for failed in started:
            if isinstance(failed, BaseException):
                raise failed
        yield started[0], started[1]
    finally:
        for svc in reversed(started):
            if isinstance(svc, RunningService):
                await stop_service(svc)


inbound, own_inbound, module_inbound = sharable("inbound", running_inbound)
"""booking and the notifier: the test's own, or its module's (`shares_services`)."""


@pytest.fixture
def stack(inbound) -> Stack:
    """The services as this test sees them: its own numbers and networks."""
    return Stack(*inbound)


def message(response: httpx.Response) -> str | None:
    """The text a TwiML answer sends back, or None."""
    text = response.text
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>'), text
    if "<Message>" not in text:
        return None
    return text.split("<Message>")[1].split("</Message>")[0]


async def _equal(counted, n: int) -> bool:
    return await counted == n


async def _sent_to(stack: Stack, number: str, n: int) -> list[str]:
    bodies = [body for to, body in await stack.recorded() if to == number]
    return bodies if len(bodies) >= n else []


async def test_a_stop_from_a_family_phone_stops_every_patient_on_it_in_every_network(stack):
    alpha = await stack.network(name="Alpha Clinic")
    sibling = await add_patient(stack.booking.http, alpha, given_name="Kim", phone=stack.family)
    beta = await stack.network(name="Beta Clinic")
    everyone = [(alpha, alpha.patient), (alpha, sibling), (beta, beta.patient)]
    for i, (net, patient) in enumerate(everyone):
        await stack.book(net, patient, hour=9 + 2 * i)
    await eventually(lambda: _sent_to(stack, stack.family, 3))  # the three confirmations

    answer = await stack.text_in(stack.family, "STOP")
    assert message(answer) is None, "Twilio confirms its own keywords: one confirmation only"
    assert await stack.opted_out() == [(stack.family, "keyword")]
    opted_out = await stack.events("PatientOptedOut")
    assert sorted((str(e.clinic_id), str(e.patient_id)) for e in opted_out) == sorted(
        (net.clinic["id"], p["id"]) for net, p in everyone)

    # their texts that fall due now are not sent
    before = len(await stack.recorded())
    for _, patient in everyone:
        await stack.make_due(patient)

    async def all_settled():
        texts = [t for _, p in everyone for t in await stack.texts(p)]
        return all(t["status"] not in ("pending", "sending") for t in texts) and texts
    texts = await eventually(all_settled)
    skipped = [t for t in texts if t["status"] == "skipped"]
    assert skipped and {t["status_reason"] for t in skipped} == {"number opted out"}
    assert len(await stack.recorded()) == before

    # each network's staff see it: as unmatched (the number is several patients'), with
    # their own patients on it and nobody else's
    seen_by_alpha = (await stack.staff(alpha, "/replies", meaning="opt_out"))["items"]
    assert [(r["body"], r["patient_id"], r["acted_on"]) for r in seen_by_alpha] == [
        ("STOP", None, True)]
    assert sorted(seen_by_alpha[0]["patient_ids"]) == sorted([alpha.patient["id"], sibling["id"]])
    seen_by_beta = (await stack.staff(beta, "/replies", meaning="opt_out"))["items"]
    assert [(r["body"], r["patient_ids"]) for r in seen_by_beta] == [("STOP", [beta.patient["id"]])]
    [standing] = (await stack.staff(beta, "/opt-outs"))["items"]
    assert (standing["phone_e164"], standing["source"], standing["patient_ids"]) == (
        stack.family, "keyword", [beta.patient["id"]])

    # booking's consent follows, for all three
    async def consent_withdrawn():
        patients = [await stack.patient(net, p) for net, p in everyone]
        return all(not p["sms_consent"] for p in patients) and patients
    for p in await eventually(consent_withdrawn):
        assert p["sms_consent_source"] == "opted out by text (STOP)"

    # START lifts it, for all three
    assert message(await stack.text_in(stack.family, "START")) is None  # Twilio confirms START
    assert await stack.opted_out() == []
    opted_in = await stack.events("PatientOptedIn")
    assert sorted(str(e.patient_id) for e in opted_in) == sorted(p["id"] for _, p in everyone)

    async def consent_back_everywhere():  # booking gave it back, and the notifier knows
        changes = [r for r in await stack.booking.runtime.db.fetch(
            "SELECT event_id, value FROM outbox WHERE event_type = 'PatientContactChanged'")
            if str(parse_envelope(r["value"]).clinic_id) in stack.clinics]
        known = await stack.db.fetchval("SELECT count(*) FROM processed_events"
                                        " WHERE event_id = ANY($1::uuid[])",
                                        [r["event_id"] for r in changes])
        return len(changes) == known == 6  # three withdrawn, three given back
    await eventually(consent_back_everywhere)
    assert await stack.db.fetchval("SELECT bool_and(sms_consent) FROM contacts"
                                   " WHERE clinic_id = ANY($1::uuid[])", stack.clinics) is True
    await stack.book(beta, beta.patient, days=8)
    bodies = await eventually(lambda: _sent_to(stack, stack.family, 4))
    assert "Beta Clinic" in bodies[-1], "texts go to the number again"


async def test_a_plain_words_revocation_opts_the_number_out_with_one_confirmation(stack):
    montreal = await stack.network(name="Clinique Test", language="fr")
    await stack.book(montreal, montreal.patient)
    await eventually(lambda: _sent_to(stack, stack.family, 1))

    answer = await stack.text_in(stack.family, "Arrêtez de m'écrire svp")
    assert message(answer) == ("Clinique Test: vous ne recevrez plus de textos de ce numéro. "
                               "Répondez START pour les recevoir de nouveau.")
    assert await stack.opted_out() == [(stack.family, "phrase")]
    again = await stack.text_in(stack.family, "STOP.")
    assert message(again) is None, "one confirmation, nothing more"
    [first, second] = (await stack.staff(montreal, "/replies", meaning="opt_out"))["items"][::-1]
    assert (first["body"], first["patient_id"], first["note"]) == (
        "Arrêtez de m'écrire svp", montreal.patient["id"], None)
    assert second["note"] == "already opted out"
    assert len(await stack.events("PatientOptedOut")) == 2

    back = await stack.text_in(stack.family, "Start!")  # not Twilio's exact keyword: we confirm
    assert message(back) == ("Clinique Test: vous recevrez de nouveau nos textos. "
                             "Répondez ARRET pour ne plus en recevoir.")
    assert await stack.opted_out() == []


async def test_a_stop_from_a_ride_contacts_number_stops_the_pickup_texts_only(stack):
    net = await stack.network(name="Alpha Clinic")
    own, ride = stack.number(), stack.number()
    patient = await add_patient(stack.booking.http, net, given_name="Lee", phone=own,
                                ride_contact={"name": "Sam", "phone": ride, "sms_consent": True})
    await stack.book(net, patient)
    await eventually(lambda: _sent_to(stack, own, 1))

    assert message(await stack.text_in(ride, "stop")) is None
    [told] = await stack.events("RideContactOptedOut")
    assert (str(told.clinic_id), str(told.patient_id), told.payload.phone_e164) == (
        net.clinic["id"], patient["id"], ride)
    assert await stack.events("PatientOptedOut") == []

    # brought forward: the texts not bound to the appointment's day (day_of and the fasting
    # reminder would wait for their own day) and the pickup (stopped before its day matters)
    undated = ("confirmation", "prep", "ride_reminder", "pickup")
    for kind in undated:
        await stack.make_due(patient, kind)

    async def settled():
        texts = [t for t in await stack.texts(patient) if t["kind"] in undated]
        return all(t["status"] not in ("pending", "sending") for t in texts) and texts
    texts = await eventually(settled)
    pickup = [t for t in texts if t["kind"] == "pickup"]
    assert [(t["status"], t["status_reason"]) for t in pickup] == [("skipped", "number opted out")]
    assert all(t["status"] == "sent" for t in texts if t["kind"] != "pickup"), \
        "the patient's own texts still go"
    assert all(to != ride for to, _ in await stack.recorded())

    [reply] = (await stack.staff(net, "/replies"))["items"]
    assert (reply["meaning"], reply["ride_contact_of"], reply["patient_ids"]) == (
        "opt_out", [patient["id"]], [])
    [standing] = (await stack.staff(net, "/opt-outs"))["items"]
    assert standing["ride_contact_of"] == [patient["id"]]

    async def ride_consent_withdrawn():
        p = await stack.patient(net, patient)
        return not p["ride_contact_consent"] and p
    p = await eventually(ride_consent_withdrawn)
    assert p["ride_contact_consent_source"] == "ride contact opted out by text (STOP)"

    await stack.text_in(ride, "START")

    async def ride_consent_back():
        p = await stack.patient(net, patient)
        return p["ride_contact_consent"] and p
    p = await eventually(ride_consent_back)
    assert p["ride_contact_consent_source"] == "ride contact opted in by text (START)"


@pytest.mark.parametrize("language,word,expected", [
    ("en", "HELP", "Test Clinic: appointment texts. For help call (604) 555-0101. "
                   "Reply STOP to opt out."),
    ("fr", "aide", "Test Clinic: textos de rendez-vous. Aide: appelez le (604) 555-0101. "
                   "Répondez ARRET pour ne plus en recevoir."),
    ("fr", "Info", "Test Clinic: textos de rendez-vous. Aide: appelez le (604) 555-0101. "
                   "Répondez ARRET pour ne plus en recevoir."),
    ("es", "AYUDA", "Test Clinic: mensajes de citas. Ayuda: llame al (604) 555-0101. "
                    "Responda ALTO para no recibir mas."),
])
async def test_help_from_a_patient_is_answered_by_their_clinic_in_their_language(
        stack, language, word, expected):
    net = await stack.network(language=language)
    await stack.book(net, net.patient)
    await eventually(lambda: _sent_to(stack, stack.family, 1))
    assert message(await stack.text_in(stack.family, word)) == expected
    [reply] = (await stack.staff(net, "/replies", attention="true"))["items"]
    assert (reply["meaning"], reply["patient_id"], reply["acted_on"]) == (
        "help", net.patient["id"], False)


@pytest.mark.parametrize("word,expected", [
    ("HELP", "Northwind Texts: appointment texts. For help call (800) 555-0199. "
             "Reply STOP to opt out."),
    ("AIDE", "Northwind Texts: textos de rendez-vous. Aide: appelez le (800) 555-0199. "
             "Répondez ARRET pour ne plus en recevoir."),
    ("ayuda", "Northwind Texts: mensajes de citas. Ayuda: llame al (800) 555-0199. "
              "Responda ALTO para no recibir mas."),
])
async def test_help_from_an_unknown_number_is_answered_by_the_sender(stack, word, expected):
    unknown = stack.number()
    assert message(await stack.text_in(unknown, word)) == expected
    row = await stack.db.fetchrow("SELECT patient_id, interpretation, note FROM inbound_messages"
                                  " WHERE from_e164 = $1", unknown)
    assert dict(row) == {"patient_id": None, "interpretation": "help", "note": "unknown number"}


async def test_help_from_a_shared_number_names_the_one_network_or_else_the_sender(stack):
    alpha = await stack.network(name="Alpha Clinic", language="es")
    sibling = await add_patient(stack.booking.http, alpha, given_name="Kim", language="es",
                                phone=stack.family)
    await stack.book(alpha, sibling)
    await eventually(lambda: _sent_to(stack, stack.family, 1))
    assert message(await stack.text_in(stack.family, "help")) == (
        "Alpha Clinic: mensajes de citas. Ayuda: llame al (604) 555-0101. "
        "Responda ALTO para no recibir mas.")

    beta = await stack.network(name="Beta Clinic", language="fr")
    await stack.book(beta, beta.patient)
    await eventually(lambda: _sent_to(stack, stack.family, 2))
    assert message(await stack.text_in(stack.family, "HELP")) == (
        "Northwind Texts: appointment texts. For help call (800) 555-0199. Reply STOP to opt out.")
    assert message(await stack.text_in(stack.family, "Aide")) == (
        "Northwind Texts: textos de rendez-vous. Aide: appelez le (800) 555-0199. "
        "Répondez ARRET pour ne plus en recevoir.")
    for net in (alpha, beta):  # never dropped: each network sees them, as unmatched
        replies = (await stack.staff(net, "/replies", meaning="help"))["items"]
        assert [(r["body"], r["patient_id"], r["note"]) for r in replies][:2] == [
            ("Aide", None, "number shared by patients"), ("HELP", None, "number shared by patients")]


async def test_only_a_3_confirms_a_ride_and_other_text_is_kept_for_staff(stack):
    net = await stack.network()
    booked = await stack.book(net, net.patient)
    await eventually(lambda: _sent_to(stack, stack.family, 1))
    for body in ("Sam", "ok thanks", "3 not yet"):
        assert message(await stack.text_in(stack.family, body)) is None
    assert await stack.events("RideConfirmed") == []
    await stack.text_in(stack.family, "3 Sam")
    [ride] = await stack.events("RideConfirmed")
    assert (str(ride.payload.booking_id), ride.payload.driver_name) == (booked["id"], "Sam")

    async def ride_in_booking():
        b = (await stack.booking.http.get(f"/bookings/{booked['id']}", headers=net.headers)).json()
        return b["ride"]["status"] == "confirmed" and b
    assert (await eventually(ride_in_booking))["ride"]["driver_name"] == "Sam"

    unread = (await stack.staff(net, "/attention"))["replies"]
    assert [r["body"] for r in unread] == ["3 not yet", "ok thanks", "Sam"]
    everything = (await stack.staff(net, "/replies", limit=2))
    assert [(r["body"], r["meaning"], r["acted_on"]) for r in everything["items"]] == [
        ("3 Sam", "ride", True), ("3 not yet", "other", False)]
    rest = await stack.staff(net, "/replies", limit=2, cursor=everything["next_cursor"])
    assert [r["body"] for r in rest["items"]] == ["ok thanks", "Sam"]
    assert rest["next_cursor"] is None

    first = rest["items"][1]
    r = await stack.notifier.http.post(f"/replies/{first['id']}/read", headers=net.headers)
    assert r.status_code == 200 and r.json()["read_at"] and r.json()["read_by"]
    unread = (await stack.staff(net, "/replies", unread="true", attention="true"))["items"]
    assert [r["body"] for r in unread] == ["3 not yet", "ok thanks"]


async def test_staff_can_record_a_revocation_they_read_in_a_reply(stack):
    net = await stack.network()
    await stack.book(net, net.patient)
    await eventually(lambda: _sent_to(stack, stack.family, 1))
    await stack.text_in(stack.family, "please don't text me before 9, actually don't text me at all")
    [reply] = (await stack.staff(net, "/replies"))["items"]
    assert (reply["meaning"], reply["acted_on"]) == ("other", False)
    r = await stack.notifier.http.post(f"/replies/{reply['id']}/opt-out", headers=net.headers)
    assert r.status_code == 200, r.text
    assert await stack.opted_out() == [(stack.family, "staff")]
    assert len(await stack.events("PatientOptedOut")) == 1
    [reply] = (await stack.staff(net, "/replies"))["items"]
    assert reply["acted_on"] and reply["read_by"]


async def test_another_networks_replies_and_opt_outs_are_never_seen(stack):
    alpha = await stack.network(name="Alpha Clinic")
    lee = stack.number()
    await add_patient(stack.booking.http, alpha, given_name="Lee", phone=lee)
    beta = await stack.network(name="Beta Clinic")  # its patient: stack.family
    await eventually(lambda: _equal(stack.count("contacts"), 3))
    await stack.text_in(lee, "Can I bring my dog?")
    await stack.text_in(lee, "STOP")
    [dog, stop] = (await stack.staff(alpha, "/replies"))["items"][::-1]
    assert (await stack.staff(beta, "/replies"))["items"] == []
    assert (await stack.staff(beta, "/opt-outs"))["items"] == []
    assert (await stack.staff(beta, "/attention"))["replies"] == []
    assert (await stack.notifier.http.get(f"/replies/{dog['id']}",
                                          headers=beta.headers)).status_code == 404
    for path in (f"/replies/{dog['id']}/read", f"/replies/{stop['id']}/opt-out"):
        assert (await stack.notifier.http.post(path, headers=beta.headers)).status_code == 404
    assert (await stack.notifier.http.get(f"/replies/{dog['id']}",
                                          headers=alpha.headers)).status_code == 200
    assert (await stack.notifier.http.get("/replies/99999999999999999999",
                                          headers=alpha.headers)).status_code == 422
    bad = await stack.notifier.http.get("/replies", headers=alpha.headers,
                                        params={"cursor": "garbage!"})
    assert bad.status_code == 422 and "garbage" not in bad.text
    for path, key in [("/replies", (2**70,)), ("/replies", (-1,)),
                      ("/opt-outs", ("0001-01-01T00:00:00+05:00", "+1")),
                      ("/opt-outs", ("2030-01-01T00:00:00", "+1")),
                      ("/opt-outs", ("2030-01-01T00:00:00+00:00", "+1\x00"))]:
        r = await stack.notifier.http.get(path, headers=alpha.headers,
                                          params={"cursor": encode_cursor(key)})
        assert r.status_code == 422, (path, key, r.text)


async def test_a_webhook_retry_acts_once_and_a_forged_one_is_refused(stack):
    net = await stack.network()
    await stack.book(net, net.patient)
    await eventually(lambda: _sent_to(stack, stack.family, 1))
    sid = f"SM{next(_sids):032d}"
    await stack.text_in(stack.family, "1", sid=sid)
    await stack.text_in(stack.family, "1", sid=sid)
    assert len(await stack.events("PatientConfirmed")) == 1
    params = {"MessageSid": "SMforged", "From": stack.family, "Body": "STOP"}
    r = await stack.notifier.http.post("/twilio/inbound", data=params,
                                       headers={"X-Twilio-Signature": "forged"})
    assert r.status_code == 403
    assert await stack.opted_out() == []
    assert await stack.count("inbound_messages", "from_e164") == 1
    assert await stack.count("staff_inbox") == 1


async def test_a_text_already_claimed_when_its_number_opts_out_is_not_sent(pool):
    await book(pool)  # its confirmation is due, to +16045550199
    held = HeldSender()
    first = asyncio.create_task(Dispatcher(pool, held, quiet=ANY_HOUR).dispatch_once())
    await asyncio.wait_for(held.waiting.wait(), 10)  # claimed, waiting for its turn
    async with pool.acquire() as conn, conn.transaction():
        await inbox.opt_out(conn, "+16045550199", await store.parties_of(conn, "+16045550199"),
                            source="keyword", inbound_id=None)
    held.go.set()
    assert await first == 1
    assert held.sent == [], "the hand-over checks the number again"
    [text] = await confirmations(pool)
    assert (text["status"], text["status_reason"]) == ("skipped", "number opted out")


async def test_a_keyword_twilios_advanced_opt_out_matched_opts_out_without_our_confirmation(stack):
    net = await stack.network()
    await eventually(lambda: _equal(stack.count("contacts"), 1))
    # a keyword configured in the Messaging Service, unknown to us: Twilio says what it was
    answer = await stack.text_in(stack.family, "DESINSCRIPTION", OptOutType="STOP")
    assert message(answer) is None, "Twilio confirmed it"
    assert await stack.opted_out() == [(stack.family, "keyword")]
    [reply] = (await stack.staff(net, "/replies"))["items"]
    assert (reply["meaning"], reply["acted_on"]) == ("opt_out", True)


async def test_opt_outs_and_replies_recorded_before_the_upgrade_carry_over(infra, namespace):
    folder = Path(inbox.__file__).with_name("migrations")
    every = discover_migrations(SHARED_MIGRATIONS, folder)
    before = [m for m in every if m.version < "115"]
    pool = await create_pool(infra.database_url, f"{namespace}_notifier")
    try:
        await apply_migrations(pool, before)
        clinic, opted, other = uuid4(), uuid4(), uuid4()
        await pool.execute(
            "INSERT INTO contacts (patient_id, clinic_id, phone_e164, opted_out) VALUES"
            " ($1, $3, '+16045550177', true), ($2, $3, '+16045550188', false)",
            opted, other, clinic)
        await pool.execute(
            "INSERT INTO inbound_messages (message_sid, from_e164, body, patient_id, clinic_id,"
            " interpretation) VALUES ('SM1', '+16045550188', 'Can I bring my dog?', $1, $2,"
            " 'other'), ('SM2', '+16045550199', 'hi', NULL, NULL, 'unknown number')",
            other, clinic)
        await apply_migrations(pool, every)
        assert [tuple(r) for r in await pool.fetch(
            "SELECT phone_e164, source FROM number_opt_outs")] == [("+16045550177", "keyword")]
        assert [tuple(r) for r in await pool.fetch(
            "SELECT clinic_id, patient_ids, acted_on FROM staff_inbox")] == [(clinic, [other], False)]
    finally:
        await pool.close()
