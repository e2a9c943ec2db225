"""Configuration of a tiny custom-code encoder (test model; see models/remote_code)."""

from transformers import PretrainedConfig


class TinyCustomConfig(PretrainedConfig):
    model_type = "st-tiny-custom"

    def __init__(self, vocab_size=1000, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                 max_position_embeddings=512, pad_token_id=0, initializer_range=0.02, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
