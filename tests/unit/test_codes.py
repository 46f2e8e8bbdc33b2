"""One item, one code: serial format, check digits, Digital Links."""

from __future__ import annotations

import itertools
import random
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import codes
from domain.codes import (
    BATCH_NO_LIMIT,
    BATCH_SIZE_MAX,
    CodeKey,
    CodeKind,
    DigitalLink,
    digital_link,
    gs1_check_digit,
    gtin_check_digit,
    is_valid_gtin14,
    is_valid_sscc,
    issue_code,
    iter_batch_codes,
    iter_unit_codes,
    normalize_gtin,
    parse_code,
    parse_digital_link,
    parse_scanned,
    sscc_check_digit,
    sscc_link,
    unit_codes,
)

# GS1 General Specifications, AI encodable character set 82, written out here
# on purpose rather than imported: the test must not trust the module's copy.
CSET_82 = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
URI_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Every CSET 82 character plus characters a scanner, a keyboard or a
# look-alike attack might produce.
LOOK_ALIKES = (
    "\u041e\u043e\u0406\u0456"  # Cyrillic O o I i
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a7"  # Greek
    "\uff10\uff11\uff4c"  # full-width 0 1 l
)
SUBSTITUTES = sorted(CSET_82 | set(" \t\n=+/~$#@[]{}|\\^`\x00") | set(LOOK_ALIKES))
BASE = "https://id.example-brand.cn"
GTIN = "04006381333931"
KEY = CodeKey(1, bytes(range(32)))
KEYS = {1: KEY}
KINDS = list(CodeKind)

secrets_st = st.binary(min_size=32, max_size=64)
key_ids = st.integers(0, 63)
batch_nos = st.integers(0, BATCH_NO_LIMIT - 1)
indices = st.integers(0, BATCH_SIZE_MAX - 1)
kinds = st.sampled_from(KINDS)


def sample_codes() -> list[str]:
    return [
        issue_code(KEY, 0, 0, CodeKind.UNIT_OUTER),
        issue_code(KEY, 12345, 678, CodeKind.UNIT_CONSUMER),
        issue_code(KEY, BATCH_NO_LIMIT - 1, BATCH_SIZE_MAX - 1, CodeKind.CASE),
    ]


# --- format and round trip -------------------------------------------------


def test_cset_82_is_the_gs1_set() -> None:
    assert len(CSET_82) == 82
    assert codes.CSET82 == CSET_82
    assert set(codes.ALPHABET) <= CSET_82
    assert len(set(codes.ALPHABET)) == 64


def test_known_answer_pins_the_format() -> None:
    key = CodeKey(0, bytes(range(32)))
    assert issue_code(key, 1, 2, CodeKind.UNIT_OUTER) == "AK2cb23HTfkj79AjOmbT"
    assert issue_code(key, 1, 2, CodeKind.UNIT_CONSUMER) == "AaUdFpT_b6adDAE-WY-p"
    assert issue_code(key, 1, 2, CodeKind.CASE) == "Agan32RmsLaB94c_z_K5"
    top = CodeKey(63, bytes(range(64)))
    assert issue_code(top, BATCH_NO_LIMIT - 1, BATCH_SIZE_MAX - 1, CodeKind.CASE) == (
        "_oFP-djDSPQ1LBFjh4LX"
    )


@settings(max_examples=150, deadline=None)
@given(secrets_st, key_ids, batch_nos, indices, kinds)
def test_round_trip(secret: bytes, key_id: int, batch_no: int, index: int, kind: CodeKind) -> None:
    key = CodeKey(key_id, secret)
    serial = issue_code(key, batch_no, index, kind)
    assert len(serial) <= 20
    assert set(serial) <= CSET_82
    assert set(serial) <= URI_UNRESERVED  # no percent-encoding in a Digital Link
    assert issue_code(key, batch_no, index, kind) == serial  # derivable again
    parsed = parse_code(serial, {key_id: key})
    assert parsed is not None
    assert (parsed.serial, parsed.key_id, parsed.kind) == (serial, key_id, kind)
    assert (parsed.batch_no, parsed.index) == (batch_no, index)


