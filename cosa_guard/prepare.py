"""The first stage of a call: may it be served, and what may a model see of it.

In order: the deployment's own state (an expired config, an audit log it requires and cannot
write), the request limits, the privilege rule on client system messages, then the input guard
on user and tool turns. The result is the turns a model may see, or the decision that ends the
call here (no model is called).
"""

from __future__ import annotations

import asyncio
import logging

from cosa_guard.audit import sink_health
from cosa_guard.call import Call
from cosa_guard.failures import describe, log_detail
from cosa_guard.injection.base import InputGuard
from cosa_guard.injection.detector import OFF_LOOP_CHARS
from cosa_guard.limits import check_request
from cosa_guard.privilege import PrivilegeResult, apply_privilege_rule
from cosa_guard.routing import Routes
from cosa_guard.types import Decision, FailureKind, Message, RefusalReason

__all__ = ["failure_detail", "prepare", "unservable"]

logger = logging.getLogger("cosa_guard.guard")


def unservable(rt: Routes) -> Decision | None:
    """The decision every call of this deployment gets right now, or None when it can be served."""
    config = rt.deployment.config
    if config.expires_at is not None and config.is_expired():
        return Decision.failed(FailureKind.CONFIG, "the deployment's config has expired")
    if rt.deployment.spec.audit.required:
        health = sink_health(rt.audit) if rt.audit is not None else None
        if rt.audit is None or (health is not None and not health.ok):
            return Decision.failed(
                FailureKind.AUDIT, "the deployment requires its audit log, which cannot be written now"
            )
    return None


def failure_detail(call: Call, where: str, exc: BaseException) -> str:
    """`where: <fixed description>` for the decision; the exception goes to the detail log only."""
    log_detail(call.request_id, where, exc)
    return f"{where}: {describe(exc)}"


async def prepare(call: Call, input_guard: InputGuard | None) -> tuple[Message, ...] | Decision:
    """The turns a model may see (quoted, no client system message), or the decision that ends the call."""
    ended = check_request(call.received, call.rt.deployment.spec.limits) or unservable(call.rt)
    if ended is not None:
        return ended
    spec = call.rt.deployment.spec
    policy = spec.injection.system_messages
    if sum(len(m.content) for m in call.received if m.role == "system") > OFF_LOOP_CHARS:
        # A long application prompt (a RAG template, say) is scanned off the loop, as user turns are.
        privileged = await asyncio.to_thread(apply_privilege_rule, call.received, policy)
    else:
        privileged = apply_privilege_rule(call.received, policy)
    call.notes.extend(privileged.notes)
    if privileged.rejected:
        call.findings = privileged.findings
        detail = "; ".join(f"{f.detector}: {f.reason}" for f in privileged.findings[:3])
        return Decision.refused(
            RefusalReason.INPUT_INJECTION,
            f"application instructions try to change the policy: {detail}"
            if detail
            else "client system message rejected (injection.system_messages)",
        )
    call.instructions = privileged.instructions
    if input_guard is None or not spec.injection.enabled:
        return privileged.quote(privileged.messages)
    return await _scan(call, input_guard, privileged)


async def _scan(
    call: Call, input_guard: InputGuard, privileged: PrivilegeResult
) -> tuple[Message, ...] | Decision:
    try:
        with call.step("input", "cosa_guard.input_scan"):
            check = await input_guard.check(privileged.messages, call.rt.deployment.spec.injection)
    except Exception as exc:
        return _scan_failed(call, failure_detail(call, "input guard", exc), privileged)
    call.findings, call.input_score = check.findings, check.score
    call.notes.extend(check.notes)
    if check.refusal is not None:
        return Decision.refused(
            check.refusal, "; ".join(f"{f.detector}: {f.reason}" for f in check.findings[:3])
        )
    if any(m.role == "system" for m in check.messages):
        call.notes.append("input guard returned system messages; removed")
    return tuple(m for m in privileged.quote(check.messages) if m.role != "system")


def _scan_failed(call: Call, detail: str, privileged: PrivilegeResult) -> tuple[Message, ...] | Decision:
    """The input guard could not run: fail closed, or continue flagged when the deployment fails open."""
    if not call.rt.fail_open:
        return Decision.failed(FailureKind.JUDGE, detail)
    logger.warning(
        "deployment %r request %s: %s; continuing because fail_mode is open",
        call.rt.deployment.id,
        call.request_id,
        detail,
    )
    call.notes.append(f"fail-open: {detail}")
    return privileged.quote(privileged.messages)
