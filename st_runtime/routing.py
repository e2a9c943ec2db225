"""sentence-transformers' Router route resolution for text inputs, from the manifest's RouterSpec."""

from __future__ import annotations

from .errors import InputValidationError
from .manifest import RouterSpec

TEXT = "text"


def available_routes(router: RouterSpec) -> str:
    names = [f"task={name!r}" for name in router.routes]
    names += [f"task={task!r}" for task, modality, _ in router.route_mappings if task is not None]
    return ", ".join(dict.fromkeys(names))


def resolve_route(router: RouterSpec, task: str | None) -> str:
    """The route ``task`` goes through (Router._resolve_route with modality 'text'); unknown tasks raise."""
    mappings = {(task_, modality): route for task_, modality, route in router.route_mappings}
    for key in ((task, TEXT), (task, None), (None, TEXT), (None, None)):
        if key in mappings:
            return mappings[key]
    if task and task in router.routes:
        return task
    if TEXT in router.routes:
        return TEXT
    if task is not None:
        raise InputValidationError(
            f"No route found for task {task!r}. This model's routes: {available_routes(router)}. "
            "Use encode_query / encode_document, or task= one of those."
        )
    if router.default_route is None:
        raise InputValidationError(
            f"This model's Router has no default route; pass task= one of: {available_routes(router)}."
        )
    return router.default_route
