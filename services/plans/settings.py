"""Plans service settings (environment prefix `PLANS_`)."""

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class PlansSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PLANS_", extra="ignore")
    service_name = "plans"

    http_port: int = 8002
    auto_create_plans: bool = True
    """Default for clinics without their own setting: start a plan when a dosing session is
    booked for a patient with none open."""
    timer_max_sleep_seconds: float = 5.0
    ops_overdue_timer_seconds: float = 120.0
    """A timer this long past its time and not fired counts as overdue (ops status, alerts)."""
