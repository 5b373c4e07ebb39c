"""diagnostics.measure._topk: the group-maxima shortcuts give exactly what a full scan gives. Random float32 tiles
have no ties, so values and indices must be identical to torch.topk's."""

import math

import pytest
import torch

from diagnostics.measure import _topk


@pytest.mark.parametrize(
    "shape,k,group",
    [((7, 1024), 10, 32), ((5, 1000), 10, 32), ((3, 40), 10, 32), ((6, 4100), 200, 16), ((4, 33), 3, 32)],
)
def test_topk_equals_a_full_topk(shape, k, group):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    want = x.topk(min(k, shape[1]), dim=1)
    got = _topk.topk(x, k, group=group)
    assert torch.equal(got[0], want.values) and torch.equal(got[1], want.indices)
    assert torch.equal(_topk.topk(x.T.contiguous().T, k, group=group)[1], want.indices)  # strided views too


def test_running_merge_equals_one_topk_over_all_tiles():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3000, generator=g)
    x[:, 500:900] += 1.5  # later tiles beat earlier ones for some rows: merges have work
    k = 10
    best_v, best_i = x[:, :1024].topk(k, dim=1)
    for c0 in (1024, 2048):
        tile = x[:, c0 : c0 + 1024]
        _topk.merge_above(tile, _topk.group_maxima(tile), best_v, best_i, c0)
    want = x.topk(k, dim=1)
    assert torch.equal(best_v, want.values) and torch.equal(best_i, want.indices)
    empty_v, empty_i = torch.full((64, k), -math.inf), torch.zeros((64, k), dtype=torch.long)
    _topk.merge_above(x[:, :100], _topk.group_maxima(x[:, :100]), empty_v, empty_i, 0)  # from empty
    assert torch.equal(empty_v, x[:, :100].topk(k, dim=1).values)


def test_transposed_maxima_and_counts():
    x = torch.randn(96, 1030, generator=torch.Generator().manual_seed(2))
    assert torch.equal(_topk.group_maxima_t(x), _topk.group_maxima(x.T.contiguous()))
    threshold = x[:, 0] - 0.5
    want = (x >= threshold[:, None]).sum(dim=1)
    assert torch.equal(_topk.count_at_least(x, threshold, _topk.group_maxima(x)), want)
    high = torch.full((96,), 10.0)
    assert (_topk.count_at_least(x, high, _topk.group_maxima(x)) == 0).all()
