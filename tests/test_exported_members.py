"""The public surface of `import cosa_guard` is pinned: changing it is a deliberate edit here."""

from __future__ import annotations

import cosa_guard

EXPORTED = [
    "DEFAULT_TAXONOMY",
    "Backend",
    "BackendError",
    "BundleError",
    "Category",
    "Chunk",
    "Completion",
    "ConfigError",
    "CosaGuardError",
    "Decision",
    "DecisionKind",
    "DeploymentError",
    "DeploymentRegistry",
    "FailureKind",
    "FinalEvent",
    "GenerationParams",
    "Guard",
    "GuardResponse",
    "InputGuard",
    "Judge",
    "JudgeError",
    "LoadedDeployment",
    "Message",
    "MissingExtraError",
    "RefusalReason",
    "Route",
    "SafetyConfig",
    "Taxonomy",
    "TextDelta",
    "UnknownDeploymentError",
    "Verdict",
    "__version__",
]


def test_all_is_pinned() -> None:
    assert sorted(cosa_guard.__all__) == sorted(EXPORTED)


def test_every_export_resolves_to_a_cosa_guard_object() -> None:
    for name in cosa_guard.__all__:
        member = getattr(cosa_guard, name)
        if name == "__version__":
            assert isinstance(member, str)
        elif name == "DEFAULT_TAXONOMY":
            assert isinstance(member, cosa_guard.Taxonomy)
        else:
            assert member.__module__.startswith("cosa_guard."), name


def test_nothing_of_ours_is_public_without_being_exported() -> None:
    # Submodules and the typing helpers the module itself uses are not part of the surface.
    ours = {
        name
        for name, member in vars(cosa_guard).items()
        if not name.startswith("_") and getattr(member, "__module__", "").startswith("cosa_guard")
    }
    assert ours <= set(cosa_guard.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    assert not hasattr(cosa_guard, "NoSuchThing")
