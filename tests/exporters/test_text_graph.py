"""Text-in graphs (--with-tokenizer): built through `st-runtime quantize BUNDLE --with-tokenizer`, then run in a
subprocess that imports only onnxruntime + onnxruntime_extensions + numpy (or openvino + openvino_tokenizers +
numpy), against the normal runtime; refusals typed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from st_runtime import corpus
from st_runtime.errors import InputTypeError, InputValidationError
from st_runtime.manifest import Manifest

pytest.importorskip("openvino_tokenizers")
pytest.importorskip("onnxruntime_extensions")

TEXTS = corpus.parity_texts(40, long_words=400) + ["", "🙂👍🏽 emoji", "Mixed 日本語 and Ελληνικά и русский عربي",
                                                   "Ο φίλος μου, [SEP] typed in text", "nul\x00inside"]
BANNED = '("tokenizers", "st_runtime", "transformers", "torch", "sentence_transformers")'

# Imports nothing but onnxruntime and numpy, and loads the extensions' operator library; fails if anything pulled
# tokenizers, st_runtime or openvino in.
PLAIN_ONNX = textwrap.dedent("""
    import glob, importlib.util, json, os, sys
    import numpy as np
    import onnxruntime as ort
    graph, inputs_file, out = sys.argv[1:]
    inputs = json.load(open(inputs_file, encoding="utf-8"))
    # the extensions' operator library, as a C#/Java/C++ caller would register it (its Python package not imported)
    folder = os.path.dirname(importlib.util.find_spec("onnxruntime_extensions").origin)
    options = ort.SessionOptions()
    options.register_custom_ops_library(glob.glob(os.path.join(folder, "_extensions_pydll*.so"))[0])
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    if isinstance(inputs[0], list):  # pairs: text, text_pair
        feeds = {"text": np.array([q for q, _ in inputs], dtype=object),
                 "text_pair": np.array([d for _, d in inputs], dtype=object)}
    else:
        feeds = {"text": np.array(inputs, dtype=object)}
    np.save(out, session.run(None, feeds)[0])
    banned = sorted(m for m in sys.modules if m.split(".")[0] in BANNED + ("openvino", "onnxruntime_extensions"))
    assert not banned, banned
""").replace("BANNED", BANNED)

# Imports nothing but these three; fails if anything pulled tokenizers or st_runtime in.
PLAIN = textwrap.dedent("""
    import json, sys
    import numpy as np
    import openvino as ov
    import openvino_tokenizers  # registers the tokenizer operators
    graph, texts_file, out = sys.argv[1:]
    texts = json.load(open(texts_file, encoding="utf-8"))
    compiled = ov.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.save(out, compiled([np.array(texts)])[0])
    banned = sorted(m for m in sys.modules if m.split(".")[0] in BANNED)
    assert not banned, banned
