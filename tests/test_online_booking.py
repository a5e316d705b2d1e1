"""Online consultation booking through the services' APIs (booking's public endpoints, the
notifier texting the code and the confirmation), against real PostgreSQL and Kafka: slots,
the code by text, booking, the patient created or matched without saying which, the new lead
for staff, limits, tries, and bad input answered with a 4xx naming the field. The tests share their module's
services: each has its own visitor (number and address: codes are limited per number and per
address, and an opt-out is a number's), its own networks, and reads only their rows."""

from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

import asyncpg
import pytest

from shared.consent import ONLINE_CONSENT_VERSION
from tests.conftest import eventually
from tests.helpers import create_network, key_everywhere, new_address, new_number

pytestmark = pytest.mark.shared_services

VISITOR = {"given_name": "Rowan", "family_name": "Lee",
           "language": "en", "timezone": "America/Edmonton", "consent": True,
           "consent_version": ONLINE_CONSENT_VERSION, "user_agent": "Mozilla/5.0 (test)",
           "mode": "phone"}
_visitor = {"phone": "604-555-0188", "address": "203.0.113.9"}
"""Whom `ask` asks as: this module's test's own visitor (`visitor`), else these."""


@pytest.fixture(autouse=True)
def visitor() -> dict[str, str]:
    """This test's visitor: a number (E.164) and an address no other test has, which `ask`
    sends unless told otherwise."""
    _visitor.update(phone=new_number(), address=new_address())
    return _visitor


async def page(booking_http, slug: str) -> dict:
    r = await booking_http.get(f"/online/{slug}")
    assert r.status_code == 200, r.text
    return r.json()


async def ask(booking_http, slug: str, address: str | None = None, **fields):
    """A request from `address` (forwarded as the console forwards it; this test's visitor's
    number and address unless given)."""
    body = {**VISITOR, "phone": _visitor["phone"], **fields}
    address = address or _visitor["address"]
    if "starts_at" not in body:
        body["starts_at"] = (await page(booking_http, slug))["slots"][0]
    return await booking_http.post(f"/online/{slug}/requests", json=body,
                                   headers={"X-Forwarded-For": address})


async def code_texted(db, spine, to: str, count: int = 1) -> str:
    """The code in the latest text the notifier recorded to `to` (waiting for `count`)."""
    async def texted():
        rows = await db.fetch(f'SELECT body FROM "{spine.notifier.schema}".recorded_sms '
                              "WHERE to_e164 = $1 AND text_id < 0 ORDER BY id", to)
        return len(rows) >= count and rows
    rows = await eventually(texted, timeout=30)
    return re.search(r"\b(\d{6})\b", rows[-1]["body"]).group(1)


