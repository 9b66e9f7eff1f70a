"""core.batching.map_batches: order, the last partial batch, one batch, aligned inputs, no_grad, and bad input."""

import numpy as np
import pytest
import torch

from art_ssl.core.batching import map_batches


def test_order_kept_and_last_partial_batch():
    x = torch.arange(10.0).reshape(10, 1)
    sizes = []

    def double(xb):
        sizes.append(len(xb))
        return xb * 2

    out = map_batches(double, x, batch_size=4)
    assert sizes == [4, 4, 2]  # the last batch holds the remainder
    torch.testing.assert_close(out, x * 2)


def test_batch_size_above_length_is_one_call_and_numpy_outputs_concatenate():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    calls = []

    def row_sums(xb):
        calls.append(len(xb))
        return xb.sum(1)

    out = map_batches(row_sums, x, batch_size=100)
    assert calls == [3]
    np.testing.assert_array_equal(out, [1.0, 5.0, 9.0])


def test_aligned_inputs_are_sliced_together():
    x = torch.arange(7.0)
    y = torch.arange(7) * 10
    out = map_batches(lambda xb, yb: torch.stack([xb, yb.float()], 1), x, y, batch_size=3)
    torch.testing.assert_close(out[:, 1], out[:, 0] * 10)  # each x slice met its own y slice
    torch.testing.assert_close(out[:, 0], x)


def test_no_grad_is_only_where_asked():
    w = torch.ones(2, requires_grad=True)
    x = torch.ones(5, 2)
    assert map_batches(lambda xb: xb * w, x, batch_size=2).requires_grad
    assert not map_batches(lambda xb: xb * w, x, batch_size=2, no_grad=True).requires_grad


def test_bad_input_raises_naming_it():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="`batch_size`"):
        map_batches(lambda xb: xb, x, batch_size=0)
    with pytest.raises(TypeError, match="`batch_size`"):
        map_batches(lambda xb: xb, x, batch_size=2.0)
    with pytest.raises(ValueError, match="`images` is empty"):  # fn never runs: no shape to return
        map_batches(lambda xb: xb, x[:0], batch_size=2, name="images")
    with pytest.raises(ValueError, match="length 4, got 3"):
        map_batches(lambda xb, yb: xb, x, torch.zeros(3), batch_size=2)
    with pytest.raises(ValueError, match="at least one input"):
        map_batches(lambda: torch.zeros(1), batch_size=2)
    with pytest.raises(TypeError, match="`fn` must return"):
        map_batches(lambda xb: xb.tolist(), x, batch_size=2)
