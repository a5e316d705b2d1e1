"""Commands the booking service carries out (imperative names), validated at the edge."""

from __future__ import annotations

from typing import Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

Language = Literal["en", "fr", "es"]


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class AddClinic(_Command):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40)


class AddSite(_Command):
    clinic_id: UUID
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=500)
    phone: str = Field(min_length=3, max_length=40)
    timezone: str
    default_language: Language = "en"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA time zone, e.g. America/Vancouver") from None
        return value


class RegisterPatient(_Command):
    clinic_id: UUID
    given_name: str = Field(min_length=1, max_length=200)
    family_name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40, description="Mobile number, US or Canada")
    language: Language = "en"
    sms_consent: bool = False
    sms_consent_source: str | None = Field(None, max_length=200)


class BookSession(_Command):
    patient_id: UUID
    site_id: UUID
    session_type: str
    starts_at: AwareDatetime = Field(description="Start time with an explicit UTC offset")
