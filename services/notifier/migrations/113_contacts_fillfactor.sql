-- Room in each page for a contact's next row version: a contact is updated in place now
-- and then (the "reply STOP" notice given with the first text, an opt-out, a number that
-- cannot be texted), and none of those columns is indexed, so the update can stay on its
-- page (a HOT update: no index entries) when there is room.
ALTER TABLE contacts SET (fillfactor = 90);
