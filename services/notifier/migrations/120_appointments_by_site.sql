-- A site's appointments by time, for staff screens (a day sheet's texts in one query).
CREATE INDEX appointments_site ON appointments (site_id, starts_at);
