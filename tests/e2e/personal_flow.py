"""A channel with members who gave a phone and scanned with exact coordinates."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.channel import PartnerKind, PartnerSpec
from domain.handlers import channel
from domain.principal import hq_admin
from projections.store import Store
from tests.e2e.client import Api
from tests.e2e.flows import Channel, build_channel, consumer, to_store

ALICE = "wx-alice"
ALICE_PHONE = "13812345678"
BOB = "wx-bob"
BOB_PHONE = "13987654321"
# Distinctive digits, so that a search of every byte for them means something.
LAT, LNG = 31.230417, 121.473701
SECRETS_IN_CLEAR = (ALICE_PHONE, BOB_PHONE, "138****5678", "31.230417", "121.473701")


@dataclass
class PersonalData:
    channel: Channel
    members: dict[str, str] = field(default_factory=dict)  # external id -> member id


def scan_as(ch: Channel, unit: int, who: str, phone: str, scan_id: str) -> str:
    location = {"lat": LAT, "lng": LNG}
    body = {
        "scan_id": scan_id,
        "code": consumer(ch, unit),
        "member": {"external_id": who, "phone": phone},
        "location": location,
    }
    response = ch.api.post("/v1/scans", body, token=ch.tokens["gateway"])
    assert response.status_code == 200, response.text
    member_id = response.json()["member_id"]
    assert member_id
    return str(member_id)


def with_personal_data(api: Api) -> PersonalData:
    ch = build_channel(api, units=6, cases=2)
    to_store(ch)
    data = PersonalData(ch)
    data.members[ALICE] = scan_as(ch, 0, ALICE, ALICE_PHONE, "s-alice-1")
    data.members[BOB] = scan_as(ch, 1, BOB, BOB_PHONE, "s-bob-1")
    return data


def more_events(store: Store, count: int, tag: str) -> None:
    """About 2 x ``count`` events (partner registrations and their request records)."""
    for i in range(count):
        spec = PartnerSpec(
            code=f"{tag}{i}",
            kind=PartnerKind.DEALER,
            parent="HQ",
            name=f"dealer {tag}{i}",
            region_codes=("31",),
        )
        channel.register_partner(store.ledger, hq_admin(), spec)
