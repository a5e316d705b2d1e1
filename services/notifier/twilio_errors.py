"""Twilio's error codes by what they mean for the notifier, as an explicit table with sources
(Twilio's error dictionary, https://www.twilio.com/docs/api/errors/<code>). The same table
classifies the errors of the Messages API and the `ErrorCode` of delivery receipts.

- `sender`: the account or the sender is at fault (credentials, suspended account, a from
  number or messaging service not ours, trial limits, unregistered sender): sending pauses
  for the sender, texts stay pending, nobody's number is marked.
- `number`: the number cannot be texted: it is marked, for every patient who has it.
- `message`: this text was refused (content, size, filtering): it fails, nothing is marked.
- `transient`: retried with backoff. 30003 (unreachable handset) becomes a number problem
  once it repeats (`NotifierSettings.unreachable_marks_after` times in a row to a number).
- `unknown` (a code not in the table): retried `UNKNOWN_ATTEMPTS` times in all, then that
  text fails; the number is never marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorClass(StrEnum):
    SENDER = "sender"
    NUMBER = "number"
    MESSAGE = "message"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class TwilioError:
    """One code of Twilio's error dictionary: its class and what it means, in short."""

    code: int
    kind: ErrorClass
    meaning: str

    @property
    def source(self) -> str:
        return f"https://www.twilio.com/docs/api/errors/{self.code}"


UNREACHABLE = 30003
"""Unreachable handset: transient until it repeats to the same number."""
UNKNOWN_ATTEMPTS = 3
"""Attempts in all for a text refused with a code this table does not know."""

_S, _N, _M, _T = ErrorClass.SENDER, ErrorClass.NUMBER, ErrorClass.MESSAGE, ErrorClass.TRANSIENT
CODES: dict[int, TwilioError] = {e.code: e for e in (
    # the account or the sender: pause sending for the sender
    TwilioError(20003, _S, "authentication failed (account SID or auth token)"),
    TwilioError(20005, _S, "account not active"),
    TwilioError(10001, _S, "account not active"),
    TwilioError(30002, _S, "account suspended"),
    TwilioError(20404, _S, "resource not found (account SID or messaging service)"),
    TwilioError(21601, _S, "from number is not an SMS-capable number of this account"),
    TwilioError(21606, _S, "from number is not a message-capable Twilio number of this account"),
    TwilioError(21659, _S, "from is not a Twilio phone number"),
    TwilioError(21212, _S, "invalid from number"),
    TwilioError(21608, _S, "trial account: the to number is not verified"),
    TwilioError(21219, _S, "trial account: the to number is not verified"),
    TwilioError(21408, _S, "sending to this region is not enabled for the account"),
    TwilioError(30032, _S, "toll-free sender not verified"),
    TwilioError(30034, _S, "US A2P 10DLC: sender number not registered"),
    # the number: mark it
    TwilioError(21211, _N, "invalid number"),
    TwilioError(21614, _N, "not a mobile number"),
    TwilioError(21635, _N, "to number is a landline"),
    TwilioError(21612, _N, "cannot route to this number"),
    TwilioError(21610, _N, "unsubscribed (the number replied STOP to this sender)"),
    TwilioError(21265, _N, "to number is a short code"),
    TwilioError(21266, _N, "to number is the sender's own number"),
    TwilioError(21268, _N, "premium rate or information service number"),
    TwilioError(30005, _N, "unknown destination handset"),
    TwilioError(30006, _N, "landline or unreachable carrier"),
    # this message: fail it, mark nothing
    TwilioError(21617, _M, "message body too long"),
    TwilioError(21602, _M, "message body is required"),
    TwilioError(30007, _M, "filtered by the carrier (content or sender)"),
    TwilioError(30004, _M, "message blocked (by the recipient or a carrier)"),
    TwilioError(30019, _M, "content size exceeds the carrier's limit"),
    # passing: retry with backoff
    TwilioError(20429, _T, "too many requests"),
    TwilioError(20500, _T, "Twilio internal error"),
    TwilioError(20503, _T, "Twilio service unavailable"),
    TwilioError(21611, _T, "the from number's queue is full"),
    TwilioError(21730, _T, "Twilio under maintenance"),
    TwilioError(14107, _T, "send rate limit between two numbers exceeded"),
    TwilioError(30001, _T, "queue overflow"),
    TwilioError(UNREACHABLE, _T, "unreachable handset"),
    TwilioError(30008, _T, "unknown error (carrier)"),
    TwilioError(30022, _T, "US A2P 10DLC: rate limit exceeded"),
)}


def classify(code: int | str | None, http_status: int | None = None) -> tuple[ErrorClass, str]:
    """The class and meaning of a Twilio error `code` (an API error's or a receipt's), or of
    its HTTP status when it has no code we know: 429 and 5xx are transient, 401 and 403 the
    sender's; anything else is unknown."""
    if isinstance(code, str):
        code = int(code) if code.isdigit() else None
    known = CODES.get(code) if code is not None else None
    if known is not None:
        return known.kind, known.meaning
    if http_status is not None:
        if http_status == 429 or http_status >= 500:
            return ErrorClass.TRANSIENT, f"HTTP {http_status}"
        if http_status in (401, 403):
            return ErrorClass.SENDER, f"HTTP {http_status} (credentials or permissions)"
    return ErrorClass.UNKNOWN, "not in the notifier's table of Twilio codes"
