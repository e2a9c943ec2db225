"""Modeling code of the custom-code test model (``auto_map`` + ``trust_remote_code=True``).

``models.builder`` registers these classes for the Auto classes, so ``save_pretrained`` copies the two files
into the saved model folder and writes ``auto_map`` into its config.json, as a Hub custom-code model has them.
"""
