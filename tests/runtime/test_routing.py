"""Route resolution from the manifest's RouterSpec is sentence-transformers' Router._resolve_route for text, on
route_mappings of every priority level; an unknown task is a typed error naming the routes."""

import pytest

from st_runtime.errors import InputValidationError
from st_runtime.manifest import RouterSpec, RouteSpec
from st_runtime.routing import resolve_route

CASES = [
    ({"query": 0, "document": 1}, "document", {}),
    ({"q": 0, "d": 1}, "d", {("query", None): "q", ("document", None): "d"}),
    ({"q": 0, "d": 1, "text": 2}, "d", {("query", "text"): "q"}),
    ({"a": 0, "b": 1}, "a", {(None, "text"): "b", ("query", None): "a"}),
    ({"a": 0, "b": 1}, "b", {(None, None): "a"}),
    ({"query": 0, "document": 1}, None, {}),
]
TASKS = [None, "query", "document", "q", "d", "a", "b", "text", "other"]


def _torch_router(routes, default, mappings):
    torch = pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from sentence_transformers.sentence_transformer.modules import Router

    return Router({name: [torch.nn.Identity()] for name in routes}, default_route=default,
                  allow_empty_key=default is not None, route_mappings=mappings or None)


@pytest.mark.parametrize("routes,default,mappings", CASES)
def test_same_route_as_sentence_transformers(routes, default, mappings):
    router = _torch_router(routes, default, mappings)
    spec = RouterSpec(routes={name: RouteSpec(type="graph") for name in routes}, default_route=default,
                      route_mappings=[[task, modality, route] for (task, modality), route in mappings.items()])
    for task in TASKS:
        try:
            expected = router._resolve_route(task=task, modality="text")
        except ValueError:
            with pytest.raises(InputValidationError) as info:
                resolve_route(spec, task)
            assert all(f"task={name!r}" in str(info.value) for name in routes), str(info.value)
        else:
            assert resolve_route(spec, task) == expected, (routes, default, mappings, task)
