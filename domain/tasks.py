"""Member tasks (会员任务) and clerk tasks (智慧导购任务), defined by HQ.

Member tasks, rewarded once on completion with a lot of points (source ``task``):

- ``scan_distinct``: scan ``target`` distinct products (first scans) within the period;
- ``first_order``: a first paid order within the period (wired by the order command);
- ``invite``: ``target`` members referred by the member's own distributor link (a
  member enrolled as a distributor) who then scan within the period.

Clerk tasks: ``sell_units`` of ``sku``: ``target`` units within the period, counted per
clerk on its own aggregate (one per task and clerk: no hot aggregate). Progress is
visible to the clerk and its store (read model). What counts, within the task's period
``[starts_at, ends_at)``:

- **orders**: when an order attributed to the clerk is paid (its distributor, i.e. the
  member's permanent referrer or else the order's ``referrer``, is a clerk partner),
  the quantities of its lines whose SKU is the task's SKU count at once;
- **first scans**: when a member the clerk referred makes the first consumer scan of a
  unit of the SKU, that unit counts, **unless the member has order credit**.

No double counting. Orders do not name units (no serials), so a unit bought through an
order and later scanned by its buyer cannot be recognised by identity. The rule: the
units an order counted for a member become that member's *order credit* on the clerk's
aggregate; a later first scan of the SKU by the same member uses one unit of credit
(``ScanMatched``, recorded, not counted) instead of counting again; a scan with no
credit left counts. The consumer code is hidden under the cap, so a unit is scanned
after it was bought: the buyer's scans after an order are presumed to be the order's
units first. A unit recorded as a counter sale by the store and also handed over for
an order (pickup from the store's stock) is therefore not counted twice either.
Known limits: a unit given away and scanned by another member the same clerk referred
counts again (it carries no credit); after HQ rebinds a member's referrer, the new
clerk's aggregate has no credit for the member's earlier orders.

Refunds: a refund of an order that counted takes back, cumulatively and in proportion
to the amount refunded (refunds name an amount, not lines), ``floor(units x refunded /
paid)`` of the units the order counted (``Reversed``), and the member's credit never
exceeds the units of its counted orders not refunded. A completed task is never
un-completed: refunds after completion change nothing, and the reward stays paid.

Completion (``Completed``, once) pays ``reward_fen`` (if above zero) in the same
transaction: ``RewardPaid`` carries balanced postings moving the reward from the
brand's available income to the clerk's (``partner:HQ:available`` ->
``partner:<clerk>:available``; a reward has no return window), names the completion
event (``<aggregate id>:<version>``), and the clerk's payout account is credited the
same amount so the clerk can withdraw it.

The task board is one aggregate HQ writes when it publishes a task; scans and payments
only read it.
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
from domain.ledger import GLOBAL_SCOPE, Ledger, Outcome, RequestKey, UnitOfWork, in_utc
from domain.loyalty import TaskCompleted, TaskProgressed
from domain.members import Member
from domain.money import Postings, task_reward_postings
from domain.points import earn
from domain.principal import HQ_CODE, Principal, Role
from domain.tiers import current_tiers, upgrade_if_crossed
from domain.units import event_ref
from domain.withdrawals import payout_account

TASK_BOARD_ID = namespace("task-board")
NS_CLERK_PROGRESS = namespace("clerk-task-progress")
MEMBER_KINDS = frozenset({"scan_distinct", "first_order", "invite"})
CLERK_KINDS = frozenset({"sell_units"})
SOURCE_SCAN = "scan"
SOURCE_ORDER = "order"
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
        """Units counted: by a first scan (``source`` scan) or a paid order (``order``)."""

        TOPIC = "siyu.ClerkTaskProgress.Progressed"
        class_version = 2
        units: int
        cause: str
        by: str
        source: str  # new in version 2: scan | order
        member_id: str | None  # new in version 2: the scanning or ordering member
        order_id: str | None  # new in version 2: the order that counted

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 counted first scans only and named no member.
            state["source"] = SOURCE_SCAN
            state["member_id"] = None
            state["order_id"] = None

        def apply(self, progress: Any) -> None:
            progress.units += self.units
            if self.source == SOURCE_ORDER:
                assert self.member_id is not None and self.order_id is not None
                progress.orders[self.order_id] = [self.member_id, self.units, 0]
                progress.credit[self.member_id] = (
                    progress.credit.get(self.member_id, 0) + self.units
                )

    class ScanMatched(Aggregate.Event):
        """A first scan by a member with order credit: a unit an order already counted."""

        TOPIC = "siyu.ClerkTaskProgress.ScanMatched"
        member_id: str
        cause: str
        by: str

        def apply(self, progress: Any) -> None:
            left = progress.credit.get(self.member_id, 0) - 1
            assert left >= 0, "a scan is matched only against order credit"
            progress.credit[self.member_id] = left

    class Reversed(Aggregate.Event):
        """A refund took back units an order had counted (the task not yet completed)."""

        TOPIC = "siyu.ClerkTaskProgress.Reversed"
        order_id: str
        refund_id: str
        units: int
        by: str

        def apply(self, progress: Any) -> None:
            counted = progress.orders[self.order_id]
            counted[2] += self.units
            assert self.units > 0 and counted[2] <= counted[1], "never beyond what was counted"
            progress.units -= self.units
            member = counted[0]
            kept = sum(u - t for m, u, t in progress.orders.values() if m == member)
            progress.credit[member] = min(progress.credit.get(member, 0), kept)

    class Completed(Aggregate.Event):
        TOPIC = "siyu.ClerkTaskProgress.Completed"
        reward_fen: int
        by: str

        def apply(self, progress: Any) -> None:
            progress.completed = True

    class RewardPaid(Aggregate.Event):
        """The completion's reward, brand -> clerk (available income), with its postings."""

        TOPIC = "siyu.ClerkTaskProgress.RewardPaid"
        task_id: str
        clerk: str
        amount: int
        completion: str  # the Completed event: <aggregate id>:<version>
        postings: Postings
        by: str

        def apply(self, progress: Any) -> None:
            progress.reward_paid = self.amount

    def __init__(self, task_id: str, clerk: str, sku: str, target: int) -> None:
        self.task_id = task_id
        self.clerk = clerk
        self.sku = sku
        self.target = target
        self.units = 0
        self.completed = False
        self.reward_paid = 0
        # order id -> [member id, units counted, units taken back by refunds]
        self.orders: dict[str, list[Any]] = {}
        # member id -> units its counted orders brought that no first scan matched yet
        self.credit: dict[str, int] = {}


