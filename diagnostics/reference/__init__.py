"""The reference: the per-metric functions, one expression each, that the engine is tested against.

geometry (alignment, uniformity, similarity statistics, Wang & Isola), probes (kNN and linear probes,
neighbour retention), the collapse numbers and the per-metric snapshot summary, written as the papers state
them. The engine (measure) must equal them within float32 tolerance (tests/test_engine.py). Only tests/ and
bench/ import this room: production code reads the engine's records (tests/test_reference_boundary.py).
"""
