"""A clinic network's key never sees another network's rows, on every endpoint of the three
services, found in their own OpenAPI documents: a new endpoint is checked without anyone
adding it here, or this test fails naming what it needs (an id for a new path parameter, a
body for a new action).

Network A is given a row of every kind (sites, rooms, providers, patients, bookings, a
waitlist entry and offer, a session type override, a plan and its own plan template, a
texting policy, texts, a reply for staff and an opted-out number); network B's key then
- reads every list (`GET` without an id in its path, with A's ids in its filters): none of
  A's ids or markers appear, while A's own key sees them on the same list;
- reads everything that names one of A's rows in its path: 404;
- tries every action on one of A's rows: 404, and A's rows are as they were.
Not covered: `/ops` (the platform's ops token, no tenant), the Twilio webhooks (Twilio's
signature), `/health`, `/ready` and `POST /clinics` (the platform's admin token), and the
audit trails (`/audit`: B's own trail names the ids B itself tried here; that it shows B
nothing of A, and A the attempts, is tests/test_audit.py's)."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import eventually
from tests.helpers import add_patient, create_network, key_everywhere
from tests.test_booking_rules import next_local

TWILIO_AUTH_TOKEN = "tenant-twilio-auth-token"
PLATFORM = ("/ops", "/health", "/ready", "/twilio", "/metrics", "/asyncapi", "/audit")
PUBLIC = ("/online/",)
"""The public booking page's endpoints: no key, a network by its slug (tested in
tests/test_online_booking.py, another network's request among them)."""
MARKERS = ("Network A", "Alphonse", "+16045550123", "alpha_only_rule", "Alpha only induction")
"""Strings only network A's rows hold (besides its ids)."""


@pytest.fixture
def spine_overrides() -> dict[str, dict]:
    """The notifier checks Twilio signatures (network A's patient sends a reply)."""
    return {"notifier": {"twilio_auth_token": TWILIO_AUTH_TOKEN, "public_base_url": "http://notifier"}}


async def _ok(response, status: int = 200):
    r = await response
    assert r.status_code == status, r.text
    return r.json()


async def network_a(spine) -> tuple[object, dict[str, str]]:
    """Network A with a row of every kind; its ids by the name of the parameter that takes
    them."""
    booking = spine.booking.http
    a = await create_network(booking, name="Network A")
    h = a.headers
    await key_everywhere(spine, a)
    alphonse = await add_patient(booking, a, given_name="Alphonse", phone="604-555-0123")
    dosing = await _ok(booking.post("/bookings", headers=h, json={
        "patient_id": a.patient["id"], "site_id": a.site["id"], "session_type": "iv_infusion",
        "starts_at": next_local("America/Vancouver")}), 201)  # ride not confirmed: attention
    freed = await _ok(booking.post("/bookings", headers=h, json={
        "patient_id": alphonse["id"], "site_id": a.site["id"], "session_type": "assessment",
        "starts_at": next_local("America/Vancouver", days=6)}), 201)
    start = datetime.fromisoformat(freed["starts_at"])
    await _ok(booking.post("/waitlist", headers=h, json={
        "patient_id": a.patient["id"], "site_id": a.site["id"], "session_type": "assessment",
        "window_start": (start - timedelta(days=1)).isoformat(),
        "window_end": (start + timedelta(days=1)).isoformat()}), 201)
    await _ok(booking.post(f"/bookings/{freed['id']}/cancel", headers=h, json={"reason": "ill"}))
    offer = await spine.booking.runtime.db.fetchval(
        "SELECT id FROM waitlist_offers WHERE clinic_id = $1", UUID(a.clinic["id"]))
    await _ok(booking.post("/session-types/integration/override", headers=h,
                           json={"fasting_rule": "alpha_only_rule"}))
    key = await _ok(booking.post("/api-keys", headers=h, json={"role": "read-only", "label": "r"}), 201)
    await _ok(spine.plans.http.post("/plan-templates/kap", headers=h, json={
        "title": "Alpha only induction", "modality": "oral_lozenge_kap",
        "stages": [{"name": "dosing", "sessions": 3, "within_days": 21}]}), 201)
    await _ok(spine.notifier.http.post("/policy", headers=h, json={
        "sites": {a.site["id"]: {"quiet_hours_start": 20, "quiet_hours_end": 9}}}))
    await _ok(spine.notifier.http.post("/templates", headers=h, json={  # its own words
        "kind": "session_due", "language": "en",
        "body": "{clinic}: Alpha only induction words. Call {phone}."}), 201)

    async def plan():
        r = await spine.plans.http.get(f"/patients/{a.patient['id']}/plans", headers=h)
        return r.status_code == 200 and r.json()

    async def known_to_notifier():
        r = await spine.notifier.http.get(f"/patients/{alphonse['id']}/texts", headers=h)
        return r.status_code == 200

    [started] = await eventually(plan)
    await eventually(known_to_notifier)
    await reply(spine, "+16045550123", "what time is it again?")  # for staff: /attention
    await reply(spine, "+16045550123", "STOP")  # the number's opt-out: /opt-outs
    replies = await _ok(spine.notifier.http.get("/replies", headers=h))
    staff = await _ok(booking.post("/staff", headers=h, json={
        "name": "Dana Desk", "email": "dana@alpha.example", "role": "scheduler"}), 201)
    ids = {"site_id": a.site["id"], "patient_id": a.patient["id"], "booking_id": dosing["id"],
           "plan_id": started["id"], "room_id": a.rooms[0]["id"],
           "provider_id": a.providers[0]["id"], "key_id": key["id"], "offer_id": str(offer),
           "patient": a.patient["id"], "clinic_id": a.clinic["id"], "alphonse": alphonse["id"],
           "reply_id": str(replies["items"][-1]["id"]), "staff_id": staff["id"],
           "ids": a.patient["id"]}
    return a, ids