async def test_a_visitor_books_a_consultation_with_the_code_texted_to_their_number(spine, db, visitor):
    net = await create_network(spine.booking.http, name="Harbour Clinics")
    await key_everywhere(spine, net)
    slug = net.clinic["slug"]
    assert slug == "harbour-clinics"
    shown = await page(spine.booking.http, slug)
    assert shown["name"] == "Harbour Clinics" and shown["timezones"] == ["America/Vancouver"]
    assert shown["minutes"] == 15 and shown["modes"] == ["phone", "video"]
    assert len(shown["slots"]) > 14 * 4  # 14 days of 07:00-21:00 at 15 minutes, less the first hour
    start = shown["slots"][5]

    asked = await ask(spine.booking.http, slug, starts_at=start, mode="video")
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["request_id"]
    code = await code_texted(db, spine, visitor["phone"])
    [body] = [r["body"] for r in await db.fetch(
        f'SELECT body FROM "{spine.notifier.schema}".recorded_sms WHERE text_id < 0'
        " AND to_e164 = $1", visitor["phone"])]
    assert body == (f"Harbour Clinics: your code is {code}. It expires in 10 minutes. "
                    "If you did not ask for it, ignore this text.")
    stored = await db.fetchrow(f'SELECT * FROM "{spine.booking.schema}".online_requests'
                               " WHERE clinic_id = $1", UUID(net.clinic["id"]))
    assert code not in str(dict(stored)), "the code is stored only as its HMAC"
    assert (stored["consent_version"], stored["consent_address"], stored["consent_user_agent"]) == \
        (ONLINE_CONSENT_VERSION, visitor["address"], "Mozilla/5.0 (test)")

    wrong = await spine.booking.http.post(f"/online/{slug}/requests/{request_id}/verify",
                                          json={"code": "000000" if code != "000000" else "111111"})
    assert (wrong.status_code, wrong.json()["field"]) == (422, "code")
    booked = await spine.booking.http.post(f"/online/{slug}/requests/{request_id}/verify",
                                           json={"code": code})
    assert booked.status_code == 201, booked.text
    answer = booked.json()
    assert answer["mode"] == "video" and answer["timezone"] == "America/Edmonton"
    assert datetime.fromisoformat(answer["starts_at"]) == datetime.fromisoformat(start)
    # Edmonton in December: Alberta kept daylight time (UTC-6) from 2026 (tzdata 2026)
    assert answer["starts_at_local"].endswith("-06:00")

    b = (await spine.booking.http.get(f"/bookings/{answer['booking_id']}", headers=net.headers)).json()
    assert (b["source"], b["mode"], b["room_id"], b["session_type"]) == ("online", "video", None, "consultation")
    assert b["provider_id"] == net.providers[0]["id"]
    patient = (await spine.booking.http.get(f"/patients/{b['patient_id']}", headers=net.headers)).json()
    assert (patient["given_name"], patient["phone_e164"], patient["sms_consent"]) == ("Rowan", visitor["phone"], True)
    assert patient["sms_consent_source"] == f"online booking page ({ONLINE_CONSENT_VERSION})"

    # staff see it: on the day sheet (no room) and as a new lead until marked seen
    sheet = (await spine.booking.http.get(f"/sites/{net.site['id']}/sheet", headers=net.headers,
                                          params={"from": b["starts_at_local"][:10]})).json()
    [row] = [x for x in sheet["bookings"] if x["id"] == b["id"]]
    assert (row["room_name"], row["mode"], row["source"], row["patient_name"]) == (None, "video", "online", "Rowan Lee")
    attention = (await spine.booking.http.get("/attention/items", headers=net.headers)).json()
    assert [(lead["id"], lead["patient_name"], lead["mode"]) for lead in attention["leads"]] == \
        [(b["id"], "Rowan Lee", "video")]
    seen = await spine.booking.http.post(f"/bookings/{b['id']}/lead-seen", headers=net.headers)
    assert seen.status_code == 200
    assert (await spine.booking.http.get("/attention/items", headers=net.headers)).json()["leads"] == []

    # the confirmation text follows, with reply 2 to change it
    async def confirmation():
        rows = await db.fetch(f'SELECT body FROM "{spine.notifier.schema}".recorded_sms '
                              "WHERE text_id > 0 AND to_e164 = $1 ORDER BY id", visitor["phone"])
        return rows and rows[0]["body"]
    text = await eventually(confirmation, timeout=30)
    assert text.startswith("Harbour Clinics: your appointment is on")  # by video: no site
    assert "Reply 1 to confirm, 2 to reschedule." in text

    # the code works once
    again = await spine.booking.http.post(f"/online/{slug}/requests/{request_id}/verify",
                                          json={"code": code})
    assert (again.status_code, again.json()["field"]) == (409, "code")


async def test_a_known_patient_is_matched_and_a_new_one_made_with_the_same_answer(spine, db):
    pats = new_number()
    net = await create_network(spine.booking.http, name="Match Clinics", patient={"phone": pats})
    slug = net.clinic["slug"]
    answers = []
    # the network's patient "Pat Test", the number written otherwise; then someone else on that number
    written = f"({pats[2:5]}) {pats[5:8]}-{pats[8:]}"
    for i, (given, family) in enumerate((("pat", "  TEST "), ("Robin", "Test"))):
        slots = (await page(spine.booking.http, slug))["slots"]
        asked = await ask(spine.booking.http, slug, given_name=given, family_name=family,
                          phone=written, starts_at=slots[i * 8])
        assert asked.status_code == 201, asked.text
        code = await code_texted(db, spine, pats, count=i + 1)
        r = await spine.booking.http.post(
            f"/online/{slug}/requests/{asked.json()['request_id']}/verify", json={"code": code})
        assert r.status_code == 201, r.text
        answers.append(r.json())
    assert sorted(answers[0]) == sorted(answers[1]) == [
        "booking_id", "ends_at", "mode", "starts_at", "starts_at_local", "timezone"]
    patients = (await spine.booking.http.get("/patients", headers=net.headers)).json()["items"]
    assert sorted((p["given_name"], p["family_name"]) for p in patients) == [("Pat", "Test"), ("Robin", "Test")]
    booked_for = [(await spine.booking.http.get(f"/bookings/{a['booking_id']}",
                                                headers=net.headers)).json()["patient_id"]
                  for a in answers]
    assert booked_for[0] == net.patient["id"] and booked_for[1] != net.patient["id"]


