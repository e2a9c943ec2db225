"""Wrap a whole SentenceTransformer / CrossEncoder in one torch module and trace it to ONNX."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

from st_runtime.errors import UnsupportedModelError

logger = logging.getLogger(__name__)

OPSET = 17
# Module classes that are pure tensor functions of the features and so trace into the graph.
TRACEABLE_MODULES = {"Transformer", "Pooling", "Dense", "Normalize", "LayerNorm", "Dropout"}
EMBEDDING_OUTPUTS = ["sentence_embedding", "token_embeddings"]
CROSS_ENCODER_OUTPUTS = ["logits"]


def check_modules(model: Any) -> list[str]:
    """Names of the model's modules; raise UnsupportedModelError for any that cannot be traced."""
    names = [type(module).__name__ for module in model]
    if not names or names[0] != "Transformer":
        raise UnsupportedModelError(
            f"The first module is {names[0] if names else 'missing'}, but st-runtime exports models that start "
            "with a Hugging Face Transformer module (e.g. StaticEmbedding models are not supported)."
        )
    bad = [n for n in names if n not in TRACEABLE_MODULES]
    if bad:
        raise UnsupportedModelError(
            f"Modules {bad} cannot be exported into one graph; st-runtime supports {sorted(TRACEABLE_MODULES)}."
        )
    if "text" not in getattr(model[0], "modality_config", {"text": None}):
        raise UnsupportedModelError("The Transformer module has no text modality; only text models can be exported.")
    return names


@contextlib.contextmanager
def eager_attention(module: torch.nn.Module) -> Iterator[None]:
    """Trace attention as plain MatMul/Softmax ("eager") instead of scaled_dot_product_attention.

    The TorchScript exporter writes SDPA with NaN guards and a mask per head that ONNX Runtime neither fuses
    nor runs fast (MiniLM passages at batch 32: 18% slower); the eager graph is the same arithmetic and is
    what ORT's transformer optimizer recognizes. Each model's own setting is restored afterwards, so the
    torch reference that parity is checked against stays as the user loaded it.
    """
    changed = []
    for sub in module.modules():
        config = getattr(sub, "config", None)
        current = getattr(config, "_attn_implementation", None)
        if hasattr(sub, "set_attn_implementation") and current not in (None, "eager"):
            try:
                sub.set_attn_implementation("eager")
            except (ValueError, ImportError) as exc:  # a model that cannot switch keeps its own attention
                logger.info("keeping %s attention for %s: %s", current, type(sub).__name__, exc)
                continue
            changed.append((sub, current))
    try:
        yield
    finally:
        for sub, current in changed:
            sub.set_attn_implementation(current)


class _PromptFlag:
    """Truthy stand-in for ST's int prompt_length, so Pooling takes its prompt-exclusion branch under tracing."""

    def __bool__(self) -> bool:
        return True


@contextlib.contextmanager
def _traceable_prompt_exclusion(pooling: Any, keep: torch.Tensor) -> Iterator[None]:
    """Replace Pooling's Python-int prompt masking with a tensor mask for the duration of a call."""
    pooling._exclude_prompt_from_mask = lambda mask, _length: mask * keep.to(mask.dtype)
    try:
        yield
    finally:
        del pooling._exclude_prompt_from_mask


