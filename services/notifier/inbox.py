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
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from services.notifier import store
from services.notifier.answers import Sender, answer
from services.notifier.replies import Reading, interpret
from services.notifier.store import INBOX, PRODUCER, Party, Q
from shared.db import Connection
from shared.errors import NotFound
from shared.events import Envelope, Event
from shared.events.notifier import (
    PatientConfirmed,
    PatientOptedIn,
    PatientOptedOut,
    RescheduleRequested,
    RideConfirmed,
    RideContactOptedIn,
    RideContactOptedOut,
    WaitlistOfferAccepted,
)
from shared.outbox import enqueue

log = logging.getLogger(__name__)
REPLIES = ("confirm", "reschedule", "ride", "take_slot")
"""The replies that act for one patient (1, 2, 3, 4)."""
UNSUBSCRIBED = "21610"
"""Twilio's error for a number that sent STOP to this sender (Twilio blocks it itself)."""


@dataclass(frozen=True)
class Act:
    """What a text does, decided before anything is written: for whom (`matched`, when its
    number is one patient's), the event it makes (`payload`, about `booking_id` or
    `offer_id`), or why it makes none (`note`)."""

    reading: Reading
    matched: Party | None = None
    note: str | None = None
    payload: Event | None = None
    booking_id: UUID | None = None
    offer_id: UUID | None = None

    @property
    def needs_target(self) -> bool:
        """A reply 1-4 from one patient's number: what it is about must be looked up
        (`aimed`)."""
        return self.matched is not None and self.reading.meaning in REPLIES


async def receive(conn: Connection, sid: str, number: str, body: str, *,
                  twilio_says: str = "", operator: Sender) -> str | None:
    """Record and act on one text from `number`, in the caller's transaction, once per
    MessageSid (a retried webhook acts on nothing again). `twilio_says`: Twilio's
    `OptOutType` (STOP, START, HELP) when its Advanced Opt-Out matched a keyword. Returns the
    answer to text back (HELP; the confirmation of an opt-out or opt-in Twilio does not
    confirm itself), or None."""
    reading = with_twilio(interpret(body), twilio_says.upper())
    await conn.execute(INBOX.lock_number, number)
    parties = await store.parties_of(conn, number)
    opted_out = await conn.fetchval(INBOX.opted_out, number)
    act = decide(reading, parties, opted_out)
    if act.needs_target:
        act = await _aimed(conn, act)
    matched = act.matched
    inbound = await conn.fetchval(
        INBOX.insert_inbound, sid, number, body, matched and matched.patient_id,
        matched and matched.clinic_id, act.booking_id, reading.meaning, act.note)
    kind = answer_kind(reading, opted_out)
    reply = None if kind is None else answer(kind, await _speaker(conn, parties, operator),
                                             answer_language(reading, parties))
    if inbound is None:  # a retry of a message recorded already
        return reply
    log.info("inbound text read as %s%s", reading.meaning, f" ({act.note})" if act.note else "")
    everywhere = await _act(conn, act, number, parties, opted_out, inbound)
    await _staff_rows(conn, inbound, parties, (lambda clinic: True) if everywhere else (
        lambda clinic: act.payload is not None and matched is not None
        and clinic == matched.clinic_id))
    return reply


async def _act(conn: Connection, act: Act, number: str, parties: list[Party],
               opted_out: bool, inbound: int) -> bool:
    """Do what a newly recorded text says: opt its number out or back in, or send the event
    of a reply. Returns whether that acts for every network that has the number."""
    meaning = act.reading.meaning
    if meaning == "opt_out":
        await opt_out(conn, number, parties, source="phrase" if act.reading.phrase else "keyword",
                      inbound_id=inbound)
        return True
    if meaning == "opt_in" and opted_out:
        await opt_in(conn, number, parties)
        return True
    if act.payload is not None and act.matched is not None:
        if act.offer_id is not None:
            await conn.execute(Q.offer_accepted, act.offer_id, act.matched.patient_id)
        await enqueue(conn, [Envelope.new(act.payload, producer=PRODUCER,
                                          clinic_id=act.matched.clinic_id,
                                          patient_id=act.matched.patient_id)])
    return False