def board(uow: UnitOfWork) -> TaskBoard | None:
    return uow.find(TaskBoard, TASK_BOARD_ID)


def publish_task(ledger: Ledger, by: Principal, spec: TaskSpec) -> Outcome:
    content = spec.as_data()
    # the period's instants in UTC: one instant written in another offset is the same task
    normal = {**content, "starts_at": in_utc(spec.starts_at), "ends_at": in_utc(spec.ends_at)}
    key = RequestKey(GLOBAL_SCOPE, "task", spec.task_id, normal, sent=content)

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
                count_clerk_scan(uow, task, referrer, member.member_id, cause, by)
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


def _clerk_progress(uow: UnitOfWork, task: TaskSpec, clerk: str) -> ClerkTaskProgress:
    assert task.sku is not None
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
    return progress


def progress_clerk_task(
    uow: UnitOfWork,
    task: TaskSpec,
    clerk: str,
    units: int,
    cause: str,
    by: str,
    *,
    source: str = SOURCE_SCAN,
    member_id: str | None = None,
    order_id: str | None = None,
) -> bool:
    """Count ``units`` for the clerk; complete (and pay the reward) on reaching the target.
    Returns True if this completed the task."""
    assert units > 0 and source in (SOURCE_SCAN, SOURCE_ORDER)
    progress = _clerk_progress(uow, task, clerk)
    if progress.completed:
        return False
    progress.trigger_event(
        ClerkTaskProgress.Progressed,
        timestamp=uow.now,
        units=units,
        cause=cause,
        by=by,
        source=source,
        member_id=member_id,
        order_id=order_id,
    )
    if progress.units < task.target:
        return False
    _complete(uow, progress, task, by)
    return True


