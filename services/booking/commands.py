"""Commands the booking service carries out (imperative names), validated at the edge.

Times (`starts_at`) are accepted with a UTC offset, or without one as the site's local
wall-clock time."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, model_validator

from services.booking.online_rules import SLUG, SLUG_MAX
from shared.phones import contact_e164
from shared.sms import ADDRESS_MAX, CLINIC_NAME_MAX, JOIN_LINK_MAX, PREP_ITEMS_MAX, SITE_NAME_MAX
from shared.validation import RequestModel
from shared.zones import MAX_LENGTH, check_zone

Language = Literal["en", "fr", "es"]
Role = Literal["admin", "scheduler", "clinician", "ops", "read-only", "privacy"]
Mode = Literal["clinic", "phone", "video", "home"]
ContactPhone = Annotated[str, Field(min_length=3, max_length=40,
                                    description="A US (territories included) or Canadian number; "
                                                "stored in E.164"),
                         AfterValidator(contact_e164)]
TimeZone = Annotated[str, Field(max_length=MAX_LENGTH,
                                description="IANA zone of the US, Canada or a US territory, "
                                            "canonical name (e.g. America/Vancouver)"),
                     AfterValidator(check_zone)]


class _Command(RequestModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Hours(_Command):
    """Local opening (or working) hours on one ISO weekday (1 = Monday ... 7 = Sunday)."""

    weekday: int = Field(ge=1, le=7)
    opens: time
    closes: time

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.closes <= self.opens:
            raise ValueError("closes must be after opens")
        return self


WEEKDAYS_8_TO_6 = [Hours(weekday=d, opens=time(8), closes=time(18)) for d in range(1, 6)]


SMS_NAME = ("Short name for texts. Texts carry it (else the name, then checked the same way): "
            "no drug, procedure or diagnosis, the GSM-7 alphabet once accents are folded, at "
            "most {} characters (README: What texts carry)")


class AddClinic(_Command):
    name: str = Field(min_length=1, max_length=200)
    sms_name: str | None = Field(None, min_length=1, max_length=CLINIC_NAME_MAX,
                                 description=SMS_NAME.format(CLINIC_NAME_MAX))
    phone: ContactPhone
    slug: str | None = Field(None, min_length=3, max_length=SLUG_MAX, pattern=SLUG,
                             description="The public booking page's address, /book/<slug> "
                                         "(default: from the name)")


class IssueApiKey(_Command):
    role: Role
    label: str = Field(min_length=1, max_length=100)


class AddSite(_Command):
    name: str = Field(min_length=1, max_length=200)
    sms_name: str | None = Field(None, min_length=1, max_length=SITE_NAME_MAX,
                                 description=SMS_NAME.format(SITE_NAME_MAX))
    address: str = Field(min_length=1, max_length=ADDRESS_MAX,
                         description="Texts carry it: checked like `sms_name`")
    phone: ContactPhone
    timezone: TimeZone
    region: str | None = Field(None, pattern=r"^(US|CA)-[A-Z]{2}$",
                               description="State or province, ISO 3166-2 (e.g. US-FL, CA-QC)")
    default_language: Language = "en"
    hours: list[Hours] = Field(default_factory=lambda: list(WEEKDAYS_8_TO_6), max_length=50)


class AddClosure(_Command):
    MULTILINE = frozenset({"reason"})
    first_day: date
    last_day: date
    reason: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.last_day < self.first_day:
            raise ValueError("last_day is before first_day")
        return self


class AddRoom(_Command):
    site_id: UUID
    name: str = Field(min_length=1, max_length=100)


class WorkingHours(Hours):
    site_id: UUID


class AddProvider(_Command):
    name: str = Field(min_length=1, max_length=200)
    hours: list[WorkingHours] = Field(min_length=1, max_length=100)
    consultations: bool = Field(True, description="Takes the 15-minute phone or video "
                                                  "consultations booked online")


class UpdateProvider(_Command):
    consultations: bool = Field(description="Takes the 15-minute phone or video consultations "
                                            "booked online (from now on: booked ones stay)")


class OverrideSessionType(_Command):
    duration_minutes: int | None = Field(None, gt=0, le=24 * 60)
    recovery_minutes: int | None = Field(None, ge=0, le=24 * 60)
    fasting_rule: str | None = Field(None, max_length=100)


class RideContactIn(_Command):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40)
    sms_consent: bool = False


class RegisterPatient(_Command):
    given_name: str = Field(min_length=1, max_length=200)
    family_name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40, description="Mobile number, US or Canada")
    language: Language = "en"
    sms_consent: bool = False
    sms_consent_source: str | None = Field(None, max_length=200)
    ride_contact: RideContactIn | None = None
    timezone: TimeZone | None = Field(None, description="The patient's own time zone "
                                      "(default: their site's); remote visits' texts use it")


class SetPatientTimezone(_Command):
    timezone: TimeZone | None


class SupportPersonIn(_Command):
    """Who is with the patient during a home session (texted only if they consented)."""

    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40)
    sms_consent: bool = False


JOIN_LINK = (f"A remote visit's video link (https://...) or call-in number, at most "
             f"{JOIN_LINK_MAX} characters (texts carry it); default: the network's")


class SetRemoteWays(_Command):
    """How patients join remote visits, for the whole network."""

    call_in_phone: ContactPhone | None = Field(None, description="The number phone visits call")
    video_link_template: str | None = Field(
        None, min_length=9, max_length=JOIN_LINK_MAX,
        description="https link of video visits; {code} becomes the booking's code")


class SetPrepItems(_Command):
    """What a session type's prep texts say to bring, per language."""

    en: str = Field(min_length=1, max_length=PREP_ITEMS_MAX)
    fr: str = Field(min_length=1, max_length=PREP_ITEMS_MAX)
    es: str = Field(min_length=1, max_length=PREP_ITEMS_MAX)


