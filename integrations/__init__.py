"""Log runs from the trainers people already use, and import the logs they already have.

    integrations.lightning          ContrastScopeCallback for PyTorch Lightning
    integrations.hf                 ContrastScopeCallback for Hugging Face transformers' Trainer
    integrations.tensorboard_import TensorBoard scalars and projector embeddings -> runs
"""