async def opt_out(conn: Connection, number: str, parties: list[Party], *, source: str,
                  inbound_id: int | None) -> bool:
    """Opt `number` out (if it is not already) and tell booking about every party, in the
    caller's transaction. Returns whether the opt-out is new."""
    new = await conn.fetchval(INBOX.record_opt_out, number, source, inbound_id)
    await enqueue(conn, told(parties, PatientOptedOut(), RideContactOptedOut(phone_e164=number)))
    return bool(new)


async def refused_number(conn: Connection, number: str, code: str, problem: str) -> None:
    """Twilio refused `number` itself (a number-class error, `twilio_errors`): 21610 means
    it opted out by STOP at Twilio, so it is the number's opt-out here too (START lifts
    it, and booking hears of it); any other code marks the number for every contact with it."""
    if code == UNSUBSCRIBED:
        await opt_out(conn, number, await store.parties_of(conn, number),
                      source=f"Twilio {code}: the number replied STOP to this sender",
                      inbound_id=None)
    else:
        await conn.execute(Q.mark_number_problem, number, problem)


async def opt_in(conn: Connection, number: str, parties: list[Party]) -> bool:
    """Lift `number`'s opt-out, if it has one, and tell booking about every party: those it
    has now and those told of the opt-out. Returns whether there was one."""
    told_before = await store.lift_opt_out(conn, number)
    if told_before is None:
        return False
    await enqueue(conn, told([*parties, *told_before], PatientOptedIn(),
                             RideContactOptedIn(phone_e164=number)))
    return True


async def staff_opt_out(conn: Connection, clinic_id: UUID, item_id: int,
                        actor: str) -> dict[str, Any]:
    """Staff read a text in their inbox as a revocation of consent (FCC 24-24: any
    reasonable means): its number opts out as if it had texted STOP."""
    item = await store.number_of_item(conn, item_id, clinic_id)
    if item is None:
        raise NotFound("unknown reply", field="reply_id")
    parties = await store.parties_of(conn, item.from_e164)
    new = await opt_out(conn, item.from_e164, parties, source="staff", inbound_id=item.inbound_id)
    await _staff_rows(conn, item.inbound_id, parties, lambda clinic: True)
    await conn.execute(INBOX.mark_acted_on, item.inbound_id)
    await conn.execute(INBOX.mark_read, item_id, clinic_id, actor)
    log.info("staff recorded an opt-out from a reply (%s)", "new" if new else "already opted out")
    return {"id": item_id, "opted_out": True}


def with_twilio(reading: Reading, twilio_says: str) -> Reading:
    """Twilio's Advanced Opt-Out matched one of its keywords (maybe one configured there
    that we do not know): Twilio acted on it and answered, and so do we (but answer)."""
    meaning = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}.get(twilio_says)
    if meaning is None:
        return reading
    language = reading.language if reading.meaning == meaning else None
    return Reading(meaning, language=language, by_twilio=True)


def decide(reading: Reading, parties: list[Party], opted_out: bool) -> Act:
    """What a text from a number with these `parties` does (`opted_out`: the number's
    opt-out stands), but for what a reply 1-4 is about (`Act.needs_target`, `aimed`)."""
    patients = [p for p in parties if p.role == "patient"]
    act = Act(reading, matched=patients[0] if len(patients) == 1 else None)
    meaning = reading.meaning
    if meaning == "opt_out":
        return replace(act, note="already opted out" if opted_out else None)
    if meaning == "opt_in":
        return replace(act, note=None if opted_out else "not opted out")
    if act.matched is None:
        return replace(act, note="unknown number" if not parties else
                       "number shared by patients" if patients else "a ride contact's number")
    return act


