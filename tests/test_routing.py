"""The route pool: clients shared by spec and closed when unused, breaker changes reported per deployment."""

from __future__ import annotations

from pathlib import Path

from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.breaker import BreakerState
from cosa_guard.config import SafetyConfig
from cosa_guard.deployments import DeploymentRegistry
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.routing import RoutePool
from cosa_guard.settings import BackendSpec
from cosa_guard.testing.deployments import write_signed_deployment

CONFIG = SafetyConfig(id="c", version=1, text="Violence in fiction is fine.", allow=("violence",))


async def test_route_pool_shares_equal_specs_and_closes_only_what_is_unused(tmp_path: Path) -> None:
    class Closable(ScriptedBackend):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    built: list[str] = []

    def backends(spec: BackendSpec, base: Path) -> Closable:
        built.append(spec.model)
        return Closable(name=spec.model)

    same = {"fallback": {"kind": "scripted", "model": "shared"}}
    write_signed_deployment(tmp_path, CONFIG, deployment_id="one", routes=same)
    path, _ = write_signed_deployment(tmp_path, CONFIG, deployment_id="two", routes=same)
    registry = DeploymentRegistry.load(path)
    pool = RoutePool(backends, lambda spec, base: ScriptedJudge(), lambda i, s: None)
    one, two = pool.build(registry.get("one")), pool.build(registry.get("two"))
    assert one.fallback is two.fallback and built == ["shared"]
    assert one.verifier is not None and two.verifier is not None
    assert one.verifier.cache is not two.verifier.cache  # caches stay per deployment
    assert one.system.role == "system" and one.primary is None and one.breaker is None

    shared = one.fallback
    assert isinstance(shared, Closable)
    await pool.close_unused([one])
    assert not shared.closed
    pool.borrowed.add(id(shared))
    await pool.close_unused([])
    assert not shared.closed and pool.backends == {}  # dropped from the pool, but the caller owns it


def test_route_pool_reports_breaker_changes_per_deployment(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(
        tmp_path,
        CONFIG,
        deployment_id="one",
        routes={"primary": {"kind": "scripted", "model": "p"}},
        breaker={"failure_threshold": 1},
    )
    changes: list[tuple[str, BreakerState]] = []
    pool = RoutePool(
        lambda spec, base: ScriptedBackend(),
        lambda spec, base: ScriptedJudge(),
        lambda i, s: changes.append((i, s)),
    )
    routes = pool.build(DeploymentRegistry.load(path).get("one"))
    assert routes.breaker is not None and routes.verifier is None  # nothing judged on a primary-only route
    routes.breaker.acquire()
    routes.breaker.record_failure()
    assert changes == [("one", BreakerState.OPEN)]
