"""People sign in (password and authenticator code) and their short-lived token works at all
three services, with their role, for their own network only; an ended session's token and an
expired one do not; failed sign-ins are rate-limited per account and per address."""

from __future__ import annotations

import time
from uuid import UUID, uuid4

import pyotp
import pytest

from shared import tokens
from tests.conftest import eventually
from tests.helpers import create_network, new_address
from tests.staff_helpers import PASSWORD, add_person, bearer, sign_in
from tests.test_booking_rules import next_local

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network


async def _works_at(svc, path: str, token: str) -> bool:
    return (await svc.http.get(path, headers=bearer(token))).status_code == 200


async def test_a_token_from_booking_works_at_plans_and_notifier_with_the_persons_role(spine):
    net = await create_network(spine.booking.http)
    scheduler = await add_person(spine.booking.http, net.headers, "scheduler")
    signed = await sign_in(spine.booking.http, scheduler)
    token = signed["token"]
    assert signed["staff"]["role"] == "scheduler"

    me = (await spine.booking.http.get("/auth/me", headers=bearer(token))).json()
    assert me["staff_id"] == scheduler.id and me["role"] == "scheduler"
    patient = net.patient["id"]
    # the network's public key reaches plans and notifier as an event
    assert await eventually(lambda: _works_at(spine.plans, f"/patients/{patient}/plans", token))
    assert await eventually(lambda: _works_at(spine.notifier, f"/patients/{patient}/texts", token))
    # the role holds everywhere: a scheduler is no admin
    assert (await spine.booking.http.post("/rooms", headers=bearer(token), json={
        "site_id": net.site["id"], "name": "X"})).status_code == 403
    assert (await spine.notifier.http.post("/policy", headers=bearer(token), json={})).status_code == 403
    assert (await spine.plans.http.post("/settings", headers=bearer(token), json={
        "auto_create_plans": False})).status_code == 403


async def test_what_a_person_does_is_recorded_as_that_person_not_as_a_key(spine):
    net = await create_network(spine.booking.http)
    scheduler = await add_person(spine.booking.http, net.headers, "scheduler", name="Dana Desk")
    token = (await sign_in(spine.booking.http, scheduler))["token"]
    day = next_local(net.site["timezone"], days=3)[:10]  # not today: its slots may have passed
    slots = (await spine.booking.http.get(
        f"/sites/{net.site['id']}/availability", headers=net.headers,
        params={"session_type": "assessment", "from": day, "to": day})).json()["slots"]
    booked = await spine.booking.http.post("/bookings", headers=bearer(token), json={
        "patient_id": net.patient["id"], "site_id": net.site["id"], "session_type": "assessment",
        "starts_at": slots[-1]["starts_at"]})
    assert booked.status_code == 201, booked.text
    cancelled = await spine.booking.http.post(f"/bookings/{booked.json()['id']}/cancel",
                                              headers=bearer(token), json={"reason": "asked"})
    assert cancelled.json()["cancelled_by"] == f"Dana Desk (scheduler, staff {scheduler.id})"


async def test_a_token_is_good_for_its_own_network_only(spine):
    mine = await create_network(spine.booking.http)
    other = await create_network(spine.booking.http, name="Other Clinic")
    person = await add_person(spine.booking.http, mine.headers, "admin")
    token = (await sign_in(spine.booking.http, person))["token"]
    assert (await spine.booking.http.get(f"/patients/{other.patient['id']}",
                                         headers=bearer(token))).status_code == 404
    assert (await spine.booking.http.get(f"/sites/{other.site['id']}",
                                         headers=bearer(token))).status_code == 404
    # a token claiming the other network, signed with this network's key, is refused
    async with spine.booking.runtime.db.acquire() as conn:
        row = await conn.fetchrow("SELECT kid, private_key FROM signing_keys WHERE clinic_id = $1",
                                  UUID(mine.clinic["id"]))
    forged, _ = tokens.sign((row["kid"], bytes(row["private_key"])), staff_id=UUID(person.id),
                            clinic_id=UUID(other.clinic["id"]), session_id=uuid4(),
                            role="admin", name="Mallory", ttl_seconds=300)
    assert (await spine.booking.http.get("/sites", headers=bearer(forged))).status_code == 401
    # and so is one signed with a key no network has
    stray, _ = tokens.sign(tokens.new_key_pair(), staff_id=UUID(person.id),
                           clinic_id=UUID(mine.clinic["id"]), session_id=uuid4(), role="admin",
                           name="Mallory", ttl_seconds=300)
    assert (await spine.booking.http.get("/sites", headers=bearer(stray))).status_code == 401
    assert (await spine.booking.http.get("/sites", headers=bearer("not-a-token"))).status_code == 401


