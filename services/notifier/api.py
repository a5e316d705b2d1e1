"""HTTP API of the notifier for clinic staff (the network's API keys): texts, texting policy,
and the texts people sent (replies, opt-outs)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Path, Request
from pydantic import ConfigDict, Field

from services.notifier import inbox, overrides, policy
from services.notifier.policy import PolicyIn
from services.notifier.store import INBOX, Q, dicts, one_dict
from services.notifier.templates import TEMPLATES
from shared.audit import record
from shared.auth import ADMIN, CARE, READ, Principal, require
from shared.errors import Conflict, Invalid, NotFound
from shared.pagination import Limit, decode_cursor, page
from shared.validation import RequestModel

router = APIRouter(tags=["texts"])
LAST_ID = 2**63 - 1
ReplyId = Annotated[int, Path(ge=1, le=LAST_ID)]
PHONE = re.compile(r"(?:\+[0-9]{1,19})?")
Meaning = Literal[
    "confirm", "reschedule", "ride", "take_slot", "opt_out", "opt_in", "help", "other"
]


@router.get("/patients/{patient_id}/texts")
async def patient_texts(patient_id: UUID, request: Request,
                        who: Principal = require(*READ)) -> list[dict[str, Any]]:
    """Every text scheduled for a patient, with its state and, once sent, its body (404 for
    a patient of another network, or not known here yet)."""
    async with request.app.state.runtime.db.acquire() as conn:
        if not await conn.fetchval(Q.patient_known, patient_id, who.clinic_id):
            raise NotFound("unknown patient", field="patient_id")
        return await dicts(conn, Q.texts_of_patient, patient_id, who.clinic_id)


@router.get("/policy", tags=["policy"])
async def get_policy(request: Request, who: Principal = require(*READ)) -> dict[str, Any]:
    """This clinic network's texting policy (quiet hours, caps, kinds of text turned off)."""
    async with request.app.state.runtime.db.acquire() as conn:
        return await policy.show(conn, who.clinic_id)


@router.post("/policy", tags=["policy"])
async def set_policy(
    cmd: PolicyIn, request: Request, who: Principal = require(*ADMIN)
) -> dict[str, Any]:
    """Replace the texting policy. Quiet hours apply by site, else by the site's state or
    province (`regions`, e.g. {"US-FL": {"quiet_hours_start": 20, "quiet_hours_end": 8}}),
    else network-wide; texts already planned are moved when they would go out in them."""
    async with request.app.state.runtime.db.acquire() as conn, conn.transaction():
        saved = await policy.save(conn, who.clinic_id, cmd)
        await record(conn, request)
        return saved


@router.get("/attention")
async def needs_staff(request: Request, who: Principal = require(*READ),
                      limit: Limit = 100) -> dict[str, Any]:
    """What staff should look at: numbers Twilio refused for good, and unread texts that
    changed nothing (questions, HELP, a bare name, replies from a number several patients
    share or with no upcoming appointment); all texts are under `/replies`."""
    async with request.app.state.runtime.db.acquire() as conn:
        return {"failing_numbers": await dicts(conn, Q.failing_numbers, who.clinic_id, limit),
                "replies": await dicts(conn, INBOX.inbox_page, who.clinic_id, LAST_ID, True, True,
                                       None, limit)}


@router.get("/replies", tags=["replies"])
async def list_replies(request: Request, who: Principal = require(*READ), limit: Limit = 50,
                       cursor: str | None = None, unread: bool = False, attention: bool = False,
                       meaning: Meaning | None = None) -> dict[str, Any]:
    """Texts from this network's patients' and ride contacts' numbers, newest first: what we
    read them as (`meaning`), whether that changed something (`acted_on`) or why not
    (`note`), the network's patients with that number and those whose ride contact has it.
    A text from a number several patients share is shown to every network that has it, as
    unmatched (no `patient_id`). `unread`, `attention` (changed nothing) and `meaning`
    (e.g. opt_out) filter."""
    (before,) = decode_cursor(cursor, (int,)) or (LAST_ID,)
    if not 0 < before <= LAST_ID:
        raise Invalid("invalid cursor", field="cursor")
    async with request.app.state.runtime.db.acquire() as conn:
        rows = await dicts(conn, INBOX.inbox_page, who.clinic_id, before, unread, attention,
                           meaning, limit + 1)
    return page(rows, limit, lambda r: (r["id"],))


@router.get("/replies/{reply_id}", tags=["replies"])
async def get_reply(reply_id: ReplyId, request: Request,
                    who: Principal = require(*READ)) -> dict[str, Any]:
    """One text of this network's inbox (another network's ids answer 404)."""
    async with request.app.state.runtime.db.acquire() as conn:
        item = await one_dict(conn, INBOX.inbox_item, reply_id, who.clinic_id)
    if item is None:
        raise NotFound("unknown reply", field="reply_id")
    return item


@router.post("/replies/{reply_id}/read", tags=["replies"])
async def mark_reply_read(reply_id: ReplyId, request: Request,
                          who: Principal = require(*READ)) -> dict[str, Any]:
    """Mark a text read (by this key's label; the first reading is kept)."""
    async with request.app.state.runtime.db.acquire() as conn, conn.transaction():
        if await conn.fetchval(INBOX.mark_read, reply_id, who.clinic_id, who.actor) is None:
            raise NotFound("unknown reply", field="reply_id")
        item = await one_dict(conn, INBOX.inbox_item, reply_id, who.clinic_id)
        assert item is not None  # marked read just above
        await record(conn, request, body=json.dumps(item, default=str))
        return item


