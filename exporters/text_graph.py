"""Text-in graphs (``--with-tokenizer``): per variant, one graph from a batch of strings to the sentence embedding.

OpenVINO: openvino-tokenizers converts the bundle's tokenizer.json (a WordPiece one first rewritten by
``code_point_tables.openvino_exact_tree``, which its own BERT conversions would not reproduce exactly) into an
OpenVINO tokenizer model that is connected in front of the variant's IR; the result is saved as ``<stem>.text.xml/.bin``. Before anything is written
the converted tokenizer must give the ids ``tokenizers`` gives on every check text, and the text graph must give the
embeddings the normal runtime gives for that variant (fp32: within 1e-5). A default prompt goes inside the
default graph, and each other named prompt gets its own graph, the prompt's tokens in the post-processor template
(``graph_prompts``, ``_with_prompt_tokens``), checked the same way against ``prompt + text``. ONNX: the tokenizer
assembled from onnxruntime-extensions operators and tables computed with `tokenizers` (``onnx_tokenizer``) is put in
front of the variant's ONNX graph (``onnx_text_graph``) and checked the same way.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from st_runtime.errors import ExportError, ParityError, UnsupportedModelError
from st_runtime.manifest import Manifest, VariantSpec

from .code_point_tables import openvino_exact_tree
from .onnx_text_graph import build_onnx
from .text_graph_check import TokenizerConversionError, check_components, check_texts, require_same_ids

__all__ = ["add_text_graphs", "text_graph_bundle", "TokenizerConversionError"]

FP32_ATOL = 1e-5
OTHER_ATOL = 1e-3  # reduced-precision variants: text graph vs the same variant run by the normal runtime


def _require(*names: str):
    mods = []
    for name in names:
        try:
            mods.append(__import__(name))
        except ImportError as exc:
            raise ExportError(f"--with-tokenizer needs {name} (the edge extra): pip install 'st-runtime[edge]'") from exc
    return mods


def _is_reranker(manifest: Manifest) -> bool:
    return manifest.kind == "cross-encoder" and manifest.cross_encoder is not None


def _settings_check(manifest: Manifest) -> None:
    """The manifest settings a text graph bakes in; refuse the ones it cannot (yet)."""
    if _is_reranker(manifest):
        ce = manifest.cross_encoder
        if ce.default_prompt_name:
            raise UnsupportedModelError(f"This cross-encoder has a default prompt ({ce.default_prompt_name!r}); "
                                        "cross-encoder text graphs take no prompt. Export without a default prompt.")
        if ce.activation not in ACTIVATION_OPS:
            raise UnsupportedModelError(f"Activation {ce.activation!r} has no OpenVINO operator here; text graphs "
                                        f"of cross-encoders apply one of {sorted(ACTIVATION_OPS)}.")
    elif manifest.kind == "sparse-encoder" and manifest.sparse is not None:
        sparse = manifest.sparse
        refused = ("a Router (a graph per route)" if sparse.router else
                   "a SparseAutoEncoder (top-k + ReLU after the graph)" if sparse.topk_relu is not None else
                   f"max_active_dims={sparse.max_active_dims} (top-k after the graph)" if sparse.max_active_dims
                   else None)
        if refused:
            raise UnsupportedModelError(f"This SparseEncoder has {refused}; its text graph would not give what "
                                        "encode gives. Text graphs of SparseEncoders are built for single-graph "
                                        "SPLADE models without max_active_dims.")
    elif manifest.kind != "sentence-transformer" or manifest.embedding is None:
        raise UnsupportedModelError(f"Text-in graphs are built for SentenceTransformer, CrossEncoder and SPLADE "
                                    f"SparseEncoder bundles; this is a {manifest.kind} bundle.")
    if manifest.tokenizer.padding_side != "right":
        raise UnsupportedModelError("Text graphs pad on the right; this model pads on the left (decoder models are "
                                    "not supported by --with-tokenizer yet).")
    if _is_reranker(manifest) or manifest.embedding is None:
        return
    spec = manifest.embedding
    if spec.truncate_dim:
        raise UnsupportedModelError(f"truncate_dim={spec.truncate_dim} is set in the manifest; text graphs give the "
                                    "full embedding. Slice it yourself, or export without truncate_dim.")


# CrossEncoder.predict's activations (st_runtime.cross_encoder.ACTIVATIONS) as OpenVINO operators on the logits.
ACTIVATION_OPS = {
    "identity": lambda opset, x: x,
    "sigmoid": lambda opset, x: opset.sigmoid(x).output(0),
    "tanh": lambda opset, x: opset.tanh(x).output(0),
    "relu": lambda opset, x: opset.relu(x).output(0),
    "softmax": lambda opset, x: opset.softmax(x, -1).output(0),
}


def _prompt_spec(manifest: Manifest):
    """The manifest section holding the prompts (a SentenceTransformer's or a SparseEncoder's)."""
    return manifest.embedding if manifest.embedding is not None else manifest.sparse


def graph_prompts(manifest: Manifest) -> dict[str | None, str]:
    """The prompt each text graph has inside: None is the default graph (the default prompt, if the bundle has one,
    as ``encode(texts)`` applies it), then one graph per other named, non-empty prompt. Cross-encoders: one graph,
    no prompt."""
    if _is_reranker(manifest):
        return {None: ""}
    spec = _prompt_spec(manifest)
    default = spec.prompts.get(spec.default_prompt_name, "") if spec.default_prompt_name else ""
    named = {name: text for name, text in spec.prompts.items() if text and name != spec.default_prompt_name}
    return {None: default, **named}


def _with_prompt_tokens(tree: dict[str, Any], prompt: str) -> dict[str, Any]:
    """tokenizer.json whose post-processor puts the prompt's tokens after the leading special tokens.

    The prompt is tokenized once (no special tokens) and its tokens become template tokens, so truncation leaves
    them whole, as ``prompt + text`` truncated at max_seq_length does. Exact only when the prompt's tokens do not
    merge with the text's; the id check on every check text (the empty one included) decides."""
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(json.dumps(tree))
    plain.no_padding()
    plain.no_truncation()
    encoded = plain.encode(prompt, add_special_tokens=False)
    post = tree.get("post_processor")
    kind = (post or {}).get("type")
    if kind == "BertProcessing":
        (cls, cls_id), (sep, sep_id) = post["cls"], post["sep"]
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": cls, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": sep, "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": cls, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": sep, "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                         {"SpecialToken": {"id": sep, "type_id": 1}}],
                "special_tokens": {cls: {"id": cls, "ids": [cls_id], "tokens": [cls]},
                                   sep: {"id": sep, "ids": [sep_id], "tokens": [sep]}}}
    elif kind != "TemplateProcessing":
        raise TokenizerConversionError(
            f"A prompt inside a text graph is placed by the tokenizer's post-processor, and this one is {kind!r} "
            "(TemplateProcessing and BertProcessing can take it). No text-in graph was written; prepend the prompt "
            "to each text yourself, or export without a default prompt.")
    post = json.loads(json.dumps(post))
    single = post["single"]
    at = next(i for i, element in enumerate(single) if "Sequence" in element)
    single[at:at] = [{"SpecialToken": {"id": token, "type_id": 0}} for token in encoded.tokens]
    for token, token_id in zip(encoded.tokens, encoded.ids):
        post["special_tokens"].setdefault(token, {"id": token, "ids": [token_id], "tokens": [token]})
    return {**tree, "post_processor": post}