async def reply(spine, sender: str, body: str) -> None:
    """A patient's text, signed as Twilio signs it."""
    form = {"MessageSid": f"SM{sender[1:]}{len(body):04d}{body.encode().hex()[:16]}",
            "From": sender, "Body": body}
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(
        "http://notifier/twilio/inbound", form)
    r = await spine.notifier.http.post("/twilio/inbound", data=form,
                                       headers={"X-Twilio-Signature": signature})
    assert r.status_code == 200, r.text


def operations(spine):
    """(service, method, path template, operation) of every tenant endpoint of the three
    services, from their OpenAPI documents."""
    for svc in spine.services.values():
        for path, methods in svc.app.openapi()["paths"].items():
            if path.startswith(PLATFORM + PUBLIC) or path == "/clinics":
                continue
            for method, op in methods.items():
                yield svc, method.upper(), path, op


def fill(path: str, op: dict, ids: dict) -> tuple[str, dict]:
    """The path with A's ids, and the query: required parameters and every filter by id."""
    values = {}
    for p in op.get("parameters", []):
        name, where = p["name"], p["in"]
        if where == "path":
            if name not in ids and name != "code":
                pytest.fail(f"{path}: no id of network A for {{{name}}}: add one to network_a()")
            values[name] = ids.get(name, "iv_infusion")
        elif where == "query" and (name in ids or name == "session_type"):
            values[name] = ids.get(name, "iv_infusion")
        elif where == "query" and p.get("required") and p["schema"].get("format") == "date":
            values[name] = "2030-01-07"  # a day range (from) with none of A's rows in it
        elif where == "query" and p.get("required"):
            pytest.fail(f"{path}: no value for the required query parameter {name}: add one")
    query = {k: v for k, v in values.items() if "{" + k + "}" not in path}
    return path.format(**values), query


EMPTY_WHEN_UNKNOWN = {"/sites/{site_id}/texts"}
"""Reads by id that answer an id they do not know (the notifier knows sites only through
their appointments) exactly as they answer another network's: with nothing."""