@router.post("/replies/{reply_id}/opt-out", tags=["replies"])
async def opt_out_from_reply(reply_id: ReplyId, request: Request,
                             who: Principal = require(*CARE)) -> dict[str, Any]:
    """Staff read this text as a revocation of consent ("please don't text me before 9,
    actually don't text me at all"): its number opts out, for every network, as if it had
    texted STOP (only the number's own START lifts it)."""
    async with request.app.state.runtime.db.acquire() as conn, conn.transaction():
        done = await inbox.staff_opt_out(conn, who.clinic_id, reply_id, who.actor)
        await record(conn, request, body=json.dumps(done, default=str))
        return done


@router.get("/opt-outs", tags=["replies"])
async def list_opt_outs(request: Request, who: Principal = require(*READ), limit: Limit = 50,
                        cursor: str | None = None) -> dict[str, Any]:
    """Numbers of this network's patients and ride contacts that opted out and have not
    opted back in, newest first: when, how (`keyword`, `phrase`, `staff`), and who has them."""
    at, phone = decode_cursor(cursor, (datetime, str)) or (datetime(9999, 12, 31, tzinfo=UTC), "")
    try:
        at = at.astimezone(UTC) if at.tzinfo is not None and PHONE.fullmatch(phone) else None
    except OverflowError:  # year 1 with an offset
        at = None
    if at is None:
        raise Invalid("invalid cursor", field="cursor")
    async with request.app.state.runtime.db.acquire() as conn:
        rows = await dicts(conn, INBOX.opt_outs_page, who.clinic_id, at, phone, limit + 1)
    return page(rows, limit, lambda r: (r["opted_out_at"], r["phone_e164"]))


# --- clinics' own words ------------------------------------------------------------------


class TemplateIn(RequestModel):
    """A network's own words for one kind of text in one language."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(max_length=40, description="A kind of text (GET /templates lists them)")
    language: Literal["en", "fr", "es"]
    body: str | None = Field(min_length=1, max_length=overrides.BODY_MAX,
                             description="Its words with {placeholders}; null: back to the "
                                         "built-in words")
    accept_ucs2: bool = Field(False, description="Accept characters outside GSM-7 (texts go "
                                                 "as UCS-2, 67 characters a segment)")


def _known_kind(kind: str) -> None:
    if kind not in TEMPLATES:
        raise Invalid("unknown kind of text (GET /templates lists them)", field="kind")


@router.get("/templates", tags=["templates"])
async def list_templates(request: Request, who: Principal = require(*READ)) -> dict[str, Any]:
    """Every kind of text with its built-in words per language and the placeholders it
    knows and needs, and this network's overrides (every version, newest first)."""
    async with request.app.state.runtime.db.acquire() as conn:
        mine = await dicts(conn, Q.template_overrides_of_clinic, who.clinic_id)
    return {"kinds": {kind: {"built_in": words, "placeholders": sorted(overrides.allowed(kind)),
                             "needs": sorted(overrides.NEEDED |
                                             overrides.NEEDED_BY_KIND.get(kind, set()))}
                      for kind, words in TEMPLATES.items()},
            "overrides": mine}


@router.post("/templates/preview", tags=["templates"])
async def preview_template(cmd: TemplateIn, request: Request,
                           who: Principal = require(*READ)) -> dict[str, Any]:
    """The words rendered for a sample appointment, their segments and encoding, the
    segments they take at worst, and what would keep them from being saved (nothing is
    saved)."""
    _known_kind(cmd.kind)
    body = cmd.body if cmd.body is not None else TEMPLATES[cmd.kind][cmd.language]
    return overrides.shown(overrides.preview(cmd.kind, cmd.language, body, cmd.accept_ucs2))


@router.post("/templates", status_code=201, tags=["templates"])
async def save_template(cmd: TemplateIn, request: Request,
                        who: Principal = require(*ADMIN)) -> dict[str, Any]:
    """Save the network's own words for a kind of text in a language, as a new version
    (texts rendered from now on use them and record the version). Refused (422 naming the
    field and the reason) when they name a drug, procedure or diagnosis, have a placeholder
    the kind does not know or lack one it needs, take more than 3 segments at worst, or are
    not GSM-7 without `accept_ucs2`."""
    _known_kind(cmd.kind)
    if cmd.body is not None:
        found = overrides.problems(cmd.kind, cmd.language, cmd.body, cmd.accept_ucs2)
        if found:
            raise Invalid(found[0].message, field=found[0].field,
                          problems=[p.message for p in found])
    async with request.app.state.runtime.db.acquire() as conn, conn.transaction():
        try:
            saved = await one_dict(conn, Q.insert_template_override, who.clinic_id, cmd.kind,
                                   cmd.language, cmd.body, cmd.accept_ucs2, who.actor)
        except asyncpg.UniqueViolationError:
            raise Conflict("the template was saved meanwhile: try again") from None
        assert saved is not None  # INSERT ... RETURNING
        await record(conn, request, status=201)
        return saved
