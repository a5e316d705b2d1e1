"""Every value is checked at the door: control characters, dates out of range, limits and ids
out of range, time zones outside the US and Canada, clinic phones that are not phone numbers.
Each refusal is a 422 naming the field (`fields[].path`, or `field`), never repeating the value
sent, and nothing breaks on the way (no 5xx)."""

from __future__ import annotations

import base64
import json
import logging
from uuid import uuid4

import pytest

from tests.helpers import EVERY_DAY, add_patient, create_network, key_everywhere
from tests.test_booking_rules import next_local

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network

OPS = {"X-Ops-Token": "door-ops-token"}


@pytest.fixture(scope="module")
def spine_overrides() -> dict[str, dict]:
    return {name: {"ops_token": OPS["X-Ops-Token"]} for name in ("booking", "plans", "notifier")}


def named(response) -> set[str]:
    """The fields a 422 names."""
    body = response.json()
    return {f["path"] for f in body.get("fields", [])} | ({body["field"]} if "field" in body else set())


async def refused(http, method: str, path: str, field: str, secret: str | None = None, **kwargs):
    """Send the request; it must be a 422 naming `field`, without `secret` in the answer."""
    r = await http.request(method, path, **kwargs)
    assert r.status_code == 422, (method, path, r.status_code, r.text)
    assert field in named(r), (path, r.text)
    if secret is not None:
        assert secret not in r.text, (path, r.text)
    return r


def patient(**fields) -> dict:
    return {"given_name": "Pat", "family_name": "Test", "phone": "604-555-0177", **fields}


def site(**fields) -> dict:
    return {"name": "Main", "address": "1 Main St", "phone": "+1 604 555 0101",
            "timezone": "America/Vancouver", "hours": EVERY_DAY, **fields}


def cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_control_characters_are_refused_in_bodies_paths_queries_and_headers(booking):
    net = await create_network(booking.http)
    http, h = booking.http, net.headers
    made = await http.post("/bookings", headers=h, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "iv_infusion",
        "starts_at": next_local("America/Vancouver")})
    await refused(http, "POST", "/patients", "body.given_name", "Zed", headers=h,
                  json=patient(given_name="Zed\x00"))
    await refused(http, "POST", "/patients", "body.family_name", "Zed", headers=h,
                  json=patient(family_name="Zed\tTab"))
    await refused(http, "POST", "/patients", "body.given_name", "Zed", headers=h,
                  json=patient(given_name="Zed\nLine"))
    await refused(http, "POST", "/patients", "body.ride_contact.name", "Zed", headers=h,
                  json=patient(ride_contact={"name": "Zed\x07", "phone": "604-555-0150"}))
    await refused(http, "POST", "/patients", "body.given_name",  # a lone surrogate
                  headers={**h, "Content-Type": "application/json"},
                  content='{"given_name": "\\ud800", "family_name": "T", "phone": "604-555-0177"}')
    await refused(http, "POST", "/sites", "body.name", "Zed", headers=h, json=site(name="Zed\x1b[31m"))
    await refused(http, "POST", f"/bookings/{made.json()['id']}/cancel", "body.reason", "Zed",
                  headers=h, json={"reason": "Zed\x00"})
    await refused(http, "GET", "/patients", "query.cursor", headers=h, params={"cursor": "ab\x00"})
    await refused(http, "GET", f"/sites/{net.site['id']}/availability", "query.session_type",
                  headers=h, params={"session_type": "iv\x00infusion"})
    await refused(http, "POST", "/session-types/iv%00infusion/override", "path.code", headers=h,
                  json={})
    await refused(http, "POST", "/patients", "header.idempotency-key", "Zed",
                  headers={**h, "Idempotency-Key": "Zed\x00"}, json=patient())
    # a free-text reason may hold line breaks and tabs; names and addresses (texts carry them)
    await refused(http, "POST", "/sites", "body.address", "Zed", headers=h,
                  json=site(address="1 Main St\nZed 200"))
    cancelled = await http.post(f"/bookings/{made.json()['id']}/cancel", headers=h,
                                json={"reason": "moved away\n\tcalled twice"})
    assert cancelled.status_code == 200 and cancelled.json()["cancel_reason"] == "moved away\n\tcalled twice"


