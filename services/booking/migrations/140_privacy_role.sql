-- The `privacy` role (issue 20): a network's privacy officers read the audit trail
-- (GET /audit on every service) and nothing else.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check,
    ADD CONSTRAINT api_keys_role_check
        CHECK (role IN ('admin', 'scheduler', 'clinician', 'ops', 'read-only', 'privacy'));
ALTER TABLE staff DROP CONSTRAINT staff_role_check,
    ADD CONSTRAINT staff_role_check
        CHECK (role IN ('admin', 'scheduler', 'clinician', 'ops', 'read-only', 'privacy'));
