"""Settings read from the environment: yes/no words, and a clear refusal of others."""

from __future__ import annotations

import pytest

from api.settings import Settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("", True), ("1", True), ("true", True), ("On", True),
     ("0", False), ("false", False), (" NO ", False), ("off", False)],
)  # fmt: skip
def test_verify_at_start_reads_yes_and_no(value: str | None, expected: bool) -> None:
    env = {} if value is None else {"SIYU_AUDIT_VERIFY_AT_START": value}
    assert Settings.from_env(env).audit_verify_at_start is expected


def test_a_word_that_is_neither_yes_nor_no_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="not a yes/no setting: 'sometimes'"):
        Settings.from_env({"SIYU_AUDIT_VERIFY_AT_START": "sometimes"})