async def test_codes_are_limited_per_number_and_per_address(booking):
    net = await create_network(booking.http, name="Limit Clinics")
    slug = net.clinic["slug"]
    statuses = [(await ask(booking.http, slug)).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]  # 3 codes an hour for one number
    # another number from the same address: 10 an hour per address (this test's booking)
    others = [(await ask(booking.http, slug, phone=new_number())).status_code for _ in range(8)]
    assert others == [201] * 7 + [429]


async def test_five_wrong_codes_lock_the_request(booking):
    net = await create_network(booking.http, name="Tries Clinics")
    slug = net.clinic["slug"]
    request_id = (await ask(booking.http, slug)).json()["request_id"]
    url = f"/online/{slug}/requests/{request_id}/verify"
    statuses = [(await booking.http.post(url, json={"code": "12345x"})).status_code for _ in range(6)]
    assert statuses == [422] * 5 + [429]


async def test_bad_input_is_a_4xx_naming_the_field_without_its_value(booking):
    net = await create_network(booking.http, name="Door Clinics")
    slug = net.clinic["slug"]
    free = (await page(booking.http, slug))["slots"]
    cases = {
        "consent": {"consent": False},
        "consent_version": {"consent_version": "v0"},
        "phone": {"phone": "1-800-555-0100"},
        "starts_at": {"starts_at": "2026-01-01T03:07:00+00:00"},
        "timezone": {"timezone": "Europe/Paris"},
        "mode": {"mode": "clinic"},
    }
    for field, change in cases.items():
        r = await ask(booking.http, slug, **{"starts_at": free[0], **change})
        assert r.status_code == 422, (field, r.text)
        body = r.json()
        named = body.get("field") or body["fields"][0]["path"].removeprefix("body.")
        assert named == field, (field, body)
        for value in change.values():
            assert str(value) not in r.text or value in (False,), (field, r.text)
    assert (await booking.http.get("/online/no-such-network")).status_code == 404
    assert (await booking.http.get("/online/Bad_Slug!")).status_code == 422
    unknown = await booking.http.post(f"/online/{slug}/requests/00000000-0000-0000-0000-000000000001/verify",
                                      json={"code": "123456"})
    assert (unknown.status_code, unknown.json()["field"]) == (422, "request_id")


async def test_a_network_s_slug_is_its_own_or_from_its_name(booking):
    from tests.conftest import ADMIN_TOKEN

    made = []
    for body in ({"name": "Twin Clinics"}, {"name": "Twin Clinics"}, {"name": "Other", "slug": "my-page"}):
        r = await booking.http.post("/clinics", headers={"X-Admin-Token": ADMIN_TOKEN},
                                    json={"phone": "+1 604 555 0100", **body})
        made.append(r.json()["slug"])
    assert made[0] == "twin-clinics" and re.fullmatch(r"twin-clinics-[0-9a-f]{8}", made[1])
    assert made[2] == "my-page"
    taken = await booking.http.post("/clinics", headers={"X-Admin-Token": ADMIN_TOKEN},
                                    json={"phone": "+1 604 555 0100", "name": "X", "slug": "my-page"})
    assert (taken.status_code, taken.json()["field"]) == (409, "slug")


async def test_a_number_that_opted_out_is_sent_no_code(spine, db, visitor):
    net = await create_network(spine.booking.http, name="Quiet Clinics")
    await db.execute(f'INSERT INTO "{spine.notifier.schema}".number_opt_outs (phone_e164, source) '
                     "VALUES ($1, 'keyword')", visitor["phone"])
    asked = await ask(spine.booking.http, net.clinic["slug"])
    assert asked.status_code == 201  # the same answer: the page does not tell

    async def settled():
        return await db.fetchrow(f'SELECT status, reason FROM "{spine.notifier.schema}".verification_texts'
                                 " WHERE status <> 'sending' AND request_id = $1",  # settled
                                 UUID(asked.json()["request_id"]))
    row = await eventually(settled, timeout=30)
    assert (row["status"], row["reason"]) == ("skipped", "number opted out")
    assert await db.fetchval(f'SELECT count(*) FROM "{spine.notifier.schema}".recorded_sms'
                             " WHERE to_e164 = $1", visitor["phone"]) == 0


async def test_a_request_is_checked_only_on_its_own_network_s_page(booking):
    a = await create_network(booking.http, name="Alpha Clinics")
    beta = await create_network(booking.http, name="Beta Clinics")
    request_id = (await ask(booking.http, a.clinic["slug"])).json()["request_id"]
    r = await booking.http.post(f"/online/{beta.clinic['slug']}/requests/{request_id}/verify",
                                json={"code": "123456"})
    assert (r.status_code, r.json()["field"]) == (422, "request_id")
    other = await create_network(booking.http, name="Gamma Clinics")
    b = await ask(booking.http, a.clinic["slug"], phone=new_number())
    seen = await booking.http.post(f"/bookings/{b.json()['request_id']}/lead-seen", headers=other.headers)
    assert seen.status_code == 404