@settings(max_examples=60, deadline=None)
@given(secrets_st, key_ids, batch_nos, indices)
def test_unit_codes_are_distinct_per_kind(
    secret: bytes, key_id: int, batch_no: int, index: int
) -> None:
    key = CodeKey(key_id, secret)
    outer, consumer = unit_codes(key, batch_no, index)
    case = issue_code(key, batch_no, index, CodeKind.CASE)
    assert len({outer, consumer, case}) == 3
    # Tags differ; the sealed batch and index differ too (they are not
    # readable from one code to build the other).
    assert outer[-10:] != consumer[-10:]
    assert outer[1:10] != consumer[1:10]


def test_codes_are_unique_within_and_across_batches() -> None:
    seen = set()
    for batch_no in (0, 1, 2):
        for outer, consumer in iter_unit_codes(KEY, batch_no, 3000):
            seen.add(outer)
            seen.add(consumer)
    assert len(seen) == 3 * 3000 * 2


def test_other_key_gives_other_codes() -> None:
    other = CodeKey(1, bytes(range(1, 33)))
    assert issue_code(other, 5, 5, CodeKind.UNIT_OUTER) != issue_code(
        KEY, 5, 5, CodeKind.UNIT_OUTER
    )


def test_first_character_is_the_key_id() -> None:
    for key_id in (0, 1, 26, 63):
        serial = issue_code(CodeKey(key_id, b"k" * 32), 9, 9, CodeKind.CASE)
        assert serial[0] == codes.ALPHABET[key_id]


def test_batch_iterators_match_single_issue_and_stream() -> None:
    stream = iter_batch_codes(KEY, 77, 50, CodeKind.CASE, start=100)
    assert isinstance(stream, types.GeneratorType)
    assert list(stream) == [issue_code(KEY, 77, i, CodeKind.CASE) for i in range(100, 150)]
    pairs = list(iter_unit_codes(KEY, 77, 20, start=5))
    assert pairs == [unit_codes(KEY, 77, i) for i in range(5, 25)]
    last = list(iter_batch_codes(KEY, 1, 1, CodeKind.UNIT_OUTER, start=BATCH_SIZE_MAX - 1))
    assert parse_code(last[0], KEYS) is not None


@pytest.mark.parametrize(
    ("batch_no", "index"),
    [(-1, 0), (BATCH_NO_LIMIT, 0), (0, -1), (0, BATCH_SIZE_MAX)],
)
def test_out_of_range_positions_are_refused(batch_no: int, index: int) -> None:
    with pytest.raises(ValueError):
        issue_code(KEY, batch_no, index, CodeKind.UNIT_OUTER)
    with pytest.raises(ValueError):
        unit_codes(KEY, batch_no, index)


def test_batch_ranges_are_bounded() -> None:
    with pytest.raises(ValueError):
        list(iter_unit_codes(KEY, 0, BATCH_SIZE_MAX + 1))
    with pytest.raises(ValueError):
        list(iter_batch_codes(KEY, 0, 10, CodeKind.CASE, start=BATCH_SIZE_MAX - 5))
    with pytest.raises(ValueError):
        list(iter_batch_codes(KEY, 0, -1, CodeKind.CASE))


@pytest.mark.parametrize(
    ("key_id", "secret"),
    [(-1, b"k" * 32), (64, b"k" * 32), (0, b"k" * 31), (0, b"k" * 65)],
)
def test_bad_keys_are_refused(key_id: int, secret: bytes) -> None:
    with pytest.raises(ValueError):
        CodeKey(key_id, secret)


def test_secret_is_not_in_repr() -> None:
    assert bytes(range(32)).hex() not in repr(KEY)
    assert repr(bytes(range(32))) not in repr(KEY)


# --- refusal of forged, mistyped and variant codes ----------------------------


def test_every_single_character_substitution_is_refused() -> None:
    for serial in sample_codes():
        assert parse_code(serial, KEYS) is not None
        for position, substitute in itertools.product(range(len(serial)), SUBSTITUTES):
            variant = serial[:position] + substitute + serial[position + 1 :]
            if variant != serial:
                assert parse_code(variant, KEYS) is None, (serial, position, substitute)
                assert parse_scanned(variant, KEYS, BASE) is None or variant.strip() == serial


