"""What the proof checks, as pure functions over facts read from the databases and the
Twilio-compatible server's recorded requests (`collect.py` gathers them).

Texts that must have been sent are derived from the booking service's event history, not
from the notifier's own rows: for each booking whose last schedule still stood at the end
(still booked, patient never sent STOP), the texts the notifier's schedule rules
(`services.notifier.schedule.plan_texts`, proven by their own tests) plan for that version,
from the moment the notifier learned of it, in the clinic's quiet hours, that fell due
before the run settled. Each must have been accepted by "Twilio" exactly once.

A send is matched to its text by the provider SID the notifier stored; a request Twilio
accepted whose SID was never stored (the notifier's documented crash window: killed, or its
commit lost, between Twilio's answer and the local commit) is matched to a text by number
and body. Such a duplicate is allowed only when a notifier process died, or PostgreSQL
restarted, within `CRASH_WINDOW` after Twilio accepted it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_time

from services.notifier.schedule import Appointment, QuietHours, move, plan_texts
from services.notifier.templates import LOCALES, STOP_NOTICE, gsm_fold

CRASH_WINDOW = timedelta(seconds=5)
"""How long after Twilio accepted a text a crash may still lose its SID (one HTTP response
and one local commit, on a loaded 2-core machine)."""
IN_FLIGHT = timedelta(seconds=5)
"""How long after the notifier learned of a change a text checked just before it may still
reach Twilio (the check, the render and one HTTP request)."""
LATE_MARGIN = timedelta(minutes=5)
"""A text whose validity window is shorter than this may be dropped as too late under
faults (the broker paused 30 s, a dispatcher's claims released after a minute): it is not
counted as expected."""
DEFAULT_QUIET = (21, 8)
"""The notifier's default quiet hours (start, end): no texts from 21:00 to 08:00 local."""
TIME_KINDS = {"confirmation", "prep", "ride_reminder", "fasting_reminder", "day_of"}
OVER = {"cancelled", "fulfilled", "noshow"}


@dataclass(frozen=True)
class BookingEvent:
    """One booking event as the booking service published it, and when the notifier
    learned of it (None: never)."""

    booking_id: str
    version: int
    status: str  # booked (booked or moved) | cancelled | arrived | fulfilled | noshow
    clinic_id: str
    patient_id: str
    timezone: str
    at: datetime
    known_at: datetime | None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    is_dosing: bool = False
    has_ride_contact: bool = False


@dataclass(frozen=True)
class TextRow:
    id: int
    patient_id: str
    booking_id: str | None
    version: int | None
    kind: str
    status: str
    sid: str | None
    body: str | None = None
    due_at: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Send:
    """A message the Twilio-compatible server accepted."""

    sid: str
    to: str
    body: str
    at: datetime


@dataclass(frozen=True)
class Plan:
    id: str
    modality: str
    booked: int
    completed: int
    cancelled: int
    missed: int


@dataclass(frozen=True)
class Booking:
    """A booking's final state in the booking service."""

    id: str
    patient_id: str
    session_type: str
    status: str
    version: int


@dataclass(frozen=True)
class PlanSession:
    booking_id: str
    plan_id: str | None
    status: str
    version: int


@dataclass
class Facts:
    events: dict[str, list[BookingEvent]] = field(default_factory=dict)
    texts: list[TextRow] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)
    quiet: dict[str, tuple[int, int]] = field(default_factory=dict)  # clinic id -> (start, end) hours
    daily_cap: dict[str, int] = field(default_factory=dict)  # by clinic id (default 1)
    phones: dict[str, str] = field(default_factory=dict)  # patient id -> E.164
    patient_tz: dict[str, str] = field(default_factory=dict)  # patient id -> site zone
    patient_clinic: dict[str, str] = field(default_factory=dict)
    opted_out_at: dict[str, datetime] = field(default_factory=dict)  # notifier learned STOP
    stop_sent: set[str] = field(default_factory=set)  # patients who texted STOP at all
    ride_confirmers: set[str] = field(default_factory=set)  # patients who texted "3" (ride arranged)
    crashes: list[datetime] = field(default_factory=list)  # notifier kills, PostgreSQL restarts
    settled_at: datetime | None = None
    bookings: dict[str, Booking] = field(default_factory=dict)
    plans: list[Plan] = field(default_factory=list)
    plan_sessions: dict[str, PlanSession] = field(default_factory=dict)
    outbox_unsent: dict[str, int] = field(default_factory=dict)
    outbox_not_on_topic: dict[str, int] = field(default_factory=dict)
    unconsumed: dict[str, int] = field(default_factory=dict)  # consumer -> events never processed
    dead_letters: list[tuple[str, bytes, str]] = field(default_factory=list)  # consumer, value, error
    poison: set[bytes] = field(default_factory=set)  # bad messages the driver published on purpose
    receipts_acknowledged: int = 0  # "delivered" callbacks the notifier answered 2xx
    receipts_missing: int = 0  # ... of which the text does not say delivered


