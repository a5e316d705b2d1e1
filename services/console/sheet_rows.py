"""The rows of a day sheet as HTML. A sheet has up to hundreds of rows and is read again on
every live update, so its rows are built here with escaped f-strings (several times faster
than the template engine's loop), from words already translated (`day.words`): the text is
the catalogue's all the same. The table around them is the template's (`_sheet.html`)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from services.console import labels


def _button(url: str, target: str, text: str, label: str, method: str = "post",
            action: str = "", extra: str = "") -> str:
    data = f' data-action="{action}"' if action else ""
    swap = ' hx-swap="outerHTML"' if method == "post" else ""
    return (f'<button hx-{method}="{url}" hx-target="{target}"{swap}{data}{extra} '
            f'aria-label="{text}: {label}">{text}{"" if method == "post" else "…"}</button>')


def row(b: dict[str, Any], w: dict[str, Any], q: str, can_care: bool, can_schedule: bool) -> str:
    """One session's row: time, patient, type, status, confirmation, ride, texts, replies,
    and the actions the person's role allows in the booking's state."""
    e = escape
    bid = e(b["id"])
    label = e(f"{b['patient_name']}, {b['when']}")
    status = b["status"]
    reschedule = f' <span class="chip warn">{e(w["wants_another_time"])}</span>' \
        if b["reschedule_requested"] else ""
    confirmed = f'<span class="chip ok">{e(w["confirmed"])}</span>' if b["confirmed"] \
        else f'<span class="chip">{e(w["not_yet"])}</span>'
    if b["is_dosing"]:
        tone = "ok" if b["ride_status"] == "confirmed" else "warn"
        driver = f" {e(b['ride_driver_name'])}" if b["ride_driver_name"] else ""
        ride = f'<span class="chip {tone}">{e(w["rides"][b["ride_status"]])}</span>{driver}'
    else:
        ride = f'<span class="muted">{e(w["not_needed"])}</span>'
    kind = str(e(w["types"].get(b["session_type"], b["session_type"])))  # str: chips are added
    if b.get("mode", "clinic") != "clinic":  # phone or video: no room
        kind += f' <span class="chip" data-field="mode">{e(w["modes"][b["mode"]])}</span>'
    if b.get("source") == "online":
        kind += f' <span class="chip" data-field="source">{e(w["online"])}</span>'
    texts = " ".join(f'<span class="chip {tone}">{e(text)}</span>' for tone, text in b["texts"])
    replies = f'<a href="/inbox">{b["replies"]}</a>' if b["replies"] else "0"
    actions = _actions(b, w, q, label, can_care, can_schedule)
    return (
        f'<tr data-booking="{bid}"><td>{e(b["when"])}–{e(b["until"])}</td>'
        f'<td><a href="/patients/{e(b["patient_id"])}">{e(b["patient_name"])}</a><br>'
        f'<span class="muted">{e(b["provider_name"])}</span></td>'
        f'<td>{kind}</td>'
        f'<td><span class="chip {labels.STATUS_TONE[status]}" data-field="status">'
        f"{e(w['statuses'][status])}</span>{reschedule}</td>"
        f'<td sse-swap="confirmed-{bid}" hx-swap="innerHTML" data-field="confirmed">'
        f"{confirmed}</td>"
        f'<td data-field="ride">{ride}</td><td data-field="texts">{texts}</td>'
        f'<td>{replies}</td><td class="actions">{"".join(actions)}</td></tr>'
    )


def _actions(b: dict[str, Any], w: dict[str, Any], q: str, label: str, can_care: bool,
             can_schedule: bool) -> list[str]:
    """The buttons of a session's row: those the person's role allows in its state."""
    e, status = escape, b["status"]
    url = f"/day/bookings/{e(b['id'])}/"
    actions = []
    if can_care and status == "booked":
        actions.append(_button(f"{url}check-in{q}", "#sheet", e(w["check_in"]), label,
                               action="check-in"))
    if can_care and status == "arrived":
        actions.append(_button(f"{url}complete{q}", "#sheet", e(w["complete"]), label,
                               action="complete"))
    if can_care and status == "booked" and b["started"]:
        actions.append(_button(f"{url}no-show{q}", "#sheet", e(w["no_show"]), label,
                               action="no-show"))
    if can_care and b["is_dosing"] and status in ("booked", "arrived"):
        actions.append(_button(f"{url}dialog/ride{q}", "#dialog-slot", e(w["ride"]), label, "get"))
    if can_schedule and status == "booked":
        actions.append(_button(f"{url}dialog/reschedule{q}&amp;at={e(b['at'])}", "#dialog-slot",
                               e(w["reschedule"]), label, "get"))
        actions.append(_button(f"{url}dialog/cancel{q}", "#dialog-slot", e(w["cancel"]), label,
                               "get", extra=' class="danger"'))
    return actions


def rows(bookings: list[dict[str, Any]], w: dict[str, Any], site_id: str, day: object,
         can_care: bool, can_schedule: bool) -> Markup:
    q = f"?site={escape(site_id)}&amp;date={day}"
    return Markup("\n".join(row(b, w, q, can_care, can_schedule) for b in bookings))
