"""The project's own event mapper: msgspec JSON, stable topics, class_version upcasting.

Stored state is the event's fields (minus originator id and version, which the
store keeps in columns) as compact JSON. ``class_version`` is stored only when it
is above 1, and ``upcast_vN_vN+1`` static methods on the event class bring an old
dict forward before it is typed, exactly as eventsourcing's own Mapper does.

Personal fields: an event class may name ``personal_fields``; a ``FieldCipher``
given to the mapper encrypts those values (per member key) before encoding and
decrypts them after decoding. Without a cipher they are stored as given.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol
from uuid import UUID

import msgspec
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import get_topic, resolve_topic

_BASE_FIELDS = frozenset({"originator_id", "originator_version"})


class FieldCipher(Protocol):
    def encrypt_fields(self, event_cls: type, state: dict[str, Any]) -> None: ...

    def decrypt_fields(self, event_cls: type, state: dict[str, Any]) -> None: ...

    def prefetch(self, subjects: Iterable[str]) -> None:
        """Fetch these subjects' keys together (before decrypting many events)."""
        ...

    def sealing(self, created: Iterable[str] = ()) -> AbstractContextManager[Sealing]:
        """While open (this thread), rows the encryption needs written (a new subject's
        key) are listed instead: the caller writes them in its events' transaction.
        ``created``: subjects these events create, which the caller knows to have no
        key yet (a new key is made without looking for one)."""
        ...


class Sealing(Protocol):
    """What one command's encryption needs written with its events."""

    @property
    def writes(self) -> Sequence[tuple[str, tuple[Any, ...]]]: ...

    def committed(self) -> None:
        """Called once ``writes`` are stored with the events."""
        ...


class MsgspecTranscoder(Transcoder):
    """Encodes plain dicts (and UUID, datetime, tuples...) as compact JSON."""

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes) -> Any:
        return self._decoder.decode(data)


class _EventCodec:
    """Per event class: a msgspec Struct type for its state and its upcasters."""

    def __init__(self, cls: type) -> None:
        hints = typing.get_type_hints(cls)
        specs: list[tuple[Any, ...]] = []
        for f in dataclasses.fields(cls):
            if f.name in _BASE_FIELDS:
                continue
            if f.default is not dataclasses.MISSING:
                specs.append((f.name, hints[f.name], f.default))
            else:
                specs.append((f.name, hints[f.name]))
        self.cls = cls
        # Fields in the class's order (keyword-only, so defaults may come before required
        # ones): ``asdict`` of a decoded state is then the event's ``__dict__`` as is.
        self.state_type = msgspec.defstruct(f"{cls.__qualname__}State", specs, kw_only=True)
        self.fields = tuple(s[0] for s in specs)
        self.class_version: int = getattr(cls, "class_version", 1)
        self.decoder = msgspec.json.Decoder(self.state_type)
        self.has_personal = bool(getattr(cls, "personal_fields", ()))


class EventMapper(Mapper[UUID]):
    def __init__(self, cipher: FieldCipher | None = None) -> None:
        super().__init__(transcoder=MsgspecTranscoder())
        self.field_cipher = cipher
        self._codecs: dict[type, _EventCodec] = {}
        self._raw = msgspec.json.Decoder()
        self._encoder = msgspec.json.Encoder()

    def _codec(self, cls: type) -> _EventCodec:
        codec = self._codecs.get(cls)
        if codec is None:
            codec = self._codecs[cls] = _EventCodec(cls)
        return codec

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        cls = type(domain_event)
        codec = self._codec(cls)
        state = {name: getattr(domain_event, name) for name in codec.fields}
        if codec.class_version > 1:
            state["class_version"] = codec.class_version
        if codec.has_personal and self.field_cipher is not None:
            self.field_cipher.encrypt_fields(cls, state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(cls),
            state=self._encoder.encode(state),
        )

    def decode_state(self, stored_event: StoredEvent) -> tuple[type, dict[str, Any]]:
        """The event's class and its upcast state as plain JSON values (no typing)."""
        cls = resolve_topic(stored_event.topic)
        codec = self._codec(cls)
        raw: dict[str, Any] = self._raw.decode(stored_event.state)
        from_version = raw.pop("class_version", 1)
        while from_version < codec.class_version:
            upcast: Callable[[dict[str, Any]], None] = getattr(
                cls, f"upcast_v{from_version}_v{from_version + 1}"
            )
            upcast(raw)
            from_version += 1
        return cls, raw

    def prefetch_keys(self, stored_events: Iterable[StoredEvent]) -> None:
        """Ask the cipher for the keys of every subject these events' personal fields are
        sealed for, in one go (decoding a batch otherwise fetches them one at a time)."""
        if self.field_cipher is None:
            return
        subjects: set[str] = set()
        for stored in stored_events:
            cls = resolve_topic(stored.topic)
            if not self._codec(cls).has_personal:
                continue
            subject = self._raw.decode(stored.state).get(getattr(cls, "subject_field", ""))
            if subject is not None:
                subjects.add(str(subject))
        if subjects:
            self.field_cipher.prefetch(subjects)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = resolve_topic(stored_event.topic)
        codec = self._codec(cls)
        try:
            if codec.class_version == 1 and (not codec.has_personal or self.field_cipher is None):
                # Nothing to upcast or decrypt: the JSON decodes straight into the typed
                # state (a stray ``class_version`` key is ignored, as the upcasting loop
                # would). Most events take this path; it decodes in one pass.
                typed = codec.decoder.decode(stored_event.state)
            else:
                cls, raw = self.decode_state(stored_event)
                if codec.has_personal and self.field_cipher is not None:
                    self.field_cipher.decrypt_fields(cls, raw)
                typed = msgspec.convert(raw, codec.state_type)
        except (msgspec.DecodeError, msgspec.ValidationError, AttributeError) as e:
            msg = (
                f"cannot decode stored event {stored_event.topic} "
                f"{stored_event.originator_id}@{stored_event.originator_version}: {e}"
            )
            raise MapperDeserialisationError(msg) from e
        state = msgspec.structs.asdict(typed)
        originator_id = stored_event.originator_id
        state["originator_id"] = (
            originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        )
        state["originator_version"] = stored_event.originator_version
        event: Any = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event