async def test_after_sign_out_the_token_is_refused_by_every_service(spine):
    net = await create_network(spine.booking.http)
    person = await add_person(spine.booking.http, net.headers, "clinician", totp=False)
    token = (await sign_in(spine.booking.http, person))["token"]
    patient = net.patient["id"]
    assert await eventually(lambda: _works_at(spine.notifier, f"/patients/{patient}/texts", token))
    assert await eventually(lambda: _works_at(spine.plans, f"/patients/{patient}/plans", token))

    out = await spine.booking.http.post("/auth/sign-out", headers=bearer(token))
    assert out.status_code == 204
    assert (await spine.booking.http.get("/sites", headers=bearer(token))).status_code == 401
    assert (await spine.booking.http.post("/auth/refresh", headers=bearer(token))).status_code == 401

    async def refused(svc, path):
        return (await svc.http.get(path, headers=bearer(token))).status_code == 401
    assert await eventually(lambda: refused(spine.plans, f"/patients/{patient}/plans"))
    assert await eventually(lambda: refused(spine.notifier, f"/patients/{patient}/texts"))


async def test_an_expired_token_is_refused_and_a_fresh_one_comes_from_refresh(spine):
    net = await create_network(spine.booking.http)
    person = await add_person(spine.booking.http, net.headers, "ops", totp=False)
    signed = await sign_in(spine.booking.http, person)
    async with spine.booking.runtime.db.acquire() as conn:
        row = await conn.fetchrow("SELECT kid, private_key FROM signing_keys WHERE clinic_id = $1",
                                  UUID(net.clinic["id"]))
    expired, _ = tokens.sign((row["kid"], bytes(row["private_key"])), staff_id=UUID(person.id),
                             clinic_id=UUID(net.clinic["id"]), session_id=UUID(signed["session_id"]),
                             role="ops", name="Person", ttl_seconds=60, now=time.time() - 3600)
    assert (await spine.booking.http.get("/sites", headers=bearer(expired))).status_code == 401
    assert await eventually(lambda: _works_at(spine.plans, "/plan-templates", signed["token"]))
    assert (await spine.plans.http.get("/plan-templates", headers=bearer(expired))).status_code == 401

    fresh = await spine.booking.http.post("/auth/refresh", headers=bearer(signed["token"]))
    assert fresh.status_code == 200
    assert fresh.json()["session_id"] == signed["session_id"]
    assert await _works_at(spine.booking, "/sites", fresh.json()["token"])


async def test_a_role_change_ends_the_persons_sessions(spine):
    net = await create_network(spine.booking.http)
    person = await add_person(spine.booking.http, net.headers, "scheduler", totp=False)
    token = (await sign_in(spine.booking.http, person))["token"]
    changed = await spine.booking.http.post(f"/staff/{person.id}/role", headers=net.headers,
                                            json={"role": "read-only"})
    assert changed.status_code == 200 and changed.json()["role"] == "read-only"
    assert (await spine.booking.http.get("/sites", headers=bearer(token))).status_code == 401
    again = await sign_in(spine.booking.http, person)
    assert again["staff"]["role"] == "read-only"
    disabled = await spine.booking.http.post(f"/staff/{person.id}/disable", headers=net.headers)
    assert disabled.status_code == 200
    assert (await spine.booking.http.get("/sites", headers=bearer(again["token"]))).status_code == 401
    refused = await spine.booking.http.post("/auth/sign-in", json={
        "email": person.email, "password": PASSWORD})
    assert refused.status_code == 401


