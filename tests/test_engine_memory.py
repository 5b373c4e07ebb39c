"""Peak memory of the engine's row-block loops, measured in a child process (VmHWM is per process).

A fresh 8 MB similarity block per kNN step let glibc's heap grow without bound (its mmap threshold rises after
the first free, so later blocks come from the heap and fragment it): 4,000 queries on an 80,000-row bank
peaked at +887 MB, and a 100k snapshot's record at +5.2 GB. With one reused block it is +37 MB. The bound
below is the reused block (26 rows × 80,000 × 4 B ≈ 8 MB) plus the top-k candidates and torch's own
working memory, with room for another allocator; the old behaviour is 3× over it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BOUND_MB = 300

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import numpy as np, torch
    from diagnostics.measure._primitives import knn_predict

    def mb(field):
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field)) / 1024

    torch.manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(80_000, 128), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(4_000, 128), dim=1)
    labels = np.random.default_rng(0).integers(0, 10, 80_000)
    knn_predict(bank, labels, queries[:64], 200, 0.1)  # thread pools and packing buffers first
    before = mb("VmRSS")
    knn_predict(bank, labels, queries, 200, 0.1)
    print(mb("VmHWM") - before)
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_knn_blocks_do_not_grow_the_heap():
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split()[-1]) < BOUND_MB