def _hf_tokenizer(tokenizer_file: Path, inputs: Sequence[str], prompt: str = ""):
    """A transformers fast tokenizer over the bundle's tokenizer.json (with ``prompt``'s tokens in its template, and
    a WordPiece tokenizer's normalizer and pre-tokenizer in the forms openvino-tokenizers converts exactly), without
    its own padding or truncation."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tree = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    tree = openvino_exact_tree(_with_prompt_tokens(tree, prompt) if prompt else tree)
    tok = Tokenizer.from_str(json.dumps(tree))
    tok.no_padding()
    tok.no_truncation()
    names = [n for n in inputs if n in ("input_ids", "token_type_ids", "attention_mask")]
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_input_names=names)


def _ov_tokenizer(root: Path, manifest: Manifest, inputs: Sequence[str], prompt: str = "", pairs: bool = False):
    ov, ovt = _require("openvino", "openvino_tokenizers")
    tokenizer_file = root / manifest.tokenizer.file
    check_components(tokenizer_file, "openvino")
    length = manifest.tokenizer.max_seq_length
    try:
        hf = _hf_tokenizer(tokenizer_file, inputs, prompt)
        return ovt.convert_tokenizer(hf, max_length=length, truncation=length is not None,
                                     number_of_inputs=2 if pairs else 1)
    except Exception as exc:  # openvino-tokenizers raises OVTypeError / its own errors with the component in the text
        if isinstance(exc, TokenizerConversionError):
            raise
        raise TokenizerConversionError(f"openvino-tokenizers could not convert the tokenizer: {str(exc)[:300]}. No "
                                       "text-in graph was written.") from exc


def _ov_ids(compiled, pairs: bool = False):
    """Token ids of each text (pairs: (id, type id) of each token) as the converted tokenizer gives them."""
    def run(batch: list) -> list[list]:
        out = compiled(_string_inputs(batch, pairs))
        ids, mask = out["input_ids"], out["attention_mask"].astype(bool)
        if not pairs:
            return [list(row[m]) for row, m in zip(ids, mask)]
        types = out["token_type_ids"]
        return [list(zip(row[m], kinds[m])) for row, kinds, m in zip(ids, types, mask)]
    return run


def _string_inputs(batch: list, pairs: bool) -> list[np.ndarray]:
    if pairs:
        return [np.array([a for a, _ in batch]), np.array([b for _, b in batch])]
    return [np.array(batch)]


def _connect(ov, tokenizer_model, graph, name: str, prompt_length: int = 0, output: str = "sentence_embedding",
             activation: str | None = None):
    """Tokenizer outputs feed the graph inputs of the same name; prompt_length is a constant (the prompt's tokens
    that pooling leaves out, 0 without a prompt or with include_prompt); only ``output`` stays (cross-encoders:
    ``logits`` through ``activation``, the scores ``CrossEncoder.predict`` returns)."""
    from openvino import opset13

    produced = {name: out for out in tokenizer_model.outputs for name in out.get_names()}
    for param in list(graph.get_parameters()):
        names = param.get_output_tensor(0).get_names()
        if "prompt_length" in names:
            source = opset13.constant(np.full([1], prompt_length, dtype=np.int64)).output(0)
        else:
            match = [produced[n] for n in names if n in produced]
            if not match:
                raise ExportError(f"{name}: graph input {sorted(names)} has no tokenizer output to feed it "
                                  f"(the tokenizer gives {sorted(produced)}).")
            source = match[0].get_node().input_value(0)  # the tokenizer's value itself, not its Result node
        for target in param.output(0).get_target_inputs():
            target.replace_source_output(source)
    outputs = [o for o in graph.outputs if output in o.get_names()]
    if len(outputs) != 1:
        raise ExportError(f"{name}: the graph has no single {output} output "
                          f"({[sorted(o.get_names()) for o in graph.outputs]}).")
    value = outputs[0].get_node().input_value(0)
    if activation is not None:
        value = ACTIVATION_OPS[activation](opset13, value)
    # The tokenizer keeps settings (max length, padding) in variables: their Assign sinks come along.
    return ov.Model([value], list(tokenizer_model.get_sinks()), list(tokenizer_model.get_parameters()),
                    f"{name}-text")


def _build_openvino(root: Path, manifest: Manifest, name: str, spec: VariantSpec, texts: list[str],
                    reference_ids, progress, prompt: str = "", prompt_length: int = 0, tag: str = "") -> dict[str, Any]:
    ov, _ = _require("openvino", "openvino_tokenizers")
    pairs = _is_reranker(manifest)
    tokenizer_model = _ov_tokenizer(root, manifest, spec.inputs, prompt, pairs)
    core = ov.Core()
    compiled_tok = core.compile_model(tokenizer_model, "CPU")
    component = ("prompt placed before the text as template tokens: prompt + text does not tokenize as the prompt's "
                 "tokens then the text's (a prompt should end with a space or punctuation)") if prompt else \
        "normalizer or pre-tokenizer conversion (openvino-tokenizers)"
    if pairs:
        component += (", or the pair truncation (longest_first): for two equally long texts past max_length, "
                      "openvino-tokenizers keeps the extra token of an odd budget in the first text, `tokenizers` "
                      "in the second (exact when max_length minus the pair's special tokens is even)")
    checked = require_same_ids(texts, reference_ids, _ov_ids(compiled_tok, pairs), "openvino-tokenizers", component)
    progress(f"{name}: openvino-tokenizers ids equal tokenizers' on {checked} check texts")
    model = _connect(ov, tokenizer_model, core.read_model(str(root / spec.file)), name, prompt_length,
                     *(("logits", manifest.cross_encoder.activation) if pairs else ()))
    stem = Path(spec.file).stem + (f".text.{tag}" if tag else ".text")
    xml, weights = f"{stem}.xml", f"{stem}.bin"
    ov.save_model(model, str(root / xml), compress_to_fp16=False)
    hint = spec.settings.get("inference_precision", "f32")
    compiled = core.compile_model(str(root / xml), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    return {"file": xml, "weights_file": weights, "run": lambda batch: compiled(_string_inputs(batch, pairs))[0],
            "tokenizer": f"openvino-tokenizers {metadata.version('openvino-tokenizers')}", "checked_texts": checked,
            "runtime": "openvino + openvino_tokenizers", "inference_precision": hint}


BUILDERS = {"openvino": _build_openvino, "onnx": build_onnx}


def add_text_graphs(root: Path, manifest: Manifest, names: Sequence[str], progress=lambda _: None) -> Manifest:
    """Write a checked text-in graph for each variant in ``names`` ('all': every ONNX variant) into the staging folder
    ``root`` and record it under the variant's ``settings['text_graph']``. Any refusal raises; nothing is recorded."""
    from st_runtime import CrossEncoder, SentenceTransformer, SparseEncoder

    _settings_check(manifest)
    manifest.write(root)  # the runtime below opens the staging folder from its manifest
    if list(names) in (["all"], []):  # bare --with-tokenizer: every ONNX variant (OpenVINO ones when named)
        names = [n for n, v in manifest.variants.items() if v.format == "onnx"]
        if not names:
            raise ExportError("--with-tokenizer without variant names writes text graphs for the ONNX variants, and "
                              "the bundle has none: name the variants (--with-tokenizer openvino) or add an ONNX one.")
    names = list(names)
    unknown = [n for n in names if n not in manifest.variants]
    if unknown:
        raise ExportError(f"--with-tokenizer names variants {unknown} the bundle does not have "
                          f"({sorted(manifest.variants)}); add them with --variants first.")
    tree = json.loads((root / manifest.tokenizer.file).read_text(encoding="utf-8"))
    texts = check_texts(manifest.tokenizer.max_seq_length, tree)
    if _is_reranker(manifest):
        texts = check_pairs(texts)
    prompts = graph_prompts(manifest)
    for name in names:
        spec = manifest.variants[name]
        if spec.format not in BUILDERS:
            raise UnsupportedModelError(f"Variant {name!r} is a {spec.format} graph; text-in graphs are built for "
                                        "onnx and openvino variants.")
        check_components(root / manifest.tokenizer.file, spec.format)  # refuse by name before any work
        kind = CrossEncoder if _is_reranker(manifest) else SparseEncoder if manifest.sparse else SentenceTransformer
        runtime = kind(root, variant=name, verify=False)
        built: dict[str | None, dict] = {}
        try:
            for key, prompt in prompts.items():
                built[key] = _one_graph(root, manifest, name, spec, runtime, texts, key, prompt, progress)
        except Exception:
            for graph in built.values():  # a refused prompt graph takes the variant's other text graphs with it
                for rel in (graph["file"], graph["weights_file"]):
                    if rel:  # an ONNX text graph shares the variant's weights file: never removed
                        (root / rel).unlink(missing_ok=True)
            raise
        default = built.pop(None)
        if not _is_reranker(manifest):
            default["prompt_name"] = _prompt_spec(manifest).default_prompt_name
            default["prompts"] = built  # one graph per other named prompt, each with its prompt inside
        spec.settings["text_graph"] = default
    return manifest


