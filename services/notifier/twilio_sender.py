"""Sending through Twilio with the official SDK (its asyncio HTTP client: the event loop is
never blocked). Twilio's errors become `SendError`s of the class `twilio_errors` gives them,
which the dispatcher acts on (pause the sender, mark the number, fail the text, retry)."""

from __future__ import annotations

import asyncio
import logging

from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from services.notifier.senders import OutgoingSms, SendError, SmsSender
from services.notifier.settings import NotifierSettings
from services.notifier.twilio_errors import ErrorClass, classify

log = logging.getLogger(__name__)


def pause_key(settings: NotifierSettings) -> str:
    """What names the configured sender in `sender_pauses` (account and from number or
    messaging service; stored, never shown)."""
    sender = settings.twilio_messaging_service_sid or settings.twilio_from_number
    return f"twilio:{settings.twilio_account_sid}:{sender}"


class Pacer:
    """Spaces out sends so that a sender never exceeds its segments per second (Twilio
    queues, then fails, what comes faster)."""

    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self, segments: int = 1) -> bool:
        """Wait for the turn of `segments` more segments; return whether it had to."""
        queued = self._lock.locked()  # behind another text's wait
        async with self._lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            start = max(now, self._next)
            self._next = start + self.interval * segments
            if start > now:
                await asyncio.sleep(start - now)
                return True
            return queued


class TwilioSender(SmsSender):
    """`SmsSender` over Twilio's Messages API, paced per sender (`turn`)."""

    def __init__(self, settings: NotifierSettings):
        self.settings = settings
        self.pacer = Pacer(settings.twilio_segments_per_second)
        self.http = AsyncTwilioHttpClient(timeout=settings.twilio_timeout_seconds)
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                             http_client=self.http)
        self.client.api.base_url = settings.twilio_api_base_url.rstrip("/")
        self.status_callback = (f"{settings.public_base_url.rstrip('/')}/twilio/status"
                                if settings.public_base_url else None)
        self.pause_key = pause_key(settings)

    async def turn(self, segments: int) -> bool:
        return await self.pacer.wait(segments)

    async def send(self, sms: OutgoingSms) -> str:
        params = {"to": sms.to, "body": sms.body}
        if self.settings.twilio_messaging_service_sid:
            params["messaging_service_sid"] = self.settings.twilio_messaging_service_sid
        else:
            params["from_"] = self.settings.twilio_from_number
        # naming the text: its receipt can record it (crash window)
        if self.status_callback and sms.callback:
            params["status_callback"] = f"{self.status_callback}?text={sms.text_id}"
        try:
            message = await self.client.messages.create_async(**params)
        except TwilioRestException as exc:
            kind, meaning = classify(exc.code, exc.status)
            code = str(exc.code or exc.status)
            log.warning("Twilio refused text %d: %s (%s: %s)", sms.text_id, code, kind, meaning)
            raise SendError(code, meaning, kind) from None
        except (TimeoutError, OSError) as exc:
            # the request may or may not have reached Twilio: see the dispatcher's notes
            raise SendError("timeout", type(exc).__name__, ErrorClass.TRANSIENT) from None
        log.info("text %d handed to Twilio as %s", sms.text_id, message.sid)
        value: str = message.sid
        return value

    async def close(self) -> None:
        await self.http.close()
