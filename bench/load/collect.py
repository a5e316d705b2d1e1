"""Gather the proof's facts: each service's schema (read directly: this is a test harness,
not a service), the topics on the broker, and the Twilio-compatible server's requests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.load.checks import Booking, BookingEvent, Facts, Plan, PlanSession, Send, TextRow

STATUS = {"SessionBooked": "booked", "SessionRescheduled": "booked", "SessionCancelled": "cancelled",
          "PatientCheckedIn": "arrived", "SessionCompleted": "fulfilled", "PatientNoShow": "noshow"}
SCHEMAS = ("booking", "plans", "notifier")


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


async def booking_history(conn: asyncpg.Connection) -> tuple[list[dict], dict]:
    """The booking service's lifecycle events (from its outbox) and, per event id, when
    the notifier and plans consumers processed it."""
    rows = await conn.fetch("SELECT value, created_at FROM booking.outbox WHERE event_type = ANY($1)"
                            " ORDER BY id", list(STATUS))
    events = [(json.loads(r["value"]), r["created_at"]) for r in rows]
    processed: dict[str, dict] = {}
    for schema in ("notifier", "plans"):
        # known when the batch's transaction committed, not when it began (processed_at):
        # a batch that took seconds (after a PostgreSQL restart) was not known before its end
        for r in await conn.fetch(
                f"SELECT consumer, event_id::text, coalesce(pg_xact_commit_timestamp(xmin), processed_at)"
                f" AS known_at FROM {schema}.processed_events WHERE consumer = $1", schema):
            processed.setdefault(schema, {})[r["event_id"]] = r["known_at"]
    return events, processed


async def gather(database_url: str, bootstrap: str, sends: list[dict], *, crashes: list[datetime],
                 settled_at: datetime, poison: set[bytes], stop_senders: set[str],
                 ride_confirmers: Iterable[str] = ()) -> Facts:
    """All the facts the checks need (`sends`: the Twilio-compatible server's requests;
    `stop_senders`: patients the driver made text STOP; `ride_confirmers`: "3")."""
    f = Facts(crashes=crashes, settled_at=settled_at, poison=poison,
              ride_confirmers=set(ride_confirmers))
    conn = await asyncpg.connect(database_url)
    try:
        raw, processed = await booking_history(conn)
        tz_of: dict[str, str] = {}
        for env, _created in raw:
            p = env["payload"]
            if "site_timezone" in p:
                tz_of[p["booking_id"]] = p["site_timezone"]
        for schema in ("notifier", "plans"):
            seen = processed.get(schema, {})
            f.unconsumed[schema] = sum(1 for env, _ in raw if env["event_id"] not in seen)
        for env, created in raw:
            p = env["payload"]
            ev = BookingEvent(
                booking_id=p["booking_id"], version=p["version"], status=STATUS[env["event_type"]],
                clinic_id=env["clinic_id"], patient_id=env["patient_id"],
                timezone=tz_of.get(p["booking_id"], "UTC"), at=created,
                known_at=processed.get("notifier", {}).get(env["event_id"]),
                starts_at=_ts(p.get("starts_at")), ends_at=_ts(p.get("ends_at")),
                is_dosing=p.get("is_dosing", False), has_ride_contact=bool(p.get("ride_contact")))
            f.events.setdefault(ev.booking_id, []).append(ev)
            f.patient_tz[ev.patient_id] = ev.timezone
            f.patient_clinic[ev.patient_id] = ev.clinic_id
        for evs in f.events.values():
            evs.sort(key=lambda e: e.version)
        for r in await conn.fetch("SELECT id, patient_id::text, booking_id::text, booking_version, kind,"
                                  " status, provider_sid, body, due_at, status_reason FROM notifier.texts"):
            f.texts.append(TextRow(r["id"], r["patient_id"], r["booking_id"], r["booking_version"],
                                   r["kind"], r["status"], r["provider_sid"], r["body"], r["due_at"],
                                   r["status_reason"]))
        delivered = {r["provider_sid"] for r in await conn.fetch(
            "SELECT provider_sid FROM notifier.texts WHERE delivery_status = 'delivered'")}
        stored = {t.sid for t in f.texts if t.sid}
        acknowledged = {r["sid"] for r in sends if r.get("delivered_acknowledged")}
        f.receipts_acknowledged = len(acknowledged & stored)
        f.receipts_missing = len((acknowledged & stored) - delivered)
        for r in await conn.fetch("SELECT patient_id::text, phone_e164 FROM notifier.contacts"):
            f.phones[r["patient_id"]] = r["phone_e164"]
        for r in await conn.fetch("SELECT clinic_id::text, quiet_hours_start, quiet_hours_end, daily_cap"
                                  " FROM notifier.clinic_policies"):
            f.quiet[r["clinic_id"]] = (r["quiet_hours_start"], r["quiet_hours_end"])
            f.daily_cap[r["clinic_id"]] = r["daily_cap"]
        for r in await conn.fetch("SELECT patient_id::text, min(received_at) AS at FROM notifier.inbound_messages"
                                  " WHERE interpretation = 'opt_out' GROUP BY patient_id"):
            f.opted_out_at[r["patient_id"]] = r["at"]
        for r in await conn.fetch("SELECT id::text, patient_id::text, session_type, status, version"
                                  " FROM booking.bookings"):
            f.bookings[r["id"]] = Booking(r["id"], r["patient_id"], r["session_type"], r["status"], r["version"])
        for r in await conn.fetch("SELECT id::text, modality, sessions_booked, sessions_completed,"
                                  " sessions_cancelled, sessions_missed FROM plans.plans"):
            f.plans.append(Plan(r["id"], r["modality"], r["sessions_booked"], r["sessions_completed"],
                                r["sessions_cancelled"], r["sessions_missed"]))
        for r in await conn.fetch("SELECT booking_id::text, plan_id::text, status, version FROM plans.plan_sessions"):
            f.plan_sessions[r["booking_id"]] = PlanSession(r["booking_id"], r["plan_id"], r["status"], r["version"])
        outbox_ids: dict[str, dict[str, set[str]]] = {}
        for schema in SCHEMAS:
            f.outbox_unsent[schema] = await conn.fetchval(
                f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL")
            for r in await conn.fetch(f"SELECT topic, event_id::text FROM {schema}.outbox"
                                      " WHERE sent_at IS NOT NULL AND event_id IS NOT NULL"):
                outbox_ids.setdefault(schema, {}).setdefault(r["topic"], set()).add(r["event_id"])
            for r in await conn.fetch(f"SELECT consumer, value, error FROM {schema}.dead_letters"):
                f.dead_letters.append((r["consumer"], bytes(r["value"] or b""), r["error"]))
    finally:
        await conn.close()
    topics = {t for by_topic in outbox_ids.values() for t in by_topic}
    on_kafka = await event_ids_on_topics(bootstrap, sorted(topics))
    for schema, by_topic in outbox_ids.items():
        f.outbox_not_on_topic[schema] = sum(len(ids - on_kafka.get(t, set())) for t, ids in by_topic.items())
    f.sends = [Send(r["sid"], r["To"], r["Body"], datetime.fromtimestamp(r["received_unix"], UTC))
               for r in sends if "sid" in r]
    f.stop_sent = set(f.opted_out_at) | stop_senders
    return f


async def event_ids_on_topics(bootstrap: str, topics: list[str]) -> dict[str, set[str]]:
    """Every event id on each topic, read from the beginning (tansu keeps them in memory)."""
    out: dict[str, set[str]] = {t: set() for t in topics}
    if not topics:
        return out
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if not parts:
            await consumer._client.force_metadata_update()  # first use of the topics
            parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        remaining = {tp for tp in parts if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for rec in records:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        out[tp.topic].add(json.loads(rec.value)["event_id"])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out
