"""Read model: HQ's loyalty programmes: tasks, clerk task progress, draw campaigns (with
their draws and stock), distributor standings. Scoped by partner path where a partner
is concerned (clerk progress is seen by the clerk, its store, its dealer and HQ)."""

from __future__ import annotations

from typing import Any

import msgspec

from domain.distributor_levels import DistributorStanding
from domain.draws import DrawCampaign, PrizeStock
from domain.identity import id_text
from domain.loyalty import DrawMade
from domain.tasks import ClerkTaskProgress, TaskBoard
from projections.partners import partner_path, scope_clause
from projections.views import Tx

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder()


class LoyaltyProgramsView:
    name: str = "loyalty_programs"
    follows: tuple[str, ...] = ("partners",)  # reads partner paths
    version: int = 1
    tables: dict[str, str] = {
        "loyalty_tasks": (
            "CREATE TABLE IF NOT EXISTS loyalty_tasks ("
            "task_id TEXT PRIMARY KEY, audience TEXT NOT NULL, kind TEXT NOT NULL, sku TEXT, "
            "target INTEGER NOT NULL, reward_points BIGINT NOT NULL, reward BIGINT NOT NULL, "
            "starts_at TEXT NOT NULL, ends_at TEXT NOT NULL)"
        ),
        "clerk_task_progress": (
            "CREATE TABLE IF NOT EXISTS clerk_task_progress ("
            "id TEXT PRIMARY KEY, task_id TEXT NOT NULL, clerk TEXT NOT NULL, "
            "path TEXT NOT NULL, sku TEXT NOT NULL, units BIGINT NOT NULL, "
            "target BIGINT NOT NULL, completed INTEGER NOT NULL, reward BIGINT NOT NULL, "
            "position BIGINT NOT NULL)"
        ),
        "draw_campaigns": (
            "CREATE TABLE IF NOT EXISTS draw_campaigns ("
            "campaign_id TEXT PRIMARY KEY, id TEXT NOT NULL, name TEXT NOT NULL, "
            "cost_points BIGINT NOT NULL, "
            "status TEXT NOT NULL, seed_hash TEXT NOT NULL, seed TEXT, prizes TEXT NOT NULL, "
            "draws BIGINT NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT, "
            "position BIGINT NOT NULL)"
        ),
        "prize_awards": (
            "CREATE TABLE IF NOT EXISTS prize_awards ("
            "stock_id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, prize_id TEXT NOT NULL, "
            "stock BIGINT NOT NULL, awarded BIGINT NOT NULL)"
        ),
        "distributor_standings": (
            "CREATE TABLE IF NOT EXISTS distributor_standings ("
            "partner TEXT PRIMARY KEY, id TEXT NOT NULL, path TEXT NOT NULL, level TEXT NOT NULL, "
            "sales BIGINT NOT NULL, member_id TEXT, position BIGINT NOT NULL)"
        ),
    }
    indexes: tuple[str, ...] = (
        "CREATE INDEX IF NOT EXISTS clerk_task_progress_path ON clerk_task_progress (path)",
    )
    topics: frozenset[str] = frozenset(
        {
            TaskBoard.Published.TOPIC,
            ClerkTaskProgress.Started.TOPIC,
            ClerkTaskProgress.Progressed.TOPIC,
            ClerkTaskProgress.Reversed.TOPIC,
            ClerkTaskProgress.Completed.TOPIC,
            DrawCampaign.Opened.TOPIC,
            DrawCampaign.Closed.TOPIC,
            PrizeStock.Stocked.TOPIC,
            PrizeStock.Awarded.TOPIC,
            DrawMade.TOPIC,
            DistributorStanding.Opened.TOPIC,
            DistributorStanding.SaleCredited.TOPIC,
            DistributorStanding.Promoted.TOPIC,
            DistributorStanding.MemberLinked.TOPIC,
        }
    )

    def apply(self, tx: Tx, event: Any, position: int) -> None:
        oid = id_text(event.originator_id)
        if isinstance(event, TaskBoard.Published):
            tx.execute(
                "INSERT INTO loyalty_tasks (task_id, audience, kind, sku, target, reward_points, "
                "reward, starts_at, ends_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.task_id,
                    event.audience,
                    event.kind,
                    event.sku,
                    event.target,
                    event.reward_points,
                    event.reward_fen,
                    event.starts_at.isoformat(),
                    event.ends_at.isoformat(),
                ),
            )
        elif isinstance(event, ClerkTaskProgress.Started):
            tx.execute(
                "INSERT INTO clerk_task_progress (id, task_id, clerk, path, sku, units, target, "
                "completed, reward, position) VALUES (?, ?, ?, ?, ?, 0, ?, 0, 0, ?)",
                (
                    oid,
                    event.task_id,
                    event.clerk,
                    partner_path(tx, event.clerk),
                    event.sku,
                    event.target,
                    position,
                ),
            )
        elif isinstance(event, ClerkTaskProgress.Progressed):
            tx.execute(
                "UPDATE clerk_task_progress SET units = units + ?, position = ? WHERE id = ?",
                (event.units, position, oid),
            )
        elif isinstance(event, ClerkTaskProgress.Reversed):
            tx.execute(
                "UPDATE clerk_task_progress SET units = units - ?, position = ? WHERE id = ?",
                (event.units, position, oid),
            )
        elif isinstance(event, ClerkTaskProgress.Completed):
            tx.execute(
                "UPDATE clerk_task_progress SET completed = 1, reward = ?, position = ? "
                "WHERE id = ?",
                (event.reward_fen, position, oid),
            )
        else:
            self._apply_more(tx, event, oid, position)

    def _apply_more(self, tx: Tx, event: Any, oid: str, position: int) -> None:
        if isinstance(event, DrawCampaign.Opened):
            prizes = [list(p) for p in event.prizes]
            tx.execute(
                "INSERT INTO draw_campaigns (campaign_id, id, name, cost_points, status, "
                "seed_hash, prizes, draws, opened_at, position) "
                "VALUES (?, ?, ?, ?, 'open', ?, ?, 0, ?, ?)",
                (
                    event.campaign_id,
                    oid,
                    event.name,
                    event.cost_points,
                    event.seed_hash,
                    _json.encode(prizes).decode(),
                    event.timestamp.isoformat(),
                    position,
                ),
            )
        elif isinstance(event, DrawCampaign.Closed):
            tx.execute(
                "UPDATE draw_campaigns SET status = 'closed', seed = ?, closed_at = ?, "
                "position = ? WHERE id = ?",
                (event.seed, event.timestamp.isoformat(), position, oid),
            )
        elif isinstance(event, PrizeStock.Stocked):
            tx.execute(
                "INSERT INTO prize_awards (stock_id, campaign_id, prize_id, stock, awarded) "
                "VALUES (?, ?, ?, ?, 0)",
                (oid, event.campaign_id, event.prize_id, event.stock),
            )
        elif isinstance(event, PrizeStock.Awarded):
            tx.execute("UPDATE prize_awards SET awarded = awarded + 1 WHERE stock_id = ?", (oid,))
            row = tx.fetchone("SELECT stock, awarded FROM prize_awards WHERE stock_id = ?", (oid,))
            assert row is not None and int(row[1]) <= int(row[0]), "a prize is never oversold"
        elif isinstance(event, DrawMade):
            tx.execute(
                "UPDATE draw_campaigns SET draws = draws + 1, position = ? WHERE campaign_id = ?",
                (position, event.campaign_id),
            )
        else:
            self._apply_standing(tx, event, oid, position)

    def _apply_standing(self, tx: Tx, event: Any, oid: str, position: int) -> None:
        if isinstance(event, DistributorStanding.Opened):
            tx.execute(
                "INSERT INTO distributor_standings (partner, id, path, level, sales, position) "
                "VALUES (?, ?, ?, ?, 0, ?)",
                (event.partner, oid, partner_path(tx, event.partner), event.level, position),
            )
        elif isinstance(event, DistributorStanding.SaleCredited):
            tx.execute(
                "UPDATE distributor_standings SET sales = sales + ?, position = ? WHERE id = ?",
                (event.amount_fen, position, oid),
            )
        elif isinstance(event, DistributorStanding.Promoted):
            tx.execute(
                "UPDATE distributor_standings SET level = ?, position = ? WHERE id = ?",
                (event.level, position, oid),
            )
        elif isinstance(event, DistributorStanding.MemberLinked):
            tx.execute(
                "UPDATE distributor_standings SET member_id = ?, position = ? WHERE id = ?",
                (event.member_id, position, oid),
            )


