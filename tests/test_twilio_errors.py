"""Twilio's errors by what they mean: an account or sender problem pauses sending (no number
is marked; texts wait and go out once it is fixed, by Twilio or by a restart with the right
settings), a number problem marks the number, a message problem fails only that text, a
passing one is retried; delivery receipts' error codes the same way (real PostgreSQL, the
broker, the real Twilio SDK against the local Twilio-compatible server). The table itself,
and what a refusal does to a text, are tested without them
(tests/unit/test_twilio_error_classes.py)."""

from __future__ import annotations

from uuid import UUID

import pytest

from devstack.fake_twilio import FakeTwilio, Fault
from services.notifier import handlers
from shared.events import Envelope
from shared.events.booking import PatientContactChanged
from tests.conftest import eventually, service_settings, start_service, stop_service
from tests.helpers import add_patient, create_network
from tests.test_twilio import TwilioStack, sent_kinds, stack  # noqa: F401 (a fixture)

OPS = "ops-token-for-tests"


def notifier_settings(infra, namespace, twilio: FakeTwilio, token: str):
    return service_settings("notifier", infra, namespace, twilio_account_sid=twilio.account_sid,
                            twilio_auth_token=token, twilio_api_base_url=twilio.url,
                            twilio_from_number="+15005550006", dispatch_poll_seconds=0.2,
                            sender_probe_seconds=1.0, ops_token=OPS)


@pytest.fixture
async def twilio():
    server = FakeTwilio()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class InProcess(TwilioStack):
    """A `TwilioStack` whose notifier runs in this process, reached without a port (so no
    delivery receipts), and can be restarted."""

    @property
    def db(self):
        return self.notifier.runtime.db

    async def texts(self, net) -> list[dict]:
        r = await self.notifier.http.get(f"/patients/{net.patient['id']}/texts", headers=net.headers)
        return r.json() if r.status_code == 200 else []

    async def problems(self) -> list[str]:
        r = await self.notifier.http.get("/ops/status", headers={"X-Ops-Token": OPS})
        return r.json()["problems"]


async def test_a_wrong_auth_token_pauses_sending_marks_no_number_and_texts_go_out_once_fixed(
        infra, namespace, twilio):
    booking = await start_service("booking", service_settings("booking", infra, namespace))
    notifier = await start_service("notifier", notifier_settings(infra, namespace, twilio, "wrong"))
    s = InProcess(booking, notifier, twilio, "")
    try:
        net = await create_network(booking.http)
        await s.book(net, session_type="assessment")

        async def paused():
            return [p for p in await s.problems() if p.startswith("sending paused")]
        [problem] = await eventually(paused)
        assert problem.startswith("sending paused: Twilio 20003 (authentication failed")
        assert "+1" not in problem and "604" not in problem, "never a phone number"
        metrics = (await notifier.http.get("/metrics")).text
        assert ('kcb_sending_paused{code="20003",meaning="authentication failed (account SID or'
                ' auth token)"} 1.0') in metrics
        assert await s.db.fetchval("SELECT count(*) FROM contacts WHERE number_problem IS NOT NULL") == 0
        [confirmation] = [t for t in await s.texts(net) if t["kind"] == "confirmation"]
        assert confirmation["status"] == "pending"
        assert confirmation["status_reason"].startswith("sending paused: Twilio 20003")
        assert twilio.sent() == [], "Twilio took nothing"

        # fixed on Twilio's side (say the token was rotated back): a probe gets through
        twilio.auth_token = "wrong"
        await eventually(lambda: sent_kinds(s, net, 1), timeout=30)
        assert await s.db.fetchval("SELECT count(*) FROM sender_pauses") == 0
        assert not await paused()

        # wrong again: paused again; a restart with the right token is enough
        twilio.auth_token = FakeTwilio.auth_token
        other = await create_network(booking.http, name="Other")
        await s.book(other, session_type="assessment")
        await eventually(paused)
        await stop_service(notifier)
        s.notifier = notifier = await start_service("notifier", notifier_settings(
            infra, namespace, twilio, FakeTwilio.auth_token))
        await eventually(lambda: sent_kinds(s, other, 1), timeout=30)
        assert not await paused()
        assert await s.db.fetchval("SELECT count(*) FROM contacts WHERE number_problem IS NOT NULL") == 0
    finally:
        await stop_service(notifier)
        await stop_service(booking)