@dataclass
class Report:
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    counts: Counter = field(default_factory=Counter)

    def fail(self, check: str, detail: str) -> None:
        self.violations[check].append(detail)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())


def check(f: Facts) -> Report:
    """Run every check; the report lists violations by check and counts for the summary."""
    r = Report()
    sends_by_text = match_sends(f, r)
    check_exactly_once(f, sends_by_text, r)
    check_never_wrong(f, sends_by_text, r)
    check_plans(f, r)
    check_pipeline(f, r)
    return r


# --- sends to texts ---------------------------------------------------------------------


def _strip_notice(body: str) -> str:
    for notice in STOP_NOTICE.values():
        folded = gsm_fold(notice)
        if body.endswith(folded):
            return body[: -len(folded)]
    return body


def match_sends(f: Facts, r: Report) -> dict[int, list[tuple[Send, bool]]]:
    """Each accepted message -> its text row, with whether its SID was stored (False: an
    orphan from the crash window)."""
    by_sid = {t.sid: t for t in f.texts if t.sid}
    phone = f.phones
    by_content: dict[tuple[str, str], list[TextRow]] = defaultdict(list)
    for t in f.texts:
        if t.body and t.patient_id in phone:
            by_content[(phone[t.patient_id], _strip_notice(t.body))].append(t)
    out: dict[int, list[tuple[Send, bool]]] = defaultdict(list)
    for s in f.sends:
        r.counts["accepted by Twilio"] += 1
        text = by_sid.get(s.sid)
        if text is not None:
            out[text.id].append((s, True))
            continue
        candidates = by_content.get((s.to, _strip_notice(s.body)), [])
        if len(candidates) >= 1:
            out[candidates[0].id].append((s, False))
        elif _crash_window(f, s):  # its text was later cancelled or dropped, so has no body
            r.counts["sent in the crash window, then recorded as not sent"] += 1
        else:
            r.fail("unexplained sends", f"Twilio accepted {s.sid} to a number/body no text has")
    return out


# --- lost and duplicated -----------------------------------------------------------------


def expected_texts(f: Facts) -> set[tuple[str, int, str]]:
    """(booking, version, kind) of every text that must have been sent by `settled_at`."""
    expected = set()
    sends_to: dict[str, list[datetime]] = defaultdict(list)
    for s in f.sends:
        sends_to[s.to].append(s.at)
    for booking_id, events in f.events.items():
        last = events[-1]
        schedule = [e for e in events if e.status == "booked"]
        if not schedule or last.patient_id in f.stop_sent:
            continue
        quiet = QuietHours(*f.quiet.get(last.clinic_id, DEFAULT_QUIET))
        if last.status == "noshow" and last.known_at is not None:
            due = move("missed", last.known_at, ZoneInfo(last.timezone), quiet,
                       not_before=last.known_at)
            local = f.settled_at.astimezone(ZoneInfo(last.timezone))
            day = local.replace(hour=0, minute=0, second=0, microsecond=0)  # the patient's day
            today = sum(1 for at in sends_to[f.phones.get(last.patient_id, "")] if at >= day)
            if today >= f.daily_cap.get(last.clinic_id, 1) - 1:
                continue  # a follow-up may be held back by the daily cap: the policy working
            if max(due, last.known_at) <= f.settled_at:
                expected.add((booking_id, last.version, "missed"))
            continue
        if last.status != "booked" or last.known_at is None:
            continue  # changed after: its texts may or may not have gone (checked elsewhere)
        appt = Appointment(last.starts_at, last.ends_at, last.timezone, last.is_dosing,
                           has_ride_contact=last.has_ride_contact)
        for p in plan_texts(appt, last.known_at, quiet):
            if not p.skipped and p.due_at <= f.settled_at and p.valid_until - p.due_at >= LATE_MARGIN:
                expected.add((booking_id, last.version, p.kind))
    return expected