# -- queries ------------------------------------------------------------------------


def clerk_progress(
    tx: Tx,
    scope_path: str | None,
    task_id: str | None,
    after: tuple[str, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A page of the progress rows in scope, by (task_id, clerk), after ``after``."""
    clause, params = scope_clause(scope_path)
    sql = (
        "SELECT task_id, clerk, sku, units, target, completed, reward FROM clerk_task_progress "
        f"WHERE {clause}"
    )
    if task_id is not None:
        sql += " AND task_id = ?"
        params.append(task_id)
    if after is not None:
        sql += " AND (task_id > ? OR (task_id = ? AND clerk > ?))"
        params += [after[0], after[0], after[1]]
    rows = tx.fetchall(sql + " ORDER BY task_id, clerk LIMIT ?", [*params, limit])
    return [
        {
            "task_id": t,
            "clerk": c,
            "sku": s,
            "units": int(u),
            "target": int(n),
            "completed": bool(done),
            "reward": int(r),
        }
        for t, c, s, u, n, done, r in rows
    ]


def list_tasks(tx: Tx, audience: str | None, after: str | None, limit: int) -> list[dict[str, Any]]:
    """A page of the tasks HQ published, by task_id, after ``after``."""
    cols = (
        "task_id",
        "audience",
        "kind",
        "sku",
        "target",
        "reward_points",
        "reward",
        "starts_at",
        "ends_at",
    )
    sql = f"SELECT {', '.join(cols)} FROM loyalty_tasks WHERE 1 = 1"
    params: list[Any] = []
    if audience is not None:
        sql += " AND audience = ?"
        params.append(audience)
    if after is not None:
        sql += " AND task_id > ?"
        params.append(after)
    rows = tx.fetchall(sql + " ORDER BY task_id LIMIT ?", [*params, limit])
    return [dict(zip(cols, r, strict=True)) for r in rows]


def standing_of(tx: Tx, partner: str) -> dict[str, Any] | None:
    row = tx.fetchone(
        "SELECT partner, path, level, sales, member_id FROM distributor_standings "
        "WHERE partner = ?",
        (partner,),
    )
    if row is None:
        return None
    return {
        "partner": row[0],
        "path": row[1],
        "level": row[2],
        "sales": int(row[3]),
        "member_id": row[4],
    }