async def test_admins_must_have_an_authenticator_and_a_code_works_once(booking):
    net = await create_network(booking.http)
    added = (await booking.http.post("/staff", headers=net.headers, json={
        "name": "Ada Admin", "email": "ada@clinic.example", "role": "admin"})).json()
    offered = (await booking.http.post("/auth/enrolment", json={"code": added["enrolment_code"]})).json()
    assert offered["totp_required"] is True and offered["totp_uri"].startswith("otpauth://totp/")
    without = await booking.http.post("/auth/enrolment/complete", json={
        "code": added["enrolment_code"], "password": PASSWORD})
    assert without.status_code == 422
    assert without.json()["field"] == "totp_code"
    totp = pyotp.TOTP(offered["totp_secret"])
    done = await booking.http.post("/auth/enrolment/complete", json={
        "code": added["enrolment_code"], "password": PASSWORD, "totp_code": totp.now()})
    assert done.status_code == 200
    # the enrolment code is used up
    assert (await booking.http.post("/auth/enrolment", json={
        "code": added["enrolment_code"]})).status_code == 404
    no_code = await booking.http.post("/auth/sign-in", json={
        "email": "ada@clinic.example", "password": PASSWORD})
    assert no_code.status_code == 401
    code = totp.at(time.time() + 30)
    first = await booking.http.post("/auth/sign-in", json={
        "email": "ADA@clinic.example", "password": PASSWORD, "totp_code": code})
    assert first.status_code == 200
    replay = await booking.http.post("/auth/sign-in", json={
        "email": "ada@clinic.example", "password": PASSWORD, "totp_code": code})
    assert replay.status_code == 401


async def test_failed_sign_ins_are_limited_per_account_and_per_address(booking):
    # addresses of this test's: sign-ins are limited per address across the service
    guesser, elsewhere, many, other_address = (new_address() for _ in range(4))
    net = await create_network(booking.http)
    victim = await add_person(booking.http, net.headers, "scheduler", totp=False)
    for _ in range(5):
        wrong = await booking.http.post("/auth/sign-in", json={
            "email": victim.email, "password": "wrong password!"},
            headers={"X-Forwarded-For": guesser})
        assert wrong.status_code == 401
    # the right password, from another address: the account is locked for the window
    locked = await booking.http.post("/auth/sign-in", json={
        "email": victim.email, "password": PASSWORD}, headers={"X-Forwarded-For": elsewhere})
    assert locked.status_code == 429
    assert locked.json()["retry_after_seconds"] == 900

    other = await add_person(booking.http, net.headers, "scheduler", totp=False)
    for i in range(20):  # one address guessing at many accounts
        await booking.http.post("/auth/sign-in", json={
            "email": f"nobody{i}@clinic.example", "password": "guess guess"},
            headers={"X-Forwarded-For": many})
    from_there = await booking.http.post("/auth/sign-in", json={
        "email": other.email, "password": PASSWORD}, headers={"X-Forwarded-For": many})
    assert from_there.status_code == 429
    from_elsewhere = await booking.http.post("/auth/sign-in", json={
        "email": other.email, "password": PASSWORD}, headers={"X-Forwarded-For": other_address})
    assert from_elsewhere.status_code == 200


async def test_staff_input_errors_name_the_field_and_never_echo_it(booking):
    net = await create_network(booking.http)
    bad = await booking.http.post("/staff", headers=net.headers, json={
        "name": "X", "email": "not-an-email-secret", "role": "scheduler"})
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["path"] == "body.email"
    assert "not-an-email-secret" not in bad.text
    short = await booking.http.post("/auth/enrolment/complete", json={
        "code": "x" * 20, "password": "short"})
    assert short.status_code == 422 and "short" not in short.text.replace('"string_too_short"', "")
    twice = await booking.http.post("/staff", headers=net.headers, json={
        "name": "A", "email": "same@clinic.example", "role": "ops"})
    assert twice.status_code == 201
    again = await booking.http.post("/staff", headers=net.headers, json={
        "name": "B", "email": "Same@clinic.example", "role": "ops"})
    assert again.status_code == 409 and again.json()["field"] == "email"


async def test_every_named_staff_query_is_valid_sql_against_the_migrated_schema(booking):
    from services.booking.store import Q  # the staff queries are booking's (queries.sql)

    async with booking.runtime.db.acquire() as conn:
        for name in Q.names():
            await conn.prepare(getattr(Q, name))


async def test_every_named_query_of_the_staff_screens_is_valid_sql(spine):
    from services.booking.store import Q as booking_views
    from services.notifier.store import VIEWS as notifier_views

    for svc, queries in ((spine.booking, booking_views), (spine.notifier, notifier_views)):
        async with svc.runtime.db.acquire() as conn:
            for name in queries.names():
                await conn.prepare(getattr(queries, name))
