"""The services' aggregate reads for staff screens: a site's day is its local midnight to
midnight (23 or 25 hours at a DST change), in one call each, with names; bad ranges are a
422 naming the field."""

from __future__ import annotations

import pytest

from tests.conftest import eventually
from tests.helpers import add_patient, create_network

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network


async def _key_reached(svc, net) -> None:
    async def known():
        return (await svc.http.get("/policy", headers=net.headers)).status_code == 200
    await eventually(known)


async def _book(http, net, patient_id, local: str, session_type: str = "assessment") -> dict:
    r = await http.post("/bookings", headers=net.headers, json={
        "patient_id": patient_id, "site_id": net.site["id"], "session_type": session_type,
        "starts_at": local})
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_sites_day_on_the_night_clocks_fall_back_runs_from_local_midnight_to_midnight(spine):
    http = spine.booking.http
    all_day = [{"weekday": d, "opens": "00:00", "closes": "23:59"} for d in range(1, 8)]
    # Los Angeles: Vancouver no longer changes its clocks (it kept daylight time from 2026)
    net = await create_network(http, timezone="America/Los_Angeles", hours=all_day)
    other = await add_patient(http, net, given_name="Ana", family_name="Lima", phone="604-555-0179")
    early = await _book(http, net, other["id"], "2027-11-07T00:30:00")       # still PDT (UTC-7)
    late = await _book(http, net, net.patient["id"], "2027-11-07T22:30:00")  # PST (UTC-8)
    await _book(http, net, other["id"], "2027-11-08T00:30:00")               # the next local day
    assert early["starts_at"] == "2027-11-07T07:30:00+00:00"
    assert late["starts_at"] == "2027-11-08T06:30:00+00:00"
    sheet = (await http.get(f"/sites/{net.site['id']}/sheet", headers=net.headers,
                            params={"from": "2027-11-07"})).json()
    assert [b["id"] for b in sheet["bookings"]] == [early["id"], late["id"]]
    assert [b["patient_name"] for b in sheet["bookings"]] == ["Ana Lima", "Pat Test"]
    assert sheet["site"]["timezone"] == "America/Los_Angeles"

    await _key_reached(spine.notifier, net)
    texts = (await spine.notifier.http.get(f"/sites/{net.site['id']}/texts", headers=net.headers,
                                           params={"from": "2027-11-07"}))
    assert texts.status_code == 200


async def test_a_bad_range_of_days_is_a_422_naming_the_field(spine):
    net = await create_network(spine.booking.http)
    await _key_reached(spine.notifier, net)
    for svc, path in ((spine.booking, f"/sites/{net.site['id']}/sheet"),
                      (spine.notifier, f"/sites/{net.site['id']}/texts")):
        backwards = await svc.http.get(path, headers=net.headers, params={"from": "2030-01-10", "to": "2030-01-01"})
        assert backwards.status_code == 422 and backwards.json()["field"] == "to"
        missing = await svc.http.get(path, headers=net.headers)  # a required parameter
        assert missing.status_code == 422 and [f["path"] for f in missing.json()["fields"]] == [
            "query.from"]
        garbage = await svc.http.get(path, headers=net.headers, params={"from": "not-a-date-secret"})
        assert garbage.status_code == 422 and "not-a-date-secret" not in garbage.text


async def test_patients_are_found_by_words_of_their_name_or_the_last_digits_of_their_number(spine):
    http = spine.booking.http
    net = await create_network(http)
    await add_patient(http, net, given_name="Zoé", family_name="Tremblay", phone="514-555-0123")
    async def search(q):
        r = await http.post("/patients/search", headers=net.headers, json={"q": q})
        assert r.status_code == 200, r.text
        return [f"{p['given_name']} {p['family_name']}" for p in r.json()]
    assert await search("zoé trem") == ["Zoé Tremblay"]
    assert await search("0123") == ["Zoé Tremblay"]
    assert await search("(514) 555-0123") == ["Zoé Tremblay"]
    assert await search("pat") == ["Pat Test"]
    assert await search("100%_") == []
