"""Member tasks (会员任务) and clerk tasks (智慧导购任务), defined by HQ.

Member tasks, rewarded once on completion with a lot of points (source ``task``):

- ``scan_distinct``: scan ``target`` distinct products (first scans) within the period;
- ``first_order``: a first paid order within the period (wired by the order command);
- ``invite``: ``target`` members referred by the member's own distributor link (a
  member enrolled as a distributor) who then scan within the period.

Clerk tasks: ``sell_units`` of ``sku``: ``target`` units within the period, counted per
clerk on its own aggregate (one per task and clerk: no hot aggregate). A unit counts
for the clerk when a member the clerk referred makes its first consumer scan (and,
once wired, per unit of a paid order attributed to the clerk). Progress is visible to
the clerk and its store (read model); completion records the reward in fen.

The task board is one aggregate HQ writes when it publishes a task; scans only read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.channel import Partner, PartnerKind
from domain.errors import InvalidInput
from domain.identity import keyed_id, namespace, partner_id
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork
from domain.loyalty import TaskCompleted, TaskProgressed
from domain.members import Member
from domain.points import earn
from domain.principal import Principal, Role
from domain.tiers import current_tiers, upgrade_if_crossed

TASK_BOARD_ID = namespace("task-board")
NS_CLERK_PROGRESS = namespace("clerk-task-progress")
MEMBER_KINDS = frozenset({"scan_distinct", "first_order", "invite"})
CLERK_KINDS = frozenset({"sell_units"})
TARGET_MAX = 100_000
REWARD_POINTS_MAX = 1_000_000
REWARD_FEN_MAX = 10_000_000
TASKS_MAX = 500

TaskRow = tuple[str, str, str, str | None, int, int, int, datetime, datetime]


def clerk_progress_id(task_id: str, clerk: str) -> UUID:
    return uuid5(NS_CLERK_PROGRESS, f"{task_id}\x1f{clerk}")


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    audience: str  # member | clerk
    kind: str
    sku: str | None
    target: int
    reward_points: int
    reward_fen: int
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        if not 1 <= len(self.task_id) <= 64 or not self.task_id.isascii():
            raise InvalidInput.field("task_id", "1 to 64 ASCII characters")
        kinds = MEMBER_KINDS if self.audience == "member" else CLERK_KINDS
        if self.kind not in kinds:
            raise InvalidInput.field("kind", f"one of {', '.join(sorted(kinds))}")
        if self.kind == "sell_units" and not self.sku:
            raise InvalidInput.field("sku", "a clerk task names the SKU to sell")
        if not 1 <= self.target <= TARGET_MAX:
            raise InvalidInput.field("target", f"1 to {TARGET_MAX}")
        if not 0 <= self.reward_points <= REWARD_POINTS_MAX:
            raise InvalidInput.field("reward_points", f"0 to {REWARD_POINTS_MAX}")
        if not 0 <= self.reward_fen <= REWARD_FEN_MAX:
            raise InvalidInput.field("reward", f"0 to {REWARD_FEN_MAX} fen")
        if self.ends_at <= self.starts_at:
            raise InvalidInput.field("ends_at", "after starts_at")

    def row(self) -> TaskRow:
        return (
            self.task_id,
            self.audience,
            self.kind,
            self.sku,
            self.target,
            self.reward_points,
            self.reward_fen,
            self.starts_at,
            self.ends_at,
        )

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at

    def as_data(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "audience": self.audience,
            "kind": self.kind,
            "sku": self.sku,
            "target": self.target,
            "reward_points": self.reward_points,
            "reward": self.reward_fen,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
        }


class TaskBoard(Aggregate):
    TOPIC = "siyu.TaskBoard"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.TaskBoard.Created"

    class Started(Aggregate.Created):
        TOPIC = "siyu.TaskBoard.Started"

    class Published(Aggregate.Event):
        TOPIC = "siyu.TaskBoard.Published"
        task_id: str
        audience: str
        kind: str
        sku: str | None
        target: int
        reward_points: int
        reward_fen: int
        starts_at: datetime
        ends_at: datetime
        by: str

        def apply(self, board: Any) -> None:
            board.tasks[self.task_id] = TaskSpec(
                self.task_id,
                self.audience,
                self.kind,
                self.sku,
                self.target,
                self.reward_points,
                self.reward_fen,
                self.starts_at,
                self.ends_at,
            )

    def __init__(self) -> None:
        self.tasks: dict[str, TaskSpec] = {}

    def active(self, at: datetime, *kinds: str) -> list[TaskSpec]:
        return [t for t in self.tasks.values() if t.kind in kinds and t.active(at)]


class ClerkTaskProgress(Aggregate):
    TOPIC = "siyu.ClerkTaskProgress"

    class Created(Aggregate.Created):
        """Unused: eventsourcing defines one per aggregate; ours is named in domain words."""

        TOPIC = "siyu.ClerkTaskProgress.Created"

    class Started(Aggregate.Created):
        TOPIC = "siyu.ClerkTaskProgress.Started"
        task_id: str
        clerk: str
        sku: str
        target: int

    class Progressed(Aggregate.Event):
        TOPIC = "siyu.ClerkTaskProgress.Progressed"
        units: int
        cause: str
        by: str

        def apply(self, progress: Any) -> None:
            progress.units += self.units

    class Completed(Aggregate.Event):
        TOPIC = "siyu.ClerkTaskProgress.Completed"
        reward_fen: int
        by: str

        def apply(self, progress: Any) -> None:
            progress.completed = True

    def __init__(self, task_id: str, clerk: str, sku: str, target: int) -> None:
        self.task_id = task_id
        self.clerk = clerk
        self.sku = sku
        self.target = target
        self.units = 0
        self.completed = False


def board(uow: UnitOfWork) -> TaskBoard | None:
    return uow.find(TaskBoard, TASK_BOARD_ID)


def publish_task(ledger: Ledger, by: Principal, spec: TaskSpec) -> Outcome:
    content = spec.as_data()
    key = RequestKey(GLOBAL_SCOPE, "task", spec.task_id, content)

    def authorize(_uow: UnitOfWork) -> None:
        by.require(Role.HQ)

    def decide(uow: UnitOfWork) -> dict[str, Any]:
        found = board(uow)
        if found is None:
            found = TaskBoard._create(TaskBoard.Started, id=TASK_BOARD_ID, timestamp=uow.now)
            uow.add(found)
        if spec.task_id in found.tasks:
            raise InvalidInput.field("task_id", "a task with this id exists")
        if len(found.tasks) >= TASKS_MAX:
            raise InvalidInput.field("task_id", f"at most {TASKS_MAX} tasks")
        row = spec.row()
        found.trigger_event(
            TaskBoard.Published,
            timestamp=uow.now,
            task_id=row[0],
            audience=row[1],
            kind=row[2],
            sku=row[3],
            target=row[4],
            reward_points=row[5],
            reward_fen=row[6],
            starts_at=row[7],
            ends_at=row[8],
            by=by.scope_key,
        )
        return spec.as_data()

    return ledger.execute(key, decide, authorize)


# -- progress ---------------------------------------------------------------------


def progress_member_task(member: Member, task: TaskSpec, item: str, by: str, at: datetime) -> bool:
    """Count ``item`` (a SKU, an invitee...) for the task; reward once on completion."""
    progress = member.loyalty.tasks.get(task.task_id)
    if progress is not None and (progress.completed or item in progress.items):
        return False
    count = (0 if progress is None else len(progress.items)) + 1
    member.trigger_event(
        TaskProgressed,
        timestamp=at,
        task_id=task.task_id,
        item=item,
        count=count,
        target=task.target,
        by=by,
    )
    if count < task.target:
        return False
    member.trigger_event(
        TaskCompleted, timestamp=at, task_id=task.task_id, reward_points=task.reward_points, by=by
    )
    earn(member, f"task:{task.task_id}", task.reward_points, "task", f"task {task.task_id}", by, at)
    return True


def on_first_scan(uow: UnitOfWork, member: Member, sku: str, cause: str, by: str) -> list[str]:
    """After a member's first scan of a unit: member tasks, the inviter's, the clerk's."""
    found = board(uow)
    if found is None:
        return []
    completed: list[str] = []
    for task in found.active(uow.now, "scan_distinct"):
        if progress_member_task(member, task, sku, by, uow.now):
            completed.append(task.task_id)
            upgrade_if_crossed(member, current_tiers(uow), f"task {task.task_id}", by, uow.now)
    referrer = member.referrer
    if referrer is None:
        return completed
    invites = found.active(uow.now, "invite")
    if invites:
        _progress_inviter(uow, member, referrer, invites, by)
    sales = [t for t in found.active(uow.now, "sell_units") if t.sku == sku]
    if sales:
        partner = uow.find(Partner, partner_id(referrer))
        if partner is not None and partner.kind is PartnerKind.CLERK:
            for task in sales:
                progress_clerk_task(uow, task, referrer, 1, cause, by)
    return completed