def test_deletions_insertions_and_transpositions_are_refused() -> None:
    for serial in sample_codes():
        for position in range(len(serial)):
            assert parse_code(serial[:position] + serial[position + 1 :], KEYS) is None
            for extra in "A0-_= ":
                assert parse_code(serial[:position] + extra + serial[position:], KEYS) is None
        for position in range(len(serial) - 1):
            swapped = (
                serial[:position] + serial[position + 1] + serial[position] + serial[position + 2 :]
            )
            if swapped != serial:
                assert parse_code(swapped, KEYS) is None


def test_case_variants_are_refused() -> None:
    for serial in sample_codes():
        for variant in (serial.upper(), serial.lower(), serial.swapcase()):
            if variant != serial:
                assert parse_code(variant, KEYS) is None
                assert parse_scanned(variant, KEYS, BASE) is None


def test_look_alike_variants_are_refused() -> None:
    look_alikes = {"0": "O", "O": "0", "1": "l", "l": "1", "I": "1", "S": "5", "B": "8"}
    for serial in sample_codes():
        for position, char in enumerate(serial):
            if char in look_alikes:
                variant = serial[:position] + look_alikes[char] + serial[position + 1 :]
                assert parse_code(variant, KEYS) is None


def test_padding_and_whitespace() -> None:
    serial = sample_codes()[1]
    for variant in (serial + "=", serial + "==", "=" + serial, " " + serial, serial + "\n"):
        assert parse_code(variant, KEYS) is None  # the strict parser: canonical text only
    for variant in (serial + "=", serial + "==", serial[:10] + " " + serial[10:]):
        assert parse_scanned(variant, KEYS, BASE) is None
    # The scan parser strips surrounding whitespace (scanner CR LF) and gives
    # back the same canonical code.
    for variant in (" " + serial, serial + "\r\n", "\t" + serial + " "):
        scanned = parse_scanned(variant, KEYS, BASE)
        assert scanned is not None
        assert scanned.code.serial == serial


def test_wrong_key_id_and_wrong_secret_are_refused() -> None:
    serial = issue_code(KEY, 3, 4, CodeKind.UNIT_CONSUMER)
    assert parse_code(serial, {}) is None
    assert parse_code(serial, {2: CodeKey(2, bytes(range(32)))}) is None
    assert parse_code(serial, {1: CodeKey(1, bytes(range(1, 33)))}) is None
    moved = codes.ALPHABET[2] + serial[1:]  # same body, claims key 2
    assert parse_code(moved, {1: KEY, 2: CodeKey(2, bytes(range(32)))}) is None


def test_key_rotation() -> None:
    old, new = CodeKey(1, b"o" * 32), CodeKey(2, b"n" * 32)
    old_code = issue_code(old, 10, 1, CodeKind.UNIT_CONSUMER)
    new_code = issue_code(new, 11, 1, CodeKind.UNIT_CONSUMER)
    both = {1: old, 2: new}
    old_parsed, new_parsed = parse_code(old_code, both), parse_code(new_code, both)
    assert old_parsed is not None
    assert old_parsed.key_id == 1
    assert new_parsed is not None
    assert new_parsed.key_id == 2
    assert parse_code(old_code, {2: new}) is None  # old key retired: its codes die
    assert parse_code(new_code, {2: new}) is not None


def test_random_forgeries_are_refused() -> None:
    rng = random.Random(20240601)
    for _ in range(20_000):
        forged = codes.ALPHABET[1] + "".join(rng.choices(codes.ALPHABET, k=19))
        assert parse_code(forged, KEYS) is None


def test_reserved_kind_and_impossible_index_are_refused_even_with_a_valid_tag() -> None:
    # _seal computes a genuine tag for any field values, so these prove the
    # parser's own range checks, not the MAC.
    assert parse_code(codes._seal(KEY, 3, 1, 1), KEYS) is None
    assert parse_code(codes._seal(KEY, 0, 1, BATCH_SIZE_MAX), KEYS) is None
    assert parse_code(codes._seal(KEY, 0, 1, BATCH_SIZE_MAX - 1), KEYS) is not None


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_never_crashes(text: str) -> None:
    assert parse_code(text, KEYS) is None
    assert parse_scanned(text, KEYS, BASE) is None


