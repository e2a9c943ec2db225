"""Folders with ST's own transformer-only graph (onnx/model.onnx, openvino/openvino_model.xml): numpy pooling
must match the torch model like a fused bundle does."""

import shutil

import numpy as np
import pytest

from st_runtime import BundleError, SentenceTransformer, corpus

pytestmark = pytest.mark.torch
TEXTS = corpus.queries(12, seed=61) + corpus.passages(4, seed=62) + corpus.passages(1, seed=63, min_words=900,
                                                                                  max_words=950) + [""]


def _st_style_folder(src, dest, openvino: bool = False):
    """What ST's backend="onnx" (optimum) writes: the model folder plus onnx/model.onnx with last_hidden_state."""
    import torch
    from sentence_transformers import SentenceTransformer as TorchST

    shutil.copytree(src, dest)
    st = TorchST(str(dest), device="cpu")
    features = st.preprocess(["a first text", "and a second, longer text"])
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features]
    (dest / "onnx").mkdir()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    torch.onnx.export(LastHiddenState(st[0].auto_model), tuple(features[k] for k in names), str(dest / "onnx" / "model.onnx"),
                      input_names=names, output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                      dynamic_axes={**{k: {0: "b", 1: "s"} for k in names}, "last_hidden_state": {0: "b", 1: "s"}})
    if openvino:
        import openvino as ov

        (dest / "openvino").mkdir()
        ov.save_model(ov.convert_model(str(dest / "onnx" / "model.onnx")), str(dest / "openvino" / "openvino_model.xml"),
                      compress_to_fp16=False)
    return st


@pytest.mark.parametrize("name", ["minilm-real", "bert-cls-dense", "bert-noprompt-pool", "bert-weightedmean",
                                  "bert-max", "qwen3-lasttoken"])
def test_st_onnx_folder_matches_torch(name, model_path, tmp_path):
    ref = _st_style_folder(model_path(name), tmp_path / name)
    ours = SentenceTransformer(tmp_path / name)
    assert ours.variant == "onnx/model.onnx"
    assert np.abs(ref.encode(TEXTS) - ours.encode(TEXTS)).max() <= 1e-5
    for prompt_name, prompt in ours.prompts.items():
        if prompt:
            diff = np.abs(ref.encode(TEXTS, prompt_name=prompt_name) - ours.encode(TEXTS, prompt_name=prompt_name))
            assert diff.max() <= 1e-5, prompt_name


def test_st_openvino_folder_and_choice(model_path, tmp_path):
    pytest.importorskip("openvino")
    ref = _st_style_folder(model_path("bert-mean"), tmp_path / "m", openvino=True)
    default = SentenceTransformer(tmp_path / "m")
    assert default.variant == "onnx/model.onnx"
    ov_model = SentenceTransformer(tmp_path / "m", file_name="openvino/openvino_model.xml")
    assert np.abs(ref.encode(TEXTS) - ov_model.encode(TEXTS)).max() <= 1e-5


def test_several_graphs_are_never_picked_silently(model_path, tmp_path):
    _st_style_folder(model_path("bert-mean"), tmp_path / "m")
    (tmp_path / "m" / "onnx" / "model.onnx").rename(tmp_path / "m" / "onnx" / "model_a.onnx")
    shutil.copy(tmp_path / "m" / "onnx" / "model_a.onnx", tmp_path / "m" / "onnx" / "model_b.onnx")
    with pytest.raises(BundleError, match="several graphs"):
        SentenceTransformer(tmp_path / "m")
    assert SentenceTransformer(tmp_path / "m", file_name="model_b.onnx").encode("x").shape


def test_pickled_weights_are_never_loaded(model_path, tmp_path):
    """A Dense module that only has pytorch_model.bin (a pickle) is refused, not unpickled."""
    _st_style_folder(model_path("bert-cls-dense"), tmp_path / "m")
    dense_dir = next(p for p in (tmp_path / "m").iterdir() if p.name.endswith("Dense"))
    (dense_dir / "model.safetensors").rename(dense_dir / "pytorch_model.bin")
    with pytest.raises(BundleError, match="never unpickles"):
        SentenceTransformer(tmp_path / "m")
