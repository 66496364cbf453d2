"""`agnostic.onnx.load` as a user meets it: an imported model is an ordinary Module that fine-tunes
(gradients as torch computes them), saves, moves between backends and compiles; opset versions
follow the model; what cannot run, and untrusted or broken files, are one clear OnnxImportError
naming the file; sequences, optionals and subgraphs reading the enclosing graph's values work."""

from __future__ import annotations

import os
import pickle

import numpy as np
import onnx
import pytest
from backends_here import available_backends
from onnx import TensorProto, helper, numpy_helper

import agnostic as ag
from agnostic import optim
from agnostic.onnx import OnnxImportError, load

BACKENDS = available_backends()
COMPILERS = [b for b in BACKENDS if b.name in ("torch", "jax")]
FLOAT = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=17, **kw) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits), **kw)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _init(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _weights(seed: int, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    r = np.random.default_rng(seed)
    return [(r.normal(0, 0.5, s)).astype(np.float32) for s in shapes]


def _mlp() -> onnx.ModelProto:
    """x (N, 2, 2) -> flatten by shape arithmetic (Shape, Gather, Concat, Reshape) -> Linear ->
    ReLU -> Gemm: the weights named as torch names a module's."""
    w1, b1, w2, b2 = _weights(0, (4, 8), (8,), (3, 8), (3,))
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "zeros"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc1.weight"], ["h"]),
        helper.make_node("Add", ["h", "fc1.bias"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"], name="act"),
        helper.make_node("Gemm", ["h2", "fc2.weight", "fc2.bias"], ["y"], transB=1),
    ]
    inits = [
        _init("fc1.weight", w1),
        _init("fc1.bias", b1),
        _init("fc2.weight", w2),
        _init("fc2.bias", b2),
        _init("zero", np.array(0, np.int64)),
        _init("zeros", np.array([0], np.int64)),
        _init("minus1", np.array([-1], np.int64)),
    ]
    x = helper.make_tensor_value_info("x", FLOAT, ["N", 2, 2])
    y = helper.make_tensor_value_info("y", FLOAT, ["N", 3])
    return _model(nodes, [x], [y], inits)


def _cnn() -> onnx.ModelProto:
    w, b, fw, fb = _weights(1, (4, 1, 3, 3), (4,), (3, 64), (3,))
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1),
    ]
    inits = [_init("conv.weight", w), _init("conv.bias", b), _init("fc.weight", fw), _init("fc.bias", fb)]
    x = helper.make_tensor_value_info("x", FLOAT, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info("y", FLOAT, ["N", 3])
    return _model(nodes, [x], [y], inits)


def _torch_forward(kind: str, params: dict, x):
    """The same network written with torch.nn.functional, for reference values and gradients."""
    import torch.nn.functional as tf

    if kind == "mlp":
        h = tf.relu(x.reshape(x.shape[0], -1) @ params["fc1.weight"] + params["fc1.bias"])
        return tf.linear(h, params["fc2.weight"], params["fc2.bias"])
    h = tf.max_pool2d(tf.relu(tf.conv2d(x, params["conv.weight"], params["conv.bias"], padding=1)), 2)
    return tf.linear(h.flatten(1), params["fc.weight"], params["fc.bias"])


MODELS = {"mlp": (_mlp, (16, 2, 2)), "cnn": (_cnn, (16, 1, 8, 8))}


def _data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(7)
    shape = MODELS[kind][1]
    return r.normal(size=shape).astype(np.float32), r.integers(0, 3, shape[0])


# ---------------------------------------------------------------------- an ordinary Module
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_gradients_of_an_imported_model_match_torch(backend: ag.Device, kind: str) -> None:
    torch = pytest.importorskip("torch")
    proto = MODELS[kind][0]()
    model = load(proto, backend=backend)
    x, y = _data(kind)
    loss = ag.cross_entropy(model(backend.tensor(x)), backend.tensor(y))
    loss.backward()

    arrays = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    params = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items() if v.dtype == np.float32}
    ref = torch.nn.functional.cross_entropy(_torch_forward(kind, params, torch.tensor(x)), torch.tensor(y))
    ref.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-5)
    named = dict(model.named_parameters())
    assert set(named) == set(params)
    for name, p in params.items():
        np.testing.assert_allclose(
            named[name].grad.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name
        )


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize(
    "make_opt", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9), lambda p: optim.Adam(p, lr=0.01)]
)
def test_an_imported_model_fine_tunes(backend: ag.Device, kind: str, make_opt) -> None:
    model = load(MODELS[kind][0]().SerializeToString(), backend=backend)
    opt = make_opt(model.parameters())
    x, y = (backend.tensor(v) for v in _data(kind))
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = ag.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_only_floating_initializers_are_parameters() -> None:
    model = load(_mlp())
    assert sorted(n for n, _ in model.named_parameters()) == [
        "fc1.bias",
        "fc1.weight",
        "fc2.bias",
        "fc2.weight",
    ]
    assert all(p.requires_grad for p in model.parameters())
    assert sorted(model.state_dict()) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    assert {n for n, _ in model.named_buffers()} == {"zero", "zeros", "minus1"}  # shape constants
    assert model.fc1.weight.shape == (4, 8)  # dotted ONNX names are submodules, as in torch