# --- GS1 check digits ----------------------------------------------------------


@pytest.mark.parametrize(
    "gtin",
    [
        "4006381333931",  # EAN-13 on a STABILO pen
        "00012345600012",  # GTIN-14 example
        "036000291452",  # UPC-A (GTIN-12)
        "96385074",  # EAN-8
        "6901234567892",  # EAN-13 with a China (690-699) prefix
    ],
)
def test_known_gtins(gtin: str) -> None:
    assert gtin_check_digit(gtin[:-1]) == int(gtin[-1])
    normalized = normalize_gtin(gtin)
    assert normalized == gtin.rjust(14, "0")
    assert is_valid_gtin14(normalized)


def test_known_check_digit_values() -> None:
    assert gtin_check_digit("400638133393") == 1
    assert gtin_check_digit("0001234560001") == 2
    assert sscc_check_digit("10614141234567890") == 8
    assert sscc_check_digit("37610425002123456") == 9


@pytest.mark.parametrize(
    "gtin",
    [
        "4006381333932",  # check digit off by one
        "00012345600013",
        "12345",  # no GTIN has 5 digits
        "0400638133393100",
        "4006381333931 ",
        " 4006381333931",
        "400638133393a",
        "+400638133393",
        "",
    ],
)
def test_invalid_gtins(gtin: str) -> None:
    assert normalize_gtin(gtin) is None
    assert not is_valid_gtin14(gtin)


def test_non_ascii_digits_are_not_digits() -> None:
    # Arabic-Indic digits that read as 00012345600012 to str.isdigit.
    arabic_indic = (
        "\u0660\u0660\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0660\u0660\u0660\u0661\u0662"
    )
    assert not is_valid_gtin14(arabic_indic)
    assert normalize_gtin(arabic_indic) is None
    with pytest.raises(ValueError):
        gs1_check_digit("\u0660\u0660\u0661")


@settings(max_examples=100, deadline=None)
@given(st.text("0123456789", min_size=13, max_size=13), st.integers(0, 12), st.integers(1, 9))
def test_mod10_catches_every_single_digit_error(body: str, position: int, delta: int) -> None:
    gtin = body + str(gtin_check_digit(body))
    assert is_valid_gtin14(gtin)
    wrong = gtin[:position] + str((int(gtin[position]) + delta) % 10) + gtin[position + 1 :]
    assert not is_valid_gtin14(wrong)


def test_sscc() -> None:
    assert is_valid_sscc("106141412345678908")
    assert is_valid_sscc("376104250021234569")
    assert not is_valid_sscc("106141412345678907")
    assert not is_valid_sscc("10614141234567890")
    with pytest.raises(ValueError):
        sscc_check_digit("1234")


# --- GS1 Digital Link ------------------------------------------------------------


def test_digital_link_format() -> None:
    outer, consumer = unit_codes(KEY, 1, 2)
    assert digital_link(BASE, "4006381333931", outer) == f"{BASE}/01/{GTIN}/21/{outer}"
    assert digital_link(BASE + "/", GTIN, consumer) == f"{BASE}/01/{GTIN}/21/{consumer}"
    assert digital_link(BASE, "96385074", "A/B!") == f"{BASE}/01/00000096385074/21/A%2FB%21"
    assert sscc_link(BASE, "106141412345678908") == f"{BASE}/00/106141412345678908"


@pytest.mark.parametrize(
    ("gtin", "serial", "base"),
    [
        ("4006381333932", "ABC", BASE),  # bad check digit
        (GTIN, "", BASE),
        (GTIN, "A" * 21, BASE),
        (GTIN, "A B", BASE),  # space is not CSET 82
        (GTIN, "A~B", BASE),  # ~ is not CSET 82
        (GTIN, "ABC", "ftp://id.example-brand.cn"),
        (GTIN, "ABC", "id.example-brand.cn"),
    ],
)
def test_digital_link_refuses_bad_input(gtin: str, serial: str, base: str) -> None:
    with pytest.raises(ValueError):
        digital_link(base, gtin, serial)