def bodies(ids: dict) -> dict[str, dict]:
    """A valid body for each action on one of A's rows that needs one (path template: body)."""
    return {
        "/bookings/{booking_id}/reschedule": {"starts_at": next_local("America/Vancouver", hour=15)},
        "/bookings/{booking_id}/cancel": {"reason": "not yours"},
        "/bookings/{booking_id}/ride": {"ride_status": "confirmed", "driver_name": "B"},
        "/sites/{site_id}/closures": {"first_day": "2030-01-01", "last_day": "2030-01-02"},
        "/waitlist/offers/{offer_id}/accept": {"patient_id": ids["patient_id"]},
        "/staff/{staff_id}/role": {"role": "admin"},
        "/patients/{patient_id}/timezone": {"timezone": "America/Toronto"},
        "/providers/{provider_id}": {"consultations": False},
    }


def leaks(text: str, ids: dict) -> list[str]:
    """A's ids (UUIDs: a short numeric id would match anything) and markers in `text`."""
    return [m for m in (*ids.values(), *MARKERS) if len(m) > 8 and m in text]


async def test_no_endpoint_shows_or_touches_another_networks_rows(spine):
    a, ids = await network_a(spine)
    b = await create_network(spine.booking.http, name="Network B")
    await key_everywhere(spine, b)
    body_of = bodies(ids)
    lists, reads, actions = [], [], []
    for svc, method, path, op in operations(spine):
        tenant_ids = [p for p in op.get("parameters", []) if p["in"] == "path" and p["name"] != "code"]
        if method == "GET":
            (reads if tenant_ids else lists).append((svc, path, op))
        elif tenant_ids:
            actions.append((svc, method, path, op))

    for svc, method, path, op in actions:  # B acts on A's rows: 404, nothing changes
        url, query = fill(path, op, ids)
        needs_body = op.get("requestBody", {}).get("required", False)
        if needs_body and path not in body_of:
            pytest.fail(f"{method} {path}: no body to try it with: add one to bodies()")
        r = await svc.http.request(method, url, params=query, headers=b.headers,
                                   json=body_of.get(path) if needs_body else None)
        assert r.status_code == 404, (svc.name, method, path, r.status_code, r.text)
    for svc, path, op in reads:  # B reads A's rows by id: 404
        url, query = fill(path, op, ids)
        r = await svc.http.get(url, params=query, headers=b.headers)
        if path in EMPTY_WHEN_UNKNOWN:  # answers an unknown id with nothing, not 404: then
            unknown = url.replace(ids["site_id"], "00000000-0000-4000-8000-000000000000")
            nobody = await svc.http.get(unknown, params=query, headers=b.headers)
            assert (r.status_code, r.text) == (nobody.status_code, nobody.text) == (200, "{}")
        else:
            assert r.status_code == 404, (svc.name, path, r.status_code, r.text)
        mine = await svc.http.get(url, params=query, headers=a.headers)
        assert mine.status_code == 200, (svc.name, path, mine.text)
    for svc, path, op in lists:  # B lists, filtering by A's ids: none of A's rows
        url, query = fill(path, op, ids)
        theirs = await svc.http.get(url, params=query, headers=b.headers)
        assert theirs.status_code == 200, (svc.name, path, theirs.status_code, theirs.text)
        assert leaks(theirs.text, ids) == [], (svc.name, path, theirs.text)
        mine = await svc.http.get(url, params=query, headers=a.headers)
        assert mine.status_code == 200 and leaks(mine.text, ids), (svc.name, path, mine.text)

    listed = {path for _, path, _ in lists}
    assert {"/bookings/attention", "/attention", "/replies", "/opt-outs", "/fhir/Appointment",
            "/waitlist", "/plan-templates"} <= listed
    assert {"/patients/{patient_id}/texts", "/patients/{patient_id}/plans"} <= {p for _, p, _ in reads}
    still = await _ok(spine.booking.http.get(f"/bookings/{ids['booking_id']}", headers=a.headers))
    assert (still["status"], still["version"], still["ride"]["status"]) == ("booked", 1, "unknown")
    plan = await _ok(spine.plans.http.get(f"/plans/{ids['plan_id']}", headers=a.headers))
    assert plan["phase"] != "discontinued"
    rule = await _ok(spine.booking.http.get("/session-types", headers=a.headers))
    assert {t["code"]: t["fasting_rule"] for t in rule}["integration"] == "alpha_only_rule"
