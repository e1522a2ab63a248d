"""save_pretrained / from_pretrained round trips (offline) and the model cards."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.corpus import Corpus

pytest.importorskip("huggingface_hub")

VOCAB = [["mass", "kidney", "renal", "lesion"], ["effusion", "pleural", "lung", "fluid"],
         ["fracture", "femur", "bone", "cortical"], ["cyst", "liver", "hepatic", "simple"]]
SECRET = "Zebediah"  # a "patient" word that must never reach a model card


def _image_text_corpus(n_cases=40, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(len(VOCAB), dim)) * 2
    reports, images, feats = [], [], {}
    for c in range(n_cases):
        k = int(rng.integers(len(VOCAB)))
        rid = f"r{c}"
        reports.append({"report_id": rid, "patient_id": f"p{c}", "study_id": rid, "modality": "CT",
                        "text": f"FINDINGS: {SECRET} " + " ".join(rng.choice(VOCAB[k], 8)),
                        "split": "train" if c < 30 else "dev"})
        for j in range(2):
            iid = f"{rid}_{j}"
            images.append({"image_id": iid, "report_id": rid, "path": None,
                           "caption": "axial image shows " + " ".join(rng.choice(VOCAB[k], 3))})
            feats[iid] = centroids[k] + rng.normal(size=dim) * 0.5
    F = pd.DataFrame.from_dict(feats, orient="index")
    F.index.name = "image_id"
    return Corpus(pd.DataFrame(reports), pd.DataFrame(images)), F


def _card(path):
    text = (path / "README.md").read_text()
    assert text.startswith("---\n") and "library_name: radmine" in text.split("---")[1]
    assert "## Training data" in text and "## Intended use and limits" in text and "## Metrics" in text
    return text


def test_topic_model_round_trip_and_card(tmp_path):
    rng = np.random.default_rng(0)
    texts = [f"{SECRET} " + " ".join(rng.choice(VOCAB[i % 4], 20)) for i in range(40)]
    tm = radmine.TopicModel(4, random_state=0, min_df=2, drop_top=0, min_doc_terms=3, phrases=False).fit(texts)
    out = tm.save_pretrained(tmp_path / "tm", metrics={"c_npmi": 0.12}, license="mit")
    assert json.loads((out / "config.json").read_text())["radmine_class"] == "TopicModel"
    back = radmine.TopicModel.from_pretrained(out)
    np.testing.assert_array_equal(back.transform(texts[:5]), tm.transform(texts[:5]))
    card = _card(out)
    assert "license: mit" in card and "| c_npmi | 0.12 |" in card and "| documents | 40 |" in card
    assert SECRET not in card and SECRET.lower() not in card


def test_image_text_model_round_trip_identical_embeddings(tmp_path):
    corpus, F = _image_text_corpus()
    kw = dict(text_encoder="word2vec", n_ensemble=1, lr_schedule="constant", image_features="last", dev_fraction=0.1,
              epochs=3, batch_size=16, random_state=0, progress=False, hidden_dim=32, dropout=0.1,
              input_dropout=0.0, word2vec_params={"vector_size": 16, "min_count": 1, "epochs": 3})
    model = radmine.ImageTextModel(**kw).fit(corpus, image_features=F)
    out = model.save_pretrained(tmp_path / "i2t")
    back = radmine.ImageTextModel.from_pretrained(out, device="cpu")
    texts = ["pleural effusion lung", "femur fracture"]
    np.testing.assert_array_equal(back.encode_texts(texts), model.encode_texts(texts))
    np.testing.assert_array_equal(back.encode_image_features(F.iloc[:6]), model.encode_image_features(F.iloc[:6]))
    card = _card(out)
    assert "pipeline_tag: feature-extraction" in card and "| image-text pairs |" in card and "dev_" in card
    assert SECRET not in card
    fig = model.plot_recall(corpus, "dev", image_features=F)
    assert fig._repr_png_()[:4] == b"\x89PNG"
    assert model.plot_history()._repr_png_()[:4] == b"\x89PNG"


def test_image_embedder_round_trip_identical_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    images = [(rng.random((40, 36)) * 255).astype(np.uint8) for _ in range(3)]
    emb = radmine.ImageEmbedder("random_cnn", pretrained=False, image_size=32, progress=False, random_state=3, device="cpu")
    X = emb.transform(images)
    out = emb.save_pretrained(tmp_path / "emb")
    assert (out / "backbone.safetensors").is_file()
    # a different seed at load time must not matter: the saved weights replace the init
    back = radmine.ImageEmbedder.from_pretrained(out, random_state=99)
    np.testing.assert_array_equal(back.transform(images), X)
    assert back.settings_ == emb.settings_
    assert "pipeline_tag: image-feature-extraction" in _card(out)
    with pytest.raises(TypeError, match="unknown parameter"):
        radmine.ImageEmbedder.from_pretrained(out, colour="red")


def test_wrong_class_and_bad_ids(tmp_path):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(VOCAB[i % 4], 20)) for i in range(20)]
    tm = radmine.TopicModel(2, random_state=0, min_df=2, drop_top=0, min_doc_terms=3, phrases=False).fit(texts)
    out = tm.save_pretrained(tmp_path / "tm", model_card=False)
    assert not (out / "README.md").exists()
    with pytest.raises(ValueError, match="holds a radmine TopicModel, not a ImageEmbedder"):
        radmine.ImageEmbedder.from_pretrained(out)
    with pytest.raises(FileNotFoundError, match="neither a folder nor a Hub repo id"):
        radmine.TopicModel.from_pretrained(tmp_path / "missing" / "model.json")


def test_hub_id_is_resolved_offline_from_the_cache(tmp_path, monkeypatch):
    """A Hub id goes through huggingface_hub.snapshot_download (here: offline, an empty cache -> clear error)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub.errors import LocalEntryNotFoundError

    with pytest.raises(LocalEntryNotFoundError, match="local_files_only|cached"):
        radmine.TopicModel.from_pretrained("radmine-test/not-there", cache_dir=tmp_path, local_files_only=True)


def test_push_to_hub_uploads_the_saved_folder(monkeypatch):
    """push_to_hub = create_repo + upload_folder of what save_pretrained writes (HfApi replaced: no network)."""
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kw):
            calls["create"] = (repo_id, kw)

        def upload_folder(self, *, repo_id, folder_path, **kw):
            from pathlib import Path

            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            calls["upload"] = (repo_id, kw)
            return type("Info", (), {"commit_url": f"https://hub.example/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(VOCAB[i % 4], 20)) for i in range(20)]
    tm = radmine.TopicModel(2, random_state=0, min_df=2, drop_top=0, min_doc_terms=3, phrases=False).fit(texts)
    url = tm.push_to_hub("me/topics", private=True, token="t0k")
    assert url == "https://hub.example/me/topics/commit/1"
    assert calls["token"] == "t0k" and calls["create"] == ("me/topics", {"private": True, "exist_ok": True,
                                                                        "repo_type": "model"})
    assert {"README.md", "config.json", "topic_model.json", "topic_model.safetensors"} <= set(calls["files"])
    assert calls["upload"][0] == "me/topics"


def test_dotted_hub_ids_go_to_the_hub(tmp_path, monkeypatch):
    """'org/Model-3.5' is a repo id (dots allowed), not a file name."""
    import huggingface_hub

    seen = {}

    def fake_download(repo_id, **kw):
        seen["repo_id"] = repo_id
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    with pytest.raises(OSError, match="offline"):
        radmine.TopicModel.from_pretrained("org/Model-3.5")
    assert seen["repo_id"] == "org/Model-3.5"
