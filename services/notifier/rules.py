"""Whether a picked text may go out now: pure functions over `store.DueText` and its clinic's
`Policy`, no I/O. The dispatcher asks them when it claims a text, and again when the text's
turn comes if that was a while later."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from services.notifier.policy import Policy
from services.notifier.schedule import move
from services.notifier.store import THIRD_PARTY, DueText
from services.notifier.templates import TextContext

Verdict = tuple[str, str, datetime | None]
"""What becomes of a text that must not go now: (status, reason, new due time or None)."""
OVER = ("cancelled", "noshow", "fulfilled")
"""The statuses of an appointment that is over: its texts are cancelled."""


def why_not(text: DueText, now: datetime) -> str | None:
    """Why the text must not go out at all, or None if it may."""
    if text.number_opted_out:  # the number it goes to (patient's or ride contact's) said STOP
        return "number opted out"
    if text.kind in THIRD_PARTY:  # to the ride contact or support person, who agreed to texts
        if not text.ride_contact_phone:
            return ("no ride contact who agreed to texts" if text.kind == "pickup"
                    else "no support person who agreed to texts")
    elif text.phone_e164 is None:
        return "no contact details for the patient"
    elif not text.sms_consent:
        return "patient has not consented to texts"
    elif text.number_problem:
        return f"number cannot be texted ({text.number_problem})"
    if text.booking_id is not None and text.kind != "missed":
        if text.appointment_status in OVER:
            return f"appointment {text.appointment_status}"
        if text.booking_version != text.appointment_version:
            return "appointment was moved"
        if text.kind == "ride_reminder" and text.ride_status == "confirmed":
            return "ride already arranged"
    if text.kind == "waitlist_offer" and text.offer_status != "open":
        return "slot already taken"
    if now > text.valid_until:
        return "too late to be useful"
    return None


def not_now(text: DueText, policy: Policy, now: datetime) -> Verdict | None:
    """Why the text must not go out now (`why_not`, or quiet hours and the day its words
    name, by its kind's rule), or None if it may."""
    reason = why_not(text, now)
    if reason:
        return ("cancelled" if reason.startswith("appointment") else "skipped"), reason, None
    zone = text.recipient_timezone or text.site_timezone  # quiet hours: the recipient's
    if zone is None:  # nothing to hold it by
        return None
    tz = ZoneInfo(zone)
    due = move(text.kind, now, tz, policy.quiet, not_before=now, starts_at=text.starts_at,
               planned=text.due_at)
    if due is None:
        return "skipped", "quiet hours until the day it names is over", None
    if due <= now:
        return None
    if due > text.valid_until:
        return "skipped", "quiet hours until it is too late to be useful", None
    if policy.quiet.allowed(now.astimezone(tz)):
        return "pending", "held until the day it names", due
    return "pending", "held until quiet hours end", due


def over_cap(text: DueText, policy: Policy, sent_now: int) -> str | None:
    """Why one more text would pass the clinic's daily or weekly cap, or None if it would
    not (appointment-critical texts may pass them; the driver's text never counts);
    `sent_now`: texts sent to the patient in this batch so far."""
    if text.kind in THIRD_PARTY or text.site_timezone is None:
        return None
    today, week = text.sent_today + sent_now, text.sent_week + sent_now
    if policy.capped(text.kind, today, week):
        return f"cap reached ({today} today, {week} in 7 days)"
    return None


def text_context(text: DueText) -> TextContext:
    """What the text says about its appointment (or slot offer): a remote or home visit's
    times in the patient's own zone, an in-clinic visit's at the site."""
    remote = text.mode != "clinic"
    timezone = (text.recipient_timezone if remote else None) or text.site_timezone
    if timezone is None:  # every text has one (follow-ups need a site); without it,
        raise TypeError(f"text {text.id} has no time zone")  # ZoneInfo failed here
    return TextContext(
        language=text.language, clinic_name=text.clinic_name, phone=text.text_phone,
        site_name=text.site_name, site_address=text.site_address, timezone=timezone,
        starts_at=text.starts_at, fasting_rule=text.fasting_rule, ends_at=text.ends_at,
        mode=text.mode, join_link=text.join_link, prep_items=text.prep_items)