""").replace("BANNED", BANNED)


def _run_plain(script: str, graph: Path, inputs: list, tmp_path: Path) -> np.ndarray:
    (tmp_path / "inputs.json").write_text(json.dumps(inputs), encoding="utf-8")
    (tmp_path / "plain.py").write_text(script, encoding="utf-8")
    subprocess.run([sys.executable, str(tmp_path / "plain.py"), str(graph), str(tmp_path / "inputs.json"),
                    str(tmp_path / "out.npy")], check=True, cwd=tmp_path)
    return np.load(tmp_path / "out.npy")


@pytest.fixture(scope="module")
def text_bundle(model_path, tmp_path_factory) -> Path:
    """Exported with both text graphs in one command: the ONNX one first moves the staging folder's weights into
    external data, and the OpenVINO one then opens that folder through its manifest."""
    from st_runtime.cli import main

    bundle = tmp_path_factory.mktemp("text-graph") / "bert-mean"
    assert main(["export", str(model_path("bert-mean")), str(bundle), "--variants", "openvino",
                 "--with-tokenizer", "onnx,openvino"]) == 0
    assert main(["validate", str(bundle)]) == 0
    return bundle


def test_plain_onnx_matches_runtime(text_bundle, tmp_path):
    """onnxruntime + onnxruntime-extensions alone: strings in, the runtime's embeddings out (1e-5), the weights
    stored once (the text graph points at the variant's own data file)."""
    from st_runtime import SentenceTransformer

    manifest = Manifest.read(text_bundle)
    spec = manifest.variants["onnx"]
    text = spec.settings["text_graph"]
    assert text["file"] == "model.text.onnx" and text["weights_file"] is None
    assert text["inputs"] == ["text"] and text["outputs"] == ["sentence_embedding"]
    assert text["checked_texts"] > 400 and text["max_abs_vs_runtime"] <= 1e-5
    assert manifest.files["model.text.onnx"]["size"] < manifest.files[spec.weights_file]["size"] / 2 + 3e6
    got = _run_plain(PLAIN_ONNX, text_bundle / text["file"], TEXTS, tmp_path)
    want = SentenceTransformer(text_bundle, variant="onnx").encode(TEXTS)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_plain_openvino_matches_runtime(text_bundle, tmp_path):
    """openvino + openvino_tokenizers alone; the tokenizer converted from the rewritten tokenizer.json (character
    map normalizer, regex-split pre-tokenizer) gives the ids of the bundle's own on every check text."""
    from st_runtime import SentenceTransformer

    text = Manifest.read(text_bundle).variants["openvino"].settings["text_graph"]
    assert text["file"] == "openvino_model.text.xml"
    assert text["inputs"] == ["text"] and text["outputs"] == ["sentence_embedding"]
    assert text["checked_texts"] > 400 and text["max_abs_vs_runtime"] <= 1e-5
    got = _run_plain(PLAIN, text_bundle / text["file"], TEXTS, tmp_path)
    want = SentenceTransformer(text_bundle, variant="openvino").encode(TEXTS)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    alone = SentenceTransformer(text_bundle, variant="onnx").encode(TEXTS)  # the fp32 ONNX graph, tokenizer outside
    np.testing.assert_allclose(got, alone, atol=1e-5, rtol=0)


def test_wrapper_and_info(text_bundle, capsys):
    from st_runtime.cli import main
    from st_runtime.text_graph import TextGraph

    graph = TextGraph(text_bundle)
    assert graph.variant == "onnx"
    assert TextGraph(text_bundle, variant="openvino").path.name == "openvino_model.text.xml"
    one = graph.encode(TEXTS[3])
    np.testing.assert_allclose(one[0], graph.encode(TEXTS[:8])[3], atol=1e-5, rtol=0)  # alone vs in a batch
    for bad in ([1, "a"], [None], b"bytes", ["ok", b"x"]):
        with pytest.raises(InputTypeError):
            graph.encode(bad)
    for bad_size in (0, "32", 2.5):
        with pytest.raises(InputValidationError, match="batch_size"):
            graph.encode(TEXTS[:3], batch_size=bad_size)
    np.testing.assert_allclose(graph.encode(TEXTS[:9], batch_size=2), graph.encode(TEXTS[:9]), atol=1e-5, rtol=0)
    assert main(["info", str(text_bundle)]) == 0
    assert "text-in graph model.text.onnx" in capsys.readouterr().out


def _staging_copy(bundle: Path, tmp_path: Path) -> tuple[Path, Manifest]:
    copy = tmp_path / "staging"
    shutil.copytree(bundle, copy)
    return copy, Manifest.read(copy)


def test_onnx_refuses_a_tokenizer_it_cannot_reproduce(export_bundle, tmp_path):
    """XLM-R's Unigram model and Metaspace pre-tokenizer: refused by name before any work."""
    from st_runtime.export.text_graph import TokenizerConversionError, add_text_graphs

    root, manifest = _staging_copy(export_bundle("xlmr-mean"), tmp_path)
    with pytest.raises(TokenizerConversionError, match="pre_tokenizer is 'Sequence'|model is 'Unigram'"):
        add_text_graphs(root, manifest, ["onnx"])
    assert not list(root.glob("*.text.*"))


def test_unsupported_normalizer_refused_before_conversion(export_bundle, tmp_path):
    from st_runtime.export.text_graph import TokenizerConversionError, add_text_graphs

    root, manifest = _staging_copy(export_bundle("bert-mean", ("openvino",)), tmp_path)
    tree = json.loads((root / "tokenizer.json").read_text(encoding="utf-8"))
    tree["normalizer"] = {"type": "Sequence", "normalizers": [tree["normalizer"], {"type": "Nmt"}]}
    (root / "tokenizer.json").write_text(json.dumps(tree), encoding="utf-8")
    with pytest.raises(TokenizerConversionError, match=r"normalizer\.normalizers\[1\] is 'Nmt'"):
        add_text_graphs(root, manifest, ["openvino"])
    assert not list(root.glob("*.text.*"))


def test_unknown_variant_and_prompt_refused(export_bundle, tmp_path):
    from st_runtime.errors import ExportError, UnsupportedModelError
    from st_runtime.export.text_graph import add_text_graphs

    root, manifest = _staging_copy(export_bundle("bert-mean"), tmp_path)
    with pytest.raises(ExportError, match="openvino-int8"):
        add_text_graphs(root, manifest, ["openvino-int8"])
    manifest.embedding.truncate_dim = 16
    with pytest.raises(UnsupportedModelError, match="truncate_dim=16"):
        add_text_graphs(root, manifest, ["onnx"])


@pytest.mark.slow
def test_unigram_conversion_mismatch_refused(export_bundle, tmp_path):
    """XLM-R's Unigram tokenizer: openvino-tokenizers 2026.4.1 tokenizes a zero-width space, a tab and typed
    special tokens differently from tokenizers, so the text graph is refused rather than approximated."""
    from st_runtime.export.text_graph import TokenizerConversionError, add_text_graphs

    root, manifest = _staging_copy(export_bundle("xlmr-mean", ("openvino",)), tmp_path)
    with pytest.raises(TokenizerConversionError, match="openvino-tokenizers tokenizer conversion is not exact"):
        add_text_graphs(root, manifest, ["openvino"])
    assert not list(root.glob("*.text.*"))


def test_readme_snippet_runs(text_bundle, capsys):
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Text-in graphs", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code.replace("bundles/m/", f"{text_bundle}/"), "README", "exec"), {})
    assert capsys.readouterr().out.strip() == "(2, 32) float32"


@pytest.mark.slow
def test_minilm_text_graph_exact(export_bundle, tmp_path):
    """The shipped all-MiniLM-L6-v2: ids equal on every check text, text graph within 1e-5 of the runtime, in ONNX
    and in OpenVINO."""
    from st_runtime.export.text_graph import add_text_graphs
    from st_runtime.export.text_graph_check import check_texts

    root, manifest = _staging_copy(export_bundle("minilm-real", ("openvino",)), tmp_path)
    add_text_graphs(root, manifest, ["onnx", "openvino"])
    tree = json.loads((root / "tokenizer.json").read_text(encoding="utf-8"))
    for name in ("onnx", "openvino"):
        text = manifest.variants[name].settings["text_graph"]
        assert text["checked_texts"] == len(check_texts(manifest.tokenizer.max_seq_length, tree))
        assert text["max_abs_vs_runtime"] <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bert-prompts", "bert-noprompt-pool"])
def test_fixed_prompt_graphs_exact(model, export_bundle, tmp_path):
    """One text graph per named prompt, the prompt's tokens inside (include_prompt=False: pooled without them),
    equal to the runtime with that prompt on every check text, the empty text included; a default prompt goes
    inside the default graph."""
    from st_runtime import SentenceTransformer
    from st_runtime.export.text_graph import add_text_graphs
    from st_runtime.text_graph import TextGraph

    root, manifest = _staging_copy(export_bundle(model), tmp_path)
    manifest.embedding.default_prompt_name = "query"
    add_text_graphs(root, manifest, ["onnx"])
    manifest.write(root)
    text = manifest.variants["onnx"].settings["text_graph"]
    prompts = manifest.embedding.prompts
    assert text["prompt"] == prompts["query"] and text["prompt_name"] == "query" and text["max_abs_vs_runtime"] <= 1e-5
    named = {n for n, p in prompts.items() if p and n != "query"}
    assert set(text["prompts"]) == named and all(g["max_abs_vs_runtime"] <= 1e-5 for g in text["prompts"].values())
    if not manifest.embedding.include_prompt:
        assert text["prompt_length"] > 0
    batch = ["", "what is a prompt?", TEXTS[5]]
    runtime = SentenceTransformer(root, variant="onnx", verify=False)
    for prompt_name in ["query", *named]:
        got = TextGraph(root, prompt_name=prompt_name, verify=False).encode(batch)
        np.testing.assert_allclose(got, runtime.encode(batch, prompt_name=prompt_name), atol=1e-5, rtol=0)
    default = TextGraph(root, verify=False)
    np.testing.assert_allclose(default.encode(batch), runtime.encode(batch), atol=1e-5, rtol=0)
    with pytest.raises(InputValidationError, match="no text-in graph for prompt 'nope'"):
        TextGraph(root, prompt_name="nope", verify=False)


@pytest.mark.slow
def test_prompt_that_merges_with_the_text_refused(export_bundle, tmp_path):
    """A prompt ending inside a word ('quer' + 'y ...') does not tokenize apart from the text: refused by the id
    check, naming the prompt, instead of an approximate graph."""
    from st_runtime.export.text_graph import TokenizerConversionError, add_text_graphs

    root, manifest = _staging_copy(export_bundle("bert-prompts"), tmp_path)
    manifest.embedding.prompts = {"query": "search"}
    with pytest.raises(TokenizerConversionError, match="prompt 'query'"):
        add_text_graphs(root, manifest, ["onnx"])
    assert not list(root.glob("*.text.*"))


def test_prompt_template_tokens_match_prompt_plus_text(export_bundle):
    """The template the text graph's tokenizer is converted from: [CLS] + the prompt's tokens + text + [SEP] gives
    the ids of tokenizing prompt + text (the empty text and truncation included); which graphs get a prompt."""
    from tokenizers import Tokenizer

    from st_runtime.export.text_graph import _with_prompt_tokens, graph_prompts

    root = export_bundle("bert-prompts")
    tree = json.loads((root / "tokenizer.json").read_text(encoding="utf-8"))
    plain = Tokenizer.from_str(json.dumps(tree))
    plain.enable_truncation(32)
    templated = Tokenizer.from_str(json.dumps(_with_prompt_tokens(tree, "query: ")))
    templated.enable_truncation(32)
    for text in ["", "hello world", "Ελληνικά, 日本語!", " ".join(["long"] * 80)]:
        assert templated.encode(text).ids == plain.encode("query: " + text).ids
    manifest = Manifest.read(root)
    assert graph_prompts(manifest) == {None: "", "query": "query: ", "document": "passage: "}
    manifest.embedding.default_prompt_name = "query"
    assert graph_prompts(manifest) == {None: "query: ", "document": "passage: "}


@pytest.mark.slow
def test_cross_encoder_openvino_text_graph_refused(export_bundle, tmp_path):
    """openvino-tokenizers on ce-bert (max_length 128): its normalizer conversion and its pair truncation (an odd
    budget of 125 tokens split the other way for two equally long texts) differ; refused, nothing written."""
    from st_runtime.export.text_graph import TokenizerConversionError, text_graph_bundle

    bundle = tmp_path / "ce-bert"
    shutil.copytree(export_bundle("ce-bert", ("openvino",)), bundle)
    with pytest.raises(TokenizerConversionError, match="pair truncation"):
        text_graph_bundle(bundle, ["openvino"])
    assert "text_graph" not in Manifest.read(bundle).variants["openvino"].settings  # nothing written


def test_cross_encoder_text_graph_scores_pairs_like_predict(export_bundle, tmp_path):
    """Pairs of strings in, CrossEncoder.predict's scores out (activation inside, longest-first truncation with the
    odd budget of max_length 128), with only onnxruntime + onnxruntime-extensions around."""
    from st_runtime import CrossEncoder
    from st_runtime.cli import main
    from st_runtime.text_graph import TextGraph

    bundle = tmp_path / "ce-bert"
    shutil.copytree(export_bundle("ce-bert"), bundle)
    assert main(["quantize", str(bundle), "--with-tokenizer"]) == 0
    text = Manifest.read(bundle).variants["onnx"].settings["text_graph"]
    assert text["inputs"] == ["text", "text_pair"] and text["outputs"] == ["scores"]
    assert text["checked_texts"] > 400 and text["max_abs_vs_runtime"] <= 1e-5
    pairs = [(TEXTS[i], TEXTS[(i * 5 + 3) % len(TEXTS)]) for i in range(len(TEXTS))] + [(TEXTS[0], TEXTS[0])]
    want = np.asarray(CrossEncoder(bundle, variant="onnx").predict(pairs), dtype=np.float32)
    got = _run_plain(PLAIN_ONNX, bundle / text["file"], pairs, tmp_path).reshape(want.shape)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    graph = TextGraph(bundle)
    np.testing.assert_allclose(graph.predict(pairs), want, atol=1e-5, rtol=0)
    assert graph.predict(pairs[0]).shape == want[:1].shape
    with pytest.raises(InputTypeError, match="pair of strings"):
        graph.predict([("only one",)])
    with pytest.raises(InputValidationError, match="predict"):
        graph.encode(["a text"])


PLAIN_PAIRS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import openvino as ov
    import openvino_tokenizers  # registers the tokenizer operators
    graph, pairs_file, out = sys.argv[1:]
    pairs = json.load(open(pairs_file, encoding="utf-8"))
    compiled = ov.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.save(out, compiled([np.array([q for q, _ in pairs]), np.array([d for _, d in pairs])])[0])
    banned = sorted(m for m in sys.modules if m.split(".")[0] in BANNED)
    assert not banned, banned
""").replace("BANNED", BANNED)


@pytest.mark.slow
def test_cross_encoder_openvino_pairs_where_the_budget_is_even(export_bundle, tmp_path):
    """max_length 129 (a pair budget of 126 tokens): openvino-tokenizers' pair truncation agrees, the OpenVINO pair
    graph is written and scores like predict with only openvino around."""
    from st_runtime import CrossEncoder
    from st_runtime.cli import main

    bundle = tmp_path / "ce-bert-129"
    shutil.copytree(export_bundle("ce-bert-129", ("openvino",)), bundle)
    assert main(["quantize", str(bundle), "--with-tokenizer", "openvino"]) == 0
    text = Manifest.read(bundle).variants["openvino"].settings["text_graph"]
    assert text["inputs"] == ["text", "text_pair"] and text["max_abs_vs_runtime"] <= 1e-5
    pairs = [(TEXTS[i], TEXTS[(i * 5 + 3) % len(TEXTS)]) for i in range(len(TEXTS))]
    want = np.asarray(CrossEncoder(bundle, variant="openvino").predict(pairs), dtype=np.float32)
    got = _run_plain(PLAIN_PAIRS, bundle / text["file"], pairs, tmp_path).reshape(want.shape)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_splade_text_graphs_give_encode_dense(export_bundle, tmp_path):
    """A SPLADE SparseEncoder: strings in, the vocabulary-sized activation out, in ONNX and OpenVINO, with the
    'query' prompt's own graph; equal to encode(convert_to_sparse_tensor=False) within 1e-5."""
    from st_runtime import SparseEncoder
    from st_runtime.cli import main
    from st_runtime.text_graph import TextGraph

    bundle = tmp_path / "splade"
    shutil.copytree(export_bundle("splade-max", ("openvino",)), bundle)
    assert main(["quantize", str(bundle), "--with-tokenizer", "onnx,openvino"]) == 0
    runtime = SparseEncoder(bundle, variant="onnx")
    batch = ["", "what is sparse retrieval?", TEXTS[5], "Ο φίλος μου, [SEP]"]
    for variant in ("onnx", "openvino"):
        for prompt_name in (None, "query"):
            got = TextGraph(bundle, variant=variant, prompt_name=prompt_name).encode(batch)
            want = runtime.encode(batch, prompt_name=prompt_name, convert_to_sparse_tensor=False)
            assert got.shape == want.shape == (len(batch), runtime.get_sentence_embedding_dimension())
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_sparse_router_text_graph_refused(export_bundle, tmp_path):
    from st_runtime.errors import UnsupportedModelError
    from st_runtime.export.text_graph import add_text_graphs

    root, manifest = _staging_copy(export_bundle("splade-router", ("openvino",)), tmp_path)
    with pytest.raises(UnsupportedModelError, match="Router"):
        add_text_graphs(root, manifest, ["onnx"])
    assert not list(root.glob("*.text.*"))
