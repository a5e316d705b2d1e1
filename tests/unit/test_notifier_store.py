"""The notifier's store: the SmsSent events it writes in SQL take their shape from the
pydantic model, and the rows of picked texts are checked against `DueText` (no database)."""

from __future__ import annotations

import pytest

from services.notifier.store import DueText, Q, due_texts


def test_mark_sent_writes_sms_sent_events_generated_from_the_model():
    assert "-- include:" not in Q.mark_sent
    assert "INSERT INTO outbox (topic, key, value, event_id, event_type, trace_context)" in Q.mark_sent
    assert "       event_id, 'SmsSent', trace_context\n" in Q.mark_sent  # the text's
    assert ("\"payload\": {\"text_id\": ' || coalesce((id)::text, 'null') || ', \"kind\": ' || "
            "coalesce(to_json(kind)::text, 'null')") in Q.mark_sent
    assert "FROM sent ORDER BY id" in Q.mark_sent


class Row(tuple):
    """A stand-in for an asyncpg Record: values by position, and their column names."""

    names: tuple[str, ...] = ()

    def keys(self):
        return iter(self.names)


def test_picked_rows_whose_columns_are_not_due_texts_fields_in_order_are_refused():
    swapped = Row(range(len(DueText._fields)))
    swapped.names = (DueText._fields[1], DueText._fields[0], *DueText._fields[2:])
    with pytest.raises(ValueError, match="not DueText's fields"):
        due_texts([swapped])
    right = Row(range(len(DueText._fields)))
    right.names = DueText._fields
    [text] = due_texts([right])
    assert (text.id, text.kind, text.sent_week) == (0, 1, len(DueText._fields) - 1)
