"""Notifier settings (environment prefix `NOTIFIER_`)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore")
    service_name = "notifier"

    http_port: int = 8003
    quiet_hours_start: int = 21
    """Local hour from which no text goes out (TCPA: 21:00)."""
    quiet_hours_end: int = 8
    """Local hour from which texts may go out again (TCPA: 08:00)."""
    dispatch_batch_size: int = 200
    dispatch_poll_seconds: float = 0.5
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    """With no Twilio credentials, texts are recorded locally instead of sent."""
