"""Booking service settings (environment prefix `BOOKING_`)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class BookingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BOOKING_", extra="ignore")
    service_name = "booking"

    http_port: int = 8001
    phone_regions: str = "US,CA"
    """Regions whose mobile numbers patients may give (E.164 is stored)."""
    horizon_days: int = 730
    """How far ahead a session may be booked (`BOOKING_HORIZON_DAYS`; default 2 years)."""
    admin_token: str = ""
    """Platform operator token for creating clinic networks (POST /clinics); empty disables it."""

    # staff sign-in (services/booking/staff.py)
    token_ttl_seconds: float = 900.0
    """How long a sign-in token is good for (the console refreshes it while in use)."""
    session_max_hours: float = 12.0
    """A signed-in session ends after this, in use or not (sign in again)."""
    enrolment_hours: float = 72.0
    """How long a new person's one-time enrolment code works."""
    sign_in_window_seconds: float = 900.0
    sign_in_max_account_failures: int = 5
    """Failed sign-ins per account within the window before further tries are refused (429)."""
    sign_in_max_address_failures: int = 20
    """Failed sign-ins per client address within the window before further tries are refused."""
    trusted_proxies: str = "127.0.0.1,::1"
    """Peers (the console: addresses or networks, comma-separated) whose X-Forwarded-For
    names the client address for the rate limit."""

    # online consultation booking (services/booking/online.py)
    online_code_pepper: str = ""
    """Secret mixed into the HMAC of the verification codes (with the request's id): set it
    so that a copy of the database alone cannot try the million codes."""
    online_code_key: str = ""
    """Key (Fernet: `python -c 'from shared.sealed import new_key; print(new_key())'`) the
    verification code is encrypted with on its way to the notifier; the notifier reads the
    same one (`ONLINE_CODE_KEY` for both). Empty: online booking answers 503 (`make run`
    and `make demo` generate one into .data)."""
    online_codes_per_number: int = 3
    """Codes one mobile number may be sent per hour."""
    online_codes_per_address: int = 10
    """Codes asked for from one address per hour."""
    online_codes_per_network: int = 200
    """Codes asked for on one network's page per hour."""
    online_lead_minutes: int = 60
    """How soon a consultation may start when booked online."""
