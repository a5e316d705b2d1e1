"""The demo clinic network, loaded over the booking API, and the demo's end-to-end check."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

NETWORK = {"name": "Cedar Grove Clinics", "phone": "+1 604 555 0100"}
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
    {"given_name": "Alex", "family_name": "Demo", "phone": "604-555-0142", "language": "en"},
    {"given_name": "Camille", "family_name": "Demo", "phone": "514-555-0143", "language": "fr"},
    {"given_name": "Diego", "family_name": "Demo", "phone": "212-555-0144", "language": "es"},
]


def load_network(booking: str) -> dict:
    """Create the demo network unless it exists; return its clinic, sites and patients."""
    with httpx.Client(base_url=booking, timeout=10) as http:
        clinic = next((c for c in http.get("/clinics").raise_for_status().json()
                       if c["name"] == NETWORK["name"]), None)
        if clinic is None:
            clinic = http.post("/clinics", json=NETWORK).raise_for_status().json()
            for site in SITES:
                http.post("/sites", json={"clinic_id": clinic["id"], **site}).raise_for_status()
            for patient in PATIENTS:
                http.post("/patients", json={"clinic_id": clinic["id"], "sms_consent": True,
                                             "sms_consent_source": "demo intake form",
                                             **patient}).raise_for_status()
        sites = http.get(f"/clinics/{clinic['id']}/sites").raise_for_status().json()
        patients = http.get(f"/clinics/{clinic['id']}/patients").raise_for_status().json()
    return {"clinic": clinic, "sites": {s["name"]: s for s in sites},
            "patients": {p["given_name"]: p for p in patients}}


def book_demo_session(booking: str, network: dict) -> dict:
    """Book an IV session for the first demo patient in Vancouver, 3 days ahead at 10:00."""
    site = network["sites"]["Vancouver"]
    patient = network["patients"]["Alex"]
    day = datetime.now(ZoneInfo(site["timezone"])).date() + timedelta(days=3)
    starts = datetime(day.year, day.month, day.day, 10, 0, tzinfo=ZoneInfo(site["timezone"]))
    with httpx.Client(base_url=booking, timeout=10) as http:
        return http.post("/bookings", json={
            "patient_id": patient["id"], "site_id": site["id"], "session_type": "iv_infusion",
            "starts_at": starts.isoformat()}).raise_for_status().json()


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
