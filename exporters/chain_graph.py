"""A list of Sentence Transformers modules run in order as one traceable torch module (the sparse and multi-vector
exporters' graphs): token ids in, one named feature out."""

from __future__ import annotations

from typing import Any

import torch


class ChainGraph(torch.nn.Module):
    """Token ids -> ``features[output]`` after each module in ``route`` (held under that name, so the traced
    graph's parameter and node names are ``route.<i>...``). Subclasses set ``output`` and may override ``step``."""

    output = "sentence_embedding"

    def __init__(self, modules: list[Any], input_names: list[str]) -> None:
        super().__init__()
        self.route = torch.nn.ModuleList(modules)
        self.input_names = input_names

    def step(self, module: Any, features: dict[str, Any]) -> dict[str, Any]:
        """One module's pass over the features (the module's own forward unless a subclass says otherwise)."""
        return module(features)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        features: dict[str, Any] = dict(zip(self.input_names, inputs))
        for module in self.route:
            features = self.step(module, features)
        return features[self.output]
