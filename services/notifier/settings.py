"""Notifier settings (environment prefix `NOTIFIER_`)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore")
    service_name = "notifier"

    http_port: int = 8003
    quiet_hours_start: int = Field(21, ge=1, le=24)
    """Local hour from which no text goes out (TCPA: 21:00; 24 with end 0: no quiet hours)."""
    quiet_hours_end: int = Field(8, ge=0, le=23)
    """Local hour from which texts may go out again (TCPA: 08:00)."""
    online_code_key: str = ""
    """The key booking seals the verification codes with (`ONLINE_CODE_KEY`, the same for
    both: shared/sealed.py); without it no code can be opened, and none is sent."""
    dispatch_batch_size: int = Field(500, ge=1)
    """Texts a dispatcher claims in one batch (a paced Twilio sender's are fewer:
    `bootstrap.dispatch_batch_size`). 500, measured on the 5,000-text burst with 2
    instances (CPU per text and texts/s, alternating runs): 200 did 11,956-12,124 texts/s
    where 500 did 13,834-13,853; 1,000 was no better than 500. The benchmarks run with it."""
    dispatch_poll_seconds: float = 0.5
    stale_claim_seconds: float = Field(300.0, gt=0)
    """A text claimed this long ago without a provider id is released and sent (its
    dispatcher is stuck). A dead dispatcher's claims are released once its lease lapses."""
    dispatcher_lease_seconds: float = Field(15.0, gt=0, le=3600)
    """How long a dispatcher's lease (which owns its claims) lasts unless renewed; renewed
    every third of it. A dispatcher that dies (kill -9) has its claims released this long
    after its last renewal (and, for a text handed to Twilio, after the callback grace)."""
    callback_grace_seconds: float = Field(60.0, ge=0)
    """A dead dispatcher's text that was handed to Twilio waits this long for Twilio's status
    callback (which records it as sent) before it is released and sent again."""
    ops_late_text_seconds: float = Field(120.0, gt=0)
    """A text due longer ago than this and still not sent counts as late (ops status, alerts)."""
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    """With no Twilio credentials, texts are recorded locally instead of sent."""
    twilio_api_base_url: str = "https://api.twilio.com"
    """Where the Twilio API is (a Twilio-compatible server in tests)."""
    twilio_from_number: str = ""
    twilio_messaging_service_sid: str = ""
    """Send through a Messaging Service instead of one sender number."""
    twilio_timeout_seconds: float = 10.0
    twilio_segments_per_second: float = Field(1.0, gt=0, le=1000)
    """The sender's throughput (US long code ~1, toll-free 3, short code 100+): sending
    is paced to it, counting message segments."""
    sender_probe_seconds: float = Field(60.0, gt=0)
    """While sending is paused (an account or sender problem), one text is tried this often,
    so that a fix on Twilio's side resumes sending without a restart."""
    unreachable_marks_after: int = Field(3, ge=1)
    """Texts in a row that do not reach a number's handset (Twilio 30003) before the number
    is marked as one that cannot be texted."""
    retention_recorded_sms_days: float = Field(30.0, gt=0)
    """How long texts recorded by the local sender (no Twilio credentials) are kept."""
    retention_early_receipts_days: float = Field(1.0, gt=0)
    """How long a delivery receipt naming no text we know waits for its SID (one sent in
    the dispatcher's crash window whose text is never recorded)."""
    webhook_db_retry_seconds: float = Field(8.0, ge=0, le=12)
    """How long a Twilio webhook (a delivery receipt, a patient's text) keeps trying the
    database through a restart or failover before it answers 503. Twilio waits 15 s for an
    answer and does not send a receipt again, so a short outage is ridden out in the request."""
    webhook_held_max: int = Field(20_000, ge=0)
    """Twilio webhooks a process holds in memory, past that budget, to apply once the
    database is back (`services/notifier/held.py`); further ones are dropped and counted."""
    public_base_url: str = ""
    """How Twilio reaches this service (for status callbacks and checking signatures),
    e.g. https://notifier.example.org; empty: no status callbacks are asked for."""
    sender_name: str = Field("Clinic reminders", min_length=1, max_length=40)
    """Who answers HELP (and confirms an opt-out) from a number that is not one clinic
    network's: unknown, or shared by patients of several networks (e.g. the operator)."""
    sender_phone: str = Field("", max_length=20)
    """The phone number that answer gives for help (empty: "call your clinic")."""