def _complete(uow: UnitOfWork, progress: ClerkTaskProgress, task: TaskSpec, by: str) -> None:
    progress.trigger_event(
        ClerkTaskProgress.Completed, timestamp=uow.now, reward_fen=task.reward_fen, by=by
    )
    if task.reward_fen == 0:
        return
    completion = event_ref(progress.pending_events[-1])
    progress.trigger_event(
        ClerkTaskProgress.RewardPaid,
        timestamp=uow.now,
        task_id=task.task_id,
        clerk=progress.clerk,
        amount=task.reward_fen,
        completion=completion,
        postings=task_reward_postings(HQ_CODE, progress.clerk, task.reward_fen),
        by=by,
    )
    # The payout account guards withdrawals: it gains what the postings made available.
    payout_account(uow, progress.clerk).credit_task_reward(
        task.task_id, completion, task.reward_fen, uow.now
    )


def count_clerk_scan(
    uow: UnitOfWork, task: TaskSpec, clerk: str, member_id: str, cause: str, by: str
) -> bool:
    """A first scan of the task's SKU by a member the clerk referred: it counts, unless the
    member has order credit (a unit an order already counted). True if it completed."""
    progress = uow.find(ClerkTaskProgress, clerk_progress_id(task.task_id, clerk))
    if progress is not None and progress.completed:
        return False
    if progress is not None and progress.credit.get(member_id, 0) > 0:
        progress.trigger_event(
            ClerkTaskProgress.ScanMatched,
            timestamp=uow.now,
            member_id=member_id,
            cause=cause,
            by=by,
        )
        return False
    return progress_clerk_task(uow, task, clerk, 1, cause, by, member_id=member_id)


def count_clerk_order(uow: UnitOfWork, order: Any, payment_id: str, by: str) -> list[str]:
    """A paid order attributed to a clerk: its units of each active ``sell_units`` task's
    SKU count for that clerk. Returns the tasks it completed. Call after ``order.pay``."""
    clerk = order.distributor
    if clerk is None:
        return []
    found = board(uow)
    if found is None:
        return []
    units_of = _units_by_sku(order)
    tasks = [t for t in found.active(uow.now, "sell_units") if units_of.get(t.sku or "", 0)]
    if not tasks:
        return []
    partner = uow.find(Partner, partner_id(clerk))
    if partner is None or partner.kind is not PartnerKind.CLERK:
        return []
    completed: list[str] = []
    for task in tasks:
        progress = uow.find(ClerkTaskProgress, clerk_progress_id(task.task_id, clerk))
        if progress is not None and order.order_id in progress.orders:
            continue  # counted once per order (a payment happens once anyway)
        cause = f"order {order.order_id} payment {payment_id}"
        done = progress_clerk_task(
            uow,
            task,
            clerk,
            units_of[task.sku or ""],
            cause,
            by,
            source=SOURCE_ORDER,
            member_id=order.member_id,
            order_id=order.order_id,
        )
        if done:
            completed.append(task.task_id)
    return completed


def take_back_clerk_order(uow: UnitOfWork, order: Any, refund_id: str, by: str) -> None:
    """A refund of an order that counted for a clerk task not yet completed: take back
    ``floor(units x refunded / paid)`` cumulatively. Call after ``order.refund``."""
    clerk = order.distributor
    if clerk is None or order.paid <= 0:
        return
    found = board(uow)
    if found is None:
        return
    units_of = _units_by_sku(order)
    for task in found.tasks.values():
        if task.kind != "sell_units" or not units_of.get(task.sku or "", 0):
            continue
        progress = uow.find(ClerkTaskProgress, clerk_progress_id(task.task_id, clerk))
        if progress is None or progress.completed or order.order_id not in progress.orders:
            continue
        _member, counted, taken = progress.orders[order.order_id]
        due = counted * min(order.refunded, order.paid) // order.paid
        if due > taken:
            progress.trigger_event(
                ClerkTaskProgress.Reversed,
                timestamp=uow.now,
                order_id=order.order_id,
                refund_id=refund_id,
                units=due - taken,
                by=by,
            )


def _units_by_sku(order: Any) -> dict[str, int]:
    units: dict[str, int] = {}
    for sku, qty, _price, _category in order.lines:
        units[sku] = units.get(sku, 0) + qty
    return units


def member_uuid(uow: UnitOfWork, external_id: str) -> UUID:
    return keyed_id("member", uow.member_id_key, external_id)
