"""PyTorch interop: a torch.nn model's weights run in the agnostic twin (and back) with the same
outputs, in memory and through safetensors files written by either side."""

from __future__ import annotations

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn

torch = pytest.importorskip("torch", reason="interop with PyTorch needs torch")
tnn = torch.nn
st = pytest.importorskip("safetensors.torch")

BACKENDS = [d.name for d in available_backends()]


def _build(lib, backend=None):
    """The same architecture from either library: conv + batch norm, an embedding, an LSTM, a
    transformer encoder layer and a linear head (the names and layouts must line up one to one)."""

    class Twin(lib.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = lib.Conv2d(1, 4, 3, padding=1)
            self.bn = lib.BatchNorm2d(4)
            self.embed = lib.Embedding(10, 8)
            self.lstm = lib.LSTM(8, 8, num_layers=2, batch_first=True, bidirectional=True)
            self.encoder = lib.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            self.norm = lib.LayerNorm(16)
            self.head = lib.Linear(16 + 4, 3)

    model = Twin() if backend is None else Twin(backend=backend)
    return model


def _forward_ours(m, image, tokens):
    f = ag.mean(ag.relu(m.bn(m.conv(image))), axis=(2, 3))
    seq, _ = m.lstm(m.embed(tokens))
    h = ag.mean(m.norm(m.encoder(seq)), axis=1)
    return m.head(ag.concat([h, f], axis=1))


def _forward_torch(m, image, tokens):
    f = torch.relu(m.bn(m.conv(image))).mean(dim=(2, 3))
    seq, _ = m.lstm(m.embed(tokens))
    h = m.norm(m.encoder(seq)).mean(dim=1)
    return m.head(torch.cat([h, f], dim=1))


def _inputs():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 1, 6, 6)).astype(np.float32), rng.integers(0, 10, size=(2, 5))


def _torch_model():
    torch.manual_seed(0)
    model = _build(tnn)
    with torch.no_grad():  # non-trivial running statistics, so eval mode uses them
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_state_dict_runs_in_the_agnostic_twin(backend: str) -> None:
    theirs = _torch_model()
    image, tokens = _inputs()
    expected = _forward_torch(theirs, torch.from_numpy(image), torch.from_numpy(tokens)).detach().numpy()
    ours = _build(nn, ag.backend(backend))
    assert list(ours.state_dict()) == list(theirs.state_dict())  # same names, same order
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    B = ag.backend(backend)
    got = _forward_ours(ours, B.tensor(image), B.tensor(tokens)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert int(ours.bn.num_batches_tracked.item()) == 7


@pytest.mark.parametrize("backend", BACKENDS)
def test_agnostic_state_dict_runs_in_the_torch_twin(backend: str) -> None:
    ag.manual_seed(3)
    ours = _build(nn, ag.backend(backend)).eval()
    B = ag.backend(backend)
    image, tokens = _inputs()
    expected = _forward_ours(ours, B.tensor(image), B.tensor(tokens)).numpy()
    theirs = _build(tnn)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in ours.state_dict().items()})
    theirs.eval()
    got = _forward_torch(theirs, torch.from_numpy(image), torch.from_numpy(tokens)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_files_cross_between_safetensors_torch_and_agnostic(tmp_path) -> None:
    theirs = _torch_model()
    image, tokens = _inputs()
    expected = _forward_torch(theirs, torch.from_numpy(image), torch.from_numpy(tokens)).detach().numpy()
    # torch writes, agnostic reads (Module.load and ag.load)
    st.save_file(theirs.state_dict(), str(tmp_path / "torch.safetensors"))
    ours = _build(nn, ag.backend("numpy")).load(tmp_path / "torch.safetensors").eval()
    got = _forward_ours(ours, ag.tensor(image), ag.tensor(tokens)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # agnostic writes, torch reads: the same tensors, bit for bit, dtypes included
    ours.save(tmp_path / "ours.safetensors")
    back = st.load_file(str(tmp_path / "ours.safetensors"))
    assert set(back) == set(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert back[k].dtype == v.dtype, k
        assert torch.equal(back[k], v), k
    fresh = _build(tnn)
    fresh.load_state_dict(back)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_half_and_double_weights_cross_bit_for_bit(tmp_path, dtype: str) -> None:
    theirs = tnn.Linear(4, 3).to(getattr(torch, dtype))
    st.save_file(theirs.state_dict(), str(tmp_path / "t.safetensors"))
    ours = ag.load(tmp_path / "t.safetensors")
    assert ours["weight"].dtype == ag.dtypes.as_dtype(dtype)
    raw = theirs.weight.detach().contiguous().view(torch.uint8).numpy().tobytes()
    assert ours["weight"].numpy().tobytes() == raw
    ag.save(ours, tmp_path / "o.safetensors")
    back = st.load_file(str(tmp_path / "o.safetensors"))
    assert torch.equal(back["weight"], theirs.weight.detach()) and back["weight"].dtype == theirs.weight.dtype
