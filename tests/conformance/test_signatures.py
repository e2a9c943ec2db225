"""Every parameter of the installed sentence-transformers' public API is accepted by st-runtime under the same name
and kind, or refused with a typed error that says why (``st_runtime.compat.REFUSED``, ``st_runtime.util.NOT_PROVIDED``;
both are the README's "Refused arguments" list). Introspection only: no model runs here."""

from __future__ import annotations

import inspect

import pytest

import st_runtime
from st_runtime import NotProvidedError, UnsupportedArgumentError, compat, util

st = pytest.importorskip("sentence_transformers")
pytestmark = pytest.mark.torch

P = inspect.Parameter
# Our defaults that differ from sentence-transformers', and why (documented in the README).
DEFAULT_DIFFERENCES = {
    ("encode", "inputs"): "None, so the deprecated sentences= keyword still works (ST requires it)",
    ("encode_query", "inputs"): "as encode", ("encode_document", "inputs"): "as encode",
    ("predict", "inputs"): "None, so the deprecated sentences= keyword still works (ST requires it)",
}
# Parameters we take on purpose although sentence-transformers gives them another meaning.
METHODS = [
    ("SentenceTransformer", "__init__"), ("SentenceTransformer", "encode"), ("SentenceTransformer", "encode_query"),
    ("SentenceTransformer", "encode_document"), ("SentenceTransformer", "similarity"),
    ("SentenceTransformer", "similarity_pairwise"), ("CrossEncoder", "__init__"), ("CrossEncoder", "predict"),
    ("CrossEncoder", "rank"),
]


def _params(fn) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def _positional(params) -> list[str]:
    return [p.name for p in params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]


@pytest.mark.parametrize("cls, method", METHODS, ids=[f"{c}.{m}" for c, m in METHODS])
def test_method_accepts_every_parameter_by_name_and_kind(cls, method):
    theirs = _params(getattr(getattr(st, cls), method))
    ours = {p.name: p for p in _params(getattr(getattr(st_runtime, cls), method))}
    our_positional = _positional(ours.values())
    for index, param in enumerate(p for p in theirs if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)):
        assert our_positional[index] == param.name, f"{cls}.{method}: positional #{index} is {param.name}"
    for param in theirs:
        if param.kind == P.VAR_KEYWORD:
            assert any(p.kind == P.VAR_KEYWORD for p in ours.values()), f"{cls}.{method} needs **kwargs"
            continue
        assert param.name in ours, f"{cls}.{method} lacks {param.name!r} (neither accepted nor refused)"
        mine = ours[param.name]
        assert mine.kind == param.kind, f"{cls}.{method}({param.name}): {mine.kind} vs {param.kind}"
        if (method, param.name) not in DEFAULT_DIFFERENCES and param.default is not P.empty:
            assert mine.default == param.default, f"{cls}.{method}({param.name}) default {mine.default!r}"


# A value other than sentence-transformers' default for each refused loading argument.
_NON_DEFAULT = {"modules": [object()], "cache_folder": "/tmp/x", "revision": "main", "token": "hf_x",
                "use_auth_token": "hf_x", "trust_remote_code": True, "model_kwargs": {"torch_dtype": "float16"},
                "processor_kwargs": {"use_fast": False}, "config_kwargs": {"a": 1}, "model_card_data": object(),
                "keep_in_fp32_modules": ["0.linear"]}


@pytest.mark.parametrize("cls", ["SentenceTransformer", "CrossEncoder"])
def test_refused_loading_arguments_are_listed_and_raise_with_the_reason(cls, tmp_path):
    theirs = {p.name for p in _params(getattr(getattr(st, cls), "__init__"))}
    refused = {key.split(".", 1)[1] for key in compat.REFUSED if key.startswith("__init__.")}
    for name in sorted(theirs & set(_NON_DEFAULT)):
        assert name in refused, f"{cls}({name}=...) is neither supported nor in compat.REFUSED"
        with pytest.raises(UnsupportedArgumentError) as info:
            getattr(st_runtime, cls)(tmp_path, **{name: _NON_DEFAULT[name]})
        assert compat.REFUSED[f"__init__.{name}"] in str(info.value)


def test_refused_call_arguments_raise_before_any_work():
    from st_runtime.sentence_transformer import SentenceTransformer

    model = SentenceTransformer.__new__(SentenceTransformer)  # argument checks run before the model is touched
    for kwargs, key in (({"convert_to_tensor": True}, "convert_to_tensor"),
                        ({"processing_kwargs": {"text": {"max_length": 8}}}, "processing_kwargs")):
        with pytest.raises(UnsupportedArgumentError) as info:
            model.encode(["x"], **kwargs)
        assert compat.REFUSED[key] in str(info.value)


def _st_util_functions() -> dict[str, object]:
    return {name: getattr(st.util, name) for name in st.util.__all__ if not name.startswith("_")}


def test_every_util_name_is_provided_or_refused_with_a_reason():
    for name, theirs in _st_util_functions().items():
        if name in util.NOT_PROVIDED:
            assert not hasattr(util, name)
            with pytest.raises(NotProvidedError, match=name):
                getattr(util, name)
            continue
        assert hasattr(util, name), f"st_runtime.util lacks {name} and does not list it in NOT_PROVIDED"
        ours = getattr(util, name)
        if not callable(theirs) or inspect.isclass(theirs):
            continue
        their_params, our_params = _params(theirs), {p.name: p for p in _params(ours)}
        if any(p.kind == P.VAR_POSITIONAL for p in their_params):  # information_retrieval(*args, **kwargs)
            continue
        assert _positional(our_params.values())[: len(_positional(their_params))] == _positional(their_params), name
        for param in their_params:
            assert param.name in our_params and our_params[param.name].kind == param.kind, f"{name}({param.name})"
            if param.default is not P.empty and not callable(param.default):
                assert our_params[param.name].default == param.default, f"{name}({param.name}) default"


def test_readme_lists_every_refused_argument():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Refused arguments", 1)[1].split("\n## ", 1)[0]
    for key in compat.REFUSED:
        assert f"`{key.split('.')[-1]}" in section, f"README 'Refused arguments' lacks {key}"
    assert "NOT_PROVIDED" in section
