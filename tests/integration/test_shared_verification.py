"""Several API processes of one store verify it once, not once each: the store's lease
lets one run at a time, and every process reports the latest complete run (on both
stores; two ``VerificationWatch`` objects stand for two processes)."""

from __future__ import annotations

import time

import pytest

from domain.channel import PartnerKind, PartnerSpec
from domain.handlers import channel
from domain.principal import hq_admin
from projections import verify
from projections.store import Store
from projections.verify import RUNS_TABLE, VerificationWatch


def _wait(condition, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _some_events(store: Store) -> None:
    for i in range(3):
        channel.register_partner(
            store.ledger, hq_admin(), PartnerSpec(f"D{i}", PartnerKind.DEALER, "HQ", "d", ("31",))
        )
    store.engine.catch_up()


def test_processes_starting_together_verify_once_and_all_report_it(store: Store) -> None:
    _some_events(store)
    first = VerificationWatch(store, None, interval_s=3600)
    second = VerificationWatch(store, None, interval_s=3600)
    first.start()
    second.start()
    try:
        _wait(lambda: first.status()["checked"] and second.status()["checked"])
        _wait(lambda: not first.status()["running"] and not second.status()["running"])
        assert first.runs + second.runs == 1
        assert first.status() == second.status()
        assert first.status()["ok"] is True and first.status()["checked"] == store.head
        assert not first.due() and not second.due()
    finally:
        first.stop()
        second.stop()


def test_a_process_started_after_the_latest_run_verifies_again(store: Store) -> None:
    _some_events(store)
    earlier = VerificationWatch(store, None, interval_s=3600)
    earlier.run_now()
    time.sleep(0.01)
    later = VerificationWatch(store, None, interval_s=3600)
    assert later.due() and not earlier.due()
    later.start()
    try:
        _wait(lambda: later.runs == 1 and not later.running)
    finally:
        later.stop()


def test_a_lapsed_lease_does_not_block_the_next_run(store: Store) -> None:
    _some_events(store)
    watch = VerificationWatch(store, None, interval_s=3600)
    with store.views.write() as tx:  # a holder that died mid-run, lease over
        tx.execute(
            f"UPDATE {RUNS_TABLE} SET holder = ?, lease_until = ? WHERE id = 1",
            ("elsewhere/1/x", time.time() - 1),
        )
    assert watch.shared.take()
    watch.shared.finish(None)
    with store.views.write() as tx:  # a live one: this process waits its turn
        tx.execute(
            f"UPDATE {RUNS_TABLE} SET holder = ?, lease_until = ? WHERE id = 1",
            ("elsewhere/1/x", time.time() + 60),
        )
    assert not watch.shared.take()
    assert watch.status()["running"] is True


def test_a_postgresql_verification_compares_in_the_database_and_names_the_row(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: no live row is read into the process (the live build is copied into
    the side schema and compared there), an edited row is still named by its position,
    and nothing of the comparison is left behind. SQLite compares in the process."""
    _some_events(store)
    postgres = store.views.dialect == "postgresql"
    if postgres:

        def no_rows_into_python(*_args: object) -> None:
            raise AssertionError("the live build was read into Python")

        monkeypatch.setattr(verify, "read_build", no_rows_into_python)
    assert verify.Verifier(store, None).run().ok
    with store.views.read() as tx:
        row = tx.fetchone("SELECT MAX(position) FROM partners")
    assert row is not None
    edited = int(row[0])
    with store.views.write() as tx:
        tx.execute("UPDATE partners SET name = ? WHERE position = ?", ("tampered", edited))
    report = verify.Verifier(store, None).run()
    views = [f for f in report.findings if f.check == "view"]
    assert [(f.position, f.detail) for f in views] == [
        (edited, "partners: DIFFERENT (1 rows only in live, 1 only in side) (rows: siyu diff)")
    ], report.as_dict()
    assert report.first_bad_position == edited
    if postgres:
        with store.views.read() as tx:
            left = tx.fetchall(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_name LIKE 'live_copy%' OR table_schema LIKE 'verify_%'"
            )
        assert left == []
