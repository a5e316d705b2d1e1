-- Texts are looked up by booking only to cancel or supersede the pending ones
-- (cancel_pending_texts): the index holds only those, so claiming and sending a text (each
-- a new row version) no longer adds an entry to it.
DROP INDEX texts_booking;
CREATE INDEX texts_pending_by_booking ON texts (booking_id) WHERE status = 'pending';
