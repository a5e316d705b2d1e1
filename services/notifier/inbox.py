"""Texts people send us: patients' replies, opt-outs and opt-ins, questions, and texts from
numbers we do not know or that several patients share.

An opt-out belongs to the number (the law and the carriers treat it so): it is recorded in
`number_opt_outs`, in the transaction that records the message, and while it stands nothing
goes to that number from this sender: not to any patient with it, in any clinic network,
nor to anyone's ride contact with it. `PatientOptedOut` goes out for every patient with the
number and `RideContactOptedOut` for every patient whose ride contact has it, so that
booking's consent follows; a START word lifts it, and the same parties hear of it.

A reply 1-4 acts only when the number is one patient's. Every text is kept for the staff of
every clinic network that has the number (as a patient's or a ride contact's), and never
acted on for a patient it might not be from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import asyncpg

from services.notifier.answers import Sender, answer
from services.notifier.handlers import PRODUCER
from services.notifier.handlers import Q as NOTIFIER_Q
from services.notifier.replies import Reading, interpret
from shared.db import Queries
from shared.errors import NotFound
from shared.events import Envelope, Event
from shared.events.notifier import (PatientConfirmed, PatientOptedIn, PatientOptedOut,
                                    RescheduleRequested, RideConfirmed, RideContactOptedIn,
                                    RideContactOptedOut, WaitlistOfferAccepted)
from shared.outbox import enqueue

log = logging.getLogger(__name__)
Q = Queries(Path(__file__).with_name("inbox.sql"))
REPLIES = ("confirm", "reschedule", "ride", "take_slot")
"""The replies that act for one patient (1, 2, 3, 4)."""


@dataclass(frozen=True)
class Party:
    """Someone a number is to us: a patient's own number (`role` patient), or the number of
    a patient's ride contact (`role` ride_contact), in the patient's clinic network."""

    role: str
    clinic_id: UUID
    patient_id: UUID
    language: str = "en"


@dataclass
class Act:
    """What a text does, decided before anything is written."""

    reading: Reading
    matched: Party | None = None
    note: str | None = None
    payload: Event | None = None
    booking_id: UUID | None = None
    offer_id: UUID | None = None


async def receive(conn: asyncpg.Connection, sid: str, number: str, body: str, *,
                  twilio_says: str = "", operator: Sender) -> str | None:
    """Record and act on one text from `number`, in the caller's transaction, once per
    MessageSid (a retried webhook acts on nothing again). `twilio_says`: Twilio's
    `OptOutType` (STOP, START, HELP) when its Advanced Opt-Out matched a keyword. Returns the
    answer to text back (HELP; the confirmation of an opt-out or opt-in Twilio does not
    confirm itself), or None."""
    reading = _with_twilio(interpret(body), twilio_says.upper())
    await conn.execute(Q.lock_number, number)
    parties = await parties_of(conn, number)
    standing = await conn.fetchrow(Q.opt_out_of, number)
    act = await _decide(conn, reading, parties, standing)
    matched = act.matched
    inbound = await conn.fetchval(
        Q.insert_inbound, sid, number, body, matched and matched.patient_id,
        matched and matched.clinic_id, act.booking_id, reading.meaning, act.note)
    reply = await _answer(conn, reading, parties, standing, operator)
    if inbound is None:  # a retry of a message recorded already
        return reply
    log.info("inbound text read as %s%s", reading.meaning, f" ({act.note})" if act.note else "")
    everywhere = False
    if reading.meaning == "opt_out":
        await opt_out(conn, number, parties, source="phrase" if reading.phrase else "keyword",
                      inbound_id=inbound)
        everywhere = True
    elif reading.meaning == "opt_in" and standing is not None:
        await opt_in(conn, number, parties)
        everywhere = True
    elif act.payload is not None:
        if act.offer_id is not None:
            await conn.execute(NOTIFIER_Q.offer_accepted, act.offer_id, matched.patient_id)
        await enqueue(conn, [Envelope.new(act.payload, producer=PRODUCER,
                                          clinic_id=matched.clinic_id,
                                          patient_id=matched.patient_id)])
    acted_in = (lambda clinic: True) if everywhere else (
        lambda clinic: act.payload is not None and clinic == matched.clinic_id)
    await _staff_rows(conn, inbound, parties, acted_in)
    return reply


async def parties_of(conn: asyncpg.Connection, number: str) -> list[Party]:
    """Everyone `number` is to us (patients with it, patients whose ride contact has it)."""
    return [Party(**r) for r in await conn.fetch(Q.parties_of_number, number)]


async def opt_out(conn: asyncpg.Connection, number: str, parties: list[Party], *, source: str,
                  inbound_id: int | None) -> bool:
    """Opt `number` out (if it is not already) and tell booking about every party, in the
    caller's transaction. Returns whether the opt-out is new."""
    new = await conn.fetchval(Q.record_opt_out, number, source, inbound_id)
    await enqueue(conn, _told(parties, PatientOptedOut(), RideContactOptedOut(phone_e164=number)))
    return bool(new)


