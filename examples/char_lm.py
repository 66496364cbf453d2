"""A character-level causal transformer language model on text that ships with Python, on any backend.

    python examples/char_lm.py --backend numpy     # or torch, jax, cupy

The text is the docstrings of a few pure-Python standard-library modules, read from their source
files with `ast` (nothing is downloaded, and it works under `python -OO` too). Model, optimizer and
data pipeline are agnostic's: token and learned position embeddings, a pre-norm
nn.TransformerEncoder with a causal mask, a LayerNorm and a Linear head; AdamW with a linear
warm-up then cosine decay, gradient clipping, a seeded DataLoader (one seed gives the same initial
model and the same batches on every backend) and `agnostic.train.Learner` with next-character
accuracy. It then samples text from a prompt with agnostic ops on the chosen backend (Ctrl-C ends
training early and goes on to the sample).
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib.util
import math

import numpy as np

import agnostic as ag
from agnostic import nn, optim
from agnostic.cli import add_common_options, parse_args
from agnostic.data import DataLoader, TensorDataset
from agnostic.train import Accuracy, Learner

# prose-heavy modules; any that is missing or has no source file (frozen, C) is skipped
MODULES = (
    "textwrap", "difflib", "argparse", "collections", "functools", "json", "logging", "statistics",
    "random", "fractions", "heapq", "dataclasses", "contextlib", "shutil", "tempfile", "typing",
)  # fmt: skip


@functools.cache
def stdlib_text(modules: tuple[str, ...] = MODULES) -> str:
    """The docstrings (module, class, function) of `modules`, parsed from their source files, so the
    text is the same whether or not Python strips docstrings (-OO)."""
    parts = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        docs = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds))
        parts.extend(d for d in docs if d and len(d) >= 40)
    return "\n\n".join(parts)


class Vocab:
    """Characters of the text, in sorted order, and the maps between them and integer ids."""

    def __init__(self, text: str) -> None:
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, ids: list[int] | np.ndarray) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping (input, next-character target) pairs, each (N, seq_len)."""
    n = (len(ids) - 1) // seq_len
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)
    return x, y


def gelu_tanh(x: ag.Tensor) -> ag.Tensor:
    """GELU's tanh form (GPT-2's): the exact erf form costs more than the matmuls on the NumPy backend."""
    return ag.functional.gelu(x, approximate="tanh")


