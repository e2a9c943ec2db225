"""Which of a model's prompts ``encode_query`` / ``encode_document`` use when the caller names none.

sentence-transformers >= 5: a query takes the prompt named "query"; a document the first of "document", "passage",
"corpus" that the model has. Every model class with those two methods asks this module.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from .errors import InputValidationError

logger = logging.getLogger(__name__)

TASK_PROMPT_NAMES: dict[str, tuple[str, ...]] = {"query": ("query",), "document": ("document", "passage", "corpus")}


def task_prompt_name(task: str, prompts: Mapping[str, str]) -> str | None:
    """The name of the prompt ``task`` ('query' or 'document') uses by default, or None if the model has none."""
    return next((name for name in TASK_PROMPT_NAMES[task] if name in prompts), None)


def task_prompt(task: str | None, prompt_name: str | None, prompts: Mapping[str, str]) -> str | None:
    """``prompt_name``, else the prompt encode_query / encode_document would use for ``task`` (None for any other
    task, or when the model has no such prompt)."""
    if prompt_name is None and task in TASK_PROMPT_NAMES:
        return task_prompt_name(task, prompts)
    return prompt_name


def prompt_settings(saved: Mapping[str, str], saved_default: str | None, prompts: Mapping[str, str] | None,
                    default_prompt_name: str | None) -> tuple[dict[str, str], str | None]:
    """The model's prompts (the bundle's, updated by the caller's) and default prompt name (the caller's, else the
    bundle's); a default that names no prompt is an InputValidationError."""
    merged = {**saved, **(prompts or {})}
    default = default_prompt_name if default_prompt_name is not None else saved_default
    if default is not None and default not in merged:
        raise InputValidationError(f"Default prompt name {default!r} not found in the prompts "
                                   f"with keys {list(merged)!r}.")
    return merged, default


def resolve_prompt(prompts: Mapping[str, str], default_prompt_name: str | None, prompt: str | None,
                   prompt_name: str | None) -> str | None:
    """The prompt text ``encode`` uses, as sentence-transformers decides it: ``prompt`` wins (a ``prompt_name``
    beside it is ignored with a warning), then ``prompt_name`` (unknown: InputValidationError), then the default."""
    if prompt is not None:
        if prompt_name is not None:
            logger.warning("Provide either a `prompt` or a `prompt_name`, not both. Ignoring `prompt_name`.")
        return prompt
    if prompt_name is not None:
        if prompt_name not in prompts:
            raise InputValidationError(f"Prompt name {prompt_name!r} not found in the configured prompts "
                                       f"dictionary with keys {list(prompts)!r}.")
        return prompts[prompt_name]
    return prompts.get(default_prompt_name) if default_prompt_name is not None else None


class TaskEncoding:
    """``encode_query`` / ``encode_document`` for a class whose ``encode`` takes ``task=`` and ``prompt_name=`` and
    that has ``prompts``: the task's prompt unless the caller gave ``prompt`` or ``prompt_name``."""

    prompts: Mapping[str, str]
    default_prompt_name: str | None

    def _resolve_prompt(self, prompt: str | None, prompt_name: str | None) -> str | None:
        return resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name)

    def encode_query(self, inputs: Any, **kwargs: Any) -> Any:
        """encode() with task='query' (its length and mask side) and the model's 'query' prompt when it has one."""
        return self._encode_task("query", inputs, kwargs)

    def encode_document(self, inputs: Any, **kwargs: Any) -> Any:
        """encode() with task='document' and the model's 'document' (or 'passage'/'corpus') prompt."""
        return self._encode_task("document", inputs, kwargs)

    def _encode_task(self, task: str, inputs: Any, kwargs: dict[str, Any]) -> Any:
        if kwargs.get("prompt") is None and kwargs.get("prompt_name") is None:
            kwargs["prompt_name"] = task_prompt_name(task, self.prompts)
        return self.encode(inputs, task=task, **kwargs)