UNSUBSCRIBED = "21610"
"""Twilio's error for a number that sent STOP to this sender (Twilio blocks it itself)."""


async def refused_number(conn: asyncpg.Connection, number: str, code: str, problem: str) -> None:
    """Twilio refused `number` itself (a number-class error, `twilio_errors`): 21610 means
    it opted out by STOP at Twilio, so it is the number's opt-out here too (START lifts
    it, and booking hears of it); any other code marks the number for every contact with it."""
    if code == UNSUBSCRIBED:
        await opt_out(conn, number, await parties_of(conn, number),
                      source=f"Twilio {code}: the number replied STOP to this sender",
                      inbound_id=None)
    else:
        await conn.execute(NOTIFIER_Q.mark_number_problem, number, problem)


async def opt_in(conn: asyncpg.Connection, number: str, parties: list[Party]) -> bool:
    """Lift `number`'s opt-out, if it has one, and tell booking about every party: those it
    has now and those told of the opt-out. Returns whether there was one."""
    lifted = await conn.fetchrow(Q.lift_opt_out, number)
    if lifted is None:
        return False
    told = await conn.fetch(Q.parties_told, lifted["inbound_id"]) if lifted["inbound_id"] else []
    everyone = list(parties) + [
        Party(role, row["clinic_id"], patient) for row in told
        for role, column in (("patient", "patient_ids"), ("ride_contact", "ride_contact_of"))
        for patient in row[column]]
    await enqueue(conn, _told(everyone, PatientOptedIn(), RideContactOptedIn(phone_e164=number)))
    return True


async def staff_opt_out(conn: asyncpg.Connection, clinic_id: UUID, item_id: int,
                        actor: str) -> dict:
    """Staff read a text in their inbox as a revocation of consent (FCC 24-24: any
    reasonable means): its number opts out as if it had texted STOP."""
    row = await conn.fetchrow(Q.number_of_item, item_id, clinic_id)
    if row is None:
        raise NotFound("unknown reply", field="reply_id")
    parties = await parties_of(conn, row["from_e164"])
    new = await opt_out(conn, row["from_e164"], parties, source="staff", inbound_id=row["inbound_id"])
    await _staff_rows(conn, row["inbound_id"], parties, lambda clinic: True)
    await conn.execute(Q.mark_acted_on, row["inbound_id"])
    await conn.execute(Q.mark_read, item_id, clinic_id, actor)
    log.info("staff recorded an opt-out from a reply (%s)", "new" if new else "already opted out")
    return {"id": item_id, "opted_out": True}


def _with_twilio(reading: Reading, twilio_says: str) -> Reading:
    """Twilio's Advanced Opt-Out matched one of its keywords (maybe one configured there
    that we do not know): Twilio acted on it and answered, and so do we (but answer)."""
    meaning = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}.get(twilio_says)
    if meaning is None:
        return reading
    language = reading.language if reading.meaning == meaning else None
    return Reading(meaning, language=language, by_twilio=True)