class EmbeddingGraph(torch.nn.Module):
    """The whole bi-encoder: token ids -> (sentence_embedding, token_embeddings).

    With ``prompt_aware``, a last input ``prompt_length`` (int64, shape [1]) tells Pooling with
    ``include_prompt=False`` how many leading (non-pad) tokens belong to the prompt, as ST does it.
    """

    def __init__(self, model: Any, input_names: list[str], prompt_aware: bool) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.prompt_aware = prompt_aware

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prompt_length = inputs[-1] if self.prompt_aware else None
        features: dict[str, Any] = dict(zip(self.input_names, inputs))
        for module in self.model:
            if type(module).__name__ == "Pooling":
                features = self._pool_in_float64(module, features, prompt_length)
            else:
                features = module(features)
        return features["sentence_embedding"], features["token_embeddings"]

    def _pool_in_float64(self, pooling: Any, features: dict, prompt_length: torch.Tensor | None) -> dict:
        """Run ST's Pooling on float64 token embeddings, then round once to float32.

        ONNX Runtime's float32 ReduceSum adds in a different order than torch, which over long inputs costs
        several 1e-6 on unnormalized poolings; accumulating in float64 keeps the graph closer to the exact
        value than torch itself is.
        """
        tokens = features["token_embeddings"]
        features["token_embeddings"] = tokens.double()
        if prompt_length is not None and not pooling.include_prompt:
            features = self._pool_without_prompt(pooling, features, prompt_length)
        else:
            features = pooling(features)
        features["sentence_embedding"] = features["sentence_embedding"].to(tokens.dtype)
        features["token_embeddings"] = tokens
        return features

    @staticmethod
    def _pool_without_prompt(pooling: Any, features: dict, prompt_length: torch.Tensor) -> dict:
        if not hasattr(pooling, "_forward_padded"):
            raise UnsupportedModelError("include_prompt=False export needs sentence-transformers >= 6.")
        mask = features["attention_mask"]
        positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
        first_real = mask.to(torch.int32).argmax(dim=1, keepdim=True)  # left-padding width, 0 for right padding
        keep = positions >= first_real + prompt_length.reshape(1, 1)
        with _traceable_prompt_exclusion(pooling, keep):
            vectors = pooling._forward_padded(features["token_embeddings"], mask, features, prompt_length=_PromptFlag())
        features["sentence_embedding"] = torch.cat(vectors, dim=-1)
        return features


class CrossEncoderGraph(torch.nn.Module):
    """The whole cross-encoder: tokenized pairs -> logits (batch, num_labels)."""

    def __init__(self, model: Any, input_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        features: dict[str, Any] = dict(zip(self.input_names, inputs))
        out = self.model(features)
        logits = out["scores"] if "scores" in out else out["logits"]
        return logits if logits.ndim == 2 else logits.unsqueeze(-1)


def export_onnx(module: torch.nn.Module, example: dict[str, torch.Tensor], output_names: list[str], path: Path,
                architecture: str, weightless: bool | None = None) -> None:
    """Trace ``module`` with ``torch.onnx.export`` (TorchScript exporter, opset 17, dynamic batch and length).

    Near or past 2 GiB of weights (``weightless`` None: decided from the parameters' size) the graph is traced
    without them and ``weightless.attach`` streams them into ``<path>.data``, so no protobuf ever holds them. The
    trace goes to a scratch folder beside ``path``; a graph that torch split into one file per tensor is gathered
    into ``<path>.data``, a smaller graph is moved into place as written (``bundle_writer.seal`` splits it later).
    """
    from .external_data import gather, trace_folder
    from .weightless import WEIGHTLESS_FROM, attach, param_bytes, shape_inference_without_weights

    if weightless is None:
        weightless = param_bytes(module) >= WEIGHTLESS_FROM
    scratch = trace_folder(path)
    try:
        with shape_inference_without_weights() if weightless else contextlib.nullcontext():
            _trace(module, example, output_names, scratch / path.name, architecture, with_weights=not weightless)
        if weightless:
            attach(scratch / path.name, module, path)
        elif not gather(scratch / path.name, path):
            os.replace(scratch / path.name, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _trace(module: torch.nn.Module, example: dict[str, torch.Tensor], output_names: list[str], path: Path,
           architecture: str, with_weights: bool = True) -> None:
    input_names = list(example)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in input_names if name != "prompt_length"}
    for name in output_names:
        dynamic[name] = {0: "batch", 1: "sequence"} if name == "token_embeddings" else {0: "batch"}
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(
                module,
                tuple(example.values()),
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                do_constant_folding=with_weights,  # without weights there is nothing to fold (attach folds)
                export_params=with_weights,
                dynamo=False,
            )
    except Exception as exc:  # torch raises many types while tracing
        raise UnsupportedModelError(
            f"Tracing the {architecture} model to ONNX failed: {type(exc).__name__}: {str(exc)[:600]}"
        ) from exc


def graph_io(path: Path) -> tuple[list[str], list[str]]:
    """Input and output names the ONNX graph declares (unused inputs were dropped by the exporter)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers], [o.name for o in graph.output]
