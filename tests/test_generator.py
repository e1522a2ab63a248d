"""AnnotationGenerator (CNN + GRU, Shin et al. CVPR 2016) and annotation_sequences."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine._validation import NotFittedError
from radmine.corpus import Corpus
from radmine.img2text.generator import (
    AnnotationGenerator,
    _beam,
    _greedy,
    annotation_sequences,
)
from radmine.img2text.metrics import bleu_scores

MODALITIES = ["ct", "mr", "xr"]
REGIONS = ["brain", "chest", "abdomen", "spine"]
FINDINGS = ["mass", "hemorrhage", "fracture"]


def make_data(n_cases=120, per_case=2, dim=16, noise=0.3, seed=0):
    """Images whose sequence is a deterministic function of their features.

    ``<modality> <region> [finding]``: modality = argmax of features 0-2,
    region = argmax of features 3-6, finding = argmax of 7-9 when feature 10 > 0.
    """
    rng = np.random.default_rng(seed)
    reports, images, feats, seqs = [], [], {}, {}
    for c in range(n_cases):
        rid = f"r{c}"
        split = "train" if c < int(0.75 * n_cases) else "dev"
        reports.append({"report_id": rid, "patient_id": f"p{c}", "study_id": rid, "modality": "CT",
                        "text": "FINDINGS: none.", "split": split})
        m, r = rng.integers(len(MODALITIES)), rng.integers(len(REGIONS))  # a case keeps modality and region
        for j in range(per_case):
            iid = f"{rid}_{j}"
            f, has = rng.integers(len(FINDINGS)), rng.random() < 0.6
            x = rng.normal(size=dim) * noise
            x[m] += 2
            x[3 + r] += 2
            x[7 + f] += 2
            x[10] = 1.0 + rng.random() if has else -1.0 - rng.random()
            feats[iid] = x
            seqs[iid] = " ".join([MODALITIES[m], REGIONS[r]] + ([FINDINGS[f]] if has else []))
            images.append({"image_id": iid, "report_id": rid, "patient_id": f"p{c}", "path": None})
    F = pd.DataFrame.from_dict(feats, orient="index").astype(np.float32)
    F.index.name = "image_id"
    S = pd.DataFrame({"image_id": list(seqs), "sequence": list(seqs.values())})
    return Corpus(pd.DataFrame(reports), pd.DataFrame(images)), F, S


FAST = dict(hidden_size=32, embed_size=16, epochs=25, batch_size=32, lr=1e-2, dropout=0.0, patience=10,
            random_state=0, progress=False)


@pytest.fixture(scope="module")
def toy():
    return make_data()


@pytest.fixture(scope="module")
def fitted(toy):
    corpus, F, S = toy
    return AnnotationGenerator(**FAST).fit(corpus, S, image_features=F)


def _split(corpus, S, split):
    ids = set(corpus.images.loc[corpus.images["report_id"].isin(
        corpus.reports.loc[corpus.reports["split"] == split, "report_id"]), "image_id"])
    return S[S["image_id"].isin(ids)].reset_index(drop=True)


def test_learns_a_known_mapping_far_above_the_most_frequent_baseline(toy, fitted):
    corpus, F, S = toy
    train, dev = _split(corpus, S, "train"), _split(corpus, S, "dev")
    refs = [[s.split()] for s in dev["sequence"]]
    top = Counter(train["sequence"]).most_common(1)[0][0].split()
    base = bleu_scores([top] * len(dev), refs)
    got = fitted.score(None, dev, image_features=F)
    assert got["n_images"] == len(dev)
    assert got["BLEU-1"] > 0.9 and got["BLEU-2"] > 0.85
    assert got["BLEU-1"] > base["BLEU-1"] + 0.4
    assert got["BLEU-2"] > base["BLEU-2"] + 0.5
    # the greedy output of the dev images, checked exactly against the rule
    hyp = fitted.generate(image_features=F.loc[dev["image_id"]], beam_size=1, as_strings=True)
    assert np.mean([h == s for h, s in zip(hyp, dev["sequence"])]) > 0.8


def test_fit_state_and_history(toy, fitted):
    corpus, _, S = toy
    assert fitted.vocabulary_[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert set(MODALITIES + REGIONS + FINDINGS) <= set(fitted.vocabulary_)
    h = fitted.history_
    assert list(h.columns[:3]) == ["epoch", "train_loss", "dev_loss"]
    assert {"dev_BLEU-1", "dev_BLEU-4", "dev_bleu_mean", "seconds"} <= set(h.columns)
    assert 1 <= fitted.best_epoch_ <= h["epoch"].max()
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    # dev cases are training cases held out whole, never dev-split reports
    seq = fitted.sequences_
    assert set(seq["role"]) == {"train", "dev"}
    assert not set(seq.loc[seq.role == "dev", "group"]) & set(seq.loc[seq.role == "train", "group"])
    train_ids = set(_split(corpus, S, "train")["image_id"])
    assert set(seq["image_id"]) == train_ids
    assert fitted.sequence_source_ == "given"
    assert "AnnotationGenerator" in fitted._repr_html_()


def test_beam_size_one_is_greedy_and_beams_are_valid(fitted, toy):
    import torch

    _, F, _ = toy
    x = torch.from_numpy(np.array(F.to_numpy(np.float32)[:50]))
    with torch.inference_mode():
        g = _greedy(fitted.module_, x, fitted.max_length)
        assert _beam(fitted.module_, x, fitted.max_length, 1) == g
        assert _beam(fitted.module_, x, fitted.max_length, 1, length_penalty=1.0) == g
    assert fitted.generate(image_features=x.numpy(), beam_size=1) == [fitted._decode_ids(s) for s in g]
    # an untrained decoder writes long, varied sequences: greedy == beam 1 there too
    from radmine.img2text.generator import _make_decoder
    from radmine.nn import local_torch_seed

    with local_torch_seed(0):
        rnd = _make_decoder(16, 30, 8, 16, 0.0).eval()
    with torch.inference_mode():
        gr = _greedy(rnd, x, 9)
        assert _beam(rnd, x, 9, 1) == gr
        assert max(len(s) for s in gr) > 3
        b4 = _beam(rnd, x, 9, 4)
    assert all(len(s) <= 9 and all(t >= 4 for t in s) for s in b4)  # no special token, max_length kept
    beams = fitted.generate(image_features=F.to_numpy()[:50], beam_size=4)
    assert all(t not in ("<pad>", "<bos>", "<eos>", "<unk>") for s in beams for t in s)


def test_save_load_round_trip_gives_identical_output(fitted, toy, tmp_path):
    _, F, _ = toy
    X = F.to_numpy()[:40]
    fitted.save(tmp_path / "gen")
    assert sorted(p.name for p in (tmp_path / "gen").iterdir()) == ["generator.json", "generator.safetensors"]
    back = AnnotationGenerator.load(tmp_path / "gen")
    assert back.vocabulary_ == fitted.vocabulary_
    assert back.get_params() == fitted.get_params()
    pd.testing.assert_frame_equal(back.history_[["epoch", "train_loss"]], fitted.history_[["epoch", "train_loss"]])
    for beam in (1, 3):
        assert back.generate(image_features=X, beam_size=beam) == fitted.generate(image_features=X, beam_size=beam)


def test_fit_is_seeded_locally_and_restores_threads(toy):
    import torch

    corpus, F, S = toy
    small = dict(FAST, epochs=3, patience=None)
    rng_before, threads = torch.random.get_rng_state(), torch.get_num_threads()
    a = AnnotationGenerator(**small).fit(corpus, S, image_features=F)
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert torch.get_num_threads() == threads
    b = AnnotationGenerator(**small).fit(corpus, S, image_features=F)
    np.testing.assert_allclose(a.history_["train_loss"], b.history_["train_loss"], rtol=1e-6)
    assert len(a.history_) == 3


def test_errors(toy, fitted, tmp_path):
    corpus, F, S = toy
    with pytest.raises(NotFittedError, match="not fitted"):
        AnnotationGenerator().generate(image_features=F.to_numpy())
    bad = pd.concat([S, pd.DataFrame({"image_id": ["nope_1"], "sequence": ["ct brain"]})])
    with pytest.raises(KeyError, match="not images of the corpus"):
        AnnotationGenerator(**FAST).fit(corpus, bad, image_features=F)
    with pytest.raises(ValueError, match="missing column"):
        AnnotationGenerator(**FAST).fit(corpus, S.rename(columns={"sequence": "text"}), image_features=F)
    with pytest.raises(KeyError, match="image_features has no row"):
        AnnotationGenerator(**FAST).fit(corpus, S, image_features=F.iloc[:10])
    with pytest.raises(ValueError, match="'beam_size' parameter of AnnotationGenerator"):
        AnnotationGenerator(beam_size=0).fit(corpus, S, image_features=F)
    with pytest.raises(ValueError, match="'beam_size' parameter of AnnotationGenerator.generate"):
        fitted.generate(image_features=F.to_numpy()[:2], beam_size=0)
    with pytest.raises(ValueError, match=r"expected features of shape \(n, 16\)"):
        fitted.generate(image_features=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="'sequence_source' parameter"):
        AnnotationGenerator(sequence_source="nope").fit(corpus, S, image_features=F)
    with pytest.raises(TypeError, match="radmine.Corpus or an images DataFrame"):
        AnnotationGenerator(**FAST).fit(["a.png"], S)
    with pytest.raises(ValueError, match="2 references"):
        fitted.score(None, ["ct brain", "mr chest"], image_features=F.to_numpy()[:3])
    # 'features' is the deprecated alias of 'image_features'
    x = F.to_numpy()[:3]
    with pytest.warns(FutureWarning, match="'features' keyword is deprecated; use 'image_features'"):
        assert fitted.generate(features=x, beam_size=1) == fitted.generate(image_features=x, beam_size=1)
    with pytest.warns(FutureWarning, match="AnnotationGenerator.score: the 'features' keyword"):
        fitted.score(None, ["ct brain", "mr chest", "ct"], features=x)
    with pytest.raises(TypeError, match="not also its deprecated alias"):
        fitted.generate(image_features=x, features=x)
    with pytest.raises(FileNotFoundError, match="generator.json"):
        AnnotationGenerator.load(tmp_path)
    with pytest.raises(ValueError, match="'source' parameter of annotation_sequences"):
        annotation_sequences(corpus, source="nope")


def test_annotation_sequences_truth_recipe_on_the_embedded_corpus(embedded_corpus):
    seq = annotation_sequences(embedded_corpus)  # no MeSH, no captions -> the truth tables
    ti = embedded_corpus["truth_images"].set_index("image_id")
    assert len(seq) == len(ti) and seq["image_id"].is_unique
    for iid, s in seq.set_index("image_id")["sequence"].sample(40, random_state=0).items():
        row = ti.loc[iid]
        toks = s.split()
        assert toks[:2] == [row["modality"].lower(), row["region"].lower()]
        if row["has_lesion"]:
            assert toks[2] == row["lesion_type"].lower().replace(" ", "-")
        elif not isinstance(row["diffuse_findings"], str) or not row["diffuse_findings"].strip():
            assert toks[2:] == ["normal"]


def test_annotation_sequences_caption_and_mesh_recipes():
    reports = pd.DataFrame({"report_id": ["a", "b"], "patient_id": ["a", "b"], "study_id": ["a", "b"],
                            "modality": ["CT", "XR"], "text": ["FINDINGS: x.", "FINDINGS: y."]})
    images = pd.DataFrame({
        "image_id": ["a1", "a2", "b1"], "report_id": ["a", "a", "b"], "path": [None] * 3,
        "modality": ["CT", "MR", "XR"], "plane": ["axial", "sagittal", None],
        "location": ["Brain and Neuro", "Spine", "Chest, Pulmonary"],
        "caption": ["Large hemorrhage with a mass. No fracture.", "Normal study.", None],
    })
    c = Corpus(reports, images)
    cap = annotation_sequences(c).set_index("image_id")["sequence"]
    # modality plane region, then positive findings in vocabulary order (negated fracture left out)
    assert cap.to_dict() == {"a1": "ct axial brain-neuro mass hemorrhage", "a2": "mr sagittal spine"}
    c.annotations = pd.DataFrame({
        "report_id": ["b", "b", "a"], "image_id": [None] * 3, "kind": ["mesh_major"] * 3,
        "value": ["Opacity/lung/base/left/mild", "Cardiomegaly", "normal"],
        "term": ["Opacity", "Cardiomegaly", "normal"],
        "qualifiers": [["lung", "base", "left", "mild"], [], []],
    })
    mesh = annotation_sequences(c).set_index("image_id")["sequence"].to_dict()
    assert mesh == {"a1": "normal", "a2": "normal", "b1": "opacity lung base left mild"}
    two = annotation_sequences(c, source="mesh", max_terms=2).set_index("image_id")["sequence"]
    assert two["b1"] == "opacity lung base left mild cardiomegaly"


def test_end_to_end_from_pixels(tmp_path):
    """Bright vs dark PNGs -> 'xr bright' / 'xr dark' through the random CNN and the image-file path."""
    from PIL import Image

    rng = np.random.default_rng(0)
    reports, images, seqs, arrays = [], [], [], []
    for i in range(16):
        bright = i % 2 == 0
        arr = (rng.random((32, 32)) * 60 + (190 if bright else 10)).astype(np.uint8)
        arr[:, :16] = 128  # half the image shared, so "auto" intensity scaling keeps the difference
        p = tmp_path / f"im{i}.png"
        Image.fromarray(arr).save(p)
        arrays.append(arr)
        reports.append({"report_id": f"r{i}", "patient_id": f"p{i}", "study_id": f"r{i}", "modality": "XR",
                        "text": "FINDINGS: x."})
        images.append({"image_id": f"i{i}", "report_id": f"r{i}", "path": str(p)})
        seqs.append({"image_id": f"i{i}", "sequence": "xr bright" if bright else "xr dark"})
    c = Corpus(pd.DataFrame(reports), pd.DataFrame(images))
    gen = AnnotationGenerator(backbone="random_cnn", **dict(FAST, epochs=60, patience=None, dev_fraction=0.0))
    gen.fit(c, pd.DataFrame(seqs))
    assert gen.feature_dim_ == radmine.ImageEmbedder("random_cnn", progress=False).fit().dim_
    assert len(gen.history_) == 60
    out = gen.generate(arrays[:6], as_strings=True)
    assert out == [s["sequence"] for s in seqs[:6]]
    res = gen.score(c, pd.DataFrame(seqs))
    assert res["BLEU-2"] == pytest.approx(1.0) and res["n_images"] == 16


def test_public_name():
    assert radmine.AnnotationGenerator is AnnotationGenerator


def test_checkpoint_resume_continues_the_run(toy, tmp_path):
    corpus, F, S = toy
    small = dict(FAST, patience=None, checkpoint_dir=tmp_path / "ck")
    first = AnnotationGenerator(**dict(small, epochs=2)).fit(corpus, S, image_features=F)
    assert first.resumed_from_ == 0 and len(first.history_) == 2
    again = AnnotationGenerator(**dict(small, epochs=4)).fit(corpus, S, image_features=F)
    assert again.resumed_from_ == 2
    assert again.history_["epoch"].tolist() == [1, 2, 3, 4]
    straight = AnnotationGenerator(**dict(small, epochs=4, checkpoint_dir=None)).fit(corpus, S, image_features=F)
    np.testing.assert_allclose(again.history_["train_loss"], straight.history_["train_loss"], rtol=1e-5)
    with pytest.raises(ValueError, match="other settings or data"):
        AnnotationGenerator(**dict(small, hidden_size=8)).fit(corpus, S, image_features=F)
