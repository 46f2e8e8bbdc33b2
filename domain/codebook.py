"""The code keys and the brand's Digital Link domain: parse scanned text, derive codes, URLs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from domain.codes import (
    CodeKey,
    CodeKind,
    ParsedCode,
    digital_link,
    issue_code,
    parse_scanned,
)


@dataclass(frozen=True)
class Codebook:
    keys: Mapping[int, CodeKey] = field(repr=False)
    current_key_id: int
    base_url: str

    def __post_init__(self) -> None:
        assert self.current_key_id in self.keys, "the current code key is in the key ring"

    @property
    def current_key(self) -> CodeKey:
        return self.keys[self.current_key_id]

    def parse(self, text: str) -> ParsedCode | None:
        """A genuine code from bare text or its Digital Link URL; None if forged or mistyped."""
        found = self.parse_with_gtin(text)
        return None if found is None else found[0]

    def parse_with_gtin(self, text: str) -> tuple[ParsedCode, str | None] | None:
        """Also the GTIN of the URL (None for bare text): the caller checks it is the batch's."""
        scanned = parse_scanned(text, self.keys, self.base_url)
        return None if scanned is None else (scanned.code, scanned.gtin)

    def outer_of(self, code: ParsedCode) -> str:
        """The outer code of the unit a consumer code belongs to (same batch and index)."""
        key = self.keys[code.key_id]
        return issue_code(key, code.batch_no, code.index, CodeKind.UNIT_OUTER)

    def url(self, gtin: str, serial: str) -> str:
        return digital_link(self.base_url, gtin, serial)

    def url_prefix(self, gtin: str) -> str:
        """``{base}/01/{gtin}/21/``: our serials use only URL-unreserved characters
        (base64url), so a code's URL is this prefix + the serial, with no encoding."""
        return digital_link(self.base_url, gtin, "A" * 20)[:-20]
