"""Group commit: concurrent commands' events saved in one store transaction.

The first thread to commit becomes the leader and saves at once (no added latency at
low load); threads that arrive while it is saving queue up, and the next leader saves
all of them together (bounded: ``JOBS_PER_COMMIT_MAX`` jobs and
``EVENTS_PER_COMMIT_MAX`` events). If a group's save fails on a version conflict,
each job of the group is saved alone, so one conflicting command never fails the
others; the conflicting one gets its own conflict and its command is retried by the
Ledger's runner with fresh aggregates.

Jobs arrive as stored events (encoded, personal fields encrypted) by their own threads:
the leader only inserts, so its critical section is the database's work alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError, RecordConflictError

JOBS_PER_COMMIT_MAX = 256
EVENTS_PER_COMMIT_MAX = 5000

# (stored events, rows to write with them) -> positions, in one transaction
Put = Callable[[Sequence[Any], Sequence[Any]], Sequence[int]]


@dataclass
class _Job:
    events: list[Any]
    writes: Sequence[Any] = ()  # e.g. a new member's key, made while encrypting
    positions: list[int] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class GroupCommitter:
    def __init__(self, put: Put) -> None:
        self._put = put
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._leading = False
        self.commits = 0  # transactions made (for benchmarks and tests)
        self.jobs = 0  # jobs saved
        self.splits = 0  # groups saved job by job after a conflict

    def commit(self, events: list[Any], writes: Sequence[Any] = ()) -> list[int]:
        """Save ``events`` and ``writes`` atomically (possibly with other jobs); the events'
        positions, in order."""
        assert events, "a job has events"
        job = _Job(events, writes)
        with self._cond:
            self._queue.append(job)
            while self._leading and not job.done:
                self._cond.wait()
            if not job.done:
                self._leading = True
        if not job.done:
            self._lead()
        if job.error is not None:
            raise job.error
        assert len(job.positions) == len(events)
        return job.positions

    def _lead(self) -> None:
        try:
            with self._cond:
                group = self._take()
            self._save(group)
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()

    def _take(self) -> list[_Job]:
        group: list[_Job] = []
        count = 0
        while self._queue and len(group) < JOBS_PER_COMMIT_MAX:
            if group and count + len(self._queue[0].events) > EVENTS_PER_COMMIT_MAX:
                break
            job = self._queue.pop(0)
            group.append(job)
            count += len(job.events)
        return group

    def _save(self, group: list[_Job]) -> None:
        try:
            self._save_together(group)
        except (IntegrityError, RecordConflictError) as e:
            if len(group) == 1:
                group[0].error = e
            else:
                self.splits += 1
                for job in group:
                    self._save_alone(job)
        except BaseException as e:  # e.g. the database is down: every job hears it
            for job in group:
                job.error = e
        finally:
            for job in group:
                job.done = True

    def _save_together(self, group: list[_Job]) -> None:
        events = [e for job in group for e in job.events]
        positions = self._put(events, [w for job in group for w in job.writes])
        assert len(positions) == len(events), "every event saved has a position"
        self.commits += 1
        self.jobs += len(group)
        start = 0
        for job in group:
            end = start + len(job.events)
            job.positions = list(positions[start:end])
            start = end

    def _save_alone(self, job: _Job) -> None:
        try:
            self._save_together([job])
        except BaseException as e:
            job.error = e