async def test_staff_and_sign_in_bodies_refuse_control_characters_too(booking):
    net = await create_network(booking.http)
    await refused(booking.http, "POST", "/staff", "body.email", "zed@", headers=net.headers,
                  json={"name": "Zed", "email": "zed@\x00clinic.example", "role": "ops"})
    await refused(booking.http, "POST", "/staff", "body.name", "Zed", headers=net.headers,
                  json={"name": "Zed\x1b", "email": "zed@clinic.example", "role": "ops"})
    await refused(booking.http, "POST", "/auth/sign-in", "body.password", "hunter",
                  json={"email": "zed@clinic.example", "password": "hunter\x00"})


async def test_the_other_services_refuse_control_characters_too(spine):
    net = await create_network(spine.booking.http)
    await key_everywhere(spine, net)
    template = {"title": "Zed\x00", "modality": "iv_infusion",
                "stages": [{"name": "Induction", "sessions": 6, "within_days": 21}]}
    await refused(spine.plans.http, "POST", "/plan-templates/iv_induction", "body.title", "Zed",
                  headers=net.headers, json=template)
    await refused(spine.notifier.http, "POST", "/policy", "body.disabled_kinds", "Zed",
                  headers=net.headers, json={"disabled_kinds": ["Zed\x00"]})
    await refused(spine.notifier.http, "POST", "/policy", "body.disabled_kinds", "Zed",
                  headers=net.headers, json={"disabled_kinds": ["Zed"]})  # unknown kind
    await refused(spine.notifier.http, "POST", "/ops/dlq/replay", "body.actor", "Zed", headers=OPS,
                  json={"actor": "Zed\r\n"})


