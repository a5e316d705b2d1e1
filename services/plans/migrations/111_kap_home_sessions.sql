-- Ketamine-assisted psychotherapy counts at-home supervised dosing sessions (issue 17) like
-- its in-clinic ones: version 2 of the built-in template (plans started on version 1 keep
-- their own copy).
INSERT INTO plan_templates (code, version, clinic_id, definition) VALUES
('kap', 2, NULL, '{
  "title": "Ketamine-assisted psychotherapy", "modality": "oral_lozenge_kap",
  "also_counts": ["home_low_dose"],
  "stages": [{"name": "dosing sessions", "sessions": 3, "within_days": 60}],
  "maintenance_every_days": null, "max_gap_days": 30,
  "preparation_min": 3, "integration_min": 2, "integration_within_days": 2}');