def _ride_arranged_first(f: Facts, row: TextRow) -> bool:
    """A ride reminder the notifier skipped because the ride was arranged, for a patient the
    driver did make text "3": due, but delayed by the faults until after the reply (texts are
    checked against the appointment when they go), so not sending it is right."""
    return (row.kind == "ride_reminder" and row.status == "skipped"
            and row.reason == "ride already arranged" and row.patient_id in f.ride_confirmers)


def _crash_window(f: Facts, s: Send) -> bool:
    return any(s.at <= c <= s.at + CRASH_WINDOW for c in f.crashes)


def check_exactly_once(f: Facts, sends: dict[int, list[tuple[Send, bool]]], r: Report) -> None:
    texts = {t.id: t for t in f.texts}
    sent_keys: Counter = Counter()
    rows_of: dict[tuple, set[int]] = defaultdict(set)
    for text_id, items in sends.items():
        t = texts[text_id]
        if t.booking_id is not None:
            sent_keys[(t.booking_id, t.version, t.kind)] += len(items)
            rows_of[(t.booking_id, t.version, t.kind)].add(text_id)
        if len(items) > 1:
            extra = [s for s, stored in items if not stored]
            if len(extra) == len(items) - 1 and all(_crash_window(f, s) for s in extra):
                r.counts["duplicates in the crash window"] += len(extra)
            else:
                r.fail("duplicates", f"text {text_id} ({t.kind}) accepted {len(items)} times: "
                       + ", ".join(f"{s.sid} at {s.at:%H:%M:%S}" for s, _ in items))
    for key, n in sent_keys.items():
        if len(rows_of[key]) > 1:
            r.fail("duplicates", f"{key[2]} for booking {key[0]} v{key[1]} planned and sent {n} times")
    expected = expected_texts(f)
    r.counts["texts expected"] = len(expected)
    row_by_key = {(t.booking_id, t.version, t.kind): t for t in f.texts}
    for key in sorted(expected):
        if sent_keys[key] == 0:
            row = row_by_key.get(key)
            if row and _ride_arranged_first(f, row):
                r.counts["ride reminders not needed: the patient had texted 3 first"] += 1
                continue
            state = f"left {row.status}" if row else "never planned"
            r.fail("lost", f"{key[2]} for booking {key[0]} v{key[1]}: {state}")
    r.counts["expected texts sent"] = sum(1 for k in expected if sent_keys[k])


# --- never to a cancelled booking, a stale time, in quiet hours, after STOP --------------


def _state_at(events: list[BookingEvent], moment: datetime) -> BookingEvent | None:
    """The booking as the notifier knew it at `moment`."""
    known = [e for e in events if e.known_at is not None and e.known_at <= moment]
    return max(known, key=lambda e: e.version) if known else None


def in_quiet_hours(at: datetime, tz: str, start: int, end: int) -> bool:
    """Whether `at` falls in the quiet hours `start`-`end` (texts only from `end` o'clock up
    to `start` o'clock) at the site's local time. Written here on purpose, not taken from the
    notifier: a check must not reuse the code it checks."""
    local = at.astimezone(ZoneInfo(tz))
    minute_of_day = local.hour * 60 + local.minute
    return not end * 60 <= minute_of_day < start * 60


def _time_strings(at: datetime, tz: str) -> set[str]:
    return {gsm_fold(format_time(at, "short", tzinfo=ZoneInfo(tz), locale=loc))
            for loc in LOCALES.values()}