async def test_concurrent_requests_at_a_limit_pass_exactly_as_many_as_the_limit(booking):
    import asyncio

    net = await create_network(booking.http, name="Rush Clinics")
    slug = net.clinic["slug"]
    start = (await page(booking.http, slug))["slots"][0]
    same_number = await asyncio.gather(*(ask(booking.http, slug, address=f"198.51.100.{n}",
                                             starts_at=start) for n in range(8)))
    assert sorted(r.status_code for r in same_number) == [201] * 3 + [429] * 5  # 3 per number
    same_address = await asyncio.gather(*(ask(booking.http, slug, phone=new_number(),
                                              starts_at=start) for _ in range(14)))
    assert sorted(r.status_code for r in same_address) == [201] * 10 + [429] * 4  # 10 per address
    assert await booking.runtime.db.fetchval(
        f'SELECT count(*) FROM "{booking.schema}".online_requests WHERE clinic_id = $1',
        UUID(net.clinic["id"])) == 13


async def test_without_a_key_to_seal_codes_online_booking_answers_503_and_keeps_nothing(infra, namespace):
    from tests.conftest import service_settings, start_service, stop_service

    svc = await start_service("booking", service_settings("booking", infra, namespace,
                                                          online_code_key=""))
    try:
        net = await create_network(svc.http, name="Keyless Clinics")
        r = await ask(svc.http, net.clinic["slug"])
        assert (r.status_code, r.json()["error"]) == (503, "online_booking_not_set_up")
        assert await svc.runtime.db.fetchval(
            f'SELECT count(*) FROM "{svc.schema}".online_requests') == 0
    finally:
        await stop_service(svc)


async def test_an_admin_changes_whether_a_provider_takes_online_consultations(booking, db):
    net = await create_network(booking.http, name="Switch Clinics")
    slug, provider = net.clinic["slug"], net.providers[0]["id"]
    assert (await page(booking.http, slug))["slots"]
    off = await booking.http.patch(f"/providers/{provider}", headers=net.headers,
                                   json={"consultations": False})
    assert off.status_code == 200, off.text
    assert (off.json()["id"], off.json()["consultations"]) == (provider, False)
    assert (await page(booking.http, slug))["slots"] == []
    listed = (await booking.http.get("/providers", headers=net.headers)).json()["items"]
    assert [(p["id"], p["consultations"]) for p in listed] == [(provider, False)]
    [entry] = await db.fetch(f'SELECT action, resource, outcome, actor_kind FROM "{booking.schema}".audit_log '
                             "WHERE action = 'update_provider' AND clinic_id = $1", UUID(net.clinic["id"]))
    assert tuple(entry) == ("update_provider", f"PATCH /providers/{provider}", "allowed", "key")

    desk = await booking.http.post("/api-keys", headers=net.headers,
                                   json={"role": "scheduler", "label": "desk"})
    refused = await booking.http.patch(f"/providers/{provider}", json={"consultations": True},
                                       headers={"X-API-Key": desk.json()["api_key"]})
    assert refused.status_code == 403
    other = await create_network(booking.http, name="Other Switch Clinics")
    foreign = await booking.http.patch(f"/providers/{provider}", headers=other.headers,
                                       json={"consultations": True})
    assert (foreign.status_code, foreign.json()["field"]) == (404, "provider_id")
    bad = await booking.http.patch(f"/providers/{provider}", headers=net.headers,
                                   json={"consultations": "sometimes"})
    assert bad.status_code == 422 and "sometimes" not in bad.text
    on = await booking.http.patch(f"/providers/{provider}", headers=net.headers,
                                  json={"consultations": True})
    assert on.status_code == 200 and (await page(booking.http, slug))["slots"]


