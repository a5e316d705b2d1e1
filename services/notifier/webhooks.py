"""Twilio webhooks: delivery receipts and patients' replies. Every request must carry a
valid `X-Twilio-Signature` (HMAC-SHA1 of the URL and parameters with the auth token), else
403. Both are idempotent (Twilio retries webhooks) and receipts are out-of-order safe, so
each rides out a short database outage by trying its transaction again; past that, 503, and
the transaction is held to be applied once the database is back (`held`)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator

from services.notifier import inbox
from services.notifier.answers import Sender, twiml
from services.notifier.held import HeldWebhooks, Work
from services.notifier.receipts import apply_receipt, receipt_rules
from shared.db import Connection, DatabaseUnavailable, transaction_retried

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", tags=["twilio webhooks"])


class TwiML(Response):
    """A TwiML answer to a webhook (XML)."""

    media_type = "text/xml"


def _twilio_form(*fields: str, query: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAPI for a webhook: the form fields Twilio posts that we read (it sends more), and
    the query parameters of our own callback URL."""
    string = {"type": "string"}
    return {"parameters": [{"name": q, "in": "query", "schema": string} for q in query],
            "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": dict.fromkeys(fields, string)}}}}}


async def _verified_form(request: Request) -> dict[str, str]:
    settings = request.app.state.runtime.settings
    params = dict(
        parse_qsl((await request.body()).decode(errors="replace"), keep_blank_values=True)
    )
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    signature = request.headers.get("X-Twilio-Signature", "")
    if not settings.twilio_auth_token or \
            not RequestValidator(settings.twilio_auth_token).validate(url, params, signature):
        log.warning("refused a webhook with a missing or wrong signature on %s", request.url.path)
        raise HTTPException(403, "invalid Twilio signature")
    return {k: v.replace("\x00", "") for k, v in params.items()}  # PostgreSQL refuses NUL


async def _applied(request: Request, kind: str, work: Work) -> Any:
    """`work` in a transaction, tried again through a short outage; past the budget it is
    held for later (`held`) and the request answered 503."""
    runtime = request.app.state.runtime
    try:
        return await transaction_retried(runtime.db, work,
                                         budget=runtime.settings.webhook_db_retry_seconds)
    except DatabaseUnavailable:
        held: HeldWebhooks = request.app.state.held_webhooks
        held.hold(kind, work)
        raise


@router.post(
    "/status",
    status_code=204,
    response_class=Response,
    openapi_extra=_twilio_form("MessageSid", "MessageStatus", "ErrorCode", query=("text",)),
)
async def status_callback(request: Request) -> Response:
    """A delivery receipt (see `receipts`): recorded once, never going back."""
    form = await _verified_form(request)
    sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "").lower()
    text = request.query_params.get("text", "")  # the text it is about (our callback URL)
    text_id = int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None
    runtime = request.app.state.runtime

    async def apply(conn: Connection) -> bool:
        return await apply_receipt(conn, sid, status, form.get("ErrorCode") or None, text_id,
                                   **receipt_rules(runtime.settings))

    if not await _applied(request, "receipt", apply):
        log.info("kept a receipt for a message whose SID is not stored yet")
    return Response(status_code=204)


@router.post("/inbound", response_class=TwiML,
             openapi_extra=_twilio_form("MessageSid", "From", "Body", "OptOutType"))
async def inbound_message(request: Request) -> Response:
    """A text from a patient, a ride contact or a stranger: a reply to act on, an opt-out or
    opt-in of the number, a question, or something else for staff (see `inbox`). Answered
    with TwiML: HELP always gets who we are, how to reach a person and how to stop."""
    form = await _verified_form(request)
    settings = request.app.state.runtime.settings
    sid, sender, body = (
        form.get(name, "").replace("\x00", "") for name in ("MessageSid", "From", "Body")
    )
    async def receive(conn: Connection) -> str | None:
        return await inbox.receive(
            conn, sid, sender.strip(), body, twilio_says=form.get("OptOutType", ""),
            operator=Sender(settings.sender_name, settings.sender_phone))

    message = await _applied(request, "inbound", receive)
    return Response(twiml(message), media_type="text/xml")