def test_the_source_may_be_a_path_bytes_or_a_model_proto(tmp_path) -> None:
    proto = _mlp()
    path = tmp_path / "mlp.onnx"
    path.write_bytes(proto.SerializeToString())
    x = _data("mlp")[0]
    outs = [load(src)(x).numpy() for src in (proto, proto.SerializeToString(), path, str(path))]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


def test_a_fine_tuned_model_saves_and_loads(tmp_path) -> None:
    model = load(_cnn())
    x, y = (ag.tensor(v) for v in _data("cnn"))
    opt = optim.Adam(model.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        ag.cross_entropy(model(x), y).backward()
        opt.step()
    ag.save(model.state_dict(), tmp_path / "tuned.safetensors")
    fresh = load(_cnn(), backend="torch" if any(b.name == "torch" for b in BACKENDS) else None)
    assert not np.allclose(fresh(x.numpy()).numpy(), model(x).numpy())
    fresh.load_state_dict(ag.load(tmp_path / "tuned.safetensors"))
    np.testing.assert_allclose(fresh(x.numpy()).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.name != "numpy"], ids=lambda b: b.name)
def test_model_to_moves_an_imported_model(backend: ag.Device) -> None:
    model = load(_mlp())
    x, y = _data("mlp")
    before = model(x).numpy()
    assert model.to(backend) is model
    assert all(p.device == backend for p in model.parameters())
    out = model(backend.tensor(x))
    assert out.device == backend
    np.testing.assert_allclose(out.numpy(), before, rtol=1e-5, atol=1e-6)
    opt = optim.SGD(model.parameters(), lr=0.1)
    ag.cross_entropy(model(x), backend.tensor(y)).backward()
    opt.step()
    assert all(p.device == backend for p in model.parameters())


