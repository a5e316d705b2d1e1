"""Twilio webhooks: delivery receipts and patients' replies. Every request must carry a
valid `X-Twilio-Signature` (HMAC-SHA1 of the URL and parameters with the auth token), else
403. Both are idempotent (Twilio retries webhooks) and receipts are out-of-order safe."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import asyncpg
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator

from services.notifier.handlers import PRODUCER, Q
from services.notifier.receipts import apply_receipt, receipt_rules
from services.notifier.replies import interpret
from shared.events import Envelope
from shared.events.notifier import (
    PatientConfirmed,
    PatientOptedIn,
    PatientOptedOut,
    RescheduleRequested,
    RideConfirmed,
    WaitlistOfferAccepted,
)
from shared.outbox import enqueue

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio webhooks"])
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def _verified_form(request: Request) -> dict[str, str]:
    settings = request.app.state.runtime.settings
    params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.twilio_auth_token or \
            not RequestValidator(settings.twilio_auth_token).validate(url, params, signature):
        log.warning("refused a webhook with a missing or wrong signature on %s", request.url.path)
        raise HTTPException(403, "invalid Twilio signature")
    return params


@router.post("/status")
async def status_callback(request: Request) -> Response:
    """A delivery receipt (see `receipts`): recorded once, never going back."""
    form = await _verified_form(request)
    sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "").lower()
    text = request.query_params.get("text", "")  # the text it is about (our callback URL)
    text_id = int(text) if text.isdigit() else None
    async with request.app.state.runtime.db.acquire() as conn, conn.transaction():
        if not await apply_receipt(conn, sid, status, form.get("ErrorCode") or None, text_id,
                                   **receipt_rules(request.app.state.runtime.settings)):
            log.info("kept a receipt for a message whose SID is not stored yet")
    return Response(status_code=204)


@router.post("/inbound")
async def inbound_message(request: Request) -> Response:
    """A text from a patient: a reply to act on, an opt-out/in, or something for staff."""
    form = await _verified_form(request)
    sid, sender, body = form.get("MessageSid", ""), form.get("From", ""), form.get("Body", "")
    async with request.app.state.runtime.db.acquire() as conn, conn.transaction():
        meaning = await handle_reply(conn, sid, sender, body)
        if meaning == "help":  # who we are and how to reach a person
            contacts = await conn.fetch(Q.contacts_by_phone, sender)
            appt = await conn.fetchrow(Q.latest_appointment, contacts[0]["patient_id"])
            if appt is not None:
                name = appt["clinic_sms_name"] or appt["clinic_name"]  # what texts call it
                text = escape(f"{name}: for help call {appt['site_phone']}."
                              " Reply STOP to opt out.")
                return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{text}'
                                "</Message></Response>", media_type="text/xml")
    return Response(EMPTY_TWIML, media_type="text/xml")


async def handle_reply(conn: asyncpg.Connection, sid: str, sender: str, body: str) -> str:
    """Record and act on one inbound text (once per MessageSid). Returns its meaning."""
    contacts = await conn.fetch(Q.contacts_by_phone, sender)
    if len(contacts) != 1:  # unknown, or shared by several patients: never guess who it is
        await conn.execute(Q.insert_inbound, sid, sender, body, None, None, None,
                           "unknown number" if not contacts else "number shared by patients")
        return "unmatched"
    contact = contacts[0]
    patient, clinic = contact["patient_id"], contact["clinic_id"]
    appointment = await conn.fetchrow(Q.next_appointment, patient)
    last_kind = await conn.fetchval(Q.last_sent_kind, patient)
    meaning, driver = interpret(body, expecting_ride=last_kind == "prep")
    booking = appointment["booking_id"] if appointment else None
    payload = None
    if meaning == "opt_out":
        await conn.execute(Q.set_opted_out, patient, True)
        payload = PatientOptedOut()
    elif meaning == "opt_in":
        await conn.execute(Q.set_opted_out, patient, False)
        payload = PatientOptedIn()
    elif booking is not None and meaning == "confirm":
        payload = PatientConfirmed(booking_id=booking)
    elif booking is not None and meaning == "reschedule":
        payload = RescheduleRequested(booking_id=booking)
    elif booking is not None and meaning == "ride":
        payload = RideConfirmed(booking_id=booking, driver_name=driver)
    elif meaning == "take_slot":
        offer = await conn.fetchval(Q.open_offer_for, patient)
        if offer is not None:
            await conn.execute(Q.offer_accepted, offer, patient)
            payload = WaitlistOfferAccepted(offer_id=offer)
        else:
            meaning = "take_slot (no open offer)"
    elif meaning in ("confirm", "reschedule", "ride"):
        meaning = f"{meaning} (no upcoming appointment)"
    inserted = await conn.fetchval(Q.insert_inbound, sid, sender, body, patient, clinic, booking, meaning)
    if inserted is not None and payload is not None:
        await enqueue(conn, [Envelope.new(payload, producer=PRODUCER, clinic_id=clinic,
                                          patient_id=patient)])
    return meaning
