-- Clinics' own words (issue 17): a network's override of a text template, per kind and
-- language, versioned (each save is a new version; a NULL body goes back to the built-in
-- words). Each text records the version it was rendered with (0: the built-in words).
CREATE TABLE template_overrides (
    clinic_id    uuid NOT NULL,
    kind         text NOT NULL,
    language     text NOT NULL CHECK (language IN ('en', 'fr', 'es')),
    version      integer NOT NULL CHECK (version > 0),
    body         text,
    accept_ucs2  boolean NOT NULL DEFAULT false,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (clinic_id, kind, language, version)
);

ALTER TABLE texts ADD COLUMN template_version integer;
