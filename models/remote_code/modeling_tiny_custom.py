"""A tiny pre-norm transformer encoder in plain torch, loaded only through ``auto_map`` (test model).

Importing this file leaves a trace when ``ST_RUNTIME_REMOTE_CODE_MARKER`` names a file, so tests can prove
when (and whether) custom code was imported.
"""

import os

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from .configuration_tiny_custom import TinyCustomConfig

if os.environ.get("ST_RUNTIME_REMOTE_CODE_MARKER"):
    with open(os.environ["ST_RUNTIME_REMOTE_CODE_MARKER"], "a", encoding="utf-8") as marker:
        marker.write("modeling_tiny_custom imported\n")


class TinyBlock(nn.Module):
    def __init__(self, config: TinyCustomConfig) -> None:
        super().__init__()
        self.heads = config.num_heads
        self.norm1 = nn.LayerNorm(config.hidden_size)
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm2 = nn.LayerNorm(config.hidden_size)
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5 + bias
        x = x + self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.down(nn.functional.silu(self.up(self.norm2(x))))


class TinyCustomModel(PreTrainedModel):
    config_class = TinyCustomConfig
    base_model_prefix = "tiny_custom"

    def __init__(self, config: TinyCustomConfig) -> None:
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.blocks = nn.ModuleList(TinyBlock(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.hidden_size)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0.0, self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs) -> BaseModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.embeddings(input_ids) + self.positions(positions)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for block in self.blocks:
            x = block(x, bias)
        return BaseModelOutput(last_hidden_state=self.norm(x))
