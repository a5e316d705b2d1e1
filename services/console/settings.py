"""Console settings (environment prefix `CONSOLE_`)."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")
    service_name = "console"

    http_port: int = 8004
    booking_url: str = "http://127.0.0.1:8001"
    plans_url: str = "http://127.0.0.1:8002"
    notifier_url: str = "http://127.0.0.1:8003"
    service_timeout_seconds: float = 10.0
    idle_minutes: float = Field(15.0, gt=0)
    """A session with no action for this long is signed out (HIPAA automatic logoff)."""
    token_refresh_seconds: float = Field(420.0, gt=0)
    """A person's sign-in token is refreshed from booking once it has less than this to live."""
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    """auto: cookies are Secure (and `__Host-` named) unless the console is reached on
    localhost or 127.0.0.1 over plain HTTP."""
    trusted_proxies: str = ""
    """Peers (a reverse proxy: addresses or networks) whose X-Forwarded-For names the
    browser's address (for the sign-in rate limit per address)."""
    live_poll_seconds: float = Field(15.0, gt=0)
    """How often an open live stream checks that its session is still signed in."""
