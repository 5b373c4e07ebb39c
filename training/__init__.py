"""ContrastScope training backend: the trainer (train.py, trainer.py) and the sample-run generator. A training
loop of your own logs through `from contrastscope import RunWriter` (its one public path)."""
