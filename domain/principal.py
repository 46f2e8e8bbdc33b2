"""Who makes a request: a role and the partner it acts for, with that partner's path."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.errors import NotAllowed

HQ_CODE = "HQ"
PATH_SEPARATOR = "/"


class Role(StrEnum):
    HQ = "hq"
    AUDITOR = "auditor"
    DEALER = "dealer"
    STORE = "store"
    CLERK = "clerk"
    DISTRIBUTOR = "distributor"
    FACTORY = "factory"
    GATEWAY = "gateway"


# Roles HQ may hand out for itself; every other partner gets the role of its kind.
HQ_ROLES = frozenset({Role.HQ, Role.AUDITOR, Role.FACTORY, Role.GATEWAY})
# Roles whose data scope is the whole tree.
GLOBAL_SCOPE_ROLES = frozenset({Role.HQ, Role.AUDITOR})
READ_ONLY_ROLES = frozenset({Role.AUDITOR})


def path_within(path: str, scope: str) -> bool:
    """True if ``path`` is ``scope`` itself or below it in the channel tree."""
    return path == scope or path.startswith(scope + PATH_SEPARATOR)


@dataclass(frozen=True)
class Principal:
    role: Role
    partner: str
    path: str
    token_id: str | None = None

    @property
    def scope_key(self) -> str:
        """What client request ids are scoped to: the partner and the role acting for it."""
        return f"{self.role.value}@{self.partner}"

    @property
    def sees_everything(self) -> bool:
        return self.role in GLOBAL_SCOPE_ROLES

    def may_see(self, path: str) -> bool:
        return self.sees_everything or path_within(path, self.path)

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise NotAllowed(f"role {self.role.value} may not do this (needs {allowed})")

    def require_writer(self) -> None:
        if self.role in READ_ONLY_ROLES:
            raise NotAllowed(f"role {self.role.value} is read-only", code="read_only")


def hq_admin() -> Principal:
    """The principal of the bootstrap token and of operator commands (demo, settle)."""
    return Principal(role=Role.HQ, partner=HQ_CODE, path=HQ_CODE)
