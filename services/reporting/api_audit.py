"""``GET /reporting/audit/verify`` (auditor): each service's history checked against
the checkpoints reporting keeps, and in full where the service runs in this process
(``audit_verify``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from services.reporting import audit_verify
from services.reporting.audit import ChainKeeper
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import roles_doc, runtime_of

AUDITOR = Allow(Role.AUDITOR)


class AuditHead(BaseModel):
    notification_id: int
    hash: str = Field(description="Hex of the chain's hash there.")


class AuditProblem(BaseModel):
    kind: str = Field(description="changed, deleted, inserted, reordered, chain_altered, "
                                  "checkpoint_mismatch, checkpoint_signature, or "
                                  "source_unreachable (its log could not be read now).")
    notification_id: int
    other_id: int | None = Field(description="reordered: where the event now is.")
    message: str = Field(description="Ids, kinds and hashes only.")


class ServiceAudit(BaseModel):
    ok: bool
    scope: Literal["store", "checkpoints"] = Field(
        description="store: the whole chain recomputed from the stored events (the service "
                    "runs in this process); checkpoints: each checkpoint reporting keeps "
                    "checked against the service's log.")
    checked: int = Field(description="Events (store) or checkpoints (checkpoints) found as "
                                     "chained.")
    head: AuditHead = Field(description="The last place verified.")
    unchained: int = Field(description="Events past the chain's head (not a problem).")
    checkpoints: int = Field(description="Checkpoints found to hold.")
    checkpoints_held: int = Field(description="Checkpoints of this service reporting keeps.")
    problem: AuditProblem | None = Field(description="The first problem found, if any.")


class AuditVerification(BaseModel):
    ok: bool = Field(description="Every service clean.")
    services: dict[str, ServiceAudit]


def router() -> APIRouter:
    r = APIRouter()  # included in reporting's (its prefix and tag)

    @r.get(
        "/audit/verify",
        response_model=AuditVerification,
        summary="Verify every service's stored history against its signed checkpoints",
        description=roles_doc(
            AUDITOR,
            "For each service: every checkpoint of its audit chain that reporting keeps "
            "(received on the bus) is checked (its signature with a trusted key, and that "
            "the service's log still carries that chain hash at that notification id); a "
            "service running in the same process is also verified in full, its chain "
            "recomputed from its stored events. Each answers the first problem found "
            "(changed, deleted, inserted, reordered, chain_altered, checkpoint_mismatch, "
            "checkpoint_signature, source_unreachable) with its notification id, as "
            "`solidarity audit verify --json` does. It reads every stored event of the "
            "services in this process: seconds for hundreds of thousands."),
    )
    async def verify(
        request: Request,
        _principal: Annotated[Principal, Depends(AUDITOR)],
    ) -> AuditVerification:
        runtime = runtime_of(request, "reporting")
        keeper: ChainKeeper = runtime.audit  # built by the composition root from Chained
        system = request.app.state.system
        local = {name: rt for name, rt in system.runtimes.items() if rt.chainer is not None}
        answer = await audit_verify.verify_all(
            keeper.checkpoints, keeper.trusted, system.event_source, local,
            list(runtime.module.subscriptions))
        return AuditVerification.model_validate(answer)

    return r
