"""PyTorch model code run through `agnostic.compat.torch` with only its imports changed, loaded with
the torch model's state_dict, on every available backend; the reference is the same source with
torch's imports. The nanoGPT-style GPT (tests/compat_models/nanogpt.py) matches torch's logits,
loss, three AdamW steps of `configure_optimizers` and greedy `generate`; the torchvision-style ResNet
(tests/compat_models/resnet.py) its logits in eval and train mode, BatchNorm's running statistics
and three SGD steps."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
from backends_here import available_backends

import agnostic as ag
import agnostic.compat.torch as ct

torch = pytest.importorskip("torch", reason="the reference is torch itself (pip install torch)")

BACKENDS = available_backends()
by_name = pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
SOURCE = (Path(__file__).parent / "compat_models" / "nanogpt.py").read_text()
PORTED_IMPORTS = (
    "import agnostic.compat.torch as torch\n"
    "import agnostic.compat.torch.nn as nn\n"
    "from agnostic.compat.torch.nn import functional as F\n"
)
TORCH_IMPORTS = "import torch\nimport torch.nn as nn\nfrom torch.nn import functional as F\n"


def _module(source: str, name: str) -> types.ModuleType:
    mod = sys.modules[name] = types.ModuleType(name)  # (dataclasses look the module up)
    exec(compile(source, f"<{name}>", "exec"), mod.__dict__)
    return mod


def test_the_port_changed_only_the_imports():
    assert PORTED_IMPORTS in SOURCE
    code = SOURCE.replace(PORTED_IMPORTS, TORCH_IMPORTS).split('"""', 2)[2]  # after the docstring
    assert "agnostic" not in code
    assert "logits[logits < v[:, [-1]]] = -float" in code  # generate's item assignment, as written


ported = _module(SOURCE, "nanogpt_agnostic")
reference = _module(SOURCE.replace(PORTED_IMPORTS, TORCH_IMPORTS), "nanogpt_torch")
CONFIG = dict(block_size=12, vocab_size=37, n_layer=2, n_head=2, n_embd=16, dropout=0.0)


def _pair(backend, monkeypatch, flash: bool, bias: bool = True):
    """The torch GPT and ours with its weights; `flash=False` takes nanoGPT's manual attention
    (a registered causal-mask buffer, masked_fill, softmax), as on torch < 2.0."""
    if not flash:
        monkeypatch.delattr(torch.nn.functional, "scaled_dot_product_attention")
        monkeypatch.delattr(ct.nn.functional, "scaled_dot_product_attention")
    torch.manual_seed(0)
    ref = reference.GPT(reference.GPTConfig(**CONFIG, bias=bias))
    with ag.default_backend(backend):
        ours = ported.GPT(ported.GPTConfig(**CONFIG, bias=bias))
    monkeypatch.undo()
    state = ref.state_dict()
    assert list(ours.state_dict()) == list(state)  # same names, same order, mask buffer included
    ours.load_state_dict({k: v.numpy() for k, v in state.items()})
    assert ours.transformer.wte.weight is ours.lm_head.weight  # the tie survives loading
    return ref, ours


DATA = np.random.default_rng(0)
IDX = DATA.integers(0, 37, (3, 10))
TARGETS = np.where(DATA.uniform(size=(3, 10)) < 0.2, -1, DATA.integers(0, 37, (3, 10)))


@by_name
@pytest.mark.parametrize("flash", [True, False], ids=["sdpa", "manual-attention"])
def test_logits_and_loss_match_torch(backend, monkeypatch, flash):
    ref, ours = _pair(backend, monkeypatch, flash)
    assert ours.get_num_params() == ref.get_num_params()
    t_logits, t_loss = ref(torch.tensor(IDX), torch.tensor(TARGETS))
    logits, loss = ours(ct.tensor(IDX, device=backend), ct.tensor(TARGETS, device=backend))
    assert logits.device is backend and logits.shape == tuple(t_logits.shape)
    np.testing.assert_allclose(logits.numpy(), t_logits.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-5)
    last, none = ours(ct.tensor(IDX, device=backend))
    t_last, _ = ref(torch.tensor(IDX))
    assert none is None and last.shape == (3, 1, 37)
    np.testing.assert_allclose(last.numpy(), t_last.detach().numpy(), rtol=1e-4, atol=1e-5)