def check_never_wrong(f: Facts, sends: dict[int, list[tuple[Send, bool]]], r: Report) -> None:
    texts = {t.id: t for t in f.texts}
    for text_id, items in sends.items():
        t = texts[text_id]
        events = f.events.get(t.booking_id, []) if t.booking_id else []
        for s, _ in items:
            tz = events[-1].timezone if events else f.patient_tz.get(t.patient_id)
            clinic = events[-1].clinic_id if events else f.patient_clinic.get(t.patient_id)
            start, end = f.quiet.get(clinic, DEFAULT_QUIET)
            if tz and in_quiet_hours(s.at, tz, start, end):
                r.fail("quiet hours", f"text {t.id} ({t.kind}) sent at "
                       f"{s.at.astimezone(ZoneInfo(tz)):%H:%M} in {tz} (quiet {start}-{end})")
            stop = f.opted_out_at.get(t.patient_id)
            if stop is not None and s.at > stop + IN_FLIGHT:
                r.fail("after STOP", f"text {t.id} sent {s.at - stop} after the patient opted out")
            if not events or t.kind in ("missed",):
                continue
            now, before = _state_at(events, s.at), _state_at(events, s.at - IN_FLIGHT)
            if now is None:
                continue
            if before is not None and before.status in OVER and \
                    not (t.kind == "pickup" and before.status == "arrived"):
                r.fail("cancelled booking", f"text {t.id} ({t.kind}) sent with booking "
                       f"{t.booking_id} {before.status} since {before.known_at:%H:%M:%S}")
            if t.kind in TIME_KINDS:  # the time in force at some moment of the last IN_FLIGHT
                known = [e for e in events if e.status == "booked" and e.known_at is not None]
                fine = [e for e in known if s.at - IN_FLIGHT <= e.known_at <= s.at]
                fine += [e for e in known if e.known_at < s.at - IN_FLIGHT][-1:]
                if fine and not any(x in s.body for e in fine for x in _time_strings(e.starts_at, e.timezone)):
                    then = max((e for e in known if e.known_at <= s.at), key=lambda e: e.version)
                    r.fail("stale time", f"text {t.id} ({t.kind}, v{t.version}) for booking {t.booking_id}"
                           f" does not quote its time then ({then.starts_at:%H:%M} UTC, v{then.version} "
                           f"known since {then.known_at:%H:%M:%S}; sent {s.at:%H:%M:%S}): {s.body!r}")
            if t.kind in TIME_KINDS and now.status == "booked" and now.version != t.version \
                    and before is not None and before.version != t.version:
                r.counts["texts of a superseded version sent (time still right)"] += 1


# --- plans follow bookings ----------------------------------------------------------------

PLAN_STATUS = {"booked": "booked", "arrived": "arrived", "fulfilled": "completed",
               "cancelled": "cancelled", "noshow": "missed"}


def check_plans(f: Facts, r: Report) -> None:
    """Every booking's latest state is in plans, and each plan's counts equal what the
    booking service says of its sessions."""
    for b in f.bookings.values():
        ps = f.plan_sessions.get(b.id)
        if ps is None:
            r.fail("plans", f"booking {b.id} never reached plans")
        elif (ps.status, ps.version) != (PLAN_STATUS[b.status], b.version):
            r.fail("plans", f"booking {b.id} is {b.status} v{b.version} but plans has "
                   f"{ps.status} v{ps.version}")
    members: dict[str, list[Booking]] = defaultdict(list)
    for ps in f.plan_sessions.values():
        if ps.plan_id is not None and ps.booking_id in f.bookings:
            members[ps.plan_id].append(f.bookings[ps.booking_id])
    for plan in f.plans:
        dosing = Counter(PLAN_STATUS[b.status] for b in members[plan.id]
                         if b.session_type == plan.modality)
        want = (dosing["booked"] + dosing["arrived"], dosing["completed"], dosing["cancelled"],
                dosing["missed"])
        have = (plan.booked, plan.completed, plan.cancelled, plan.missed)
        if want != have:
            r.fail("plans", f"plan {plan.id} counts (booked, completed, cancelled, missed) "
                   f"{have}, bookings say {want}")
    r.counts["plans checked"] = len(f.plans)


# --- outbox, Kafka, consumers, dead letters -------------------------------------------------


def check_pipeline(f: Facts, r: Report) -> None:
    for schema, n in f.outbox_unsent.items():
        if n:
            r.fail("outbox", f"{schema}: {n} outbox rows never published")
    for schema, n in f.outbox_not_on_topic.items():
        if n:
            r.fail("outbox", f"{schema}: {n} published outbox rows are not on their topic")
    for consumer, n in f.unconsumed.items():
        if n:
            r.fail("consumed", f"{consumer}: {n} booking events never processed")
    r.counts["delivery receipts acknowledged"] = f.receipts_acknowledged
    # not a failing check: the notifier answers 204 to a receipt for a SID it has not stored
    # yet (Twilio's callback was faster than the notifier's commit), and the receipt is gone
    r.counts["delivery receipts lost (callback before the SID was stored)"] = f.receipts_missing
    for consumer, value, error in f.dead_letters:
        if value in f.poison:
            r.counts["dead letters (the driver's poison messages)"] += 1
        else:
            r.fail("dead letters", f"{consumer}: unexplained dead letter: {error[:200]}")
