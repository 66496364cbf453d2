"""W4: torchvision's ResNet-18 (BasicBlock, [2, 2, 2, 2], 64-512 channels, 1000 classes) on
3x64x64, batch 32, training mode (BatchNorm on batch statistics), cross-entropy, Adam; one full
training step. Native references: torch eager with torch.optim, the same network in jax.lax under
jax.jit with optax (it computes batch statistics but keeps no running averages: jax_adam_case
carries parameters only, which spares native JAX a few small updates per step)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from benchmarks.harness import Case
from benchmarks.steps import agnostic_adam_case, jax_adam_case, on_jax_device, torch_adam_case

BATCH, SIZE, CLASSES = 32, 64, 1000
WIDTHS = (64, 128, 256, 512)  # one stage each, two BasicBlocks per stage; stages 2-4 halve the size


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(BATCH, 3, SIZE, SIZE)).astype(np.float32), rng.integers(0, CLASSES, BATCH)


def _resnet(nn: Any) -> Any:
    """torchvision's resnet18 for agnostic.nn or torch.nn (same modules, names and layouts)."""

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x: Any) -> Any:
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, cout in enumerate(WIDTHS):
                stride = 1 if i == 0 else 2
                setattr(
                    self,
                    f"layer{i + 1}",
                    nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)),
                )
                cin = cout
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(512, CLASSES)

        def forward(self, x: Any) -> Any:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(self.flatten(self.avgpool(x)))

    return ResNet18


def _convs() -> list[tuple[str, int, int, int, int, int, int]]:
    """Every convolution, in torch's order: (name, in, out, kernel, stride, padding, output size);
    each is followed by its BatchNorm (`bn_name`)."""
    convs = [("conv1", 3, 64, 7, 2, 3, SIZE // 2)]
    cin = 64
    for i, cout in enumerate(WIDTHS):
        size = SIZE // 4 // 2**i  # after the stem's stride-2 convolution and max-pool
        for j in range(2):
            stride = 2 if i > 0 and j == 0 else 1
            block = f"layer{i + 1}.{j}"
            convs += [
                (f"{block}.conv1", cin, cout, 3, stride, 1, size),
                (f"{block}.conv2", cout, cout, 3, 1, 1, size),
            ]
            if stride != 1 or cin != cout:
                convs.append((f"{block}.downsample.0", cin, cout, 1, stride, 0, size))
            cin = cout
    return convs


def bn_name(conv: str) -> str:
    """The BatchNorm after convolution `conv`, by torch's name."""
    if conv.endswith("downsample.0"):
        return conv[:-1] + "1"
    return conv[:-5] + "bn" + conv[-1]


def flops_per_step() -> float:
    """Model FLOPs of one training step: the convolutions' and the linear layer's products, 2 per
    multiply-add forward, 3x that with backward (BatchNorm, pooling and ReLU not counted)."""
    macs = sum(out * out * cout * cin * k * k for _, cin, cout, k, _, _, out in _convs())
    return 3 * 2 * BATCH * (macs + 512 * CLASSES)


def agnostic_case(backend: str, compiled: bool = False, device: str | None = None) -> Case:
    import agnostic as ag
    from agnostic import nn

    B = ag.backend(backend, device)
    ag.manual_seed(0)
    model = _resnet(nn)(backend=B)
    x, y = (B.tensor(a) for a in data())
    return agnostic_adam_case(backend, model, x, y, ag.cross_entropy, compiled)


def native_case(backend: str, device: str | None = None) -> Case | None:
    return {"torch": _torch, "jax": _jax}.get(backend, lambda d: None)(device)


def _torch(device: str | None) -> Case:
    import torch

    dev = torch.device(device or "cpu")
    torch.manual_seed(0)
    model = _resnet(torch.nn)().to(dev)
    x, y = (torch.from_numpy(a).to(dev) for a in data())
    return torch_adam_case(model, x, y, torch.nn.functional.cross_entropy)


def jax_logits(params: dict[str, Any], x: Any) -> Any:
    """The network in jax.lax, training mode; `params` by torch's parameter names."""
    import jax
    import jax.numpy as jnp

    def conv_bn(h: Any, name: str, stride: int, pad: int) -> Any:
        h = jax.lax.conv_general_dilated(
            h, params[f"{name}.weight"], (stride, stride), ((pad, pad), (pad, pad)),
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
        )  # fmt: skip
        bn = bn_name(name)
        mean, var = h.mean((0, 2, 3), keepdims=True), h.var((0, 2, 3), keepdims=True)
        scale = params[f"{bn}.weight"][None, :, None, None] * jax.lax.rsqrt(var + 1e-5)
        return (h - mean) * scale + params[f"{bn}.bias"][None, :, None, None]

    specs = {name: (stride, pad) for name, _, _, _, stride, pad, _ in _convs()}
    h = jax.nn.relu(conv_bn(x, "conv1", 2, 3))
    pads = ((0, 0), (0, 0), (1, 1), (1, 1))
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 3, 3), (1, 1, 2, 2), pads)
    for i in range(len(WIDTHS)):
        for j in range(2):
            block = f"layer{i + 1}.{j}"
            out = jax.nn.relu(conv_bn(h, f"{block}.conv1", *specs[f"{block}.conv1"]))
            out = conv_bn(out, f"{block}.conv2", 1, 1)
            down = f"{block}.downsample.0"
            h = jax.nn.relu(out + (conv_bn(h, down, *specs[down]) if down in specs else h))
    return h.mean((2, 3)) @ params["fc.weight"].T + params["fc.bias"]


@on_jax_device
def _jax(device: str | None) -> Case:
    import jax
    import jax.numpy as jnp
    import optax

    f32 = jnp.float32  # explicit: with JAX_ENABLE_X64=1 the defaults are float64
    convs = _convs()
    keys = iter(jax.random.split(jax.random.PRNGKey(0), len(convs) + 1))
    params: dict[str, Any] = {}
    for name, cin, cout, k, _, _, _ in convs:  # He-normal convolutions, BatchNorm ones and zeros
        params[f"{name}.weight"] = jax.random.normal(next(keys), (cout, cin, k, k), f32) * math.sqrt(
            2 / (cin * k * k)
        )
        params[f"{bn_name(name)}.weight"], params[f"{bn_name(name)}.bias"] = (
            jnp.ones(cout, f32),
            jnp.zeros(cout, f32),
        )
    params["fc.weight"] = jax.random.normal(next(keys), (CLASSES, 512), f32) / math.sqrt(512)
    params["fc.bias"] = jnp.zeros(CLASSES, f32)
    x, y = (jnp.asarray(a) for a in data())

    def loss_fn(p: Any) -> Any:
        return optax.softmax_cross_entropy_with_integer_labels(jax_logits(p, x), y).mean()

    return jax_adam_case(params, loss_fn, device)
