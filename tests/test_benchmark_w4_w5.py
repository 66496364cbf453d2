"""W4 (ResNet-18) and W5 (GPT-shaped LM): the agnostic model and each native reference compute the
same network (the same logits from the same weights), so the benchmark's ratio compares like with
like; and the FLOP counts are the products the network does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
from agnostic import nn
from benchmarks import w4_resnet, w5_gpt

torch = pytest.importorskip("torch", reason="the reference is torch.nn (pip install torch)")

BACKENDS = available_backends()
IDS = [b.name for b in BACKENDS]


def _randomized(model: Any) -> Any:
    """Random BatchNorm affine parameters too (ones and zeros would hide a swapped weight)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def _resnet_pair(backend: ag.Device) -> tuple[Any, Any]:
    torch.manual_seed(0)
    reference = _randomized(w4_resnet._resnet(torch.nn)())
    ours = w4_resnet._resnet(nn)(backend=backend)
    ours.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    return ours, reference


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_resnet_logits_equal_torch_on_the_same_weights(backend: ag.Device) -> None:
    ours, reference = _resnet_pair(backend)
    x = w4_resnet.data()[0][:4]  # training mode: batch statistics of these 4
    want = reference(torch.from_numpy(x)).detach().numpy()
    got = ours(backend.tensor(x)).numpy()
    assert got.shape == (4, w4_resnet.CLASSES)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_resnet_jax_reference_equals_torch_on_the_same_weights() -> None:
    jnp = pytest.importorskip("jax.numpy")
    torch.manual_seed(0)
    reference = _randomized(w4_resnet._resnet(torch.nn)())
    params = {k: jnp.asarray(v.detach().numpy()) for k, v in reference.named_parameters()}
    x = w4_resnet.data()[0][:4]
    want = reference(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(
        np.asarray(w4_resnet.jax_logits(params, jnp.asarray(x))), want, rtol=1e-4, atol=1e-4
    )


def test_resnet_jax_parameters_are_torch_s() -> None:
    pytest.importorskip("optax")
    case = w4_resnet.native_case("jax")
    cells = {type(c.cell_contents).__name__: c.cell_contents for c in case.step.__closure__}
    params = cells["list"][0]
    reference = w4_resnet._resnet(torch.nn)()
    assert {k: tuple(v.shape) for k, v in params.items()} == {
        k: tuple(v.shape) for k, v in reference.named_parameters()
    }


def test_resnet_flops_count_every_convolution_and_the_head() -> None:
    """Counted independently: each Conv2d's output elements times its in-channels x kernel."""
    model = w4_resnet._resnet(torch.nn)()
    macs = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(
                lambda m, i, o: macs.append(o[0].numel() * m.in_channels * m.weight[0, 0].numel())
            )
    model(torch.zeros(1, 3, w4_resnet.SIZE, w4_resnet.SIZE))
    assert len(macs) == 20  # 17 3x3/7x7 convolutions and 3 downsampling 1x1
    assert w4_resnet.flops_per_step() == 6 * w4_resnet.BATCH * (sum(macs) + 512 * w4_resnet.CLASSES)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_gpt_logits_equal_torch_on_the_same_weights(backend: ag.Device) -> None:
    from benchmarks import w3_lm

    lm = w5_gpt.W5
    torch.manual_seed(0)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(lm.seq)
    reference = _randomized(w3_lm._lm(torch.nn, torch.arange(lm.seq), mask, lm)())
    ag_mask = nn.Transformer.generate_square_subsequent_mask(lm.seq, device=backend)
    ours = w3_lm._lm(nn, ag.arange(lm.seq, device=backend), ag_mask, lm)(backend=backend)
    ours.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    ids = w3_lm.data(lm=lm)[0][:2]
    want = reference(torch.from_numpy(ids)).detach().numpy()
    got = ours(backend.tensor(ids)).numpy()
    assert got.shape == (2, lm.seq, lm.vocab)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_gpt_is_the_size_the_issue_asks_for() -> None:
    lm = w5_gpt.W5
    assert (lm.layers, lm.d, lm.heads, lm.seq, lm.batch, lm.vocab) == (4, 256, 4, 128, 8, 8192)
    assert (lm.norm_first, lm.activation) == (True, "gelu")


@pytest.mark.parametrize("native", ["torch", "jax"])
def test_gpt_native_references_have_the_agnostic_model_s_parameters(native: str) -> None:
    """The same network in each library: the same parameter count (W3's check, at W5's size)."""
    pytest.importorskip(native)
    pytest.importorskip("optax")

    def closure(case: Any) -> dict[str, Any]:
        return {type(c.cell_contents).__name__: c.cell_contents for c in case.step.__closure__}

    ours = sum(p.size for p in closure(w5_gpt.agnostic_case("numpy"))["Model"].parameters())
    cells = closure(w5_gpt.native_case(native))
    if native == "torch":
        theirs = sum(p.numel() for p in cells["Model"].parameters())
    else:
        import jax

        theirs = sum(leaf.size for leaf in jax.tree.leaves(cells["list"][0]))
    assert theirs == ours > 4 * 12 * 256 * 256
