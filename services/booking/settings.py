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
