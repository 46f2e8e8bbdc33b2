"""One item, one code: the serial format, GS1 check digits and Digital Links.

Pure and standard-library only. The byte-by-byte format, the forgery bound and
the reasons behind them are in docs/code-format.md; in short, a serial is 20
characters of the RFC 4648 base64url alphabet (all inside GS1 CSET 82 and all
URI-unreserved) holding 120 bits:

    key_id:6 | kind:2 | (batch_no:28 | index:24) XOR pad:52 | tag:60

tag = BLAKE2b-MAC(tag key, key_id | kind | batch_no | index) truncated to 60
bits; pad = BLAKE2b-PRF(pad key, key_id | kind | tag). The pad hides batch
sizes and the pairing of a unit's two codes (a deterministic SIV
construction); the tag makes every code checkable without a stored row.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SERIAL_LENGTH = 20  # GS1 AI (21) allows at most 20 characters.
KEY_ID_COUNT = 64  # 6 bits: the first serial character is the key id.
BATCH_NO_LIMIT = 1 << 28  # 268,435,456 batches (see docs for why enough).
BATCH_SIZE_MAX = 10_000_000  # Codes per batch; indices use 24 bits.
TAG_BITS = 60
SECRET_LENGTH_MIN = 32
SECRET_LENGTH_MAX = 64  # BLAKE2b key limit.

_INDEX_BITS = 24
_SEALED_BITS = 28 + _INDEX_BITS  # batch_no and index, encrypted together.
_TAG_MASK = (1 << TAG_BITS) - 1
_SEALED_MASK = (1 << _SEALED_BITS) - 1
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_SERIAL_BYTES = 15  # 120 bits = 20 base64 characters, no padding, no slack.
_PERSON = b"siyu-code-v1"

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SERIAL_RE = re.compile(f"[A-Za-z0-9_-]{{{SERIAL_LENGTH}}}")

# GS1 AI encodable character set 82 (GS1 General Specifications, fig. 7.11-1).
CSET82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
# RFC 3986 unreserved characters: never percent-encoded in a Digital Link.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class CodeKind(enum.IntEnum):
    """What a code is printed on; the value is the 2-bit field in the serial."""

    UNIT_OUTER = 0  # on the pack: logistics, trace, authenticity
    UNIT_CONSUMER = 1  # hidden inside the cap: rewards
    CASE = 2  # on a case: logistics


@dataclass(frozen=True)
class CodeKey:
    """A code key: `key_id` is printed in every serial, `secret` never is."""

    key_id: int
    secret: bytes = field(repr=False)
    _tag_mac: hashlib.blake2b = field(init=False, repr=False, compare=False)
    _pad_prf: hashlib.blake2b = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.key_id < KEY_ID_COUNT:
            raise ValueError(f"key_id must be in [0, {KEY_ID_COUNT})")
        if not SECRET_LENGTH_MIN <= len(self.secret) <= SECRET_LENGTH_MAX:
            raise ValueError("secret must be 32 to 64 bytes")
        # Independent sub-keys for the MAC and the pad; keyed objects are made
        # once and `.copy()`-ed per code, which is what makes issuing cheap.
        tag_key = _derive(self.secret, b"tag", self.key_id)
        pad_key = _derive(self.secret, b"pad", self.key_id)
        object.__setattr__(self, "_tag_mac", hashlib.blake2b(key=tag_key, digest_size=8))
        object.__setattr__(self, "_pad_prf", hashlib.blake2b(key=pad_key, digest_size=7))

    @classmethod
    def generate(cls, key_id: int) -> CodeKey:
        return cls(key_id, secrets.token_bytes(SECRET_LENGTH_MIN))


def _derive(secret: bytes, label: bytes, key_id: int) -> bytes:
    return hashlib.blake2b(
        label + bytes([key_id]), key=secret, digest_size=32, person=_PERSON
    ).digest()


@dataclass(frozen=True)
class ParsedCode:
    serial: str  # the canonical text
    key_id: int
    kind: CodeKind
    batch_no: int
    index: int


def _seal(key: CodeKey, kind: int, batch_no: int, index: int) -> str:
    header = key.key_id << 2 | kind
    position = batch_no << _INDEX_BITS | index
    mac = key._tag_mac.copy()
    mac.update((header << _SEALED_BITS | position).to_bytes(8, "big"))
    tag = int.from_bytes(mac.digest(), "big") >> 4
    prf = key._pad_prf.copy()
    prf.update((header << 64 | tag).to_bytes(9, "big"))
    sealed = position ^ int.from_bytes(prf.digest(), "big") >> 4
    value = (header << _SEALED_BITS | sealed) << TAG_BITS | tag
    return base64.urlsafe_b64encode(value.to_bytes(_SERIAL_BYTES, "big")).decode("ascii")


def _check_position(batch_no: int, index: int) -> None:
    if not 0 <= batch_no < BATCH_NO_LIMIT:
        raise ValueError(f"batch_no must be in [0, {BATCH_NO_LIMIT})")
    if not 0 <= index < BATCH_SIZE_MAX:
        raise ValueError(f"index must be in [0, {BATCH_SIZE_MAX})")


def issue_code(key: CodeKey, batch_no: int, index: int, kind: CodeKind) -> str:
    """The serial of code `index` of batch `batch_no`: same inputs, same code."""
    _check_position(batch_no, index)
    return _seal(key, CodeKind(kind), batch_no, index)


def unit_codes(key: CodeKey, batch_no: int, index: int) -> tuple[str, str]:
    """(outer, consumer) serials of one unit."""
    _check_position(batch_no, index)
    return (
        _seal(key, CodeKind.UNIT_OUTER, batch_no, index),
        _seal(key, CodeKind.UNIT_CONSUMER, batch_no, index),
    )


def _check_range(batch_no: int, start: int, count: int) -> None:
    if count < 0 or start < 0 or start + count > BATCH_SIZE_MAX:
        raise ValueError(f"start + count must be in [0, {BATCH_SIZE_MAX}]")
    _check_position(batch_no, 0)


def iter_batch_codes(
    key: CodeKey, batch_no: int, count: int, kind: CodeKind, start: int = 0
) -> Iterator[str]:
    """Serials of one kind for indices start .. start+count-1, constant memory."""
    _check_range(batch_no, start, count)
    kind = CodeKind(kind)
    for index in range(start, start + count):
        yield _seal(key, kind, batch_no, index)


def iter_unit_codes(
    key: CodeKey, batch_no: int, count: int, start: int = 0
) -> Iterator[tuple[str, str]]:
    """(outer, consumer) serials for indices start .. start+count-1."""
    _check_range(batch_no, start, count)
    seal = _seal
    outer, consumer = CodeKind.UNIT_OUTER, CodeKind.UNIT_CONSUMER
    for index in range(start, start + count):
        yield seal(key, outer, batch_no, index), seal(key, consumer, batch_no, index)


def parse_code(text: str, keys: Mapping[int, CodeKey]) -> ParsedCode | None:
    """The code `text` names, or None if it is not exactly a genuine serial.

    Only the canonical text is accepted: no case folding, no whitespace, no
    look-alike mapping. Anything else, forged or mistyped, is refused, with
    at most 2**-60 chance per try of a forgery passing.
    """
    if _SERIAL_RE.fullmatch(text) is None:
        return None
    value = int.from_bytes(base64.urlsafe_b64decode(text), "big")
    header = value >> 112
    key_id, kind = header >> 2, header & 3
    key = keys.get(key_id)
    if key is None or kind > CodeKind.CASE:
        return None
    tag = value & _TAG_MASK
    prf = key._pad_prf.copy()
    prf.update((header << 64 | tag).to_bytes(9, "big"))
    position = (value >> TAG_BITS & _SEALED_MASK) ^ int.from_bytes(prf.digest(), "big") >> 4
    mac = key._tag_mac.copy()
    mac.update((header << _SEALED_BITS | position).to_bytes(8, "big"))
    expected = int.from_bytes(mac.digest(), "big") >> 4
    if not hmac.compare_digest(expected.to_bytes(8, "big"), tag.to_bytes(8, "big")):
        return None
    batch_no, index = position >> _INDEX_BITS, position & _INDEX_MASK
    if index >= BATCH_SIZE_MAX:  # a genuine tag never covers such an index
        return None
    return ParsedCode(text, key_id, CodeKind(kind), batch_no, index)


# --- GS1 check digits ------------------------------------------------------


def gs1_check_digit(body: str) -> int:
    """GS1 mod-10 check digit of `body` (all digits but the check digit)."""
    if not body.isascii() or not body.isdigit():
        raise ValueError("digits only")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return -total % 10


def _has_check_digit(digits: str, lengths: tuple[int, ...]) -> bool:
    return (
        len(digits) in lengths
        and digits.isascii()
        and digits.isdigit()
        and gs1_check_digit(digits[:-1]) == int(digits[-1])
    )


def gtin_check_digit(body: str) -> int:
    """Check digit for a GTIN-8/12/13/14 body of 7, 11, 12 or 13 digits."""
    if len(body) not in (7, 11, 12, 13):
        raise ValueError("a GTIN body has 7, 11, 12 or 13 digits")
    return gs1_check_digit(body)


def is_valid_gtin14(gtin: str) -> bool:
    return _has_check_digit(gtin, (14,))


def normalize_gtin(gtin: str) -> str | None:
    """GTIN-8/12/13/14 as 14 digits (left zero padded), None if invalid."""
    if not _has_check_digit(gtin, (8, 12, 13, 14)):
        return None
    return gtin.rjust(14, "0")


def sscc_check_digit(body: str) -> int:
    if len(body) != 17:
        raise ValueError("an SSCC body has 17 digits")
    return gs1_check_digit(body)


def is_valid_sscc(sscc: str) -> bool:
    return _has_check_digit(sscc, (18,))


# --- GS1 Digital Link --------------------------------------------------------


def is_gs1_serial(serial: str) -> bool:
    """1 to 20 characters of CSET 82: a valid GS1 AI (21) value."""
    return 1 <= len(serial) <= SERIAL_LENGTH and all(c in CSET82 for c in serial)


def _percent_encode(value: str) -> str:
    return "".join(c if c in _UNRESERVED else f"%{ord(c):02X}" for c in value)


def _clean_base(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("base_url must be an http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError("base_url takes no query or fragment")
    return base_url.rstrip("/")


def digital_link(base_url: str, gtin: str, serial: str) -> str:
    """`{base}/01/{GTIN-14}/21/{serial}` (unit outer, unit consumer or case)."""
    gtin14 = normalize_gtin(gtin)
    if gtin14 is None:
        raise ValueError(f"invalid GTIN: {gtin!r}")
    if not is_gs1_serial(serial):
        raise ValueError("a serial is 1 to 20 CSET 82 characters")
    return f"{_clean_base(base_url)}/01/{gtin14}/21/{_percent_encode(serial)}"


def sscc_link(base_url: str, sscc: str) -> str:
    """`{base}/00/{SSCC-18}` for a logistic unit."""
    if not is_valid_sscc(sscc):
        raise ValueError(f"invalid SSCC: {sscc!r}")
    return f"{_clean_base(base_url)}/00/{sscc}"


@dataclass(frozen=True)
class DigitalLink:
    """A parsed brand Digital Link: either gtin and serial, or sscc."""

    gtin: str | None = None  # always 14 digits
    serial: str | None = None
    sscc: str | None = None


_PERCENT_RE = re.compile(r"%([0-9A-Fa-f]{2})")


def _percent_decode(segment: str) -> str | None:
    if "%" in _PERCENT_RE.sub("", segment):
        return None  # a stray "%" not followed by two hex digits
    decoded = _PERCENT_RE.sub(lambda m: chr(int(m.group(1), 16)), segment)
    return decoded if decoded.isascii() else None


def parse_digital_link(url: str, base_url: str) -> DigitalLink | None:
    """Parse a Digital Link on the brand's base URL; None if it is not one.

    http and https are both accepted, the host compares case-insensitively,
    a query string or fragment is ignored, path segments are percent-decoded
    (GS1 DL 1.x), a GTIN-8/12/13 is padded to 14 digits, check digits must
    hold, and the serial must be 1 to 20 CSET 82 characters.
    """
    base = urlsplit(_clean_base(base_url))
    try:
        parts = urlsplit(url)
        port, base_port = parts.port, base.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    if (parts.hostname, port) != (base.hostname, base_port) or parts.username:
        return None
    prefix = base.path.rstrip("/")
    if not parts.path.startswith(prefix + "/"):
        return None
    segments = [_percent_decode(s) for s in parts.path[len(prefix) + 1 :].split("/")]
    if any(s is None for s in segments):
        return None
    decoded = [s for s in segments if s is not None]
    if len(decoded) == 2 and decoded[0] == "00":
        return DigitalLink(sscc=decoded[1]) if is_valid_sscc(decoded[1]) else None
    if len(decoded) == 4 and decoded[0] == "01" and decoded[2] == "21":
        gtin14 = normalize_gtin(decoded[1])
        if gtin14 is None or not is_gs1_serial(decoded[3]):
            return None
        return DigitalLink(gtin=gtin14, serial=decoded[3])
    return None


@dataclass(frozen=True)
class ScannedCode:
    """A genuine code as scanned: `gtin` is the URL's GTIN, None if bare.

    The caller must check that `gtin` is the GTIN of the batch's product (or
    case GTIN): the serial authenticates the code, not the URL's GTIN.
    """

    code: ParsedCode
    gtin: str | None


def parse_scanned(text: str, keys: Mapping[int, CodeKey], base_url: str) -> ScannedCode | None:
    """A bare serial or its Digital Link -> the genuine code, else None.

    Surrounding whitespace (scanner suffixes such as CR LF) is stripped; that
    is the only normalisation besides URL percent-decoding.
    """
    stripped = text.strip(" \t\r\n")
    if len(stripped) > 2048:
        return None
    if not stripped.lower().startswith(("http://", "https://")):
        code = parse_code(stripped, keys)
        return None if code is None else ScannedCode(code, None)
    link = parse_digital_link(stripped, base_url)
    if link is None or link.serial is None:
        return None
    code = parse_code(link.serial, keys)
    return None if code is None else ScannedCode(code, link.gtin)
