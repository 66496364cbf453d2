"""The quantization, signal, training-optimizer and ai.onnx.ml converters on hand-built models with
inputs other than the node suite's (per-channel scales, rounding ties, padded and truncated DFTs,
several trees and aggregations), each compared with ONNX's reference evaluator on every backend;
and the load-time errors for what agnostic cannot run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from backends_here import available_backends
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from agnostic.onnx import OnnxImportError, load

BACKENDS = available_backends()
IDS = [b.name for b in BACKENDS]
F32, F64, I64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64


def _model(nodes, inputs, outputs, inits=(), opsets=(("", 21),)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 10
    return model


def _info(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def _check(model: onnx.ModelProto, backend, feeds: dict[str, np.ndarray], rtol=1e-5, atol=1e-6) -> None:
    """agnostic's outputs equal the reference evaluator's in dtype, shape and value."""
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = load(model, backend=backend)(*[backend.tensor(v) for v in feeds.values()])
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        g = g.numpy()
        assert g.dtype == e.dtype and g.shape == e.shape, (g.dtype, g.shape, e.dtype, e.shape)
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------- quantize.py
@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_quantize_per_axis_rounds_ties_to_even_and_saturates_then_dequantizes(backend):
    x = np.array([[0.5, 1.5, 2.5, -0.5], [-300.0, 300.0, 7.25, -7.75], [1e-3, -2.5, 3.5, 127.5]], np.float32)
    scale = np.array([1.0, 0.5, 0.25], np.float32)
    zero = np.array([3, -2, 0], np.int8)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=0),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=0),
    ]
    inits = [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")]
    model = _model(
        nodes,
        [_info("x", F32, [3, 4])],
        [_info("q", TensorProto.INT8, [3, 4]), _info("y", F32, [3, 4])],
        inits,
    )
    _check(model, backend, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_blocked_quantization_with_a_partial_last_block(backend):
    r = np.random.default_rng(1)
    x = r.normal(size=(2, 5, 3)).astype(np.float32) * 40
    scale = r.uniform(0.1, 1.0, size=(2, 2, 3)).astype(np.float32)  # blocks of 3 over an axis of 5
    zero = r.integers(-20, 20, size=(2, 2, 3)).astype(np.int16)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1, block_size=3),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1, block_size=3),
    ]
    inits = [numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")]
    outs = [_info("q", TensorProto.INT16, [2, 5, 3]), _info("y", F32, [2, 5, 3])]
    _check(_model(nodes, [_info("x", F32, [2, 5, 3])], outs, inits), backend, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_qlinearconv_per_channel_scales_strides_pads_and_bias(backend):
    r = np.random.default_rng(2)
    x = r.integers(0, 256, size=(2, 3, 7, 6)).astype(np.uint8)
    w = r.integers(-128, 128, size=(4, 3, 3, 2)).astype(np.int8)
    consts = {
        "xs": np.array(0.02, np.float32), "xz": np.array(128, np.uint8),
        "ws": np.array([0.01, 0.02, 0.005, 0.03], np.float32), "wz": np.zeros(4, np.int8),
        "ys": np.array(0.5, np.float32), "yz": np.array(-3, np.int8),
        "b": r.integers(-500, 500, size=4).astype(np.int32),
    }  # fmt: skip
    node = helper.make_node(
        "QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
        strides=[2, 1], pads=[1, 0, 1, 1], dilations=[1, 2],
    )  # fmt: skip
    inits = [numpy_helper.from_array(w, "w")] + [numpy_helper.from_array(v, k) for k, v in consts.items()]
    model = _model(
        [node], [_info("x", TensorProto.UINT8, [2, 3, 7, 6])], [_info("y", TensorProto.INT8, None)], inits
    )
    _check(model, backend, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_qlinearmatmul_and_matmulinteger_on_batched_int8(backend):
    r = np.random.default_rng(3)
    a = r.integers(-128, 128, size=(2, 3, 5)).astype(np.int8)
    b = r.integers(-128, 128, size=(5, 4)).astype(np.int8)
    consts = {"as": np.array(0.05, np.float32), "az": np.array(-4, np.int8), "bs": np.array(0.02, np.float32),
              "bz": np.array(7, np.int8), "ys": np.array(0.3, np.float32), "yz": np.array(10, np.int8)}  # fmt: skip
    nodes = [
        helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"]),
        helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["m"]),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    ins = [_info("a", TensorProto.INT8, [2, 3, 5]), _info("b", TensorProto.INT8, [5, 4])]
    outs = [_info("y", TensorProto.INT8, None), _info("m", TensorProto.INT32, None)]
    _check(_model(nodes, ins, outs, inits), backend, {"a": a, "b": b}, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_dynamic_quantize_linear_of_an_all_positive_input(backend):
    x = np.array([[0.25, 4.0], [2.5, 1.0]], np.float32)  # the range is widened to hold 0
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    outs = [_info("y", TensorProto.UINT8, None), _info("s", F32, None), _info("z", TensorProto.UINT8, None)]
    _check(_model([node], [_info("x", F32, [2, 2])], outs), backend, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_bitcast_int8_to_uint8_wraps_twos_complement(backend):
    x = np.array([-128, -1, 0, 1, 127], np.int8)
    node = helper.make_node("BitCast", ["x"], ["y"], to=TensorProto.UINT8)
    model = _model(
        [node], [_info("x", TensorProto.INT8, [5])], [_info("y", TensorProto.UINT8, [5])], opsets=(("", 26),)
    )
    got = load(model, backend=backend)(backend.tensor(x)).numpy()
    np.testing.assert_array_equal(got, x.view(np.uint8))


_BITS = {  # bit patterns per width: 0, -0.0, 1.0, +-inf, NaNs (one with a payload), a subnormal, max
    2: [0x0000, 0x8000, 0x3C00, 0x3F80, 0x7C00, 0xFC00, 0x7F80, 0x7E00, 0x7FC1, 0x0001, 0x7BFF],
    4: [0, 0x80000000, 0x3F800000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 1, 0x7F7FFFFF, 0x12345678],
    8: [0, 1 << 63, 0x3FF0000000000000, 0x7FF0000000000000, 0x7FF8000000000001, 1, 0xFEDCBA9876543210],
}  # fmt: skip
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize(
    "source, to",
    [
        (TensorProto.FLOAT, TensorProto.INT32),
        (TensorProto.INT32, TensorProto.FLOAT),
        (TensorProto.DOUBLE, TensorProto.INT64),
        (TensorProto.INT64, TensorProto.DOUBLE),
        (TensorProto.FLOAT16, TensorProto.INT16),
        (TensorProto.INT16, TensorProto.BFLOAT16),
        (TensorProto.BFLOAT16, TensorProto.FLOAT16),
    ],
)
def test_bitcast_between_floats_and_integers_keeps_every_bit(backend, source, to):
    np_source = helper.tensor_dtype_to_np_dtype(source)
    width = np.dtype(np_source).itemsize
    x = np.array(_BITS[width], np.uint64).astype(_UINT[width]).view(np_source).reshape(-1, 1)
    node = helper.make_node("BitCast", ["x"], ["y"], to=to)
    model = _model(
        [node], [_info("x", source, list(x.shape))], [_info("y", to, list(x.shape))], opsets=(("", 26),)
    )
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert want.dtype == x.view(want.dtype).dtype
    np.testing.assert_array_equal(want.view(_UINT[width]), x.view(_UINT[width]))  # the reference is a view
    got = load(model, backend=backend)(backend.tensor(x)).numpy()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(_UINT[width]), want.view(_UINT[width]))


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_bitcast_bool_to_and_from_bytes(backend):
    flags = np.array([True, False, True])
    for source, to, x in (
        (TensorProto.BOOL, TensorProto.INT8, flags),
        (TensorProto.UINT8, TensorProto.BOOL, flags.view(np.uint8)),
    ):
        node = helper.make_node("BitCast", ["x"], ["y"], to=to)
        model = _model([node], [_info("x", source, [3])], [_info("y", to, [3])], opsets=(("", 26),))
        _check(model, backend, {"x": x}, rtol=0, atol=0)


def test_unsupported_quantized_types_and_bitcast_widths_fail_at_load():
    quant = helper.make_node("QuantizeLinear", ["x", "s"], ["y"], output_dtype=TensorProto.FLOAT8E4M3FN)
    model = _model([quant], [_info("x", F32, [2]), _info("s", F32, [])], [_info("y", F32, [2])])
    with pytest.raises(OnnxImportError, match="output_dtype"):
        load(model)
    cast = helper.make_node("BitCast", ["x"], ["y"], to=TensorProto.INT16)
    model = _model([cast], [_info("x", F32, [2])], [_info("y", TensorProto.INT16, [2])], opsets=(("", 26),))
    with pytest.raises(
        OnnxImportError, match=r"BitCast from float32 \(32 bits\) to int16 \(16 bits\): the bit widths"
    ):
        load(model)
    cast = helper.make_node("BitCast", ["x"], ["y"], to=TensorProto.FLOAT8E4M3FN)
    model = _model(
        [cast], [_info("x", F32, [2])], [_info("y", TensorProto.FLOAT8E4M3FN, [2])], opsets=(("", 26),)
    )
    with pytest.raises(
        OnnxImportError,
        match=r"BitCast \(opset 26\): to: ONNX element type FLOAT8E4M3FN has no agnostic dtype",
    ):
        load(model)


# ---------------------------------------------------------------------- signal.py
@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize(
    "shape, attrs, length",
    [
        ((2, 3, 6, 2), {}, 9),  # complex input, zero-padded to 9 points
        ((2, 7, 4, 2), {"onesided": 1}, 5),  # complex, truncated, one-sided
        ((3, 8, 2), {"inverse": 1}, None),
        ((2, 4, 5, 2), {"inverse": 1, "onesided": 1}, 7),  # irfft of odd length
        ((2, 6, 3, 1), {"onesided": 1}, None),  # rfft
    ],
)
def test_dft_matches_the_reference_on_complex_inputs_and_lengths(backend, shape, attrs, length):
    x = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    names = ["x", "n" if length else "", "axis"]
    node = helper.make_node("DFT", names, ["y"], **attrs)
    inits = [numpy_helper.from_array(np.array(1, np.int64), "axis")]
    if length:
        inits.append(numpy_helper.from_array(np.array(length, np.int64), "n"))
    model = _model([node], [_info("x", F32, list(shape))], [_info("y", F32, None)], inits, opsets=(("", 20),))
    _check(model, backend, {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_dft_opset17_axis_attribute_on_the_last_signal_axis(backend):
    x = np.random.default_rng(5).normal(size=(2, 3, 5, 1))
    node = helper.make_node("DFT", ["x"], ["y"], axis=-2)
    model = _model([node], [_info("x", F64, [2, 3, 5, 1])], [_info("y", F64, None)], opsets=(("", 17),))
    _check(model, backend, {"x": x}, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_stft_of_a_complex_signal_two_sided_and_mel_weights(backend):
    r = np.random.default_rng(6)
    signal = r.normal(size=(2, 40, 2)).astype(np.float32)
    window = np.hanning(8).astype(np.float32)
    nodes = [
        helper.make_node("STFT", ["x", "step", "w", "len"], ["y"], onesided=0),
        helper.make_node("MelWeightMatrix", ["bins", "dft", "rate", "lo", "hi"], ["mel"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(5, np.int64), "step"),
        numpy_helper.from_array(window, "w"),
        numpy_helper.from_array(np.array(8, np.int64), "len"),
        numpy_helper.from_array(np.array(6, np.int32), "bins"),
        numpy_helper.from_array(np.array(64, np.int32), "dft"),
        numpy_helper.from_array(np.array(16000, np.int32), "rate"),
        numpy_helper.from_array(np.array(30.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(7000.0, np.float32), "hi"),
    ]
    model = _model(nodes, [_info("x", F32, [2, 40, 2])], [_info("y", F32, None), _info("mel", F32, None)], inits,
                   opsets=(("", 17),))  # fmt: skip
    _check(model, backend, {"x": signal}, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- training.py
TRAINING = ("ai.onnx.preview.training", 1)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("step", [0, 3])
@pytest.mark.parametrize(
    "op, attrs, states",
    [
        ("Momentum", {"alpha": 0.8, "beta": 0.3, "mode": "nesterov", "norm_coefficient": 0.01}, 1),
        ("Momentum", {"alpha": 0.9, "beta": 0.5, "mode": "standard", "norm_coefficient": 0.0}, 1),
        ("Adagrad", {"decay_factor": 0.2, "epsilon": 1e-6, "norm_coefficient": 0.05}, 1),
        ("Adam", {"alpha": 0.8, "beta": 0.95, "epsilon": 1e-6, "norm_coefficient": 0.02,
                  "norm_coefficient_post": 0.1}, 2),
    ],
)  # fmt: skip
def test_optimizer_ops_update_two_tensors_at_once(backend, step, op, attrs, states):
    r = np.random.default_rng(7)
    shapes = [(3, 2), (4,)]
    kinds = ["X", "G", "V", "H"][: 2 + states]
    names = [f"{k}{i}" for k in kinds for i in range(2)]
    feeds = {"R": np.array(0.1, np.float32), "T": np.array(step, np.int64)}
    for k in kinds:
        for i, s in enumerate(shapes):
            v = r.normal(size=s)
            feeds[f"{k}{i}"] = (np.abs(v) if k in ("V", "H") else v).astype(
                np.float32
            )  # accumulators of squares
    outs = [f"{k}{i}_new" for k in ["X"] + kinds[2:] for i in range(2)]
    node = helper.make_node(op, ["R", "T"] + names, outs, domain=TRAINING[0], **attrs)
    ins = [_info("R", F32, []), _info("T", I64, [])] + [_info(n, F32, list(feeds[n].shape)) for n in names]
    model = _model([node], ins, [_info(o, F32, None) for o in outs], opsets=(("", 21), TRAINING))
    _check(model, backend, feeds, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------- ml.py
ML = ("ai.onnx.ml", 5)


def _tree_model(aggregate: int, x_type: int = F32) -> onnx.ModelProto:
    """Two trees over three features, every comparison mode, a set-membership node and a NaN that
    tracks the true branch."""
    node = helper.make_node(
        "TreeEnsemble", ["X"], ["Y"], domain=ML[0],
        aggregate_function=aggregate, n_targets=3, tree_roots=[0, 3], post_transform=0,
        nodes_featureids=[0, 1, 2, 2, 0, 1],
        nodes_modes=numpy_helper.from_array(np.array([0, 1, 6, 2, 4, 5], np.uint8)),
        nodes_splits=numpy_helper.from_array(np.array([0.5, -0.2, np.nan, 1.0, 0.25, 0.0], np.float32)),
        nodes_truenodeids=[1, 0, 1, 4, 2, 3], nodes_trueleafs=[0, 1, 1, 0, 1, 1],
        nodes_falsenodeids=[2, 1, 2, 5, 4, 5], nodes_falseleafs=[0, 1, 1, 0, 1, 1],
        nodes_missing_value_tracks_true=[0, 1, 0, 0, 0, 0],
        membership_values=numpy_helper.from_array(np.array([1.0, 2.0, np.nan], np.float32)),
        leaf_targetids=[0, 1, 2, 0, 1, 2],
        leaf_weights=numpy_helper.from_array(np.array([1.5, -2.0, 3.0, 0.5, 4.0, -1.0], np.float32)),
    )  # fmt: skip
    return _model([node], [_info("X", x_type, [None, 3])], [_info("Y", x_type, None)], opsets=(("", 21), ML))


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("aggregate", [0, 1, 2, 3])
def test_tree_ensemble_of_two_trees_every_mode_and_aggregate(backend, aggregate):
    x = np.array(
        [
            [0.2, -0.5, 1.0],
            [0.2, np.nan, 2.0],
            [0.9, 0.3, 1.5],
            [0.25, 0.0, 0.5],
            [0.7, 1.0, 2.0],
            [0.25, 2.0, 3.0],
        ],
        np.float32,
    )
    _check(_tree_model(aggregate), backend, {"X": x})


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
def test_label_encoder_tfidf_feature_extractor_and_binarizer(backend):
    nodes = [
        helper.make_node("LabelEncoder", ["k"], ["v"], domain=ML[0], keys_int64s=[5, -3, 9, 5],
                         values_floats=[0.5, 1.5, 2.5, 3.5], default_float=-7.0),
        helper.make_node("TfIdfVectorizer", ["t"], ["tf"], mode="TFIDF", min_gram_length=1, max_gram_length=3,
                         max_skip_count=1, ngram_counts=[0, 3, 7], ngram_indexes=[4, 0, 2, 1, 3, 5],
                         pool_int64s=[1, 2, 3, 1, 2, 2, 3, 1, 2, 3], weights=[0.5, 1.0, 2.0, 0.25, 3.0, 1.5]),
        helper.make_node("ArrayFeatureExtractor", ["f", "i"], ["e"], domain=ML[0]),
        helper.make_node("Binarizer", ["b"], ["bin"], domain=ML[0], threshold=1.5),
    ]  # fmt: skip
    feeds = {
        "k": np.array([[5, 9], [0, -3]], np.int64),
        "t": np.array([[1, 2, 3, 1, 2, 2, 3, 7], [3, 1, 1, 2, 1, 3, 2, 3]], np.int64),
        "f": np.arange(6, dtype=np.float32),
        "i": np.array([4, 0, 4], np.int64),
        "b": np.array([1, 2, -5, 3], np.int64),
    }
    ins = [_info(k, F32 if k == "f" else I64, list(v.shape)) for k, v in feeds.items()]
    outs = [_info(n, F32 if n != "bin" else I64, None) for n in ("v", "tf", "e", "bin")]
    _check(_model(nodes, ins, outs, opsets=(("", 21), ("ai.onnx.ml", 4))), backend, feeds)


def test_string_tables_are_unsupported_at_load():
    node = helper.make_node("LabelEncoder", ["k"], ["v"], domain=ML[0], keys_strings=["a"], values_int64s=[1])
    model = _model(
        [node], [_info("k", I64, [2])], [_info("v", I64, [2])], opsets=(("", 21), ("ai.onnx.ml", 4))
    )
    with pytest.raises(OnnxImportError, match="strings"):
        load(model)
