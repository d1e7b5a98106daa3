"""Cost of the trusted-config path: lint, sign, verify, loading and reloading deployments, key lookup.

    python benchmarks/foundation.py --quick

A server pays `verify` for every deployment at start-up and on every reload, and the API-key
lookup on every request (it compares against every stored hash, in constant time). Prints
`name=value` lines:

    lint_ms, sign_ms, verify_ms                      median per call, the demo config
    verify_2_signers_ms                              median, a bundle with two trusted signatures
    registry_load_ms_N, registry_reload_ms_N         a deployments file with N signed deployments
    api_key_lookup_us_N                              median `by_api_key` with N deployments
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cosa_guard.demo import demo_config
from cosa_guard.deployments import DeploymentRegistry
from cosa_guard.review import lint
from cosa_guard.signing import Keyring, add_signature, generate_key, sign_config, verify_bundle
from cosa_guard.testing.deployments import write_signed_deployment


def _median_ms(fn: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)


def run(calls: int, deployments: int, workdir: Path) -> dict[str, float]:
    config = demo_config()
    alice, bob = generate_key(), generate_key()
    bundle = sign_config(config, alice, reviewer="alice")
    both = add_signature(bundle, bob, signer="bob")
    one, two = Keyring([alice.public_key()]), Keyring([alice.public_key(), bob.public_key()])
    source = config.model_dump(mode="json")

    results = {
        "lint_ms": _median_ms(lambda: lint(source), calls),
        "sign_ms": _median_ms(lambda: sign_config(config, alice, reviewer="alice"), calls),
        "verify_ms": _median_ms(lambda: verify_bundle(bundle, one), calls),
        "verify_2_signers_ms": _median_ms(lambda: verify_bundle(both, two, min_signers=2), calls),
    }

    api_key = ""
    for i in range(deployments):
        path, api_key = write_signed_deployment(workdir, config, deployment_id=f"d{i:04d}")
    start = time.perf_counter()
    registry = DeploymentRegistry.load(path)
    results[f"registry_load_ms_{deployments}"] = (time.perf_counter() - start) * 1000.0
    start = time.perf_counter()
    report = registry.reload()
    results[f"registry_reload_ms_{deployments}"] = (time.perf_counter() - start) * 1000.0
    assert report.ok and len(registry) == deployments
    results[f"api_key_lookup_us_{deployments}"] = 1000.0 * _median_ms(
        lambda: registry.by_api_key(api_key), calls
    )
    return results


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and deployments (a few seconds)")
    args = parser.parse_args()
    calls, deployments = (200, 50) if args.quick else (2_000, 500)
    with tempfile.TemporaryDirectory() as tmp:
        results = run(calls, deployments, Path(tmp))
    for name, value in results.items():
        print(f"{name}={value:.3f}")


if __name__ == "__main__":
    main()
