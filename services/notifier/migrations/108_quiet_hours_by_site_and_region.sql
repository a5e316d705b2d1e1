-- Where each appointment (and slot offer) is: the site and its state or province (ISO
-- 3166-2, e.g. US-FL), so that quiet hours can be set per site or per region.
ALTER TABLE appointments ADD COLUMN site_id uuid, ADD COLUMN site_region text;
ALTER TABLE waitlist_offers ADD COLUMN site_id uuid, ADD COLUMN site_region text;

-- Quiet hours a clinic network sets for the sites of one state or province, or for one
-- site; resolved site > region > network (clinic_policies) > the service's default.
CREATE TABLE quiet_hours_overrides (
    clinic_id          uuid NOT NULL,
    region             text,
    site_id            uuid,
    quiet_hours_start  smallint NOT NULL CHECK (quiet_hours_start BETWEEN 1 AND 24),
    quiet_hours_end    smallint NOT NULL CHECK (quiet_hours_end BETWEEN 0 AND 23),
    CHECK ((region IS NULL) <> (site_id IS NULL))
);
CREATE UNIQUE INDEX quiet_hours_of_region ON quiet_hours_overrides (clinic_id, region)
    WHERE region IS NOT NULL;
CREATE UNIQUE INDEX quiet_hours_of_site ON quiet_hours_overrides (clinic_id, site_id)
    WHERE site_id IS NOT NULL;