@pytest.mark.parametrize("backend", COMPILERS, ids=lambda b: b.name)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_a_compiled_step_over_an_imported_model_matches_the_eager_one(backend: ag.Device, kind: str) -> None:
    x, y = (backend.tensor(v) for v in _data(kind))

    def run(compiled: bool) -> tuple[list[float], np.ndarray]:
        model = load(MODELS[kind][0](), backend=backend)
        opt = optim.Adam(model.parameters(), lr=0.01)

        def step(x: ag.Tensor, y: ag.Tensor) -> ag.Tensor:
            opt.zero_grad()
            loss = ag.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = ag.compile(step) if compiled else step
        losses = [fn(x, y).item() for _ in range(3)]
        forward = ag.compile(lambda x: model(x)) if compiled else model
        return losses, forward(x).numpy()

    eager, compiled = run(False), run(True)
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5)
    np.testing.assert_allclose(compiled[1], eager[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", COMPILERS, ids=lambda b: b.name)
def test_a_floating_initializer_read_on_the_host_is_a_constant_so_the_model_compiles(
    backend: ag.Device,
) -> None:
    """Resize's scales as a float initializer (as exporters write them): a constant of the graph,
    not a Parameter, so a compiled forward never needs a value on the host."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 3], np.float32), "scales")
    model = _model(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [scales],
        opset=13,
    )
    imported = load(model, backend=backend)
    assert list(imported.parameters()) == [] and list(imported.state_dict()) == []
    x = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2)
    forward = ag.compile(lambda x: imported(x))
    got = forward(backend.tensor(x)).numpy()
    np.testing.assert_array_equal(got, x.repeat(2, axis=2).repeat(3, axis=3))
    assert forward.compilations == 1


def test_inputs_are_checked_against_the_declared_shapes() -> None:
    model = load(_mlp())
    with pytest.raises(ValueError, match=r"input 'x': got shape \(2, 4\), the model declares \('\?', 2, 2\)"):
        model(np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="missing"):
        model()


# ---------------------------------------------------------------------- opset versions
def _softmax_reduce_model(opset: int) -> onnx.ModelProto:
    axes = [helper.make_node("Constant", [], ["axes"], value=_init("axes", np.array([1], np.int64)))]
    if opset >= 18:
        reduce_mean = helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0)
    else:
        reduce_mean = helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=0)
    if opset >= 13:
        reduce_sum = helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0)
    else:
        reduce_sum = helper.make_node("ReduceSum", ["x"], ["s"], axes=[1], keepdims=0)
    nodes = [*axes, helper.make_node("Softmax", ["x"], ["y"], axis=1), reduce_mean, reduce_sum]
    x = helper.make_tensor_value_info("x", FLOAT, [2, 3, 4])
    outs = [helper.make_tensor_value_info(n, FLOAT, None) for n in ("y", "m", "s")]
    return _model(nodes, [x], outs, opset=opset)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("opset", [11, 17, 18])
def test_ops_follow_the_models_opset(backend: ag.Device, opset: int) -> None:
    ort = pytest.importorskip("onnxruntime")
    proto = _softmax_reduce_model(opset)
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})
    got = load(proto, backend=backend)(x)
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-6)
    if opset == 11:  # Softmax-11 flattens to 2-D from `axis` on; Softmax-13 normalizes one axis
        newer = load(_softmax_reduce_model(17), backend=backend)(x)[0].numpy()
        assert not np.allclose(newer, got[0].numpy())


# ---------------------------------------------------------------------- what cannot run
def test_every_unsupported_node_is_listed_in_one_error() -> None:
    x = helper.make_tensor_value_info("x", FLOAT, [2])
    y = helper.make_tensor_value_info("y", FLOAT, [2])
    nodes = [
        helper.make_node("FrobnicateA", ["x"], ["a"], name="first"),
        helper.make_node("Add", ["a", "x"], ["b"], name="adder", unknown_attr=3),
        helper.make_node("FrobnicateB", ["b"], ["y"], name="second"),
    ]
    with pytest.raises(OnnxImportError) as info:
        load(_model(nodes, [x], [y], opset=15))
    msg = str(info.value)
    assert "3 part(s)" in msg
    assert "FrobnicateA 'first' (opset 15): no converter" in msg
    assert "FrobnicateB 'second' (opset 15): no converter" in msg
    assert "Add 'adder' (opset 15): attribute(s) unknown_attr not supported" in msg


def test_unsupported_dtypes_and_custom_domains_are_refused() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT8E4M3FN, [2])
    z = helper.make_tensor_value_info("z", TensorProto.STRING, [2])
    nodes = [helper.make_node("RunShell", ["x"], ["z"], domain="com.evil")]
    graph = helper.make_graph(nodes, "g", [x], [z])
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.evil", 1)]
    )
    with pytest.raises(OnnxImportError) as info:
        load(proto)
    msg = str(info.value)
    assert "RunShell (opset 1): no converter" in msg
    assert "graph input 'x': element type FLOAT8E4M3FN has no agnostic dtype" in msg
    assert "graph output 'z': element type STRING has no agnostic dtype" in msg


def test_an_opset_newer_than_onnx_knows_is_refused() -> None:
    x = helper.make_tensor_value_info("x", FLOAT, [2])
    with pytest.raises(OnnxImportError, match="uses opset 99, newer than the installed onnx knows"):
        load(_model([helper.make_node("Relu", ["x"], ["y"])], [x], [x], opset=99))


def test_an_old_opset_runs_the_ops_that_kept_their_meaning_and_names_the_others() -> None:
    """Before opset 7 a node runs where its op's converter covers that version (Not never
    changed); an op redefined since (Relu at 6, Add at 7) is refused by name at load time."""
    b = helper.make_tensor_value_info("b", TensorProto.BOOL, [2])
    out = load(
        _model(
            [helper.make_node("Not", ["b"], ["c"])],
            [b],
            [helper.make_tensor_value_info("c", TensorProto.BOOL, [2])],
            opset=1,
        )
    )
    assert out(np.array([True, False])).numpy().tolist() == [False, True]
    x = helper.make_tensor_value_info("x", FLOAT, [2])
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Add", ["y", "y"], ["z"])]
    with pytest.raises(
        OnnxImportError, match=r"(?s)Relu \(opset 5\): no converter.*Add \(opset 5\): no converter"
    ):
        load(_model(nodes, [x], [helper.make_tensor_value_info("z", FLOAT, [2])], opset=5))


def test_model_local_functions_are_expanded() -> None:
    fn = helper.make_function(
        "local",
        "Twice",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        opset_imports=[helper.make_opsetid("", 17)],
    )
    x = helper.make_tensor_value_info("x", FLOAT, [2])
    y = helper.make_tensor_value_info("y", FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Twice", ["x"], ["y"], domain="local")], "g", [x], [y])
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)], functions=[fn]
    )
    np.testing.assert_array_equal(load(proto)(np.array([1.0, 2.5], np.float32)).numpy(), [2.0, 5.0])


# ---------------------------------------------------------------------- untrusted files
def _write(tmp_path, data: bytes, name: str = "model.onnx"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(source, *fragments: str) -> str:
    with pytest.raises(OnnxImportError) as info:
        load(source)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, msg
    return msg


def test_a_malformed_protobuf_is_refused(tmp_path) -> None:
    path = _write(tmp_path, b"\xff\xfe not a protobuf \x00\x01" * 4)
    _refused(path, str(path), "not a valid ONNX protobuf")


def test_every_truncation_of_a_file_is_refused(tmp_path) -> None:
    data = _mlp().SerializeToString()
    for cut in sorted({len(data) * k // 10 for k in range(1, 10)} | {len(data) - 1}):
        path = _write(tmp_path, data[:cut], f"cut{cut}.onnx")
        _refused(path, str(path))


def test_a_missing_initializer_is_refused() -> None:
    proto = _mlp()
    del proto.graph.initializer[1]  # fc1.bias
    _refused(proto.SerializeToString(), "the model bytes", "reads 'fc1.bias'", "missing initializer")


def test_a_cycle_is_refused() -> None:
    x = helper.make_tensor_value_info("x", FLOAT, [2])
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="one"),
        helper.make_node("Relu", ["a"], ["b"], name="two"),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    _refused(_model(nodes, [x], [helper.make_tensor_value_info("y", FLOAT, [2])]), "cycle")


def test_a_value_produced_twice_is_refused() -> None:
    x = helper.make_tensor_value_info("x", FLOAT, [2])
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], name="one"),
        helper.make_node("Neg", ["x"], ["y"], name="two"),
    ]
    _refused(_model(nodes, [x], [helper.make_tensor_value_info("y", FLOAT, [2])]), "'y' is produced twice")


def test_raw_data_that_does_not_fit_its_dims_is_refused(tmp_path) -> None:
    proto = _mlp()
    proto.graph.initializer[0].raw_data = proto.graph.initializer[0].raw_data[:-4]
    path = _write(tmp_path, proto.SerializeToString())
    _refused(path, str(path), "'fc1.weight'", "needs 128 bytes", "holds 124")


def test_negative_dims_are_refused() -> None:
    proto = _mlp()
    proto.graph.initializer[1].dims[0] = -8
    _refused(proto, "'fc1.bias' has negative dims")


def _external_model(location: str) -> onnx.ModelProto:
    w = TensorProto(name="w", data_type=FLOAT, dims=[3], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", "12")):
        w.external_data.add(key=key, value=value)
    x = helper.make_tensor_value_info("x", FLOAT, [3])
    y = helper.make_tensor_value_info("y", FLOAT, [3])
    return _model([helper.make_node("Add", ["x", "w"], ["y"])], [x], [y], [w])


def test_external_data_next_to_the_model_is_read(tmp_path) -> None:
    (tmp_path / "w.bin").write_bytes(np.array([1, 2, 3], np.float32).tobytes())
    path = _write(tmp_path, _external_model("w.bin").SerializeToString())
    np.testing.assert_array_equal(load(path)(np.ones(3, np.float32)).numpy(), [2, 3, 4])
    _refused(_external_model("w.bin"), "load the model from its path")


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink"])
def test_external_data_outside_the_models_folder_is_refused(tmp_path, where: str) -> None:
    outside = tmp_path / "secret.bin"
    outside.write_bytes(np.array([1, 2, 3], np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    if where == "symlink":
        os.symlink(outside, folder / "w.bin")
    location = {"absolute": str(outside), "dotdot": "../secret.bin", "symlink": "w.bin"}[where]
    path = _write(folder, _external_model(location).SerializeToString())
    _refused(path, str(path), "tensor 'w'", "outside the model's folder")


def test_external_data_past_the_end_of_its_file_is_refused(tmp_path) -> None:
    (tmp_path / "w.bin").write_bytes(b"\x00" * 8)
    path = _write(tmp_path, _external_model("w.bin").SerializeToString())
    _refused(path, str(path), "reads bytes 0..12", "which has 8")


def test_a_fifo_or_a_directory_is_refused(tmp_path) -> None:
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    _refused(fifo, str(fifo), "not a regular file")
    _refused(tmp_path, str(tmp_path), "not a regular file")
    _refused(tmp_path / "absent.onnx", "cannot open ONNX file", "absent.onnx")


def test_loading_runs_no_unpickler(monkeypatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("the importer unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    x = _data("mlp")[0]
    assert load(_mlp().SerializeToString())(x).shape == (16, 3)


# ---------------------------------------------------------------------- sequences and optionals
def _sequence_model() -> onnx.ModelProto:
    seq = helper.make_tensor_sequence_value_info("seq", FLOAT, [None, 3])
    extra = helper.make_tensor_value_info("extra", FLOAT, [1, 3])
    nodes = [
        helper.make_node("SequenceInsert", ["seq", "extra", "zero"], ["seq2"]),
        helper.make_node("SequenceLength", ["seq2"], ["n"]),
        helper.make_node("ConcatFromSequence", ["seq2"], ["cat"], axis=0),
        helper.make_node("SplitToSequence", ["cat", "two"], ["pieces"], axis=0),
        helper.make_node("SequenceAt", ["pieces", "minus1"], ["last"]),
    ]
    inits = [
        _init("zero", np.array(0, np.int64)),
        _init("two", np.array(2, np.int64)),
        _init("minus1", np.array(-1, np.int64)),
    ]
    outs = [
        helper.make_tensor_value_info("n", TensorProto.INT64, []),
        helper.make_tensor_value_info("cat", FLOAT, [None, 3]),
        helper.make_tensor_sequence_value_info("pieces", FLOAT, [None, 3]),
        helper.make_tensor_value_info("last", FLOAT, [None, 3]),
    ]
    return _model(nodes, [seq, extra], outs, inits)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_sequences_are_lists_and_gradients_flow_through_them(backend: ag.Device) -> None:
    model = load(_sequence_model(), backend=backend)
    r = np.random.default_rng(0)
    parts = [r.normal(size=(k, 3)).astype(np.float32) for k in (2, 1)]
    seq = [backend.tensor(p, requires_grad=True) for p in parts]
    extra = backend.tensor(r.normal(size=(1, 3)).astype(np.float32), requires_grad=True)
    n, cat, pieces, last = model(seq, extra)
    assert n.item() == 3 and n.dtype == ag.int64
    full = np.concatenate([extra.numpy(), *parts])
    np.testing.assert_array_equal(cat.numpy(), full)
    assert isinstance(pieces, list) and [p.shape for p in pieces] == [(2, 3), (2, 3)]
    np.testing.assert_array_equal(last.numpy(), full[2:])
    (ag.sum(cat * 2.0) + ag.sum(last)).backward()
    np.testing.assert_array_equal(extra.grad.numpy(), np.full((1, 3), 2.0))
    np.testing.assert_array_equal(seq[0].grad.numpy(), [[2.0] * 3, [3.0] * 3])  # rows 1, 2 of cat
    np.testing.assert_array_equal(seq[1].grad.numpy(), np.full((1, 3), 3.0))


def test_a_sequence_input_must_be_a_list() -> None:
    with pytest.raises(TypeError, match="input 'seq' is a sequence: pass a list"):
        load(_sequence_model())(np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32))


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_optional_inputs_may_be_empty(backend: ag.Device) -> None:
    opt = helper.make_value_info(
        "opt", helper.make_optional_type_proto(helper.make_tensor_type_proto(FLOAT, [2]))
    )
    nodes = [
        helper.make_node("OptionalHasElement", ["opt"], ["has"]),
        helper.make_node("Optional", ["opt"], ["wrapped"]),
    ]
    outs = [
        helper.make_tensor_value_info("has", TensorProto.BOOL, []),
        helper.make_value_info("wrapped", opt.type),
    ]
    model = load(_model(nodes, [opt], outs, opset=18), backend=backend)
    has, wrapped = model(None)
    assert has.item() is False and wrapped is None
    has, wrapped = model(np.array([1.0, 2.0], np.float32))
    assert has.item() is True
    np.testing.assert_array_equal(wrapped.numpy(), [1.0, 2.0])


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_a_subgraph_reads_and_trains_the_enclosing_graphs_values(backend: ag.Device) -> None:
    """SequenceMap's body adds `bias`, a parameter of the outer graph, and reshapes with `shape`,
    an integer constant of the outer graph (known at load time inside the body too)."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["xi", "bias"], ["s"]),
            helper.make_node("Reshape", ["s", "shape"], ["yi"]),
        ],
        "body",
        [helper.make_tensor_value_info("xi", FLOAT, [2, 2])],
        [helper.make_tensor_value_info("yi", FLOAT, [4])],
    )
    seq = helper.make_tensor_sequence_value_info("seq", FLOAT, [2, 2])
    out = helper.make_tensor_sequence_value_info("out", FLOAT, [4])
    node = helper.make_node("SequenceMap", ["seq"], ["out"], body=body)
    inits = [_init("bias", np.array([1.0, -1.0], np.float32)), _init("shape", np.array([4], np.int64))]
    model = load(_model([node], [seq], [out], inits), backend=backend)
    xs = [np.arange(4, dtype=np.float32).reshape(2, 2) * k for k in (1, 2, 3)]
    outs = model([backend.tensor(x) for x in xs])
    assert len(outs) == 3
    for x, o in zip(xs, outs):
        np.testing.assert_array_equal(o.numpy(), (x + [1.0, -1.0]).reshape(4))
    sum(ag.sum(o) for o in outs).backward()
    np.testing.assert_array_equal(model.bias.grad.numpy(), [6.0, 6.0])
