"""Measuring: the one tiled pass per snapshot (engine) and what it is built from.

Everything here turns arrays into numbers: the engine (`engine.measure`) and its passes (sweep, top-k through
group maxima, the Gram-pass spectrum, per-group breakdowns), the cross-modal numbers, and the 2-D projections
(PCA, t-SNE, UMAP) the worker computes. Pure numpy/torch in, floats/arrays/dataclasses out: no file I/O, no
verdicts, no Streamlit. Its modules import nothing from the other rooms but judge.collapse's
CollapseThresholds (the minimum point count and the dead-dimension tolerance live with the verdict thresholds).
"""
