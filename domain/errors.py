"""Typed domain errors. The API maps each class to one HTTP status (api/problems.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class DomainError(Exception):
    """Base of every refusal the domain makes. ``code`` is stable snake_case."""

    code: str = "domain_error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """The request is well-formed JSON but a value breaks a rule of its own (-> 422)."""

    code = "validation_failed"

    def __init__(
        self, detail: str, *, errors: list[FieldProblem] | None = None, code: str | None = None
    ) -> None:
        super().__init__(detail, code=code)
        self.errors = errors or []

    @classmethod
    def field(cls, name: str, message: str) -> InvalidInput:
        return cls(f"{name}: {message}", errors=[FieldProblem(name, message)])


class NotAuthenticated(DomainError):
    code = "not_authenticated"


class NotAllowed(DomainError):
    """The principal may not do this (-> 403)."""

    code = "forbidden"


class NotFound(DomainError):
    """Unknown, or outside the principal's scope where even existence is private (-> 404)."""

    code = "not_found"


class Conflict(DomainError):
    """A state that forbids the request, or an idempotency mismatch (-> 409)."""

    code = "conflict"


class IdempotencyMismatch(Conflict):
    code = "idempotency_mismatch"


class BusinessRuleBroken(DomainError):
    """A business rule refuses the request (-> 422 with a stable code)."""

    code = "business_rule"


@dataclass(frozen=True)
class Refusal:
    """One refused item of an atomic batch (e.g. a logistics event)."""

    item_id: str
    code: str
    detail: str
    permission: bool = False


@dataclass
class BatchRefused(DomainError):
    """An atomic batch of which at least one item was refused; nothing was written."""

    refusals: list[Refusal] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.code = "batch_refused"
        self.detail = f"{len(self.refusals)} item(s) refused; nothing was applied"
        Exception.__init__(self, self.detail)

    @property
    def is_permission(self) -> bool:
        return any(r.permission for r in self.refusals)
