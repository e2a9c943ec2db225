"""ONNX text-in graphs: the tokenizer of ``onnx_tokenizer`` in front of an ONNX variant's graph, in one file.

The variant's graph is read without its weights and raised to opset 20 (the tokenizer's ``StringSplit``); the
result, ``<stem>.text.onnx``, keeps pointing at the variant's own external-data file, so the weights are stored
once. It runs in ONNX Runtime with the onnxruntime-extensions operator library registered, nothing else.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from st_runtime.errors import ExportError
from st_runtime.manifest import Manifest, VariantSpec

from .onnx_tokenizer import OPSET, opset_imports, tokenizer_graph, tokenizer_model
from .text_graph_check import TokenizerConversionError, require_same_ids

__all__ = ["build_onnx", "onnx_session"]

TOKENIZER_OUTPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_session(model_or_path, threads: int | None = None):
    """An ONNX Runtime CPU session with onnxruntime-extensions' operators registered."""
    from st_runtime.backends import extensions_library

    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError("--with-tokenizer onnx needs onnxruntime and onnxruntime-extensions (the edge extra): "
                          "pip install 'st-runtime[edge]'") from exc
    options = ort.SessionOptions()
    options.register_custom_ops_library(extensions_library())
    if threads:
        options.intra_op_num_threads = threads
    source = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") else str(model_or_path)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _prompt_ids(tree: dict[str, Any], prompt: str) -> list[int]:
    from tokenizers import Tokenizer

    if not prompt:
        return []
    plain = Tokenizer.from_str(json.dumps(tree))
    plain.no_padding()
    plain.no_truncation()
    return list(plain.encode(prompt, add_special_tokens=False).ids)


def _feeds(batch: list, pairs: bool) -> dict[str, np.ndarray]:
    if pairs:
        return {"text": np.array([a for a, _ in batch], dtype=object),
                "text_pair": np.array([b for _, b in batch], dtype=object)}
    return {"text": np.array(batch, dtype=object)}


def _ids_of(session, pairs: bool = False):
    """Token ids of each text (pairs: (id, type id) of each token) as the ONNX tokenizer gives them."""
    def run(batch: list) -> list[list]:
        ids, mask, types = session.run(list(TOKENIZER_OUTPUTS), _feeds(batch, pairs))
        if not pairs:
            return [[int(i) for i in row[m.astype(bool)]] for row, m in zip(ids, mask)]
        return [[(int(i), int(t)) for i, t in zip(row[m.astype(bool)], kind[m.astype(bool)])]
                for row, kind, m in zip(ids, types, mask)]
    return run


# CrossEncoder.predict's activations (st_runtime.cross_encoder.ACTIVATIONS) as ONNX operators on the logits.
ACTIVATIONS = {"identity": ("Identity", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "relu": ("Relu", {}),
               "softmax": ("Softmax", {"axis": -1})}


def _merge(tree: dict[str, Any], graph_path: Path, max_length: int | None, prompt_ids: list[int],
           prompt_length: int, activation: str | None = None):
    """The variant's graph with the tokenizer's nodes in front: input ``text`` (cross-encoders: ``text``,
    ``text_pair``), one output: ``sentence_embedding``, or ``scores`` (the logits through ``activation``)."""
    import onnx
    from onnx import TensorProto, helper, version_converter

    model = onnx.load(str(graph_path), load_external_data=False)
    default = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if default < OPSET:
        model = version_converter.convert_version(model, OPSET)
    graph = model.graph
    names = [i.name for i in graph.input]
    unknown = [n for n in names if n not in TOKENIZER_OUTPUTS + ("prompt_length",)]
    if unknown:
        raise ExportError(f"{graph_path.name}: graph inputs {unknown} have no tokenizer output to feed them.")
    pairs = activation is not None
    nodes, inits, inputs, _ = tokenizer_graph(tree, max_length, prompt_ids, pairs)
    if "token_type_ids" not in names:
        nodes = [n for n in nodes if "token_type_ids" not in n.output]
    if "prompt_length" in names:
        nodes.append(helper.make_node("Constant", [], ["prompt_length"], name="tok/prompt_length",
                                      value=helper.make_tensor("v", TensorProto.INT64, [1], [prompt_length])))
    output = "logits" if pairs else "sentence_embedding"
    kept = [o for o in graph.output if o.name == output]
    if len(kept) != 1:
        raise ExportError(f"{graph_path.name} has no single {output!r} output ({[o.name for o in graph.output]}).")
    if pairs:
        op, attrs = ACTIVATIONS[activation]
        nodes_after = [helper.make_node(op, ["logits"], ["scores"], name="tok/activation", **attrs)]
        kept = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", None])]
    else:
        nodes_after = []
    new_nodes = list(nodes) + list(graph.node) + nodes_after
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(inits)
    del graph.input[:]
    graph.input.extend(helper.make_tensor_value_info(i, TensorProto.STRING, ["batch"]) for i in inputs)
    del graph.output[:]
    graph.output.extend(kept)
    present = {o.domain for o in model.opset_import}
    model.opset_import.extend(o for o in opset_imports() if o.domain not in present)
    return model


def build_onnx(root: Path, manifest: Manifest, name: str, spec: VariantSpec, texts: list[str], reference_ids,
               progress, prompt: str = "", prompt_length: int = 0, tag: str = "") -> dict[str, Any]:
    """Check the ONNX tokenizer's ids against ``reference_ids`` on ``texts``, then write ``<stem>.text[.tag].onnx``
    (tokenizer + the variant's graph) and return its description and a ``run`` function for the embedding check."""
    import onnx

    from .bundle_steps import seal

    pairs = manifest.kind == "cross-encoder"
    tree = json.loads((root / manifest.tokenizer.file).read_text(encoding="utf-8"))
    length = manifest.tokenizer.max_seq_length
    prompt_ids = _prompt_ids(tree, prompt)
    tokenizer = onnx_session(tokenizer_model(tree, length, prompt_ids, pairs))
    component = ("prompt placed after the leading special tokens: prompt + text does not tokenize as the prompt's "
                 "tokens then the text's (a prompt should end with a space or punctuation)") if prompt else \
        "ONNX tokenizer (normalization tables, added tokens, WordPiece" + (", pair truncation)" if pairs else ")")
    checked = require_same_ids(texts, reference_ids, _ids_of(tokenizer, pairs), "onnxruntime-extensions", component)
    progress(f"{name}: ONNX tokenizer ids equal tokenizers' on {checked} check texts")
    # Weights into external data first (the text graph points at the variant's file instead of copying it), with the
    # manifest's file entries brought up to date: later variants open this staging folder through its manifest.
    seal(root, manifest)
    model = _merge(tree, root / spec.file, length, prompt_ids, prompt_length,
                   manifest.cross_encoder.activation if pairs else None)
    stem = Path(spec.file).stem + (f".text.{tag}" if tag else ".text")
    target = root / f"{stem}.onnx"
    try:
        onnx.save_model(model, str(target))
        session = onnx_session(target)
    except Exception as exc:
        target.unlink(missing_ok=True)
        if isinstance(exc, TokenizerConversionError):
            raise
        raise ExportError(f"{name}: the ONNX text graph could not be written or opened ({str(exc)[:300]}).") from exc
    return {"file": target.name, "weights_file": None,
            "run": lambda batch: session.run(None, _feeds(batch, pairs))[0],
            "tokenizer": f"onnxruntime-extensions {metadata.version('onnxruntime-extensions')} operators + "
                         "normalization tables from tokenizers", "checked_texts": checked,
            "runtime": "onnxruntime + onnxruntime_extensions"}
