"""Every failure a user can cause raises a StRuntimeError subclass naming the fix (issue 19): the modules that
used to leak ValueError / KeyError / json.JSONDecodeError, and the device / library split."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from st_runtime import (
    BackendNotInstalledError,
    BackendUnavailableError,
    BundleError,
    SentenceTransformer,
    StRuntimeError,
    UnsupportedArgumentError,
    UnsupportedDeviceError,
    UnsupportedModelError,
)
from st_runtime.pooling import Dense, pool


def test_pooling_errors_are_typed():
    tokens, mask = np.ones((1, 2, 4), np.float32), np.ones((1, 2), np.int64)
    with pytest.raises(BundleError, match="pooling mode"):
        pool(tokens, mask, ["median"])
    with pytest.raises(BundleError, match="not supported without torch"):
        Dense(np.ones((2, 4), np.float32), None, "Softplus")
    with pytest.raises(BundleError, match="shapes"):
        Dense(np.ones((4,), np.float32), None, "Identity")


@pytest.fixture
def st_folder(tmp_path):
    """A minimal Sentence Transformers folder: modules.json plus a graph file (never opened by these tests)."""
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"not a graph")
    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "x.Transformer"}]))
    return tmp_path


@pytest.mark.parametrize("name, text, match", [
    ("modules.json", "{not json", "not valid JSON"),
    ("modules.json", '[{"path": ""}]', "without a 'type'"),
    ("modules.json", '{"a": 1}', "JSON list"),
    ("config_sentence_transformers.json", "[1, 2", "not valid JSON"),
    ("sentence_bert_config.json", "nope", "not valid JSON"),
])
def test_st_folder_with_broken_json_is_a_bundle_error(st_folder, name, text, match):
    (st_folder / name).write_text(text)
    with pytest.raises(BundleError, match=match):
        SentenceTransformer(st_folder)


def test_st_folder_without_tokenizer_and_bad_pooling(st_folder):
    from st_runtime import IntegrityError

    with pytest.raises(IntegrityError, match="tokenizer.json"):
        SentenceTransformer(st_folder)
    modules = [{"idx": 0, "path": "", "type": "x.Transformer"}, {"idx": 1, "path": "1_Pooling", "type": "x.Pooling"}]
    (st_folder / "modules.json").write_text(json.dumps(modules))
    (st_folder / "1_Pooling").mkdir()
    (st_folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode": 3}))
    with pytest.raises(BundleError, match="pooling_mode"):
        SentenceTransformer(st_folder)


def test_exporter_source_and_specs_errors_are_typed(tmp_path):
    from st_runtime.export.source import detect_kind
    from st_runtime.export.specs import tokenizer_spec

    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(UnsupportedModelError, match="not valid JSON"):
        detect_kind(tmp_path)
    (tmp_path / "config_sentence_transformers.json").write_text("[]")
    with pytest.raises(UnsupportedModelError, match="JSON object"):
        detect_kind(tmp_path)
    tokenizer = SimpleNamespace(pad_token=None)
    with pytest.raises(UnsupportedModelError, match="pad token"):
        tokenizer_spec(tokenizer, SimpleNamespace(), 128, False)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "mps", 3, ["cpu"]])
def test_a_bad_device_is_not_reported_as_a_missing_library(export_bundle, device):
    with pytest.raises(UnsupportedDeviceError) as info:
        SentenceTransformer(export_bundle("bert-mean"), device=device) if not isinstance(device, list) else \
            SentenceTransformer(export_bundle("bert-mean")).to(device)
    assert not isinstance(info.value, ImportError) and isinstance(info.value, BackendUnavailableError)


def test_a_missing_execution_provider_is_a_missing_library(export_bundle):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has onnxruntime-gpu")
    with pytest.raises(BackendNotInstalledError, match="onnxruntime-gpu|GPU build") as info:
        SentenceTransformer(export_bundle("bert-mean"), device="cuda")
    assert isinstance(info.value, ImportError)


@pytest.mark.parametrize("kwargs", [{"cache_folder": "/tmp"}, {"revision": "main"}, {"token": "x"},
                                    {"trust_remote_code": True}, {"model_kwargs": {"torch_dtype": "float16"}},
                                    {"modules": [object()]}, {"config_kwargs": {"a": 1}}])
def test_refused_sentence_transformers_arguments_say_why(export_bundle, kwargs):
    with pytest.raises(UnsupportedArgumentError, match="not supported by st-runtime: "):
        SentenceTransformer(export_bundle("bert-mean"), **kwargs)


def test_defaults_of_refused_arguments_are_accepted(export_bundle, tmp_path):
    model = SentenceTransformer(export_bundle("bert-mean"), cache_folder=None, trust_remote_code=False,
                                local_files_only=True, backend="onnx")
    assert model.encode("x").shape == (32,)
    with pytest.raises(StRuntimeError, match="model_name_or_path"):
        SentenceTransformer()
    copy = tmp_path / "b"
    shutil.copytree(export_bundle("bert-mean"), copy)
    with pytest.raises(StRuntimeError, match="openvino"):
        SentenceTransformer(copy, backend="openvino")
