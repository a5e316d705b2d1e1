"""Builders for people (staff accounts) in tests: added by a network's admin key, enrolled,
signed in."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import pyotp

PASSWORD = "correct horse battery staple"
_numbers = itertools.count(1)


@dataclass
class Person:
    id: str
    email: str
    password: str
    role: str
    totp_secret: str | None = None

    def code(self, steps_ahead: int = 0) -> str | None:
        """A code from the person's authenticator app (`steps_ahead` 30 s steps from now)."""
        if self.totp_secret is None:
            return None
        return pyotp.TOTP(self.totp_secret).at(time.time() + 30 * steps_ahead)


async def add_person(booking_http, admin_headers: dict, role: str = "scheduler", *,
                     totp: bool = True, name: str | None = None, language: str = "en") -> Person:
    """A person added by an admin and enrolled (password, and an authenticator app if `totp`)."""
    n = next(_numbers)
    email = f"person{n}.{time.time_ns()}@clinic.example"
    added = await booking_http.post("/staff", headers=admin_headers, json={
        "name": name or f"Person {n}", "email": email, "role": role, "language": language})
    assert added.status_code == 201, added.text
    code = added.json()["enrolment_code"]
    offered = await booking_http.post("/auth/enrolment", json={"code": code})
    assert offered.status_code == 200, offered.text
    secret = offered.json()["totp_secret"] if totp else None
    body = {"code": code, "password": PASSWORD}
    if secret:
        body["totp_code"] = pyotp.TOTP(secret).now()
    done = await booking_http.post("/auth/enrolment/complete", json=body)
    assert done.status_code == 200, done.text
    return Person(added.json()["id"], email, PASSWORD, role, secret)


async def sign_in(booking_http, person: Person, steps_ahead: int = 1, **headers) -> dict:
    """Sign `person` in (with the code of a later step than the one enrolment used)."""
    body = {"email": person.email, "password": person.password}
    if person.totp_secret:
        body["totp_code"] = person.code(steps_ahead)
    response = await booking_http.post("/auth/sign-in", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
