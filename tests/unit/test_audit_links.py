"""The sealer's links (shared.audit_chain.links): each entry's link follows the day's head, and
the hashing gives the event loop back every SEAL_CHUNK entries (a busy second's pass would
otherwise hold every request of its process for tens of milliseconds)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from shared.audit_chain import GENESIS, SEAL_CHUNK, links

CLINIC = UUID("0b7a6c1e-3f5d-4b8e-9a21-6c4d2e8f1a37")
PATIENT = UUID("5f0e2c8a-1b3d-4e6f-8a9b-0c1d2e3f4a5b")
DAY = date(2026, 12, 2)


def row(entry_id: int) -> dict[str, Any]:
    return {"id": entry_id, "at": datetime(2026, 12, 2, 22, 30, 0, 250, tzinfo=UTC),
            "clinic_id": CLINIC, "actor_clinic_id": CLINIC, "actor_kind": "key",
            "staff_id": None, "actor_label": "front desk", "role": "admin",
            "action": "book_session", "resource": "POST /bookings", "patient_ids": [PATIENT],
            "outcome": "allowed", "status": 201, "client": "127.0.0.1",
            "correlation_id": "c-1"}


async def test_a_link_hashes_the_previous_hash_and_the_entry_in_canonical_form() -> None:
    heads: dict[date, tuple[int, str]] = {}
    ids, days, seqs, prevs, hashes = await links([row(7), row(8)], heads)
    first = hashlib.sha256(
        b"0" * 64 + b'|[7,"2026-12-02T22:30:00.000250+00:00",'
        b'"0b7a6c1e-3f5d-4b8e-9a21-6c4d2e8f1a37","0b7a6c1e-3f5d-4b8e-9a21-6c4d2e8f1a37",'
        b'"key",null,"front desk","admin","book_session","POST /bookings",'
        b'["5f0e2c8a-1b3d-4e6f-8a9b-0c1d2e3f4a5b"],"allowed",201,"127.0.0.1","c-1"]'
    ).hexdigest()
    assert (ids, days, seqs) == ([7, 8], [DAY, DAY], [1, 2])
    assert prevs == [GENESIS, first] and hashes[0] == first
    assert heads == {DAY: (2, hashes[1])}


async def test_links_go_on_from_the_days_head() -> None:
    heads = {DAY: (41, "f" * 64)}
    _, _, seqs, prevs, _ = await links([row(9)], heads)
    assert (seqs, prevs) == ([42], ["f" * 64])


async def test_the_event_loop_runs_between_chunks_of_links() -> None:
    turns = 0
    rows = [row(i) for i in range(1, 2 * SEAL_CHUNK + 51)]  # two chunk boundaries
    done: list[tuple[list[Any], ...]] = []

    async def sealer() -> None:
        done.append(await links(rows, {}))

    async def other() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    await asyncio.gather(sealer(), other())  # the sealer starts first
    assert SEAL_CHUNK == 100
    assert turns == 2  # the other task ran at each chunk boundary (after 100 and 200 links)
    assert done[0][2] == list(range(1, 2 * SEAL_CHUNK + 51))