async def test_texts_to_an_online_visitor_quote_the_time_zone_they_chose(spine, db):
    # the site is in Vancouver; both visitors, a known patient and a new one, are in Regina
    # (neither zone changes its clocks: the literals hold all year)
    pats, toni = new_number(), new_number()
    net = await create_network(spine.booking.http, name="Zone Clinics", patient={"phone": pats})
    slug = net.clinic["slug"]
    eights = [s for s in (await page(spine.booking.http, slug))["slots"]
              if s.endswith("T15:00:00+00:00")]  # 08:00 in Vancouver, 09:00 in Regina
    for i, (given, phone) in enumerate((("Pat", pats), ("Toni", toni))):
        asked = await ask(spine.booking.http, slug, given_name=given, family_name="Test",
                          phone=phone, timezone="America/Regina", starts_at=eights[i])
        assert asked.status_code == 201, asked.text
        code = await code_texted(db, spine, phone)
        r = await spine.booking.http.post(f"/online/{slug}/requests/{asked.json()['request_id']}/verify",
                                          json={"code": code})
        assert r.status_code == 201, r.text
        assert r.json()["starts_at_local"].endswith("T09:00:00-06:00")

    async def confirmations():
        rows = await db.fetch(f'SELECT r.to_e164, r.body FROM "{spine.notifier.schema}".recorded_sms r '
                              f'JOIN "{spine.notifier.schema}".texts t ON t.id = r.text_id '
                              "WHERE t.kind = 'confirmation' AND r.to_e164 = ANY($1) ORDER BY r.to_e164",
                              [pats, toni])
        return len(rows) == 2 and rows
    rows = await eventually(confirmations, timeout=30)
    assert [r["to_e164"] for r in rows] == sorted([pats, toni])
    for row in rows:
        assert " at 9:00 AM" in row["body"] and "8:00 AM" not in row["body"], row["body"]
    patient = (await spine.booking.http.get(f"/patients/{net.patient['id']}", headers=net.headers)).json()
    assert patient["timezone"] == "America/Regina"


@pytest.mark.own_services  # it makes booking's audit trail refuse entries, and reads it whole
async def test_each_change_of_the_public_page_is_in_the_audit_trail_with_the_change(spine, db):
    net = await create_network(spine.booking.http, name="Trail Clinics")
    slug, schema = net.clinic["slug"], spine.booking.schema
    asked = await ask(spine.booking.http, slug, given_name="Pat", family_name="Test",
                      phone=net.patient["phone_e164"])
    request_id = asked.json()["request_id"]
    code = await code_texted(db, spine, net.patient["phone_e164"])
    url = f"/online/{slug}/requests/{request_id}/verify"
    wrong = await spine.booking.http.post(url, json={"code": "000000" if code != "000000" else "111111"})
    assert wrong.status_code == 422

    # the entry goes with its change: when it cannot be written, nothing is booked
    await db.execute(f"""CREATE FUNCTION "{schema}".no_entry() RETURNS trigger LANGUAGE plpgsql AS $$
                         BEGIN RAISE EXCEPTION 'audit down'; END $$;
                         CREATE TRIGGER no_entry BEFORE INSERT ON "{schema}".audit_log FOR EACH ROW
                         WHEN (NEW.action = 'verify_and_book') EXECUTE FUNCTION "{schema}".no_entry()""")
    with pytest.raises(asyncpg.RaiseError, match="audit down"):  # handed on in process
        await spine.booking.http.post(url, json={"code": code})
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".bookings') == 0
    assert await db.fetchval(f'SELECT booking_id FROM "{schema}".online_requests') is None
    await db.execute(f'DROP TRIGGER no_entry ON "{schema}".audit_log')

    booked = await spine.booking.http.post(url, json={"code": code})
    assert booked.status_code == 201, booked.text
    seen = await spine.booking.http.post(f"/bookings/{booked.json()['booking_id']}/lead-seen",
                                         headers=net.headers)
    assert seen.status_code == 200
    await spine.booking.runtime.audit.flush(spine.booking.runtime.db)  # the failed try's entry
    rows = await db.fetch(f'SELECT action, actor_kind, actor_label, clinic_id, patient_ids, outcome, status '
                          f'FROM "{schema}".audit_log WHERE action IN '
                          "('ask_for_consultation', 'verify_and_book', 'lead_seen') ORDER BY id")
    clinic, patient = UUID(net.clinic["id"]), UUID(net.patient["id"])
    known = [tuple(r) for r in rows if r["clinic_id"] is not None]
    assert known[:3] == [
        ("ask_for_consultation", "anonymous", "online booking page", clinic, [], "allowed", 201),
        ("verify_and_book", "anonymous", "online booking page", clinic, [], "failed", 422),
        ("verify_and_book", "anonymous", "online booking page", clinic, [patient], "allowed", 201)]
    assert [(t[0], t[1], t[3], t[5]) for t in known[3:]] == [("lead_seen", "key", clinic, "allowed")]
    # the try whose entry the database refused rolled back; the middleware records it after,
    # as failed, with its batch (whenever that is written: before or after the others)
    assert [(r["action"], r["actor_kind"], r["outcome"]) for r in rows
            if r["clinic_id"] is None] == [("verify_and_book", "anonymous", "failed")]
