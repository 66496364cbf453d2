"""`model.summary(x)` / `nn.summary(model, x)`: the table against hand-computed counts and shapes
(a small MLP cell by cell, the digits CNN of the examples, LSTM and MultiheadAttention's several
outputs), and looking at a model changes nothing in it."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import agnostic as ag
from agnostic import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digits_cnn() -> nn.Module:
    path = os.path.join(ROOT, "examples", "digits_cnn.py")
    spec = importlib.util.spec_from_file_location("digits_cnn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DigitsCNN()


def _mlp() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model[2].bias.requires_grad = False  # 2 of the 23 parameters frozen
    return model


def test_a_small_model_cell_by_cell() -> None:
    # Linear(4, 3): 4 * 3 + 3 = 15; Linear(3, 2): 3 * 2 + 2 = 8, its bias (2) frozen
    expected = "\n".join(
        [
            "Layer (type)   Output shape   Params",
            "====================================",
            "Sequential     [5, 2]             --",
            "  0 (Linear)   [5, 3]             15",
            "  1 (ReLU)     [5, 3]             --",
            "  2 (Linear)   [5, 2]              8",
            "====================================",
            "Total params: 23",
            "Trainable params: 21",
            "Non-trainable params: 2",
        ]
    )
    model = _mlp()
    table = model.summary((5, 4))
    assert str(table) == expected, "\n" + str(table)
    assert (table.total, table.trainable, table.non_trainable) == (23, 21, 2)
    assert str(nn.summary(model, ag.zeros((5, 4)))) == expected
    assert str(model.summary(np.zeros((5, 4), np.float32))) == expected


def test_without_an_input_the_table_has_the_counts_only() -> None:
    text = str(_mlp().summary())
    assert text.splitlines()[0].split() == ["Layer", "(type)", "Params"]
    assert "  0 (Linear)       15" in text.splitlines() and "Total params: 23" in text


def test_the_digits_cnn_of_the_examples() -> None:
    table = _digits_cnn().summary((2, 1, 8, 8))
    rows = {r.name: (r.output, r.params) for r in table.rows}
    # conv 1->16 3x3: 16*9 + 16; BatchNorm(16): 2*16; conv 16->32 3x3: 32*16*9 + 32; BatchNorm(32): 2*32;
    # Linear(32*2*2 -> 10): 128*10 + 10
    assert rows == {
        "": ("[2, 10]", 0),
        "features": ("[2, 32, 2, 2]", 0),
        "features.0": ("[2, 16, 8, 8]", 160),
        "features.1": ("[2, 16, 8, 8]", 32),
        "features.2": ("[2, 16, 8, 8]", 0),
        "features.3": ("[2, 16, 4, 4]", 0),
        "features.4": ("[2, 32, 4, 4]", 4640),
        "features.5": ("[2, 32, 4, 4]", 64),
        "features.6": ("[2, 32, 4, 4]", 0),
        "features.7": ("[2, 32, 2, 2]", 0),
        "head": ("[2, 10]", 0),
        "head.0": ("[2, 128]", 0),
        "head.1": ("[2, 128]", 0),
        "head.2": ("[2, 10]", 1290),
    }
    assert (table.total, table.trainable, table.non_trainable) == (6186, 6186, 0)
    assert table.buffers == (16 + 16 + 1) + (32 + 32 + 1)  # running mean and var, batches seen
    lines = str(table).splitlines()
    assert lines[4].startswith("    0 (Conv2d)") and lines[4].endswith("160")
    assert "Total params: 6,186" in lines and "Buffers (not parameters): 98 values" in lines


def test_layers_with_several_outputs() -> None:
    lstm = nn.LSTM(3, 4, batch_first=True)
    [row] = lstm.summary((2, 5, 3)).rows
    assert row.output == "([2, 5, 4], ([1, 2, 4], [1, 2, 4]))"  # output, (h, c)
    assert row.params == 4 * 4 * (3 + 4) + 2 * 4 * 4  # four gates: weights and two biases

    attention = nn.MultiheadAttention(8, 2, batch_first=True)
    q = ag.zeros((2, 5, 8))
    table = nn.summary(attention, q, q, q)
    assert [(r.name, r.output, r.params) for r in table.rows] == [
        ("", "([2, 5, 8], [2, 5, 5])", 3 * 8 * 8 + 3 * 8),  # output, weights averaged over heads
        ("out_proj", "[2, 5, 8]", 8 * 8 + 8),
    ]
    assert table.total == 288
    assert nn.summary(attention, q, q, q, need_weights=False).rows[0].output == "([2, 5, 8], None)"


def test_a_shared_layer_is_counted_once() -> None:
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    table = model.summary((1, 3))
    assert [r.name for r in table.rows] == ["", "0", "1"]
    assert table.total == 12


def test_looking_changes_nothing() -> None:
    model = _digits_cnn()
    model.train()
    model.head.eval()  # modes set per module come back per module
    modes = {name: m.training for name, m in model.named_modules()}
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    ag.manual_seed(7)
    expected_draw = ag.backend().rand(3).numpy()
    ag.manual_seed(7)
    model.summary(ag.backend().rand(4, 1, 8, 8, seed=1))
    assert np.array_equal(ag.backend().rand(3).numpy(), expected_draw), "summary drew random numbers"
    assert {name: m.training for name, m in model.named_modules()} == modes
    after = model.state_dict()
    for key, value in before.items():
        assert np.array_equal(after[key].numpy(), value), f"{key} changed"
    assert all(p.grad is None for p in model.parameters())
    assert ag.is_grad_enabled()
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_a_forward_that_fails_leaves_the_model_as_it_was() -> None:
    model = _digits_cnn()
    with pytest.raises(ValueError, match=r"Conv2d: expected input \(N, 1, \*2 spatial\)"):
        model.summary((2, 3, 8, 8))  # three channels for a one-channel conv
    assert all(m.training for m in model.modules())
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match=r"summary: expected an nn.Module, got Tensor"):
        nn.summary(ag.zeros(3), (1, 3))
    with pytest.raises(
        TypeError,
        match=r"summary\(Sequential\): input 0 must be a Tensor, a NumPy array or a shape \(a tuple of "
        r"ints, for float32 zeros\), got str 'abc'; pass other arguments of forward as keywords",
    ):
        _mlp().summary("abc")
    with pytest.raises(TypeError, match=r"input 1 must be .* got tuple \(2.0, 3\)"):
        _mlp().summary((5, 4), (2.0, 3))
