"""The sequence examples (char_lm.py, lstm_sequence.py) learn, sample, and build the same model on
every backend (short runs with small sizes; the full figures are in examples/README.md)."""

from __future__ import annotations

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a few seconds each on numpy on one core
CHAR_LM_SMALL = {
    "max_chars": 20_000, "seq_len": 32, "d_model": 32, "batch_size": 32, "warmup": 5, "lr": 1e-2,
    "sample_length": 40,
}  # fmt: skip
LSTM_SMALL = {"n_train": 512, "n_test": 256, "window": 16, "hidden": 32, "batch_size": 32, "lr": 1e-2}


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_char_lm_learns_and_samples_on_numpy() -> None:
    result = _example("char_lm").run("numpy", epochs=2, **CHAR_LM_SMALL)
    # an untrained model is close to uniform over the ~90 characters: ln(90) = 4.5 nats
    assert result["initial_val_loss"] > 4.0, result
    assert result["final_val_loss"] < result["initial_val_loss"] - 1.0, result
    assert result["final_train_loss"] < result["initial_train_loss"] - 1.0, result
    assert result["val_losses"][-1] < result["val_losses"][0], result
    sample = result["sample"]
    assert len(sample) == CHAR_LM_SMALL["sample_length"]
    assert set(sample) <= set(result["vocab"]), sample


def test_char_lm_generate_is_seeded_and_checks_the_prompt() -> None:
    import agnostic as ag

    char_lm = _example("char_lm")
    vocab = char_lm.Vocab("abc de")
    ag.manual_seed(0)
    model = char_lm.CharTransformer(len(vocab), seq_len=8, d_model=16, num_heads=2, num_layers=1)
    first = char_lm.generate(model, vocab, "ab", 12, temperature=1.0, seed=3)
    assert first == char_lm.generate(model, vocab, "ab", 12, temperature=1.0, seed=3)
    assert len(first) == 12 and set(first) <= set(vocab.chars)  # runs past seq_len: the window slides
    greedy = char_lm.generate(model, vocab, "ab", 5, temperature=0.0, seed=1)
    assert len(greedy) == 5 and greedy == char_lm.generate(model, vocab, "ab", 5, temperature=0.0, seed=2)
    with pytest.raises(ValueError, match="characters"):
        char_lm.generate(model, vocab, "abz", 5)


def test_char_lm_is_causal() -> None:
    """Position t sees positions <= t only: what `generate`'s fixed, right-padded window relies on."""
    import numpy as np

    import agnostic as ag

    char_lm = _example("char_lm")
    ag.manual_seed(0)
    model = char_lm.CharTransformer(5, seq_len=8, d_model=16, num_heads=2, num_layers=2).eval()
    ids = np.array([[0, 1, 2, 3, 4, 0, 1, 2]])
    changed = ids.copy()
    changed[0, 5:] = 4
    with ag.no_grad():
        before, after = model(ag.tensor(ids)).numpy(), model(ag.tensor(changed)).numpy()
    np.testing.assert_allclose(after[0, :5], before[0, :5], rtol=1e-6, atol=1e-6)
    assert not np.allclose(after[0, 5:], before[0, 5:])


def test_lstm_sequence_beats_the_naive_forecast_on_numpy() -> None:
    result = _example("lstm_sequence").run("numpy", epochs=3, **LSTM_SMALL)
    assert result["test_mse"] < 0.6 * result["naive_mse"], result
    assert result["test_mse"] < 0.5 * result["initial_test_mse"], result
    assert result["test_mses"][-1] < result["test_mses"][0], result


def test_same_initial_loss_on_torch_as_on_numpy() -> None:
    """One seed builds the same model and batches on every backend: the untrained losses agree, and
    so, to float32 rounding, do the losses after an epoch of training. (One test for both examples:
    torch is imported once.)"""
    pytest.importorskip("torch", reason="the torch backend needs PyTorch (pip install agnostic[torch])")
    cases = [
        ("char_lm", {**CHAR_LM_SMALL, "max_chars": 6_000, "sample_length": 8},
         ("initial_train_loss", "initial_val_loss"), "final_val_loss"),
        ("lstm_sequence", {**LSTM_SMALL, "n_train": 256}, ("initial_test_mse",), "test_mse"),
    ]  # fmt: skip
    for name, kwargs, initial, final in cases:
        example = _example(name)
        on_numpy = example.run("numpy", epochs=1, **kwargs)
        on_torch = example.run("torch", epochs=1, **kwargs)
        for key in initial:
            assert on_torch[key] == pytest.approx(on_numpy[key], rel=1e-5), (name, key)
        assert on_torch[final] == pytest.approx(on_numpy[final], rel=1e-3), (name, final)