def _progress_inviter(
    uow: UnitOfWork, member: Member, referrer: str, tasks: list[TaskSpec], by: str
) -> None:
    from domain.distributor_levels import linked_member

    inviter_id = linked_member(uow, referrer)
    if inviter_id is None or inviter_id == member.member_id:
        return
    inviter = uow.find(Member, UUID(inviter_id))
    if inviter is None:
        return
    for task in tasks:
        if progress_member_task(inviter, task, member.member_id, by, uow.now):
            upgrade_if_crossed(inviter, current_tiers(uow), f"task {task.task_id}", by, uow.now)


def on_first_order(uow: UnitOfWork, member: Member, order_id: str, by: str) -> list[str]:
    """To be called by the order payment command once orders are wired."""
    found = board(uow)
    if found is None:
        return []
    completed = [
        t.task_id
        for t in found.active(uow.now, "first_order")
        if progress_member_task(member, t, f"order:{order_id}", by, uow.now)
    ]
    if completed:
        upgrade_if_crossed(member, current_tiers(uow), f"order {order_id}", by, uow.now)
    return completed


def progress_clerk_task(
    uow: UnitOfWork, task: TaskSpec, clerk: str, units: int, cause: str, by: str
) -> bool:
    assert task.sku is not None and units > 0
    progress = uow.find(ClerkTaskProgress, clerk_progress_id(task.task_id, clerk))
    if progress is None:
        progress = ClerkTaskProgress._create(
            ClerkTaskProgress.Started,
            id=clerk_progress_id(task.task_id, clerk),
            timestamp=uow.now,
            task_id=task.task_id,
            clerk=clerk,
            sku=task.sku,
            target=task.target,
        )
        uow.add(progress)
    if progress.completed:
        return False
    progress.trigger_event(
        ClerkTaskProgress.Progressed, timestamp=uow.now, units=units, cause=cause, by=by
    )
    if progress.units < task.target:
        return False
    progress.trigger_event(
        ClerkTaskProgress.Completed, timestamp=uow.now, reward_fen=task.reward_fen, by=by
    )
    return True


def member_uuid(uow: UnitOfWork, external_id: str) -> UUID:
    return keyed_id("member", uow.member_id_key, external_id)