async def failed_texts(stack, net) -> list[dict]:
    return [t for t in await stack.texts(net) if t["status"] == "failed"]


async def number_problems(stack) -> dict[UUID, str | None]:
    rows = await stack.db.fetch("SELECT patient_id, number_problem FROM contacts")
    return {r["patient_id"]: r["number_problem"] for r in rows}


async def test_an_invalid_number_is_marked_for_every_patient_who_has_it(stack):
    net = await create_network(stack.booking.http)
    other = await create_network(stack.booking.http, name="Other network")  # the same number
    stack.twilio.fail_next(Fault(400, 21211))
    await stack.book(net, session_type="assessment")
    [failure] = await eventually(lambda: failed_texts(stack, net))
    assert failure["status_reason"] == "21211"
    marks = await eventually(lambda: _all_marked(stack, 2))
    assert set(marks.values()) == {"invalid number (Twilio 21211)"}
    assert set(marks) == {UUID(net.patient["id"]), UUID(other.patient["id"])}
    # a new number drops the mark
    changed = Envelope.new(PatientContactChanged(phone_e164="+16045550188", sms_consent=True),
                           producer="booking", clinic_id=UUID(other.clinic["id"]),
                           patient_id=UUID(other.patient["id"]))
    async with stack.db.acquire() as conn:
        await handlers.on_contact_changed(conn, changed)
    assert (await number_problems(stack))[UUID(other.patient["id"])] is None
    assert (await number_problems(stack))[UUID(net.patient["id"])] is not None


async def test_an_unsubscribed_number_is_opted_out_for_everyone_on_it_until_start(stack):
    """21610: the number sent STOP to this sender at Twilio. It is the number's opt-out here
    too (not a number problem): every patient with it is opted out, and START lifts it."""
    net = await create_network(stack.booking.http)
    other = await create_network(stack.booking.http, name="Other network")  # the same number
    stack.twilio.fail_next(Fault(400, 21610))
    await stack.book(net, session_type="assessment")
    [failure] = await eventually(lambda: failed_texts(stack, net))
    assert failure["status_reason"] == "21610"
    opt_out = await eventually(lambda: stack.db.fetchrow(
        "SELECT source FROM number_opt_outs WHERE phone_e164 = '+16045550177'"))
    assert opt_out["source"] == "Twilio 21610: the number replied STOP to this sender"
    assert set((await number_problems(stack)).values()) == {None}
    told = {e.patient_id for e in await stack.events("PatientOptedOut")}
    assert told == {UUID(net.patient["id"]), UUID(other.patient["id"])}


async def _all_marked(stack, n: int):
    marks = {p: m for p, m in (await number_problems(stack)).items() if m}
    return len(marks) == n and marks


async def test_carrier_filtering_fails_only_that_text_and_marks_nothing(stack):
    net = await create_network(stack.booking.http)
    stack.twilio.fail_next(Fault(400, 30007))
    await stack.book(net, days=2)  # confirmation and prep are due at once
    [failure] = await eventually(lambda: failed_texts(stack, net))
    assert failure["status_reason"] == "30007"
    texts = await eventually(lambda: sent_kinds(stack, net, 1))
    assert [t["kind"] for t in texts if t["status"] == "sent"] != [failure["kind"]]
    assert set((await number_problems(stack)).values()) == {None}
    assert [e.payload.permanent for e in await stack.events("SmsFailed")] == [True]


async def sent_sid(stack, net, kind: str, not_in: set) -> str | None:
    for t in await stack.texts(net):
        if t["kind"] == kind and t["status"] == "sent" and t["provider_sid"] not in not_in:
            return t["provider_sid"]
    return None