def aimed(act: Act, target: UUID | None) -> Act:
    """A reply 1-4 from one patient's number, given what it is about: the open slot offer
    (4) or the next appointment (1-3), None if there is none. The event it makes, or why
    it makes none."""
    meaning = act.reading.meaning
    if meaning == "take_slot":
        if target is None:
            return replace(act, note="no open offer")
        return replace(act, offer_id=target, payload=WaitlistOfferAccepted(offer_id=target))
    if target is None:
        return replace(act, note="no upcoming appointment")
    payload: Event
    if meaning == "confirm":
        payload = PatientConfirmed(booking_id=target)
    elif meaning == "reschedule":
        payload = RescheduleRequested(booking_id=target)
    else:
        payload = RideConfirmed(booking_id=target, driver_name=act.reading.driver)
    return replace(act, booking_id=target, payload=payload)


async def _aimed(conn: Connection, act: Act) -> Act:
    """`aimed`, with what the reply is about looked up."""
    if act.matched is None:
        return act
    query = Q.open_offer_for if act.reading.meaning == "take_slot" else INBOX.next_appointment
    return aimed(act, await conn.fetchval(query, act.matched.patient_id))


def answer_kind(reading: Reading, opted_out: bool) -> str | None:
    """Which answer a text gets (`answers.ANSWERS`), or None: HELP always; an opt-out (or
    opt-in) that changes something gets its one confirmation when Twilio does not give it
    (its own keywords, exactly)."""
    meaning = reading.meaning
    if meaning == "help":
        return "help"
    if meaning == "opt_out" and not opted_out and not reading.by_twilio:
        return "opt_out"
    if meaning == "opt_in" and opted_out and not reading.by_twilio:
        return "opt_in"
    return None


def answer_language(reading: Reading, parties: list[Party]) -> str:
    """The language of the answer: the text's words' if they tell, else the parties' if
    they share one, else English."""
    languages = {p.language for p in parties}
    return reading.language or (languages.pop() if len(languages) == 1 else "en")


async def _speaker(conn: Connection, parties: list[Party], operator: Sender) -> Sender:
    """The clinic network the number is to, if it is to one (its name and the site's phone as
    its latest texts gave them), else the sender (the notifier's settings)."""
    clinics = {p.clinic_id for p in parties}
    if len(clinics) == 1:
        voice = await store.clinic_of_patients(conn, clinics.pop(),
                                               [p.patient_id for p in parties])
        if voice is not None:
            return Sender(voice.name, voice.phone)
    return operator


async def _staff_rows(conn: Connection, inbound: int, parties: list[Party],
                      acted_in: Callable[[UUID], bool]) -> None:
    """The text in the inbox of every clinic network that has its number."""
    await conn.executemany(INBOX.insert_staff_row, [
        (inbound, clinic, patients, ride_of, acted_in(clinic))
        for clinic, (patients, ride_of) in by_clinic(parties).items()])


def by_clinic(parties: list[Party]) -> dict[UUID, tuple[list[UUID], list[UUID]]]:
    """By clinic network: its patients with the number, and its patients whose ride contact
    has it."""
    grouped: dict[UUID, tuple[list[UUID], list[UUID]]] = {}
    for p in parties:
        patients, ride_of = grouped.setdefault(p.clinic_id, ([], []))
        (patients if p.role == "patient" else ride_of).append(p.patient_id)
    return grouped


def told(parties: list[Party], to_patient: Event, to_ride_contact: Event) -> list[Envelope]:
    """One event per party (each once): `to_patient` for patients with the number,
    `to_ride_contact` for patients whose ride contact has it."""
    seen = {(p.role, p.clinic_id, p.patient_id) for p in parties}
    return [Envelope.new(to_patient if role == "patient" else to_ride_contact,
                         producer=PRODUCER, clinic_id=clinic, patient_id=patient)
            for role, clinic, patient in sorted(seen, key=str)]
