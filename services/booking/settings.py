"""Booking service settings (environment prefix `BOOKING_`)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class BookingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BOOKING_", extra="ignore")
    service_name = "booking"

    http_port: int = 8001
    phone_regions: str = "US,CA"
    """Regions whose mobile numbers patients may give (E.164 is stored)."""
    admin_token: str = ""
    """Platform operator token for creating clinic networks (POST /clinics); empty disables it."""
