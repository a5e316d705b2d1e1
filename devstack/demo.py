"""The demo clinic network, loaded over the booking API, and the demo's end-to-end check."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

NETWORK = {"name": "Cedar Grove Clinics", "phone": "+1 604 555 0100"}
EVERY_DAY = [{"weekday": d, "opens": "08:00", "closes": "20:00"} for d in range(1, 8)]
SITES = [
    {"name": "Vancouver", "address": "100 Main St, Vancouver BC", "phone": "+1 604 555 0101",
     "timezone": "America/Vancouver", "default_language": "en"},
    {"name": "Montreal", "address": "200 Rue Sainte-Catherine, Montreal QC",
     "phone": "+1 514 555 0102", "timezone": "America/Toronto", "default_language": "fr"},
    {"name": "New York", "address": "300 Broadway, New York NY", "phone": "+1 212 555 0103",
     "timezone": "America/New_York", "default_language": "en"},
    {"name": "St Thomas", "address": "4 Veterans Dr, St Thomas USVI", "phone": "+1 340 555 0104",
     "timezone": "America/St_Thomas", "default_language": "en"},
]
PATIENTS = [
    {"given_name": "Alex", "family_name": "Demo", "phone": "604-555-0142", "language": "en",
     "ride_contact": {"name": "Sam Demo", "phone": "604-555-0150", "sms_consent": True}},
    {"given_name": "Camille", "family_name": "Demo", "phone": "514-555-0143", "language": "fr"},
    {"given_name": "Diego", "family_name": "Demo", "phone": "212-555-0144", "language": "es"},
]


def _create(http: httpx.Client, admin_token: str) -> str:
    created = http.post("/clinics", json=NETWORK, headers={"X-Admin-Token": admin_token})
    key = created.raise_for_status().json()["api_key"]
    auth = {"X-API-Key": key}
    for i, site in enumerate(SITES):
        s = (
            http.post("/sites", json={**site, "hours": EVERY_DAY}, headers=auth)
            .raise_for_status()
            .json()
        )
        for room in ("Room 1", "Room 2"):
            http.post(
                "/rooms", json={"site_id": s["id"], "name": room}, headers=auth
            ).raise_for_status()
        http.post("/providers", headers=auth, json={
            "name": f"Provider {i + 1}",
            "hours": [{**h, "site_id": s["id"]} for h in EVERY_DAY]}).raise_for_status()
    for patient in PATIENTS:
        http.post(
            "/patients",
            headers=auth,
            json={"sms_consent": True, "sms_consent_source": "demo intake form", **patient},
        ).raise_for_status()
    return key


def load_network(booking: str, admin_token: str, key_file: Path) -> dict:
    """Create the demo network unless it exists (its API key kept in `key_file`); return its
    key, clinic, sites and patients."""
    with httpx.Client(base_url=booking, timeout=10) as http:
        key = key_file.read_text().strip() if key_file.exists() else ""
        if not key or http.get("/clinic", headers={"X-API-Key": key}).status_code != 200:
            key = _create(http, admin_token)
            key_file.write_text(key)
        auth = {"X-API-Key": key}
        clinic = http.get("/clinic", headers=auth).raise_for_status().json()
        sites = http.get("/sites", headers=auth).raise_for_status().json()["items"]
        patients = http.get("/patients", headers=auth).raise_for_status().json()["items"]
    return {"api_key": key, "clinic": clinic, "sites": {s["name"]: s for s in sites},
            "patients": {p["given_name"]: p for p in patients}}


def load_staff(booking: str, api_key: str, out: Path) -> dict:
    """Demo people for the console (unless `out` lists ones that still sign in): an admin with
    an authenticator app and a scheduler with a password only. Their sign-in details are
    written to `out` (a local demo: never do this with real accounts)."""
    import json
    import secrets

    import pyotp

    with httpx.Client(base_url=booking, timeout=10) as http:
        if out.exists():
            known = json.loads(out.read_text())
            check = http.post("/auth/sign-in", json={"email": known["scheduler"]["email"],
                                                     "password": known["scheduler"]["password"]})
            if check.status_code == 200:
                http.post(
                    "/auth/sign-out", headers={"Authorization": f"Bearer {check.json()['token']}"}
                )
                return known
        people = {}
        suffix = secrets.token_hex(3)
        for role, totp in (("admin", True), ("scheduler", False)):
            email = f"{role}.{suffix}@cedar-grove.example"
            added = (
                http.post(
                    "/staff",
                    headers={"X-API-Key": api_key},
                    json={"name": f"Demo {role.title()}", "email": email, "role": role},
                )
                .raise_for_status()
                .json()
            )
            offer = (
                http.post("/auth/enrolment", json={"code": added["enrolment_code"]})
                .raise_for_status()
                .json()
            )
            password = secrets.token_urlsafe(12)
            body = {"code": added["enrolment_code"], "password": password}
            if totp:
                body["totp_code"] = pyotp.TOTP(offer["totp_secret"]).now()
            http.post("/auth/enrolment/complete", json=body).raise_for_status()
            people[role] = {"email": email, "password": password,
                            "totp_secret": offer["totp_secret"] if totp else None}
    out.write_text(json.dumps(people, indent=2))
    return people


def book_demo_session(booking: str, network: dict, days_ahead: int = 3) -> dict:
    """Book an IV session for the first demo patient in Vancouver, `days_ahead` days ahead,
    in the first free slot from 10:00 local time."""
    site = network["sites"]["Vancouver"]
    patient = network["patients"]["Alex"]
    day = datetime.now(ZoneInfo(site["timezone"])).date() + timedelta(days=days_ahead)
    auth = {"X-API-Key": network["api_key"]}
    with httpx.Client(base_url=booking, timeout=10, headers=auth) as http:
        slots = http.get(f"/sites/{site['id']}/availability", params={
            "session_type": "iv_infusion", "from": day.isoformat(), "to": day.isoformat()},
        ).raise_for_status().json()["slots"]
        start = next(s for s in slots if s["starts_at_local"][11:16] >= "10:00")
        return http.post("/bookings", json={
            "patient_id": patient["id"], "site_id": site["id"], "session_type": "iv_infusion",
            "starts_at": start["starts_at_local"][:19]}).raise_for_status().json()


HOME_SUPPORT = {"name": "Robin Demo", "phone": "604-555-0151", "sms_consent": True}
VIDEO_LINK = "https://meet.example.com/cedar-{code}"


def book_home_session(booking: str, network: dict, days_ahead: int = 1) -> dict:
    """Book an at-home supervised session (by video, with a support person present) for the
    first demo patient, `days_ahead` days ahead, in the first slot from 10:00 that is free
    for them (the network's video link set first)."""
    site = network["sites"]["Vancouver"]
    patient = network["patients"]["Alex"]
    day = datetime.now(ZoneInfo(site["timezone"])).date() + timedelta(days=days_ahead)
    auth = {"X-API-Key": network["api_key"]}
    with httpx.Client(base_url=booking, timeout=10, headers=auth) as http:
        http.post("/clinic/remote-visits", json={"video_link_template": VIDEO_LINK}) \
            .raise_for_status()
        slots = http.get(f"/sites/{site['id']}/availability", params={
            "session_type": "home_low_dose", "from": day.isoformat(), "to": day.isoformat()},
        ).raise_for_status().json()["slots"]
        for slot in (s for s in slots if s["starts_at_local"][11:16] >= "10:00"):
            r = http.post("/bookings", json={
                "patient_id": patient["id"], "site_id": site["id"],
                "session_type": "home_low_dose", "mode": "home",
                "starts_at": slot["starts_at_local"][:19], "support_person": HOME_SUPPORT})
            if r.status_code != 409:  # the patient is busy then (an earlier demo): next slot
                return r.raise_for_status().json()
    raise RuntimeError("no free slot for the demo's home session")


def listing(url: str, headers: dict) -> list:
    """A list endpoint's items; [] until the API key has reached that service."""
    r = httpx.get(url, headers=headers, timeout=10)
    return r.json() if r.status_code == 200 else []


def wait_for(fetch, done, timeout: float = 60.0, interval: float = 0.3):
    """Poll `fetch()` until `done(result)` holds; return the result or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met after {timeout:.0f}s; last: {result!r}"[:2000])
        time.sleep(interval)


def console_day_sheet(console: str, person: dict, booking: dict) -> str:
    """Sign in to the console as `person` and read the day sheet of `booking`'s day: a
    one-line summary (raises if the booking is not on it)."""
    import re

    with httpx.Client(base_url=console, timeout=10) as browser:
        form = browser.get("/sign-in").raise_for_status().text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        signed = browser.post("/sign-in", data={"csrf": csrf, "email": person["email"],
                                                "password": person["password"]})
        if signed.status_code != 303:
            raise RuntimeError(f"console sign-in failed ({signed.status_code})")
        page = browser.get(f"/day?site={booking['site_id']}&date={booking['starts_at_local'][:10]}")
        page.raise_for_status()
        if f'data-booking="{booking["id"]}"' not in page.text:
            raise RuntimeError("the booking is not on the console's day sheet")
        count = re.search(r'data-count="(\d+)"', page.text).group(1)
        return (
            f"{count} session(s), calls to the services: {page.headers['x-console-service-calls']}"
        )


def texts_to(twilio: str, number: str) -> list[str]:
    """The bodies of the messages the local Twilio-compatible server took for `number`."""
    got = httpx.get(f"{twilio}/_fake/requests", timeout=10).raise_for_status().json()["requests"]
    return [r["Body"] for r in got if r.get("To") == number]


def online_starts(booking: str, api_key: str) -> list[datetime]:
    """The start times of the network's consultations booked online that are still to come
    (earlier runs of the demo made them)."""
    starts: list[datetime] = []
    params: dict[str, str | int] = {"status": "booked", "limit": 200,
                                    "from": datetime.now(ZoneInfo("UTC")).isoformat()}
    with httpx.Client(base_url=booking, timeout=10, headers={"X-API-Key": api_key}) as http:
        while True:
            found = http.get("/bookings", params=params).raise_for_status().json()
            starts += [datetime.fromisoformat(b["starts_at"]) for b in found["items"]
                       if b["source"] == "online"]
            if not found["next_cursor"]:
                return starts
            params["cursor"] = found["next_cursor"]


def book_online(console: str, twilio: str, slug: str, phone: str = "+16045550161",
                avoid: list[datetime] | None = None) -> tuple[str, str]:
    """Book the first free consultation between 09:00 and 17:00 Vancouver time on the
    network's public page, as a browser without JavaScript posts it (by phone), with the code
    the notifier texted through the Twilio-compatible server; its start (UTC, ISO 8601) and
    the page's "booked" line. Times within an hour of one in `avoid` (earlier runs' online
    bookings: the same visitor, matched to the same patient, cannot be booked twice at once)
    are passed over."""
    import re

    avoid = avoid or []
    with httpx.Client(base_url=console, timeout=10) as browser:
        page = browser.get(f"/book/{slug}", params={"lang": "en", "tz": "America/Vancouver"})
        page.raise_for_status()
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        vancouver = ZoneInfo("America/Vancouver")
        slots = re.findall(r'name="starts_at" id="slot-\d+" value="([^"]+)"', page.text)
        first = next((value for value in slots
                      if 9 <= datetime.fromisoformat(value).astimezone(vancouver).hour < 17
                      and all(abs(datetime.fromisoformat(value) - taken) >= timedelta(hours=1)
                              for taken in avoid)), None)
        if first is None:
            raise RuntimeError("the public booking page shows no free consultation in the day")
        asked = browser.post(f"/book/{slug}", data={
            "csrf": csrf, "lang": "en", "tz": "America/Vancouver", "starts_at": first,
            "mode": "phone", "given_name": "Robin", "family_name": "Online", "phone": phone,
            "language": "en", "consent": "yes", "website": ""})
        if asked.status_code == 429:
            raise RuntimeError(
                "the public booking page refused to text another code: too many were asked for "
                "this number or from this address within the hour (BOOKING_ONLINE_CODES_PER_NUMBER,"
                " BOOKING_ONLINE_CODES_PER_ADDRESS); run the demo again in an hour, or after "
                "`make clean`")
        if asked.status_code != 303:
            raise RuntimeError(f"the public booking page refused the form ({asked.status_code})")
        texted = wait_for(lambda: texts_to(twilio, phone), bool)
        code = re.search(r"\b(\d{6})\b", texted[-1]).group(1)
        done = browser.post(asked.headers["location"].split("?")[0],
                            data={"csrf": csrf, "lang": "en", "code": code})
        if done.status_code != 200 or "Your consultation is booked" not in done.text:
            raise RuntimeError(f"the code was refused ({done.status_code})")
        return first, re.search(r'data-testid="booked-when">([^<]+)<', done.text).group(1)
