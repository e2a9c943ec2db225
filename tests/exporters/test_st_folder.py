"""Folders with ST's own transformer-only graph (onnx/model.onnx, openvino/openvino_model.xml): numpy pooling
must match the torch model like a fused bundle does."""

import shutil

import numpy as np
import pytest

from st_runtime import BundleError, SentenceTransformer, corpus

HAS_OPENVINO = __import__("importlib").util.find_spec("openvino") is not None

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


def test_st_folder_to_and_pool_keep_the_configuration(model_path, tmp_path):
    """Before: to() on a Sentence Transformers folder raised a misleading 'built from parts' error."""
    ref = _st_style_folder(model_path("bert-mean"), tmp_path / "m")
    ours = SentenceTransformer(tmp_path / "m", truncate_dim=8)
    ours.max_seq_length = ref.max_seq_length = 12
    before = ours.encode(TEXTS)
    assert np.abs(before - ref.encode(TEXTS, truncate_dim=8)).max() <= 1e-5
    ours.to("cpu")
    assert ours.max_seq_length == 12 and np.array_equal(ours.encode(TEXTS), before)
    pool = ours.start_multi_process_pool(processes=1)
    try:
        assert np.abs(ours.encode(TEXTS, pool=pool) - before).max() <= 1e-6
    finally:
        ours.stop_multi_process_pool(pool)


def _st_style_cross_encoder_folder(src, dest):
    """What ST's CrossEncoder(backend="onnx") (optimum) writes: the folder plus onnx/model.onnx with logits."""
    import torch
    from sentence_transformers import CrossEncoder as TorchCE

    shutil.copytree(src, dest)
    ce = TorchCE(str(dest), device="cpu")
    features = ce.preprocess([("a query", "a passage"), ("another query here", "short")])
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features]
    (dest / "onnx").mkdir()

    class Logits(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).logits

    torch.onnx.export(Logits(ce[0].auto_model), tuple(features[k] for k in names), str(dest / "onnx" / "model.onnx"),
                      input_names=names, output_names=["logits"], opset_version=17, dynamo=False,
                      dynamic_axes={**{k: {0: "b", 1: "s"} for k in names}, "logits": {0: "b"}})
    return ce


@pytest.mark.parametrize("name", ["ce-bert", "ce-bert-3labels"])
def test_st_cross_encoder_folder_matches_torch(name, model_path, tmp_path):
    from st_runtime import CrossEncoder, WrongModelKindError

    ref = _st_style_cross_encoder_folder(model_path(name), tmp_path / name)
    ours = CrossEncoder(tmp_path / name)
    assert ours.variant == "onnx/model.onnx" and ours.num_labels == ref.num_labels
    pairs = [(q, p) for q, p in zip(corpus.queries(12, seed=64), TEXTS)]
    assert np.abs(ref.predict(pairs) - ours.predict(pairs)).max() <= 1e-5
    short = CrossEncoder(tmp_path / name, max_length=16, prompts={"judge": "Judge: "})
    ref.max_seq_length = 16
    ref.prompts = {"judge": "Judge: "}
    assert np.abs(ref.predict(pairs, prompt_name="judge") - short.predict(pairs, prompt_name="judge")).max() <= 1e-5
    if ref.num_labels == 1:
        got, want = short.rank("query", TEXTS[:5]), ref.rank("query", TEXTS[:5])
        by_id = {r["corpus_id"]: r["score"] for r in want}
        assert all(abs(r["score"] - by_id[r["corpus_id"]]) <= 1e-5 for r in got)
        assert all(a["score"] >= b["score"] for a, b in zip(got, got[1:]))
    with pytest.raises(WrongModelKindError, match="CrossEncoder"):
        SentenceTransformer(tmp_path / name)
    if name == "ce-bert" and HAS_OPENVINO:
        import openvino as ov

        (tmp_path / name / "openvino").mkdir()
        ov.save_model(ov.convert_model(str(tmp_path / name / "onnx" / "model.onnx")),
                      str(tmp_path / name / "openvino" / "openvino_model.xml"), compress_to_fp16=False)
        ov_model = CrossEncoder(tmp_path / name, backend="openvino")
        assert ov_model.variant == "openvino/openvino_model.xml"
        ref.max_seq_length, ref.prompts = 512, {}
        assert np.abs(ref.predict(pairs) - ov_model.predict(pairs)).max() <= 1e-5
