"""Recipe parts to objects: the response generator (a Backend) and the labeller (an EvalJudge)."""

from __future__ import annotations

from pathlib import Path

from cosa_guard.backends.base import Backend
from cosa_guard.deployments import BackendSpec
from cosa_guard.evaluation.judges import EvalJudge, embedded_eval_judge, llm_eval_judge
from cosa_guard_training.label import DEFAULT_KEYWORDS, KeywordJudge
from cosa_guard_training.recipe import LabelRecipe

BACKEND_KINDS = ("scripted", "openai", "local")


def build_backend(spec: BackendSpec, scratch: Path | None = None) -> Backend:
    """scripted (replies in `options.replies`), openai (any OpenAI-compatible server, vLLM included),
    local (a model folder, `embedded` or `tiny`, loaded in this process)."""
    if spec.kind == "scripted":
        from cosa_guard.backends.fake import ScriptedBackend

        replies = spec.options.get("replies")
        if not replies:
            raise ValueError("a scripted backend needs options.replies: a list of reply texts")
        return ScriptedBackend([str(r) for r in replies], name=spec.model or "scripted")
    if spec.kind == "openai":
        from cosa_guard.backends.openai import OpenAIBackend

        return OpenAIBackend.from_options(
            spec.model,
            base_url=spec.base_url,
            api_key_env=spec.api_key_env,
            timeout_s=spec.timeout_s,
            options=spec.options,
        )
    if spec.kind == "local":
        from cosa_guard_training.local import LocalBackend

        return LocalBackend.from_dir(resolve_model_dir(spec.model, scratch), name=f"local:{spec.model}")
    raise ValueError(f"unknown backend kind {spec.kind!r} for a training recipe; use one of {BACKEND_KINDS}")


def resolve_model_dir(model: str, scratch: Path | None = None) -> Path:
    """A folder transformers loads: `embedded` is converted once into the user cache, `tiny` is written
    to `scratch` (a random 2-layer Llama), anything else is a path."""
    if model == "embedded":
        try:
            from cosa_guard.embedded import embedded_model_dir
        except ImportError as exc:
            raise ValueError(
                f"this cosa_guard has no embedded model support ({exc}); give a model folder instead"
            ) from exc
        return embedded_model_dir()
    if model == "tiny":
        from cosa_guard.testing.models import save_tiny_model

        return save_tiny_model(scratch or Path("tiny-model"))
    path = Path(model).expanduser()
    if not (path / "config.json").exists():
        raise ValueError(f"{path} is not a model folder (no config.json); use 'embedded', 'tiny' or a folder")
    return path


def build_labeller(recipe: LabelRecipe) -> EvalJudge:
    if recipe.judge == "keyword":
        return embedded_eval_judge(KeywordJudge(recipe.keywords or DEFAULT_KEYWORDS))
    if recipe.backend is None:
        raise ValueError("label.judge 'llm' needs label.backend: the chat model that answers the rubrics")
    return llm_eval_judge(build_backend(recipe.backend))
