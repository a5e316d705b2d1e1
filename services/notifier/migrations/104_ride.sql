-- Whether the ride home after a dosing session is arranged (from booking's events).
ALTER TABLE appointments ADD COLUMN ride_status text NOT NULL DEFAULT 'unknown';
