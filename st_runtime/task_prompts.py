"""Which of a model's prompts ``encode_query`` / ``encode_document`` use when the caller names none.

sentence-transformers >= 5: a query takes the prompt named "query"; a document the first of "document", "passage",
"corpus" that the model has. Every model class with those two methods asks this module.
"""

from __future__ import annotations

from typing import Mapping

TASK_PROMPT_NAMES: dict[str, tuple[str, ...]] = {"query": ("query",), "document": ("document", "passage", "corpus")}


def task_prompt_name(task: str, prompts: Mapping[str, str]) -> str | None:
    """The name of the prompt ``task`` ('query' or 'document') uses by default, or None if the model has none."""
    return next((name for name in TASK_PROMPT_NAMES[task] if name in prompts), None)
