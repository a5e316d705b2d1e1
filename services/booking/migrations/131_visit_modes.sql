-- Phone, video and at-home visits (issue 17).
--
-- A booking's mode: in clinic (site and room), by phone or video (a provider, no room), or at
-- home (supervised by video). The same column as i17-online's migration 130 adds: written so
-- that either runs first.
ALTER TABLE bookings ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'clinic';
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'bookings'::regclass AND conname = 'bookings_mode_check') THEN
        ALTER TABLE bookings ADD CONSTRAINT bookings_mode_check
            CHECK (mode IN ('clinic', 'phone', 'video', 'home'));
    END IF;
END $$;
ALTER TABLE bookings ALTER COLUMN room_id DROP NOT NULL;
ALTER TABLE bookings ADD CONSTRAINT bookings_clinic_visit_has_room
    CHECK (mode <> 'clinic' OR room_id IS NOT NULL);

-- The call-in number or video link given for this booking (NULL: the network's).
ALTER TABLE bookings ADD COLUMN join_link text;

-- At home: the support person who must be present (name, phone, consent to texts), and when
-- they confirmed they will be (staff, or their reply to their text).
ALTER TABLE bookings ADD COLUMN support_name text;
ALTER TABLE bookings ADD COLUMN support_phone text;
ALTER TABLE bookings ADD COLUMN support_consent boolean NOT NULL DEFAULT false;
ALTER TABLE bookings ADD COLUMN support_confirmed_at timestamptz;
ALTER TABLE bookings ADD CONSTRAINT bookings_home_visit_has_support
    CHECK (mode <> 'home' OR (support_name IS NOT NULL AND support_phone IS NOT NULL));

-- Remote visits' ways in, per network: the number patients call for a phone visit, and the
-- video link, where `{code}` becomes a short code of the booking.
ALTER TABLE clinics ADD COLUMN call_in_phone text;
ALTER TABLE clinics ADD COLUMN video_link_template text;

-- Patients' own time zone (NULL: their site's). Remote visits' texts quote times in it, and
-- quiet hours apply in it.
ALTER TABLE patients ADD COLUMN timezone text;

-- Session types: the modes each may be booked in, the route of a dosing session (esketamine,
-- iv, im, oral, nasal: never at home for the first three), and the prep items their texts
-- carry ("what to bring"), per language, which a network may change.
ALTER TABLE session_types ADD COLUMN modes text[] NOT NULL DEFAULT '{clinic}';
ALTER TABLE session_types ADD COLUMN route text;
ALTER TABLE session_types ADD COLUMN prep_items jsonb;
ALTER TABLE session_type_overrides ADD COLUMN prep_items jsonb;

INSERT INTO session_types (code, duration_minutes, recovery_minutes, is_dosing, fasting_rule)
VALUES ('consultation', 15, 0, false, NULL),
       ('home_low_dose', 60, 60, true, 'food_2h_liquids_30m')
ON CONFLICT (code) DO NOTHING;

UPDATE session_types SET modes = '{clinic,phone,video}'
WHERE code IN ('consultation', 'assessment', 'integration');
UPDATE session_types SET modes = '{home}', route = 'oral' WHERE code = 'home_low_dose';
UPDATE session_types SET route = 'iv' WHERE code = 'iv_infusion';
UPDATE session_types SET route = 'im' WHERE code = 'im_injection';
UPDATE session_types SET route = 'esketamine' WHERE code = 'esketamine_nasal';
UPDATE session_types SET route = 'oral' WHERE code = 'oral_lozenge_kap';
UPDATE session_types SET prep_items = jsonb_build_object(
    'en', 'Eye covers and headphones are provided; you may bring your own music.',
    'fr', 'Masque pour les yeux et casque fournis; apportez votre musique si vous voulez.',
    'es', 'Le damos antifaz y audifonos; puede traer su propia musica.')
WHERE code IN ('iv_infusion', 'im_injection', 'esketamine_nasal', 'oral_lozenge_kap');
UPDATE session_types SET prep_items = jsonb_build_object(
    'en', 'Have a quiet room, an eye mask, headphones and your own music.',
    'fr', 'Prevoyez une piece calme, un masque, un casque et votre musique.',
    'es', 'Tenga un cuarto tranquilo, antifaz, audifonos y su musica.')
WHERE code = 'home_low_dose';

CREATE OR REPLACE VIEW clinic_session_types AS
SELECT c.id AS clinic_id, st.code, st.is_dosing,
       coalesce(o.duration_minutes, st.duration_minutes) AS duration_minutes,
       coalesce(o.recovery_minutes, st.recovery_minutes) AS recovery_minutes,
       coalesce(o.fasting_rule, st.fasting_rule) AS fasting_rule,
       st.modes, st.route, coalesce(o.prep_items, st.prep_items) AS prep_items
FROM clinics c
CROSS JOIN session_types st
LEFT JOIN session_type_overrides o ON o.code = st.code AND o.clinic_id = c.id;

-- The attention inbox: home sessions whose support person has not confirmed.
CREATE INDEX bookings_home_unconfirmed ON bookings (clinic_id, starts_at)
    WHERE mode = 'home' AND support_confirmed_at IS NULL AND status = 'booked';
