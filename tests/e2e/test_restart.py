"""Data and minted tokens survive a restart of the server (a real ``siyu serve`` process)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.e2e.client import dealer, store_body
from tests.e2e.test_cli import CLEAN_EXIT, bearer, serving


def test_partners_tokens_and_request_records_survive_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    with serving(database_url, tmp_path, name="first") as (server, base):
        d1 = httpx.post(f"{base}/v1/partners", json=dealer("D1"), headers=bearer(), timeout=10)
        assert d1.status_code == 201, d1.text
        minted = {}
        for partner, role in (("HQ", "hq"), ("D1", "dealer")):
            r = httpx.post(
                f"{base}/v1/tokens",
                json={"partner": partner, "role": role},
                headers=bearer(),
                timeout=10,
            )
            assert r.status_code == 201, r.text
            minted[role] = r.json()["token"]
        s1 = httpx.post(
            f"{base}/v1/partners",
            json=store_body("S1", "D1"),
            headers=bearer(minted["dealer"]),
            timeout=10,
        )
        assert s1.status_code == 201, s1.text
        head_before = httpx.get(f"{base}/health", timeout=5).json()["position"]
        assert head_before >= s1.json()["position"]
        assert server.stop() in CLEAN_EXIT, server.logs()

    # Started again on the same store, now without the bootstrap token: the store is not
    # new, and the tokens minted before the restart are the way in.
    with serving(database_url, tmp_path, token=None, name="second") as (server, base):
        health = httpx.get(f"{base}/health", timeout=5).json()
        assert health["position"] == head_before, "a restart writes nothing"
        fresh = {"min_position": s1.json()["position"]}

        hq, dealer_token = bearer(minted["hq"]), bearer(minted["dealer"])
        listed = httpx.get(f"{base}/v1/partners", params=fresh, headers=hq, timeout=10)
        assert listed.status_code == 200, listed.text
        assert [p["code"] for p in listed.json()["items"]] == ["D1", "HQ", "S1"]
        got = httpx.get(f"{base}/v1/partners/S1", params=fresh, headers=dealer_token, timeout=10)
        assert got.status_code == 200, got.text
        assert got.json()["path"] == "HQ/D1/S1"
        assert got.json()["location"] == {"lat": 31.23, "lng": 121.47}

        # The old bootstrap token is gone with the setting; the minted ones still work.
        assert httpx.get(f"{base}/v1/partners", headers=bearer(), timeout=5).status_code == 401

        # The request records survived too: a repeat answers the original position.
        again = httpx.post(f"{base}/v1/partners", json=dealer("D1"), headers=hq, timeout=10)
        assert again.status_code == 201, again.text
        assert again.json() == d1.json()
        other = httpx.post(f"{base}/v1/partners", json=dealer("D1", ["11"]), headers=hq, timeout=10)
        assert other.status_code == 409 and other.json()["code"] == "idempotency_mismatch"

        # And the dealer token still acts for its partner after the restart.
        s2 = httpx.post(
            f"{base}/v1/partners", json=store_body("S2", "D1"), headers=dealer_token, timeout=10
        )
        assert s2.status_code == 201, s2.text
        assert s2.json()["position"] > head_before
        assert server.stop() in CLEAN_EXIT, server.logs()