async def test_dates_outside_their_range_are_refused_naming_the_field(booking):
    net = await create_network(booking.http)
    http, h = booking.http, net.headers
    ids = {"patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "iv_infusion"}
    for starts in ("9999-12-31T10:00:00-05:00", "0001-01-01T00:00:00+05:00", "9999-12-31T10:00:00",
                   "2101-01-01T10:00:00Z", "1899-12-31T10:00:00Z"):
        await refused(http, "POST", "/bookings", "body.starts_at", headers=h, json={**ids, "starts_at": starts})
    await refused(http, "POST", "/bookings/series", "body.starts_at", headers=h,
                  json={**ids, "starts_at": [next_local("America/Vancouver"), "9999-12-31T10:00:00-05:00"]})
    far = await refused(http, "POST", "/bookings", "starts_at", headers=h,
                        json={**ids, "starts_at": next_local("America/Vancouver", days=731)})
    assert far.json()["message"] == "a session can be booked at most 730 days ahead"
    await refused(http, "POST", "/bookings/series", "starts_at.1", headers=h, json={
        **ids, "starts_at": [next_local("America/Vancouver"), next_local("America/Vancouver", days=731)]})
    near = await http.post("/bookings", headers=h,
                           json={**ids, "starts_at": next_local("America/Vancouver", days=729)})
    assert near.status_code == 201, near.text
    await refused(http, "POST", f"/bookings/{near.json()['id']}/reschedule", "body.starts_at",
                  headers=h, json={"starts_at": "9999-12-31T10:00:00-05:00"})
    await refused(http, "POST", "/waitlist", "body.window_start", headers=h, json={
        **ids, "window_start": "0001-01-01T00:00:00+05:00", "window_end": "2030-01-01T00:00:00Z"})
    await refused(http, "POST", f"/sites/{net.site['id']}/closures", "body.last_day", headers=h,
                  json={"first_day": "2030-01-01", "last_day": "9999-12-31"})
    await refused(http, "GET", "/bookings", "query.from", headers=h,
                  params={"from": "9999-12-31T23:59:59-05:00"})
    await refused(http, "GET", "/bookings", "query.to", headers=h, params={"to": "0001-01-01T00:00:00+05:00"})
    await refused(http, "GET", f"/sites/{net.site['id']}/availability", "query.from", headers=h,
                  params={"session_type": "iv_infusion", "from": "9999-12-31", "to": "9999-12-31"})
    for date in ("ge9999-12-31", "lt0001-01-01", "9999-12-31T23:59:59-05:00", "", "ge"):
        await refused(http, "GET", "/fhir/Appointment", "date", headers=h,
                      params={"patient": net.patient["id"], "date": date})


async def test_limits_cursors_and_ids_outside_their_range_are_refused(spine):
    net = await create_network(spine.booking.http)
    await key_everywhere(spine, net)
    booking, h = spine.booking.http, net.headers
    for limit in ("-1", "0", "201", str(10**9), str(10**20)):
        await refused(booking, "GET", "/patients", "query.limit", headers=h, params={"limit": limit})
        await refused(booking, "GET", "/bookings/attention", "query.limit", headers=h, params={"limit": limit})
        await refused(spine.notifier.http, "GET", "/attention", "query.limit", headers=h,
                      params={"limit": limit})
    for bad in ("garbage!", cursor([1, 2]), cursor({"a": 1}), cursor("x"), cursor([None, None]),
                cursor(["2020-01-01T00:00:00+00:00", "not-a-uuid"]),
                cursor(["9999-12-31T23:59:59-05:00", str(uuid4())]),
                cursor(["0001-01-01T00:00:00+05:00", str(uuid4())]),
                cursor(["2020-01-01T00:00:00", str(uuid4())])):  # no offset: not one we made
        await refused(booking, "GET", "/patients", "cursor", headers=h, params={"cursor": bad})
    made = await booking.get("/patients", headers=h,
                             params={"cursor": cursor(["2020-01-01T00:00:00+00:00", str(uuid4())])})
    assert made.status_code == 200 and len(made.json()["items"]) == 1
    for svc in (spine.booking, spine.plans, spine.notifier):
        for letter in ("0", "-1", "9223372036854775808", str(10**30)):
            await refused(svc.http, "GET", f"/ops/dlq/{letter}", "path.letter_id", headers=OPS)
            await refused(svc.http, "POST", f"/ops/dlq/{letter}/replay", "path.letter_id",
                          headers=OPS, json={"actor": "me"})
            await refused(svc.http, "POST", f"/ops/dlq/{letter}/discard", "path.letter_id",
                          headers=OPS, json={"actor": "me", "reason": "x"})
        await refused(svc.http, "GET", "/ops/dlq", "query.after", headers=OPS,
                      params={"after": "9223372036854775808"})
        biggest = await svc.http.get("/ops/dlq/9223372036854775807", headers=OPS)
        assert biggest.status_code == 404


@pytest.mark.parametrize("zone", [
    "America/Vancouver", "America/St_Johns", "America/Whitehorse", "America/Regina",
    "America/Phoenix", "America/Indiana/Indianapolis", "Pacific/Honolulu", "America/Adak",
    "America/Puerto_Rico", "America/St_Thomas", "Pacific/Guam", "Pacific/Pago_Pago",
    "Pacific/Saipan", "Pacific/Midway"])
def test_a_zone_of_the_us_canada_or_a_us_territory_is_accepted(zone):
    from shared.zones import check_zone
    assert check_zone(zone) == zone


@pytest.mark.parametrize("zone", [
    "Asia/Tokyo", "Europe/London", "America/Mexico_City", "America/Sao_Paulo", "UTC",
    "US/Eastern", "Canada/Pacific", "America/Montreal", "EST5EDT", "america/vancouver", "",
    "America/Vancouver ", "../../etc/passwd", "x" * 1_000_000])
def test_a_zone_elsewhere_or_an_alias_is_refused(zone):
    from shared.zones import check_zone
    with pytest.raises(ValueError):
        check_zone(zone)


async def test_a_time_zone_is_checked_before_anything_looks_it_up_and_never_logged(booking, caplog):
    net = await create_network(booking.http)
    caplog.set_level(logging.DEBUG)
    huge = "America/" + "x" * 1_000_000
    r = await refused(booking.http, "POST", "/sites", "body.timezone", "xxxxxxxxxx",
                      headers=net.headers, json=site(timezone=huge))
    assert len(r.content) < 2000
    assert not [rec for rec in caplog.records if "xxxxxxxxxx" in rec.getMessage()]
    await refused(booking.http, "POST", "/sites", "body.timezone", "Tokyo", headers=net.headers,
                  json=site(timezone="Asia/Tokyo"))
    await refused(booking.http, "POST", "/sites", "body.timezone", "US/Eastern", headers=net.headers,
                  json=site(timezone="US/Eastern"))
    thomas = await booking.http.post("/sites", headers=net.headers, json=site(
        name="St Thomas", timezone="America/St_Thomas", phone="+1 340 642 1234", region="US-VI"))
    assert thomas.status_code == 201 and thomas.json()["timezone"] == "America/St_Thomas"


async def test_clinic_and_site_phones_are_checked_and_stored_in_e164(booking):
    from tests.conftest import ADMIN_TOKEN
    admin = {"X-Admin-Token": ADMIN_TOKEN}
    for phone in ("not a phone", "12345", "+44 20 7946 0958", "+1 900 234 5678",
                  "+1 604 555 0100 ext. 3", "+1 604 555 0100;ext=1"):
        await refused(booking.http, "POST", "/clinics", "body.phone", phone, headers=admin,
                      json={"name": "Clinic", "phone": phone})
    toll_free = await booking.http.post("/clinics", headers=admin,
                                        json={"name": "Clinic", "phone": "1 (800) 234-5678"})
    assert toll_free.status_code == 201 and toll_free.json()["phone"] == "+18002345678"
    net = await create_network(booking.http)
    assert net.clinic["phone"] == "+16045550100" and net.site["phone"] == "+16045550101"
    await refused(booking.http, "POST", "/sites", "body.phone", "900", headers=net.headers,
                  json=site(phone="+1 900 234 5678"))
    puerto_rico = await booking.http.post("/sites", headers=net.headers, json=site(
        name="San Juan", phone="(787) 234-5678", timezone="America/Puerto_Rico"))
    assert puerto_rico.status_code == 201 and puerto_rico.json()["phone"] == "+17872345678"


async def test_patients_mobiles_are_one_number_each_and_never_toll_free(booking):
    net = await create_network(booking.http)
    for raw in ("＋１ ６０４ ５５５ ０１４２", "+١ ٦٠٤ ٥٥٥ ٠١٤٢", "+۱ ۶۰۴ ۵۵۵ ۰۱۴۲"):
        made = await add_patient(booking.http, net, phone=raw)
        assert made["phone_e164"] == "+16045550142"
    for raw, e164 in (("+1 787 234 5678", "+17872345678"), ("939-234-5678", "+19392345678"),
                      ("+1 340 642 1234", "+13406421234"), ("(671) 300-1234", "+16713001234"),
                      ("+1 684 733 1234", "+16847331234"), ("+1 670 234 5678", "+16702345678")):
        assert (await add_patient(booking.http, net, phone=raw))["phone_e164"] == e164
    for raw in ("+1 604 555 0142;ext=1", "+1 604 555 0142 x12", "+1 604 555 0142 ext. 3",
                "+1 800 234 5678", "+1 888 234 5678", "+1 900 234 5678", "+1 500 234 5678",
                "+1 684 622 1234"):
        r = await refused(booking.http, "POST", "/patients", "phone", raw, headers=net.headers,
                          json=patient(phone=raw))
        assert "0142" not in r.text and "234" not in r.text
    await refused(booking.http, "POST", "/patients", "ride_contact.phone", "800", headers=net.headers,
                  json=patient(ride_contact={"name": "Sam", "phone": "+1 800 234 5678"}))
