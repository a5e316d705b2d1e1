"""Every Kafka topic in one place."""

BOOKING_EVENTS = "booking.events"
PLANS_EVENTS = "plans.events"
NOTIFIER_EVENTS = "notifier.events"

EVENT_TOPICS = (BOOKING_EVENTS, PLANS_EVENTS, NOTIFIER_EVENTS)


def dlq(topic: str) -> str:
    """The dead-letter topic of `topic`."""
    return f"{topic}.dlq"


ALL_TOPICS = EVENT_TOPICS + tuple(dlq(t) for t in EVENT_TOPICS)
