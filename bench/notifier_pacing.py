"""Paced sending: several senders (TwilioSender, the official SDK) at their own rates, all
at once against the local Twilio-compatible server, each handed all its texts at once (as
the dispatcher does), one text in three two segments long. The rate each sender reaches
(segments per second, as the server received them) against the rate it was configured
with; within 5% is the target.

Usage: python -m bench.notifier_pacing [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio

from bench.common import judge
from devstack.fake_twilio import FakeTwilio
from services.notifier.senders import OutgoingSms
from services.notifier.settings import NotifierSettings
from services.notifier.templates import segments
from services.notifier.twilio_sender import TwilioSender

RATES = {"+15005550001": 3.0, "+15005550002": 10.0, "+15005550003": 30.0}
"""Segments per second of each sender: toll-free, and two higher-throughput senders."""
SHORT, LONG = "See you tomorrow at 10:00 AM.", "x" * 200  # one and two segments


async def send_all(twilio: FakeTwilio, number: str, rate: float, seconds: float) -> None:
    sender = TwilioSender(NotifierSettings(
        twilio_account_sid=twilio.account_sid, twilio_auth_token=twilio.auth_token,
        twilio_api_base_url=twilio.url, twilio_from_number=number,
        twilio_segments_per_second=rate))
    try:
        bodies = [LONG if i % 3 == 2 else SHORT for i in range(int(rate * seconds * 3 / 4))]

        async def send(text_id: int, body: str) -> None:
            await sender.turn(segments(body))  # as the dispatcher does
            await sender.send(OutgoingSms(text_id, "+16045550177", body))

        await asyncio.gather(*(send(i, body) for i, body in enumerate(bodies)))
    finally:
        await sender.close()


def reached(requests: list[dict]) -> float:
    """Segments per second from the first request to the last (the last one's segments
    are sent after that moment, so they do not count)."""
    times = [r["received_at"] for r in requests]
    return sum(segments(r["Body"]) for r in requests[:-1]) / (times[-1] - times[0])


async def main(seconds: float) -> bool:
    twilio = FakeTwilio()
    await twilio.start()
    try:
        await asyncio.gather(*(send_all(twilio, number, rate, seconds)
                               for number, rate in RATES.items()))
    finally:
        await twilio.stop()
    print(f"\n== paced sending, {len(RATES)} senders at once for about {seconds:.0f} s"
          " (fake Twilio server)")
    ok = True
    for number, rate in RATES.items():
        got = reached([r for r in twilio.sent() if r["From"] == number])
        ratio = got / rate
        met = judge(f"pacing of sender {number}, off its rate by", abs(ratio - 1), 0.05, "",
                    at_most=True)
        ok &= met
        print(f"   sender {number}: {got:6.2f} segments/s, configured {rate:5.1f}: {ratio:.3f}x"
              f" (target within 5%: {'met' if met else 'NOT met'})")
    return ok


def run(argv=None) -> bool:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args, _ = parser.parse_known_args(argv)
    return asyncio.run(main(args.seconds))


if __name__ == "__main__":
    raise SystemExit(0 if run() else 1)