async def _decide(conn: asyncpg.Connection, reading: Reading, parties: list[Party],
                  standing: asyncpg.Record | None) -> Act:
    patients = [p for p in parties if p.role == "patient"]
    act = Act(reading, matched=patients[0] if len(patients) == 1 else None)
    meaning = reading.meaning
    if meaning == "opt_out":
        act.note = "already opted out" if standing is not None else None
    elif meaning == "opt_in":
        act.note = None if standing is not None else "not opted out"
    elif act.matched is None:
        act.note = ("unknown number" if not parties else "number shared by patients"
                    if patients else "a ride contact's number")
    elif meaning in REPLIES:
        await _reply(conn, act)
    return act


async def _reply(conn: asyncpg.Connection, act: Act) -> None:
    """A reply 1-4 from one patient's number: the event it makes, if it can make one."""
    patient, meaning = act.matched.patient_id, act.reading.meaning
    if meaning == "take_slot":
        act.offer_id = await conn.fetchval(NOTIFIER_Q.open_offer_for, patient)
        if act.offer_id is None:
            act.note = "no open offer"
        else:
            act.payload = WaitlistOfferAccepted(offer_id=act.offer_id)
        return
    act.booking_id = await conn.fetchval(Q.next_appointment, patient)
    if act.booking_id is None:
        act.note = "no upcoming appointment"
    elif meaning == "confirm":
        act.payload = PatientConfirmed(booking_id=act.booking_id)
    elif meaning == "reschedule":
        act.payload = RescheduleRequested(booking_id=act.booking_id)
    else:
        act.payload = RideConfirmed(booking_id=act.booking_id, driver_name=act.reading.driver)


async def _answer(conn: asyncpg.Connection, reading: Reading, parties: list[Party],
                  standing: asyncpg.Record | None, operator: Sender) -> str | None:
    """HELP always gets an answer; an opt-out (or opt-in) that changed something gets its one
    confirmation when Twilio does not give it (its own keywords, exactly)."""
    meaning = reading.meaning
    if meaning == "help":
        kind = "help"
    elif meaning == "opt_out" and standing is None and not reading.by_twilio:
        kind = "opt_out"
    elif meaning == "opt_in" and standing is not None and not reading.by_twilio:
        kind = "opt_in"
    else:
        return None
    languages = {p.language for p in parties}
    language = reading.language or (languages.pop() if len(languages) == 1 else "en")
    return answer(kind, await _speaker(conn, parties, operator), language)


async def _speaker(conn: asyncpg.Connection, parties: list[Party], operator: Sender) -> Sender:
    """The clinic network the number is to, if it is to one (its name and the site's phone as
    its latest texts gave them), else the sender (the notifier's settings)."""
    clinics = {p.clinic_id for p in parties}
    if len(clinics) == 1:
        row = await conn.fetchrow(Q.clinic_of_patients, clinics.pop(),
                                  [p.patient_id for p in parties])
        if row is not None:
            return Sender(row["name"], row["phone"])
    return operator


async def _staff_rows(conn: asyncpg.Connection, inbound: int, parties: list[Party],
                      acted_in) -> None:
    """The text in the inbox of every clinic network that has its number."""
    by_clinic: dict[UUID, tuple[list[UUID], list[UUID]]] = {}
    for p in parties:
        patients, ride_of = by_clinic.setdefault(p.clinic_id, ([], []))
        (patients if p.role == "patient" else ride_of).append(p.patient_id)
    await conn.executemany(Q.insert_staff_row, [
        (inbound, clinic, patients, ride_of, acted_in(clinic))
        for clinic, (patients, ride_of) in by_clinic.items()])


def _told(parties: list[Party], to_patient: Event, to_ride_contact: Event) -> list[Envelope]:
    """One event per party (each once): `to_patient` for patients with the number,
    `to_ride_contact` for patients whose ride contact has it."""
    seen = {(p.role, p.clinic_id, p.patient_id) for p in parties}
    return [Envelope.new(to_patient if role == "patient" else to_ride_contact,
                         producer=PRODUCER, clinic_id=clinic, patient_id=patient)
            for role, clinic, patient in sorted(seen, key=str)]