def check_pairs(texts: list[str]) -> list[tuple[str, str]]:
    """Each check text as a query against another one, plus the pairs that test pair truncation hardest: the
    longest texts against themselves (two equally long texts past max_length) and against each other."""
    longest = sorted(texts, key=len)[-4:]
    return ([(text, texts[(i + 7) % len(texts)]) for i, text in enumerate(texts)]
            + [(a, b) for a in longest for b in longest])


def _safe_tag(prompt_name: str) -> str:
    """The prompt name in a file name: letters, digits, - and _ kept, anything else as its code point."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else f"u{ord(c):x}" for c in prompt_name)


def _one_graph(root: Path, manifest: Manifest, name: str, spec: VariantSpec, runtime, texts: list[str],
               prompt_name: str | None, prompt: str, progress) -> dict[str, Any]:
    """Build, check (ids vs ``tokenizers`` on ``prompt + text``, embeddings vs the runtime) and describe one text
    graph of variant ``name`` with ``prompt`` inside (the default graph when ``prompt_name`` is None)."""
    tok = runtime.tokenizer
    pairs = _is_reranker(manifest)
    if pairs:
        reference_ids = lambda batch: [list(zip(ids, kinds)) for ids, kinds in tok.encode(batch)]  # noqa: E731
    else:
        reference_ids = lambda batch: [ids for ids, _ in tok.encode([prompt + t for t in batch])]  # noqa: E731
    excluded = manifest.embedding is not None and not manifest.embedding.include_prompt
    prompt_length = tok.prompt_length(prompt) if prompt and excluded else 0
    tag = "" if prompt_name is None else _safe_tag(prompt_name)
    what = f"{name}" + (f", prompt {prompt_name!r}" if prompt_name is not None else "")
    progress(f"{what}: building the text-in graph ({spec.format})")
    try:
        built = BUILDERS[spec.format](root, manifest, name, spec, texts, reference_ids, progress, prompt=prompt,
                                      prompt_length=prompt_length, tag=tag)
    except TokenizerConversionError as exc:
        if not prompt:
            raise
        which = "default prompt" if prompt_name is None else "prompt"
        shown = _prompt_spec(manifest).default_prompt_name if prompt_name is None else prompt_name
        raise TokenizerConversionError(f"{name}, {which} {shown!r} ({prompt!r}) inside the text graph: {exc}") from exc
    run = built.pop("run")
    worst = 0.0
    for start in range(0, len(texts), 32):
        batch = texts[start:start + 32]
        got = np.asarray(run(batch), dtype=np.float32)
        if pairs:
            want = np.asarray(runtime.predict(batch, batch_size=32), dtype=np.float32).reshape(got.shape)
        elif manifest.sparse is not None:  # the graph's vocabulary-sized activation, dense
            want = runtime.encode(batch, batch_size=32, prompt_name=prompt_name, convert_to_sparse_tensor=False)
        else:
            want = runtime.encode(batch, batch_size=32, prompt_name=prompt_name)  # None: the default prompt, if any
        if not np.all(np.isfinite(got)):
            raise ParityError(f"{what}: the text-in graph gave non-finite results; nothing was written.")
        worst = max(worst, float(np.max(np.abs(got - want))))
    gate = FP32_ATOL if spec.precision == "fp32" else OTHER_ATOL
    if worst > gate:
        for rel in (built["file"], built["weights_file"]):
            if rel:
                (root / rel).unlink(missing_ok=True)
        raise ParityError(f"{what}: the text-in graph differs from the normal runtime by {worst:.3g} (gate "
                          f"{gate:g}); nothing was written.")
    built.update(inputs=["text", "text_pair"] if pairs else ["text"], outputs=["scores" if pairs else "sentence_embedding"],
                 max_abs_vs_runtime=worst, gate=gate,
                 max_seq_length=manifest.tokenizer.max_seq_length, prompt=prompt or None, prompt_length=prompt_length)
    progress(f"{what}: text-in graph {built['file']} (max abs vs runtime {worst:.2g} on {len(texts)} texts)")
    return built


def text_graph_bundle(bundle_path: str | Path, names: Sequence[str], progress=lambda _: None) -> Path:
    """Add text-in graphs to an existing bundle (``st-runtime quantize BUNDLE --with-tokenizer``), atomically."""
    import shutil

    from st_runtime.bundle import Bundle

    from . import bundle_writer
    from .bundle_steps import seal

    bundle = Bundle.open(bundle_path, verify="all")
    manifest, dest = bundle.manifest, bundle.root
    with bundle_writer.staging_dir(dest, overwrite=True) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(dest, tmp)
        add_text_graphs(tmp, manifest, names, progress)
        seal(tmp, manifest)
        bundle_writer.commit(tmp, dest)
    return dest