def test_digital_link_round_trip() -> None:
    for serial in [*sample_codes(), "A/B!", "x%y", "(21)\"'<>"]:
        url = digital_link(BASE, GTIN, serial)
        assert parse_digital_link(url, BASE) == DigitalLink(gtin=GTIN, serial=serial)
    assert parse_digital_link(sscc_link(BASE, "106141412345678908"), BASE) == DigitalLink(
        sscc="106141412345678908"
    )


def test_digital_link_parse_accepts_equivalent_forms() -> None:
    serial = sample_codes()[0]
    expected = DigitalLink(gtin=GTIN, serial=serial)
    escaped = "".join(f"%{ord(c):02x}" for c in serial)
    for url in [
        f"http://id.example-brand.cn/01/{GTIN}/21/{serial}",
        f"HTTPS://ID.Example-Brand.CN/01/{GTIN}/21/{serial}",
        f"{BASE}/01/4006381333931/21/{serial}",  # GTIN-13 in the path
        f"{BASE}/01/{GTIN}/21/{escaped}",  # percent-encoded, lower-case hex
        f"{BASE}/01/{GTIN}/21/{serial}?linkType=gs1:pip",
        f"{BASE}/01/{GTIN}/21/{serial}#top",
    ]:
        assert parse_digital_link(url, BASE) == expected, url
    prefixed = "https://brand.example.cn/id"
    assert parse_digital_link(f"{prefixed}/01/{GTIN}/21/{serial}", prefixed) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.cn/01/04006381333931/21/ABC",
        "https://id.example-brand.cn.evil.cn/01/04006381333931/21/ABC",
        "https://user@id.example-brand.cn/01/04006381333931/21/ABC",
        "https://id.example-brand.cn:8443/01/04006381333931/21/ABC",
        "ftp://id.example-brand.cn/01/04006381333931/21/ABC",
        "https://id.example-brand.cn/01/04006381333932/21/ABC",  # check digit
        "https://id.example-brand.cn/01/04006381333931/21/",
        "https://id.example-brand.cn/01/04006381333931/21/ABC/",
        "https://id.example-brand.cn/01/04006381333931/10/LOT1/21/ABC",
        "https://id.example-brand.cn//01/04006381333931/21/ABC",
        "https://id.example-brand.cn/01/04006381333931/21/" + "A" * 21,
        "https://id.example-brand.cn/01/04006381333931/21/A%20B",  # space
        "https://id.example-brand.cn/01/04006381333931/21/A%ZZ",  # broken escape
        "https://id.example-brand.cn/01/04006381333931/21/A%4",
        "https://id.example-brand.cn/01/04006381333931/21/%C3%A9",  # non-ASCII
        "https://id.example-brand.cn/00/106141412345678907",  # check digit
        "https://id.example-brand.cn/21/ABC",
        "https://[::1/01/04006381333931/21/ABC",
        "not a url",
    ],
)
def test_digital_link_parse_refuses(url: str) -> None:
    assert parse_digital_link(url, BASE) is None


def test_parse_scanned_bare_and_url() -> None:
    outer, consumer = unit_codes(KEY, 42, 7)
    bare = parse_scanned(consumer, KEYS, BASE)
    assert bare is not None
    assert bare.gtin is None
    assert (bare.code.kind, bare.code.batch_no, bare.code.index) == (
        CodeKind.UNIT_CONSUMER,
        42,
        7,
    )
    via_url = parse_scanned(digital_link(BASE, "4006381333931", outer) + "\r\n", KEYS, BASE)
    assert via_url is not None
    assert via_url.gtin == GTIN
    assert via_url.code.serial == outer
    assert via_url.code.kind is CodeKind.UNIT_OUTER
    forged = outer[:-1] + ("A" if outer[-1] != "A" else "B")
    assert parse_scanned(f"{BASE}/01/{GTIN}/21/{forged}", KEYS, BASE) is None
    assert parse_scanned(f"https://other.cn/01/{GTIN}/21/{outer}", KEYS, BASE) is None
    assert parse_scanned(sscc_link(BASE, "106141412345678908"), KEYS, BASE) is None
