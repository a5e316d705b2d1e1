-- Room in each page for a text's next row version: a text is updated three times on its way
-- out (claimed, handed to the provider, sent) and the middle update touches no indexed
-- column, so it can stay on its page (a HOT update) when there is room.
ALTER TABLE texts SET (fillfactor = 80);
