-- Phone, video and home visits (issue 17): how the appointment is attended, the call-in
-- number or video link its texts carry (never an address), the patient's own time zone
-- (times and quiet hours), the support person of a home session (their own text), and what
-- the session type's prep text says to bring.
ALTER TABLE appointments
    ADD COLUMN mode text NOT NULL DEFAULT 'clinic',
    ADD COLUMN join_link text,
    ADD COLUMN patient_timezone text,
    ADD COLUMN support_name text,
    ADD COLUMN support_phone text,
    ADD COLUMN prep_items text;
