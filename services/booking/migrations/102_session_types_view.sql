-- A clinic network's session types: the defaults with its overrides applied, in one place
-- for every query that needs them.
CREATE VIEW clinic_session_types AS
SELECT c.id AS clinic_id, st.code, st.is_dosing,
       coalesce(o.duration_minutes, st.duration_minutes) AS duration_minutes,
       coalesce(o.recovery_minutes, st.recovery_minutes) AS recovery_minutes,
       coalesce(o.fasting_rule, st.fasting_rule) AS fasting_rule
FROM clinics c
CROSS JOIN session_types st
LEFT JOIN session_type_overrides o ON o.code = st.code AND o.clinic_id = c.id;