async def test_an_unreachable_handset_is_retried_and_marked_only_once_it_repeats_three_times(stack):
    net = await create_network(stack.booking.http)
    await stack.book(net, session_type="assessment")
    patient = UUID(net.patient["id"])
    failed: set[str] = set()
    for attempt in range(1, 4):
        sid = await eventually(lambda: sent_sid(stack, net, "confirmation", failed), timeout=30)
        assert await stack.twilio.callback(sid, "undelivered", "30003") == 204
        failed.add(sid)
        if attempt < 3:
            assert (await number_problems(stack))[patient] is None, attempt
            texts = await stack.texts(net)
            [again] = [t for t in texts if t["kind"] == "confirmation"]
            assert again["status"] in ("pending", "sending", "sent"), "it is sent again"
    problem = (await number_problems(stack))[patient]
    assert problem == "unreachable handset, 3 times in a row (Twilio 30003)"
    [text] = [t for t in await stack.texts(net) if t["kind"] == "confirmation"]
    assert text["status"] == "sent" and text["provider_sid"] == sid, "not sent a fourth time"
    assert len([r for r in stack.twilio.sent() if r["To"] == "+16045550177"]) == 3


async def test_a_delivered_text_ends_an_unreachable_streak(stack):
    net = await create_network(stack.booking.http)
    await stack.book(net, days=2)
    texts = await eventually(lambda: sent_kinds(stack, net, 2))
    first, second = [t["provider_sid"] for t in texts if t["status"] == "sent"][:2]
    await stack.twilio.callback(first, "undelivered", "30003")
    assert await stack.db.fetchval("SELECT times FROM unreachable_numbers") == 1
    await stack.twilio.callback(second, "delivered")
    assert await stack.db.fetchval("SELECT count(*) FROM unreachable_numbers") == 0


async def test_receipts_errors_are_treated_by_their_class(stack):
    net = await create_network(stack.booking.http)
    patient = UUID(net.patient["id"])
    await stack.book(net, days=2)
    texts = await eventually(lambda: sent_kinds(stack, net, 2))
    by_kind = {t["kind"]: t for t in texts if t["status"] == "sent"}
    confirmation, prep = by_kind["confirmation"], by_kind["prep"]

    # a message problem: that text's delivery failed, nothing is marked, it is not resent
    assert await stack.twilio.callback(confirmation["provider_sid"], "undelivered", "30007") == 204
    row = await stack.db.fetchrow("SELECT status, delivery_status FROM texts WHERE id = $1",
                                  confirmation["id"])
    assert tuple(row) == ("sent", "undelivered")
    assert (await number_problems(stack))[patient] is None

    # an account or sender problem: sending pauses, the text waits, no number is marked
    assert await stack.twilio.callback(prep["provider_sid"], "failed", "30034") == 204
    pause = await stack.db.fetchrow("SELECT code, meaning FROM sender_pauses")
    assert tuple(pause) == ("30034", "US A2P 10DLC: sender number not registered")
    assert (await number_problems(stack))[patient] is None
    row = await stack.db.fetchrow("SELECT status, status_reason FROM texts WHERE id = $1", prep["id"])
    assert row["status"] in ("pending", "sending", "sent")  # back to pending, then probed
    assert row["status"] == "sent" or row["status_reason"].startswith("sending paused: Twilio 30034")
    # a minute later a probe goes, and gets through (the local server accepts): sending
    # resumes, and the text went again
    await stack.db.execute("UPDATE sender_pauses SET probed_at = now() - interval '1 minute'")
    await eventually(lambda: _resumed(stack, prep["id"], prep["provider_sid"]), timeout=30)

    # a number problem: the number is marked
    other = await create_network(stack.booking.http, name="Other")
    second = await add_patient(stack.booking.http, other, phone="604-555-0144")
    other.patient = second
    await stack.book(other, session_type="assessment")
    [sent] = [t for t in await eventually(lambda: sent_kinds(stack, other, 1))
              if t["status"] == "sent"]
    await stack.twilio.callback(sent["provider_sid"], "undelivered", "30006")
    assert (await number_problems(stack))[UUID(second["id"])] == \
        "landline or unreachable carrier (Twilio 30006)"
    assert (await number_problems(stack))[patient] is None, "only that number"


async def _resumed(stack, text_id: int, old_sid: str) -> bool:
    row = await stack.db.fetchrow("SELECT status, provider_sid, failed_sids FROM texts WHERE id = $1",
                                  text_id)
    paused = await stack.db.fetchval("SELECT count(*) FROM sender_pauses")
    return (row["status"] == "sent" and row["provider_sid"] != old_sid
            and row["failed_sids"] == [old_sid] and paused == 0)
