"""Log runs from the trainers people already use, and import the logs they already have.

integrations.probe              ProbeSet: the fixed rows both callbacks embed at every snapshot
integrations.lightning          ContrastScopeCallback for PyTorch Lightning
integrations.hf                 ContrastScopeCallback for Hugging Face transformers' Trainer
integrations.tensorboard_import TensorBoard scalars and projector embeddings -> runs
"""
