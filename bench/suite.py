"""The runs behind each metric, for one store (PostgreSQL or SQLite)."""

from __future__ import annotations

import random
import sys
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import bulk, wrk
from bench.channel import Channel, build_channel, issue_batch
from bench.metrics import Metric, RssSampler, ServerCpu, server_cpu
from bench.server import BOOTSTRAP, Server, run_cli, serving
from bench.workloads import (
    CASE_UNITS,
    Lot,
    logistics_plan,
    order_requests,
    plan_lots,
    scan_requests,
    sell_requests,
)
from projections.engine import BATCH_SIZE_MAX
from projections.store import Store


@dataclass(frozen=True)
class Sizes:
    repeats: int = 3
    logistics_cases: int = 50  # per repeat: 50 cases x 24 units = 1,200 cased units
    logistics_loose: int = 1_440  # and 1,440 loose: 7,200 + 7,200 = 14,400 unit-events
    warm_scans: int = 1_000  # untimed: the members the "existing" half scans with
    scans: int = 1_500  # per repeat, 64 connections
    orders: int = 200  # order + payment pairs per repeat, 16 connections
    codes: int = 1_000_000
    code_repeats: int = 3
    backlog: int = 40_000  # bulk events projected in ``repeats`` timed slices, then replayed
    reads: int = 2_000  # per repeat and kind, 8 connections
    scan_connections: int = 64
    logistics_connections: int = 8
    order_connections: int = 16
    read_connections: int = 8
    api_workers: int = 1  # `siyu serve --workers N` for the HTTP workloads
    projection_workers: int = 1  # `siyu project` / `siyu replay --workers N`
    # the write workloads again after the reads, on the store the backlog filled
    # (``LARGE``): a planner's cliffs show from about 100,000 events (round 13)
    large_store_writes: bool = True


ISSUE = Sizes(backlog=1_000_000, api_workers=2, projection_workers=2)
PRESETS = {
    # the issue's sizes (a 1M-event backlog: >= 200k projected, >= 1M replayed and read
    # from): 9.3 minutes at 6a517c3 on this 2-core machine, inside the 15 asked for
    # (PostgreSQL: two API processes, one per core; SQLite: one, see SQLITE below)
    "default": ISSUE,
    "issue": ISSUE,
    # about 3 minutes: a 40k-event backlog, for comparing changes quickly
    "quick": Sizes(api_workers=2, projection_workers=2),
    # seconds: checks that the suite runs (numbers mean nothing)
    "smoke": Sizes(
        repeats=1,
        logistics_cases=2,
        logistics_loose=48,
        warm_scans=48,
        scans=60,
        orders=20,
        codes=10_000,
        code_repeats=1,
        backlog=2_000,
        reads=100,
    ),
}
SQLITE_SMOKE = Sizes(
    large_store_writes=False,
    repeats=1,
    logistics_cases=2,
    logistics_loose=48,
    warm_scans=48,
    scans=60,
    orders=20,
    codes=10_000,
    code_repeats=1,
    backlog=2_000,
    reads=100,
)
SQLITE = Sizes(repeats=3, logistics_cases=20, logistics_loose=576, warm_scans=300, scans=600,
               orders=100, code_repeats=1, backlog=12_000, reads=1_000,
               large_store_writes=False)  # fmt: skip


