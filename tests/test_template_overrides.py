"""Clinics' own words through the notifier's API: an override is checked before it is saved
(a drug name is refused with the reason), previewed, versioned, and each text sent records
the version of the words it used."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import eventually
from tests.helpers import create_network, key_everywhere
from tests.test_spine import listing

pytestmark = pytest.mark.shared_services  # each test makes its own clinic network

OWN = ("{clinic}: we look forward to seeing you at {site} on {date} at {time}. Reply 1 to "
       "confirm, 2 to change. {phone}")


async def test_a_template_override_with_a_drug_name_is_refused_with_the_reason(spine):
    net = await create_network(spine.booking.http)
    await key_everywhere(spine, net)
    r = await spine.notifier.http.post("/templates", headers=net.headers, json={
        "kind": "confirmation", "language": "en",
        "body": "{clinic}: your ketamine infusion is on {date} at {time}. {phone}"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "body"
    assert r.json()["message"] == ("body names a drug, procedure or diagnosis (ketamine, "
                                   "infusion), which texts must never carry")
    for body, field, reason in [
            ("{clinic}: {date} at {time}. {insurance_id} {phone}", "body", "does not know"),
            ("{clinic}: see you {date} at {time}.", "body", "needs: {phone}"),
            ("{clinic}: 🙂 {date} {time} {phone}", "accept_ucs2", "UCS-2")]:
        r = await spine.notifier.http.post("/templates", headers=net.headers, json={
            "kind": "confirmation", "language": "en", "body": body})
        assert r.status_code == 422 and r.json()["field"] == field, r.text
        assert reason in r.json()["message"]
    r = await spine.notifier.http.post("/templates", headers=net.headers, json={
        "kind": "no_such_kind", "language": "en", "body": OWN})
    assert r.status_code == 422 and r.json()["field"] == "kind"
    r = await spine.notifier.http.post("/templates", headers=net.headers, json={
        "kind": "confirmation", "language": "de", "body": OWN})
    assert r.status_code == 422 and r.json()["fields"][0]["path"] == "body.language"
    listed = (await spine.notifier.http.get("/templates", headers=net.headers)).json()
    assert listed["overrides"] == []
    assert listed["kinds"]["prep"]["needs"] == ["clinic", "phone", "ride"]


async def test_the_preview_gives_the_text_its_segments_and_encoding(spine):
    net = await create_network(spine.booking.http)
    await key_everywhere(spine, net)
    r = await spine.notifier.http.post("/templates/preview", headers=net.headers, json={
        "kind": "confirmation", "language": "fr",
        "body": "{clinic}: à bientôt le {date} à {time}. Répondez 1 ou 2. {phone}"})
    assert r.status_code == 200, r.text
    assert r.json() == {"text": "Cedar Grove: à bientot le mer. 9 déc. à 10 h 00. Répondez 1 "
                                "ou 2. (604) 555-0100",
                        "segments": 1, "encoding": "GSM-7", "worst_case_segments": 1,
                        "problems": []}
    r = await spine.notifier.http.post("/templates/preview", headers=net.headers, json={
        "kind": "confirmation", "language": "en", "body": "{clinic} 🙂 {date} {time} {phone}"})
    assert r.json()["encoding"] == "UCS-2"
    assert [p["field"] for p in r.json()["problems"]] == ["accept_ucs2"]


async def test_overrides_are_versioned_and_each_sent_text_records_the_version_it_used(spine, db):
    net = await create_network(spine.booking.http)
    await key_everywhere(spine, net)
    for body in (OWN.replace("look forward to seeing", "will see"), OWN):
        r = await spine.notifier.http.post("/templates", headers=net.headers, json={
            "kind": "confirmation", "language": "en", "body": body})
        assert r.status_code == 201, r.text
    assert r.json()["version"] == 2 and r.json()["created_by"]
    listed = (await spine.notifier.http.get("/templates", headers=net.headers)).json()
    assert [(o["kind"], o["version"]) for o in listed["overrides"]] == [
        ("confirmation", 2), ("confirmation", 1)]
    start = (datetime.now(ZoneInfo("America/Vancouver")) + timedelta(days=3)).replace(
        hour=10, minute=0, second=0, microsecond=0)
    r = await spine.booking.http.post("/bookings", headers=net.headers, json={
        "patient_id": net.patient["id"], "site_id": net.site["id"],
        "session_type": "assessment", "starts_at": start.isoformat()})
    assert r.status_code == 201, r.text

    async def sent():
        texts = await listing(spine.notifier.http, f"/patients/{net.patient['id']}/texts",
                              net.headers)
        return next((t for t in texts if t["kind"] == "confirmation" and t["status"] == "sent"),
                    None)
    text = await eventually(sent, timeout=30)
    assert text["body"].startswith("Test Clinic: we look forward to seeing you at Main on ")
    assert text["template_version"] == 2
    day_of = next(t for t in await listing(
        spine.notifier.http, f"/patients/{net.patient['id']}/texts", net.headers)
        if t["kind"] == "day_of")
    assert day_of["template_version"] is None  # not rendered yet
    r = await spine.notifier.http.post("/templates", headers=net.headers, json={
        "kind": "confirmation", "language": "en", "body": None})
    assert r.status_code == 201 and r.json()["version"] == 3 and r.json()["body"] is None