class _Visit(_Command):
    """How a session is attended (the same for every session of a series)."""

    mode: Mode = Field("clinic", description="In clinic (a room), by phone or video, or at home")
    join_link: str | None = Field(None, min_length=3, max_length=JOIN_LINK_MAX,
                                  description=JOIN_LINK)
    support_person: SupportPersonIn | None = Field(
        None, description="Who is with the patient at home (required for mode home)")


class BookSession(_Visit):
    patient_id: UUID
    site_id: UUID
    session_type: str
    starts_at: datetime = Field(
        description="With a UTC offset, or the site's local wall-clock time"
    )
    room_id: UUID | None = Field(None, description="Default: the first free room at the site")
    provider_id: UUID | None = Field(None, description="Default: the first free provider")


class BookSeries(_Visit):
    patient_id: UUID
    site_id: UUID
    session_type: str
    starts_at: list[datetime] = Field(min_length=1, max_length=52)
    room_id: UUID | None = None
    provider_id: UUID | None = None


class RescheduleSession(_Command):
    starts_at: datetime
    room_id: UUID | None = None
    provider_id: UUID | None = None
    expected_version: int | None = Field(None, description="Refuse (409) if the booking changed")


class CancelSession(_Command):
    MULTILINE = frozenset({"reason"})
    reason: str = Field(min_length=1, max_length=500)


class UpdateRide(_Command):
    ride_status: Literal["unknown", "requested", "confirmed"]
    driver_name: str | None = Field(None, max_length=200)


class JoinWaitlist(_Command):
    patient_id: UUID
    site_id: UUID
    session_type: str
    window_start: AwareDatetime
    window_end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class AcceptOffer(_Command):
    patient_id: UUID


class AskForConsultation(_Command):
    """A visitor's request for a consultation: the code goes to `phone`."""

    starts_at: AwareDatetime = Field(description="One of the free slots' `starts_at`")
    mode: Literal["phone", "video"]
    given_name: str = Field(min_length=1, max_length=100)
    family_name: str = Field(min_length=1, max_length=100)
    phone: str = Field(min_length=3, max_length=40, description="Mobile number, US or Canada")
    language: Language = "en"
    timezone: TimeZone = Field(description="The visitor's time zone (times are shown in it)")
    consent: bool = Field(description="The consent checkbox: must be ticked")
    consent_version: str = Field(min_length=1, max_length=40,
                                 description="The version of the wording shown (shared/consent.py)")
    user_agent: str = Field("", max_length=500, description="The visitor's browser")


class CheckCode(_Command):
    code: str = Field(min_length=1, max_length=12)
