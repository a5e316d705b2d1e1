"""Envelope, event base class, the registry of event types and upcasting."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal
from uuid import UUID, uuid4

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from typing_extensions import TypeVar

_REGISTRY: dict[str, type[Event]] = {}
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class Event(BaseModel):
    """Base of every event payload: frozen, past tense, unknown fields ignored.

    Subclasses set `topic` (where the producing service publishes it) and may raise
    `schema_version` when their shape changes, registering an upcaster for the old one.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: ClassVar[str]
    schema_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            if cls.__name__ in _REGISTRY:
                raise TypeError(f"event type {cls.__name__} is defined twice")
            _REGISTRY[cls.__name__] = cls

    @classmethod
    def event_type(cls) -> str:
        return cls.__name__


class UnknownEvent(BaseModel):
    """Payload of an event type this code does not know (a newer producer): kept as data."""

    model_config = ConfigDict(frozen=True, extra="allow")


def event_types() -> dict[str, type[Event]]:
    """Every registered event type by name."""
    return dict(_REGISTRY)


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register a function turning a payload of `from_version` into `from_version + 1`."""

    def decorator(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return decorator


def _upcast(event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    model = _REGISTRY[event_type]
    while version < model.schema_version:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise ValueError(f"no upcaster for {event_type} v{version}")
        payload = step(payload)
        version += 1
    return payload


P = TypeVar("P", bound=BaseModel, default=BaseModel, covariant=True)
"""An envelope's payload type: `Envelope[SessionBooked]` types `.payload`; a bare `Envelope`
holds any payload (validated as the model its `event_type` names, as it always is)."""
E = TypeVar("E", bound=Event)


class _Metadata(BaseModel):
    """The fields every envelope carries around its payload (see `Envelope`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID = Field(default_factory=uuid4)
    event_type: str
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    producer: str
    clinic_id: UUID
    patient_id: UUID | None = None
    """The patient the event is about; None for network-level events (keyed by clinic)."""
    correlation_id: UUID
    causation_id: UUID | None = None

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class Envelope(_Metadata, Generic[P]):
    """The metadata every event carries, around its typed payload.

    `Envelope[SessionBooked]` is the type of a handler's argument; the consumer parses every
    event as a bare `Envelope` (the payload is the model its `event_type` names either way)."""

    payload: SerializeAsAny[P]

    @field_validator("payload", mode="before")
    @classmethod
    def _typed_payload(cls, value: Any, info: ValidationInfo) -> BaseModel:
        if isinstance(value, BaseModel):
            return value
        event_type = info.data.get("event_type")
        version = info.data.get("schema_version")
        if event_type is None or version is None:
            raise ValueError("payload needs a valid event_type and schema_version")
        if not isinstance(value, dict):
            raise ValueError("payload must be an object")
        model = _REGISTRY.get(event_type)
        if model is None:
            return UnknownEvent.model_validate(value)
        if version > model.schema_version:
            # a newer producer: fields we know are still there (additive changes only)
            return model.model_validate(value)
        return model.model_validate(_upcast(event_type, version, value))

    @classmethod
    def new(
        cls: type[Envelope[E]],
        payload: E,
        *,
        producer: str,
        clinic_id: UUID,
        patient_id: UUID | None,
        cause: Envelope[Any] | None = None,
        correlation_id: UUID | None = None,
    ) -> Envelope[E]:
        """Wrap `payload` in a new envelope; `cause` links it to the event that led to it."""
        event_id = uuid4()
        if cause is not None:
            correlation_id = cause.correlation_id
        elif correlation_id is None:  # the HTTP request or event being handled, if any
            correlation_id = current_correlation_id()
        # the payload is validated and every other field typed here (ids given as text are
        # made UUIDs): constructed without validating again
        clinic_id = clinic_id if isinstance(clinic_id, UUID) else UUID(str(clinic_id))
        if patient_id is not None and not isinstance(patient_id, UUID):
            patient_id = UUID(str(patient_id))
        if correlation_id is not None and not isinstance(correlation_id, UUID):
            correlation_id = UUID(str(correlation_id))
        return cls.model_construct(
            event_id=event_id,
            event_type=payload.event_type(),
            schema_version=payload.schema_version,
            occurred_at=datetime.now(UTC),
            producer=producer,
            clinic_id=clinic_id,
            patient_id=patient_id,
            correlation_id=correlation_id or event_id,
            causation_id=cause.event_id if cause else None,
            payload=payload,
        )

    @property
    def topic(self) -> str:
        """The topic its event type is published on (logical: without the prefix)."""
        if isinstance(self.payload, Event):
            return self.payload.topic
        raise ValueError(f"unknown event type {self.event_type} has no topic")

    @property
    def patient(self) -> UUID:
        """`patient_id` of an event about a patient (its producer always sets it); asked of a
        network-level event, a ValueError."""
        if self.patient_id is None:
            raise ValueError(f"{self.event_type} {self.event_id} names no patient")
        return self.patient_id

    @property
    def key(self) -> bytes:
        """The Kafka key: the patient, so that each patient's events stay ordered (the clinic
        for network-level events)."""
        return str(self.patient_id or self.clinic_id).encode()

    def to_bytes(self) -> bytes:
        """The JSON the outbox stores and the broker carries."""
        return self.model_dump_json().encode()


def current_correlation_id() -> UUID | None:
    """The correlation id of the request or event in hand: a consumer's is a UUID already, a
    request's is its header's text (None if that is no UUID)."""
    from shared.logs import context_field

    value = context_field("correlation_id")
    if value is None or isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return None


def parse_envelope(raw: bytes | str) -> Envelope[BaseModel]:
    """Parse and validate one event from the wire (raises `pydantic.ValidationError`).

    The JSON is validated once, straight into the payload model its `event_type` names, when
    that type is known and its `schema_version` needs no upcasting; anything else (an unknown
    type, an old version, bytes that fail) goes the general way, whose errors and upcasting
    are what a consumer dead-letters and reads. Both give equal envelopes."""
    model = _REGISTRY.get(_named_type(raw))
    if model is not None:
        try:
            return _as_envelope(_wire_model(model).model_validate_json(raw))
        except ValidationError:
            pass  # the general way says why, as it always has
    return Envelope.model_validate_json(raw)


_TYPE_IN_BYTES = re.compile(rb'"event_type"\s*:\s*"([A-Za-z0-9_]+)"')
_TYPE_IN_TEXT = re.compile(r'"event_type"\s*:\s*"([A-Za-z0-9_]+)"')
"""Where an event names its type: a guess (it may be a key inside the payload), which the
wire model's `Literal` event type confirms or refutes."""


def _named_type(raw: bytes | str) -> str:
    """The event type `raw` seems to name ("" if none)."""
    if isinstance(raw, bytes):
        in_bytes = _TYPE_IN_BYTES.search(raw)
        return in_bytes.group(1).decode() if in_bytes else ""
    in_text = _TYPE_IN_TEXT.search(raw)
    return in_text.group(1) if in_text else ""


@functools.cache
def _wire_model(model: type[Event]) -> type[_Metadata]:
    """The envelope of `model`'s events as they come at its current version or newer: the
    payload typed as `model` itself, so that the JSON is validated once (a bare `Envelope`
    makes a dict of the payload first, to choose its model)."""
    name = model.event_type()
    only_this: Any = Literal[name]  # a name known at run time
    return create_model(
        f"_Wire{name}", __base__=_Metadata,
        event_type=(only_this, ...),
        schema_version=(int, Field(ge=model.schema_version)),
        payload=(model, ...),
    )


_set = object.__setattr__


def _as_envelope(wire: _Metadata) -> Envelope[BaseModel]:
    """The bare `Envelope` holding a validated wire model's values: what `model_construct`
    does, without its lookups of aliases and defaults for each field (the values are complete
    and validated), which took 4-6 us an event, as long as validating it."""
    env = Envelope.__new__(Envelope)
    _set(env, "__dict__", wire.__dict__)
    _set(env, "__pydantic_fields_set__", wire.__pydantic_fields_set__)
    _set(env, "__pydantic_extra__", None)
    _set(env, "__pydantic_private__", None)
    return env