@by_name
def test_configure_optimizers_and_three_steps_match_torch(backend, monkeypatch):
    ref, ours = _pair(backend, monkeypatch, flash=True, bias=False)
    topt = ref.configure_optimizers(0.1, 3e-3, (0.9, 0.95), "cpu")
    oopt = ours.configure_optimizers(0.1, 3e-3, (0.9, 0.95), "cuda")  # fused=True accepted
    assert [len(g["params"]) for g in oopt.param_groups] == [len(g["params"]) for g in topt.param_groups]
    idx, targets = ct.tensor(IDX, device=backend), ct.tensor(TARGETS, device=backend)
    for _ in range(3):
        topt.zero_grad(set_to_none=True)
        _, t_loss = ref(torch.tensor(IDX), torch.tensor(TARGETS))
        t_loss.backward()
        topt.step()
        oopt.zero_grad(set_to_none=True)
        _, loss = ours(idx, targets)
        loss.backward()
        oopt.step()
        np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-5)
    for (name, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-4, atol=2e-6, err_msg=name)


@by_name
def test_generate_matches_torch_greedy_and_samples_within_top_k(backend, monkeypatch):
    ref, ours = _pair(backend, monkeypatch, flash=True)
    ref.eval()
    ours.eval()
    start = IDX[:, :4]
    t_out = ref.generate(torch.tensor(start), 10, top_k=1)  # top_k=1: one token left, no randomness
    out = ours.generate(ct.tensor(start, device=backend), 10, top_k=1)
    assert out.dtype is ct.long and out.device is backend
    np.testing.assert_array_equal(out.numpy(), t_out.numpy())  # crosses block_size=12: cropping too
    ct.manual_seed(1)
    sampled = ours.generate(ct.tensor(start, device=backend), 3, temperature=0.8, top_k=5)
    ct.manual_seed(1)
    again = ours.generate(ct.tensor(start, device=backend), 3, temperature=0.8, top_k=5)
    np.testing.assert_array_equal(sampled.numpy(), again.numpy())
    np.testing.assert_array_equal(sampled.numpy()[:, :4], start)
    logits, _ = ref(torch.tensor(start))
    top5 = torch.topk(logits[:, -1, :], 5).indices.numpy()
    assert all(tok in row for tok, row in zip(sampled.numpy()[:, 4], top5))


# ---------------------------------------------------------------------- torchvision-style ResNet
RESNET = (Path(__file__).parent / "compat_models" / "resnet.py").read_text()
RESNET_PORTED = "import agnostic.compat.torch as torch\nimport agnostic.compat.torch.nn as nn\n"
RESNET_TORCH = "import torch\nimport torch.nn as nn\n"
resnet_ported = _module(RESNET, "resnet_agnostic")
resnet_reference = _module(RESNET.replace(RESNET_PORTED, RESNET_TORCH), "resnet_torch")
IMAGES = np.random.default_rng(2).standard_normal((4, 3, 64, 64)).astype(np.float32)
LABELS = np.array([3, 7, 0, 3])


def test_the_resnet_port_changed_only_the_imports():
    assert RESNET_PORTED in RESNET
    code = RESNET.replace(RESNET_PORTED, RESNET_TORCH).split('"""', 2)[2]
    assert "agnostic" not in code


@by_name
@pytest.mark.parametrize("block", ["BasicBlock", "Bottleneck"])
def test_resnet_matches_torch_in_eval_train_and_three_sgd_steps(backend, block):
    torch.manual_seed(0)
    ref = resnet_reference.ResNet(getattr(resnet_reference, block), [1, 1, 1, 1], num_classes=10, width=8)
    with ag.default_backend(backend):
        ours = resnet_ported.ResNet(getattr(resnet_ported, block), [1, 1, 1, 1], num_classes=10, width=8)
    with torch.no_grad():  # non-trivial running statistics for eval mode
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    state = ref.state_dict()
    assert list(ours.state_dict()) == list(state)  # num_batches_tracked included
    ours.load_state_dict({k: v.numpy() for k, v in state.items()})
    x, y = ct.tensor(IMAGES, device=backend), ct.tensor(LABELS, device=backend)
    tx, ty = torch.tensor(IMAGES), torch.tensor(LABELS)

    ref.eval(), ours.eval()
    np.testing.assert_allclose(ours(x).numpy(), ref(tx).detach().numpy(), rtol=1e-4, atol=1e-5)

    ref.train(), ours.train()
    topt = torch.optim.SGD(ref.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    oopt = ct.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, foreach=True)
    for _ in range(3):
        topt.zero_grad()
        t_loss = torch.nn.functional.cross_entropy(ref(tx), ty)
        t_loss.backward()
        topt.step()
        oopt.zero_grad()
        loss = ct.nn.functional.cross_entropy(ours(x), y)
        loss.backward()
        oopt.step()
        np.testing.assert_allclose(loss.item(), t_loss.item(), rtol=1e-4)
    theirs = ref.state_dict()
    for name, value in ours.state_dict().items():  # parameters, running statistics and step counts
        np.testing.assert_allclose(value.numpy(), theirs[name].numpy(), rtol=1e-3, atol=1e-4, err_msg=name)
