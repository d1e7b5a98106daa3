"""Recipe parts to objects: the response generator (a Backend), the labeller (an EvalJudge), the base model.

Backends and judges come from the core factories, so a recipe names them exactly as a
deployments file does (`kind: openai | vllm | transformers | langchain | scripted`; judge kinds
`category | llm | composite | scripted`). Relative paths resolve against the working directory.
"""

from __future__ import annotations

from pathlib import Path

from cosa_guard.backends.base import Backend
from cosa_guard.backends.factory import build_backend
from cosa_guard.evaluation.judges import EvalJudge, embedded_eval_judge, llm_eval_judge
from cosa_guard.judges.factory import build_judge
from cosa_guard.settings import BackendSpec
from cosa_guard_training.label import DEFAULT_KEYWORDS, KeywordJudge
from cosa_guard_training.recipe import LabelRecipe


def build_generator(spec: BackendSpec) -> Backend:
    return build_backend(spec, Path.cwd())


def build_labeller(recipe: LabelRecipe) -> EvalJudge:
    """Categories from the configured source; "addressed" from the refusal detector, or the rubric."""
    if recipe.kind == "keyword":
        return embedded_eval_judge(KeywordJudge(recipe.keywords or DEFAULT_KEYWORDS))
    if recipe.kind == "judge":
        if recipe.judge is None:
            raise ValueError("label.kind 'judge' needs label.judge: a judge spec such as {kind: category}")
        return embedded_eval_judge(build_judge(recipe.judge, Path.cwd()))
    if recipe.backend is None:
        raise ValueError("label.kind 'rubrics' needs label.backend: the chat model that answers the rubrics")
    return llm_eval_judge(build_generator(recipe.backend))


def resolve_model_dir(model: str, scratch: Path) -> Path:
    """A folder transformers loads: `embedded` is converted once into the user cache, `tiny` (a random
    2-layer Llama) is written to `scratch`, anything else is a model folder."""
    if model == "embedded":
        from cosa_guard.embedded import embedded_model_dir

        return embedded_model_dir()
    if model == "tiny":
        from cosa_guard.testing.models import save_tiny_model

        return save_tiny_model(scratch)
    path = Path(model).expanduser()
    if not (path / "config.json").exists():
        raise ValueError(f"{path} is not a model folder (no config.json); use 'embedded', 'tiny' or a folder")
    return path
