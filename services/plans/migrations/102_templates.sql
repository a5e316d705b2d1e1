-- The built-in plan templates (version 1). Clinics add their own versions through the API.
-- Sources: ../shared/DOMAIN.md (esketamine label schedule and REMS; IV/IM induction series;
-- KAP preparation/integration).
INSERT INTO plan_templates (code, version, clinic_id, definition) VALUES
('iv_induction', 1, NULL, '{
  "title": "IV ketamine: induction then maintenance", "modality": "iv_infusion",
  "stages": [{"name": "induction", "sessions": 6, "within_days": 21}],
  "maintenance_every_days": 28, "max_gap_days": 10}'),
('im_series', 1, NULL, '{
  "title": "IM ketamine series", "modality": "im_injection",
  "stages": [{"name": "induction", "sessions": 6, "within_days": 21}],
  "maintenance_every_days": 28, "max_gap_days": 10}'),
('esketamine_trd', 1, NULL, '{
  "title": "Esketamine, treatment-resistant depression", "modality": "esketamine_nasal",
  "stages": [{"name": "weeks 1-4, twice weekly", "sessions": 8, "within_days": 28},
             {"name": "weeks 5-8, weekly", "sessions": 4, "within_days": 28}],
  "maintenance_every_days": 14, "max_gap_days": 10, "rems": true, "rems_form_within_days": 7}'),
('esketamine_si', 1, NULL, '{
  "title": "Esketamine, depressive symptoms with suicidal ideation", "modality": "esketamine_nasal",
  "stages": [{"name": "weeks 1-4, twice weekly", "sessions": 8, "within_days": 28}],
  "maintenance_every_days": null, "max_gap_days": 7, "rems": true, "rems_form_within_days": 7}'),
('kap', 1, NULL, '{
  "title": "Ketamine-assisted psychotherapy", "modality": "oral_lozenge_kap",
  "stages": [{"name": "dosing sessions", "sessions": 3, "within_days": 60}],
  "maintenance_every_days": null, "max_gap_days": 30,
  "preparation_min": 3, "integration_min": 2, "integration_within_days": 2}');
