-- The state or province a site is in (ISO 3166-2, e.g. US-FL, CA-QC): some rules, such as
-- the hours texts may go out, differ by state.
ALTER TABLE sites ADD COLUMN region text;