class CharTransformer(nn.Module):
    """Token + position embeddings -> pre-norm causal TransformerEncoder -> LayerNorm -> Linear."""

    def __init__(
        self, vocab_size: int, seq_len: int, d_model: int = 64, num_heads: int = 4, num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.seq_len = seq_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, dim_feedforward=4 * d_model, dropout=dropout, activation=gelu_tanh,
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.blocks = nn.TransformerEncoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        for emb in (self.tok, self.pos):  # GPT-2's small embeddings, not Embedding's N(0, 1)
            nn.init.normal_(emb.weight, std=0.02)

    def forward(self, ids: ag.Tensor) -> ag.Tensor:
        """ids (N, L) with L <= seq_len -> logits (N, L, vocab)."""
        length = ids.shape[1]
        positions = ag.arange(length, device=ids.device)
        x = self.tok(ids) + self.pos(positions)
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        x = self.blocks(x, mask=mask, is_causal=True)
        return self.head(self.norm(x))


def next_char_loss(logits: ag.Tensor, targets: ag.Tensor) -> ag.Tensor:
    """Mean cross-entropy of every position's next-character prediction (logits flattened to (N*L, V))."""
    return ag.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def generate(
    model: CharTransformer, vocab: Vocab, prompt: str, length: int, temperature: float = 0.8, seed: int = 0
) -> str:
    """`length` characters sampled after `prompt` on the model's backend: softmax(logits / temperature)
    drawn with the Gumbel-max trick from seeded uniforms (so every backend draws the same noise);
    temperature 0 is greedy."""
    unknown = sorted(set(prompt) - set(vocab.chars))
    if not prompt or unknown:
        raise ValueError(
            f"generate: the prompt must be non-empty and use the text's characters, got {unknown}"
        )
    B, seq_len = model.backend, model.seq_len
    gen = ag.Generator(seed)
    ids = list(vocab.encode(prompt))
    was_training = model.training
    model.eval()
    with ag.no_grad():
        for _ in range(length):
            # one fixed (1, seq_len) window, the context left-aligned: the causal mask makes position
            # t depend on positions <= t only, so the padding after it changes nothing, and a
            # compiling backend (jax) sees one shape instead of one per context length
            context = ids[-seq_len:]
            window = np.zeros((1, seq_len), dtype=np.int64)
            window[0, : len(context)] = context
            logits = model(B.tensor(window))[0, len(context) - 1]
            if temperature > 0:
                u = ag.clip(B.rand(len(vocab), generator=gen), 1e-12, 1.0)
                logits = logits / temperature - ag.log(-ag.log(u))
            ids.append(int(ag.argmax(logits).item()))
    model.train(was_training)
    return vocab.decode(ids[len(prompt) :])


def run(
    backend: str | ag.Device = "numpy", epochs: int = 12, batch_size: int = 32, seq_len: int = 64, d_model: int = 64,
    num_layers: int = 2, num_heads: int = 4, lr: float = 3e-3, warmup: int = 50, max_chars: int | None = None,
    prompt: str = "Return the ", sample_length: int = 300, temperature: float = 0.8, seed: int = 0,
    progress: bool = True,
) -> dict:  # fmt: skip
    """Train on the first 90% of the text, report the loss on the last 10% each epoch, then sample.
    `max_chars` and the sizes are there for short runs (the tests)."""
    B = ag.backend(backend)
    text = stdlib_text()
    if max_chars is not None:
        text = text[:max_chars]
    vocab = Vocab(text)
    ids = vocab.encode(text)
    cut = int(0.9 * len(ids))
    x_train, y_train = windows(ids[:cut], seq_len)
    x_val, y_val = windows(ids[cut:], seq_len)
    ag.manual_seed(seed)
    model = CharTransformer(len(vocab), seq_len, d_model, num_heads, num_layers, backend=B)
    # drop_last: every step sees a full batch (and a compiling backend sees one shape)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size, shuffle=True, drop_last=True, device=B)
    # a fixed slice of the training windows, scored in eval mode before and after training
    train_eval = DataLoader(TensorDataset(x_train[:512], y_train[:512]), 128, device=B)
    val = DataLoader(TensorDataset(x_val, y_val), 128, device=B)
    # AdamW as GPT-2: no weight decay on biases, norms and embeddings
    embeddings = {id(model.tok.weight), id(model.pos.weight)}
    decay = [p for p in model.parameters() if p.ndim == 2 and id(p) not in embeddings]
    no_decay = [p for p in model.parameters() if p.ndim != 2 or id(p) in embeddings]
    opt = optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.99),
    )  # fmt: skip
    total = epochs * len(loader)
    warmup = max(1, min(warmup, total // 10))  # a short run still gets a (short) cosine phase
    sched = optim.lr_scheduler.SequentialLR(
        opt,
        [
            optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=warmup),
            optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total - warmup), eta_min=lr / 20),
        ],
        milestones=[warmup],
    )
    print(
        f"char transformer on {B}: {model.num_parameters():,} parameters; {len(text):,} characters of "
        f"standard-library docstrings, vocabulary {len(vocab)}; {len(x_train)} train / {len(x_val)} "
        f"validation windows of {seq_len}"
    )
    learner = Learner(
        model, opt, next_char_loss, metrics=[Accuracy()], scheduler=sched, scheduler_interval="step",
        clip_grad_norm=1.0, progress=progress,
    )  # fmt: skip
    initial_train, initial_val = learner.evaluate(train_eval)["loss"], learner.evaluate(val)["loss"]
    print(f"  before training: train loss {initial_train:.4f}  val loss {initial_val:.4f}")
    history = learner.fit(loader, epochs, val_loader=val)  # Ctrl-C stops it; the sample still follows
    val_losses = [row["val_loss"] for row in history]
    final_train = learner.evaluate(train_eval)["loss"]
    print(
        f"  validation loss {val_losses[-1]:.4f} ({val_losses[-1] / math.log(2):.3f} bits/char), "
        f"next-character accuracy {history[-1]['val_accuracy']:.1%}"
    )
    sample = generate(model, vocab, prompt, sample_length, temperature, seed)
    print(f"  sample (temperature {temperature}):\n{prompt}{sample}")
    return {
        "initial_train_loss": initial_train,
        "initial_val_loss": initial_val,
        "final_train_loss": final_train,
        "final_val_loss": val_losses[-1],
        "val_losses": val_losses,
        "val_perplexity": math.exp(val_losses[-1]),
        "val_bits_per_char": val_losses[-1] / math.log(2),
        "vocab": "".join(vocab.chars),
        "prompt": prompt,
        "sample": sample,
        "seconds_per_epoch": float(np.mean([row["time"] for row in history])),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_options(parser)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--prompt", default="Return the ")
    parser.add_argument("--temperature", type=float, default=0.8)
    args = parse_args(parser)
    result = run(args.backend, args.epochs, prompt=args.prompt, temperature=args.temperature)
    print(
        f"validation loss {result['initial_val_loss']:.3f} -> {result['final_val_loss']:.3f} nats "
        f"({result['val_bits_per_char']:.2f} bits/char, perplexity {result['val_perplexity']:.2f}); "
        f"{result['seconds_per_epoch']:.2f} s per epoch"
    )