def say(text: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def _metric(out: dict[str, Metric], name: str, unit: str, note: str) -> Metric:
    out[name] = Metric(name, unit, note=note)
    return out[name]


def _check(result: wrk.WrkResult, what: str, out: Metric) -> None:
    failed = int(out.extra.get("failed", 0)) + result.failed
    out.extra["failed"] = failed
    out.extra["wrk_cpu_s"] = round(float(out.extra.get("wrk_cpu_s", 0)) + result.cpu_s, 2)
    if result.errors:
        out.extra.setdefault("errors", [])
        out.extra["errors"] = (out.extra["errors"] + result.errors)[:5]
    if result.failed:
        say(f"{what}: {result.failed} failed, e.g. {result.errors[:1]}")


# -- HTTP workloads against a real `siyu serve` ----------------------------------------


def http_metrics(url: str, workdir: Path, sizes: Sizes, out: dict[str, Metric]) -> None:
    with serving(url, workdir, workers=sizes.api_workers) as srv:
        say(f"serve {url} at {srv.base}: building the channel")
        ch = build_channel(srv.base)
        write_workloads(srv, ch, sizes, out)
        codes = _metric(out, "codes_issue_1m_s", "s",
                        f"POST /v1/code-batches ({sizes.codes:,} unit codes) and GET its CSV, "
                        "streamed to the end")  # fmt: skip
        _settle(srv.base, "after payments", out)
        for r in range(sizes.code_repeats):
            codes.values.append(_issue_and_stream(ch, f"BIG-{r}", sizes.codes))
            say(f"codes repeat {r + 1}: {codes.values[-1]:.1f} s")


LARGE = "_large_store"  # the write metrics again, on the store the bulk backlog filled


def write_workloads(  # noqa: PLR0915
    srv: Server, ch: Channel, sizes: Sizes, out: dict[str, Metric], store: str = "", tag: str = ""
) -> None:
    """Logistics, scans (the API's memory sampled) and order + payment, each in
    ``sizes.repeats`` repeats from a quiet server. ``store`` names the metrics' store
    (`""`: the young one they are first measured on; ``LARGE``); ``tag`` keeps its
    batches, event, scan, member and order ids apart from the others in that store."""
    ch = replace(ch, base=srv.base)  # the channel may have been built through another server
    ours = f" on a store of {store_size(srv.base):,} events" if store else ""
    warm_cases = sizes.warm_scans // (2 * CASE_UNITS)
    warm_loose = sizes.warm_scans - warm_cases * CASE_UNITS
    per_units = sizes.logistics_cases * CASE_UNITS + sizes.logistics_loose
    units = issue_batch(ch, f"{tag}BENCH-U", sizes.repeats * per_units + sizes.warm_scans,
                        "unit")  # fmt: skip
    cases = issue_batch(ch, f"{tag}BENCH-C", sizes.repeats * sizes.logistics_cases + warm_cases,
                        "case")  # fmt: skip
    case_codes = [r["code"] for r in cases]
    # untimed: goods for the warm-up scans, which make the "existing" members
    warm_lots = plan_lots(ch, units[: sizes.warm_scans], case_codes[:warm_cases],
                          warm_cases, warm_loose)  # fmt: skip
    _move(srv.base, ch, warm_lots, f"{tag}W", sizes, None)
    warm = scan_requests(ch, warm_lots, f"{tag}W", ["unused"], seed=99, diverted_every=10**9)
    warm = [r for i, r in enumerate(warm) if i % 2 == 0]  # new members only
    existing = [f"{tag}W-m{i}" for i in range(0, 2 * len(warm), 2)]
    say(f"warm-up{ours}: {len(warm)} scans making the existing members")
    wrk.run(srv.base, warm, sizes.scan_connections)

    logistics = _metric(out, f"logistics_events_per_s{store}", "unit-events/s",
        f"POST /v1/logistics (`siyu serve --workers {sizes.api_workers}`){ours}, "
        f"{sizes.logistics_connections} connections, 10 events per "
        "request, 6 steps run one after the other (commission, pack, ship to dealer, "
        "receive, ship to store, receive); half the unit-events on loose units")  # fmt: skip
    lots_by_repeat: list[list[Lot]] = []
    at_u, at_c = sizes.warm_scans, warm_cases
    for r in range(sizes.repeats):
        lots = plan_lots(ch, units[at_u : at_u + per_units],
                         case_codes[at_c : at_c + sizes.logistics_cases],
                         sizes.logistics_cases, sizes.logistics_loose)  # fmt: skip
        at_u, at_c = at_u + per_units, at_c + sizes.logistics_cases
        lots_by_repeat.append(lots)
        # from a quiet server, as scans and payments: the first repeat had paid for the
        # warm-up scans' projections, the others for the previous repeat's sales
        _settle(srv.base, f"before logistics {r + 1}{store}", out)
        with server_cpu(srv.pid) as used:
            _move(srv.base, ch, lots, f"{tag}L{r}", sizes, logistics)
            _settle(srv.base, f"after logistics {r + 1}{store}", out)
        _cpu_per_op(logistics, used[0], logistics.extra["unit_events_per_repeat"])
        say(f"logistics repeat {r + 1}{ours}: {logistics.values[-1]:,.0f} unit-events/s")

    scans = _metric(out, f"scan_http_per_s{store}", "scans/s",
        f"POST /v1/scans to `siyu serve --workers {sizes.api_workers}`{ours}, "
        f"{sizes.scan_connections} connections, {sizes.scans} scans per "
        "repeat, each a different unit (commissioned, to a dealer, received, to a store, "
        "received, 1 in 5 sold), half new members (with phone), half existing, located "
        "(1 in 20 outside the dealer's territory)")  # fmt: skip
    p99 = _metric(out, f"scan_http_p99_ms{store}", "ms", "wrk's 99th percentile of the scan runs")
    rss = _metric(out, f"api_rss_mb_max{store}", "MB", "peak VmRSS of the API processes "
                  f"together (`siyu serve --workers {sizes.api_workers}`: supervisor and "
                  "workers, sampled every 50 ms) during the scan runs")  # fmt: skip
    with RssSampler(srv.pid) as sampler:
        for r, lots in enumerate(lots_by_repeat):
            requests = scan_requests(ch, lots, f"{tag}S{r}", existing, seed=r)[: sizes.scans]
            with server_cpu(srv.pid) as used:
                result = wrk.run(srv.base, requests, sizes.scan_connections)
                _settle(srv.base, f"after scans {r + 1}{store}", out)
            _cpu_per_op(scans, used[0], result.ok)
            _check(result, "scans", scans)
            scans.values.append(result.per_s)
            p99.values.append(result.p99_ms)
            say(f"scans repeat {r + 1}{ours}: {result.per_s:,.0f}/s p99 {result.p99_ms:.0f} ms")
    rss.values.append(sampler.peak_mb)  # all API processes together
    rss.extra["api_workers"] = sizes.api_workers
    rss.extra["largest_process_mb"] = round(sampler.peak_one_mb, 1)

    pay = _metric(out, f"payment_http_per_s{store}", "order+payment/s",
        f"{sizes.orders} orders per repeat{ours} (hq_dropship, new members, all 63 stores; 1 "
        f"in 3 with the store's distributor as referrer, else located), "
        f"{sizes.order_connections} connections: POST /v1/orders for all, then POST "
        "/v1/orders/{id}/payments for all; pairs / (both run times)")  # fmt: skip
    for r in range(sizes.repeats):
        _settle(srv.base, f"before payments {r + 1}{store}", out)
        orders, payments = order_requests(ch, sizes.orders, f"{tag}P{r}", seed=100 + r)
        with server_cpu(srv.pid) as used:
            placed = wrk.run(srv.base, orders, sizes.order_connections)
            paid = wrk.run(srv.base, payments, sizes.order_connections)
            _settle(srv.base, f"after payments {r + 1}{store}", out)
        _check(placed, "orders", pay)
        _check(paid, "payments", pay)
        _cpu_per_op(pay, used[0], paid.ok)
        pay.values.append(paid.ok / (placed.seconds + paid.seconds))
        pay.extra.setdefault("order_p99_ms", []).append(round(placed.p99_ms, 1))
        pay.extra.setdefault("payment_p99_ms", []).append(round(paid.p99_ms, 1))
        say(f"order+payment repeat {r + 1}{ours}: {pay.values[-1]:,.1f}/s")


def store_size(base: str) -> int:
    """The events in the store a server serves (its head position)."""
    return int(httpx.get(f"{base}/health", timeout=30).json()["position"])


def _cpu_per_op(metric: Metric, used: ServerCpu, ops: int) -> None:
    """Milliseconds of CPU per operation, the API processes' and PostgreSQL's, over the
    workload and the wait for its projections (logistics: the untimed sales included)."""
    per = metric.extra.setdefault("cpu_ms_per_op", {"api": [], "database": []})
    per["api"].append(round(1000 * used.api_s / max(ops, 1), 4))
    per["database"].append(round(1000 * used.database_s / max(ops, 1), 4))


def _settle(base: str, what: str, out: dict[str, Metric], timeout_s: float = 300) -> None:
    """Wait until every read model has applied the head: each workload starts from a quiet
    server, not from the projection backlog the previous one left (recorded as info)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        health = httpx.get(f"{base}/health", timeout=30).json()
        if min(health["projections"].values()) >= health["position"]:
            break
        time.sleep(0.2)
    note = "seconds the inline projections needed, after a workload, to apply its events"
    lag = out.setdefault("projection_lag_s", Metric("projection_lag_s", "s", note=note))
    lag.extra[what] = round(time.monotonic() - started, 1)


def _move(base: str, ch: Channel, lots: list[Lot], tag: str, sizes: Sizes,
          metric: Metric | None) -> None:  # fmt: skip
    plan = logistics_plan(ch, lots, tag)
    seconds = 0.0
    first = store_size(base)
    for step, requests in plan.phases:
        result = wrk.run(base, requests, sizes.logistics_connections)
        if metric is not None:
            _check(result, f"logistics {step}", metric)
        elif result.failed:
            raise RuntimeError(f"logistics {step} failed: {result.errors[:2]}")
        seconds += result.seconds
    if metric is not None:
        metric.values.append(plan.unit_events / seconds)
        metric.extra["unit_events_per_repeat"] = plan.unit_events
        # what a unit-event costs is what its stored events cost: a case's move is one
        # event for its 24 units, a loose unit's one each (the sales below not counted)
        metric.extra["events_per_repeat"] = store_size(base) - first
    sold = wrk.run(base, sell_requests(ch, lots, tag), sizes.logistics_connections)
    if sold.failed:
        raise RuntimeError(f"sales failed: {sold.errors[:2]}")


def _issue_and_stream(ch: Channel, batch: str, count: int) -> float:
    headers = {"Authorization": f"Bearer {ch.tokens['factory']}"}
    started = time.perf_counter()
    with httpx.Client(base_url=ch.base, timeout=600) as http:
        body = {"batch_id": batch, "sku": "BENCH-TEA", "count": count, "level": "unit"}
        issued = http.post("/v1/code-batches", json=body, headers=headers)
        assert issued.status_code == 201, issued.text
        lines = 0
        with http.stream("GET", f"/v1/code-batches/{batch}/codes", headers=headers) as stream:
            assert stream.status_code == 200
            for chunk in stream.iter_bytes():
                lines += chunk.count(b"\n")
    assert lines == count + 1, lines
    return time.perf_counter() - started


# -- a bulk-loaded store: projections, replay, reads ---------------------------------------


def bulk_metrics(url: str, workdir: Path, sizes: Sizes, out: dict[str, Metric]) -> None:  # noqa: PLR0915
    with serving(url, workdir) as srv:
        ch = build_channel(srv.base)
    store = Store.open(url)
    try:
        start_head = store.head
        say(f"bulk: loading {sizes.backlog:,} events in-process (projections not running)")
        report = bulk.load(
            store.ledger, ch, until_head=start_head + sizes.backlog, head=lambda: store.head
        )
        gen = _metric(out, "bulk_load_events_per_s", "events/s",
                      "in-process data generator (real handlers, large transactions); "
                      "information, not a target")  # fmt: skip
        gen.values.append(report.per_s)
        head = store.head
        say(f"bulk: {report.events:,} events in {report.seconds:.0f} s; head {head:,}")
        first = store.engine.position()
        proj = _metric(out, "projection_events_per_s", "events/s", "")
        proj.extra["backlog_events"] = head - first
        proj.extra["workers"] = sizes.projection_workers
        if sizes.projection_workers == 1:
            proj.note = (
                f"Engine.catch_up of every read model over a backlog of {head - first:,} "
                f"events, timed in {sizes.repeats} equal slices (in-process, like `siyu "
                "project --once`)"
            )
            store.engine.batch_size = BATCH_SIZE_MAX  # as `siyu project` catches up
            _project_slices(sizes, first, head, proj, store.engine.catch_up)
    finally:
        store.close()
    workers = ["--workers", str(sizes.projection_workers)]
    if sizes.projection_workers > 1:
        proj.note = (
            f"`siyu project --once --workers {sizes.projection_workers} --until-position P` "
            f"(every read model in {sizes.projection_workers} processes) over a backlog of "
            f"{head - first:,} events, timed in {sizes.repeats} equal slices (wall time of "
            "each command, start-up included)"
        )

        def command(until: int) -> None:
            done = run_cli(["project", "--once", *workers, "--until-position", str(until)],
                           url, workdir)  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"siyu project failed:\n{done.stdout}\n{done.stderr[-2000:]}")

        _project_slices(sizes, first, head, proj, command)

    replay = _metric(out, "replay_events_per_s", "events/s",
                     f"`siyu replay --workers {sizes.projection_workers}` (every read model "
                     f"from zero into a side schema, then checksums compared) over all "
                     f"{head:,} events; wall time of the command")  # fmt: skip
    started = time.perf_counter()
    done = run_cli(["replay", *workers], url, workdir)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or "DIFFERENT" in done.stdout:
        raise RuntimeError(f"siyu replay failed:\n{done.stdout}\n{done.stderr[-2000:]}")
    replay.values.append(head / seconds)
    replay.extra["events"] = head
    say(f"replay: {head:,} events in {seconds:.0f} s")

    # Reads in the steady state: the start-up verification (a rebuild of every read model
    # from zero, like the replay just done, then the chain) is left to its hourly run.
    with serving(url, workdir, SIYU_AUDIT_VERIFY_AT_START="0") as srv:
        rnd = random.Random(5)
        partners = ["HQ", *ch.dealers, *(s.code for s in ch.stores), *ch.distributors.values()]
        t0, t1 = report.started_at, report.ended_at
        balance = _metric(out, "balance_read_p99_ms", "ms",
                          f"GET /v1/balances/{{partner}} on a {head:,}-event store, random "
                          f"partners, half with as_of; {sizes.reads} reads per repeat, "
                          f"{sizes.read_connections} connections, read as HQ (access-"
                          "logged); the server started without its start-up verification; "
                          "own_token_p99_ms: dealers and stores reading their own "
                          "(information)")  # fmt: skip
        trace = _metric(out, "trace_read_p99_ms", "ms",
                        f"GET /v1/codes/{{code}}/trace on a {head:,}-event store, random "
                        f"units; {sizes.reads} reads per repeat, {sizes.read_connections} "
                        "connections")  # fmt: skip
        # (information) the same reads by the dealers and stores themselves, each with its
        # own token: not access-logged as HQ's are, but each checks its token's state
        own = [*ch.dealers, *(s.code for s in ch.stores)]
        own_p99 = balance.extra.setdefault("own_token_p99_ms", [])

        def balance_requests(choose: list[str], token: Callable[[str], str]) -> list[wrk.Request]:
            reqs = []
            for i in range(sizes.reads):
                partner = rnd.choice(choose)
                path = f"/v1/balances/{partner}"
                if i % 2:
                    at = datetime.fromtimestamp(rnd.uniform(t0, t1), tz=UTC).isoformat()
                    path += "?as_of=" + urllib.parse.quote(at, safe="")
                reqs.append(wrk.Request("GET", path, token(partner)))
            return reqs

        for r in range(sizes.repeats):
            reqs = balance_requests(partners, lambda _p: BOOTSTRAP)
            result = wrk.run(srv.base, reqs, sizes.read_connections)
            _check(result, "balances", balance)
            balance.values.append(result.p99_ms)
            result = wrk.run(srv.base, balance_requests(own, ch.tokens.__getitem__),
                             sizes.read_connections)  # fmt: skip
            _check(result, "own balances", balance)
            own_p99.append(round(result.p99_ms, 1))
            codes = [rnd.choice(report.units) for _ in range(sizes.reads)]
            reqs = [wrk.Request("GET", f"/v1/codes/{c}/trace", BOOTSTRAP) for c in codes]
            result = wrk.run(srv.base, reqs, sizes.read_connections)
            _check(result, "traces", trace)
            trace.values.append(result.p99_ms)
            say(f"reads repeat {r + 1}: balance p99 {balance.values[-1]:.1f} ms (by the "
                f"partners themselves {own_p99[-1]:.1f} ms), trace p99 "
                f"{trace.values[-1]:.1f} ms")  # fmt: skip

    if sizes.large_store_writes:
        with serving(url, workdir, workers=sizes.api_workers,
                     SIYU_AUDIT_VERIFY_AT_START="0") as srv:  # fmt: skip
            write_workloads(srv, ch, sizes, out, LARGE, tag="X")


def _project_slices(
    sizes: Sizes, first: int, head: int, proj: Metric, project: Callable[[int], object]
) -> None:
    previous = first
    for k in range(1, sizes.repeats + 1):
        until = first + (head - first) * k // sizes.repeats
        started = time.perf_counter()
        project(until)
        proj.values.append((until - previous) / (time.perf_counter() - started))
        previous = until
        say(f"projections slice {k}: {proj.values[-1]:,.0f} events/s")


def smaller(sizes: Sizes, **changes: int) -> Sizes:
    return replace(sizes, **changes)


__all__ = ["PRESETS", "SQLITE", "Sizes", "asdict", "bulk_metrics", "http_metrics", "say"]
