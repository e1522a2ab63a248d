"""The main job end to end on the embedded corpus: outputs, resume, skip, recompute-what-changed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.pipeline import artifacts
from radmine.pipeline import steps as steps_mod
from radmine.pipeline.config import default_config, load_config
from radmine.pipeline.runner import RunContext

from tests.conftest import FAST_MINE as FAST


def _mine(out, **kw):
    kw.setdefault("overrides", FAST)
    return radmine.mine(None, out, progress=False, echo=lambda s: None, **kw)


@pytest.fixture()
def mined(mined_run):
    return mined_run


def test_every_step_runs_and_writes_its_outputs(mined):
    out, result = mined
    assert list(result["status"]) == ["ran"] * len(steps_mod.STEPS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["steps"]) == {s.name for s in steps_mod.STEPS}
    # the embedded corpus is synthetic: the deid step finishes as skipped and writes nothing
    assert manifest["steps"]["deid"]["info"] == {"skipped": "public corpus, already de-identified (the embedded synthetic corpus)"}
    assert not (out / "deid").exists() or not any((out / "deid").iterdir())
    for step in steps_mod.STEPS:
        if step.name != "deid":
            for o in step.required:
                assert o.exists(out), o.path
    links = pd.read_parquet(out / "text" / "links.parquet")
    assert links["resolved"].any()
    metrics = json.loads((out / "img2text" / "metrics.json").read_text())
    assert any(k.startswith("image_to_text_R@") for k in metrics)
    html = (out / "report.html").read_text()
    for title in ("Corpus", "Key images", "Weak labels", "Topics", "Image clusters", "Image → text"):
        assert title in html
    assert "data:image/png;base64," in html
    assert "public corpus, already de-identified" in html  # the skipped deid step, with its reason


def test_every_file_is_declared_and_every_table_has_its_columns(mined):
    out, _ = mined
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file():
            assert any(rel == a.path or rel.startswith(a.path + "/") for a in artifacts.ARTIFACTS), rel
    for a in artifacts.ARTIFACTS:
        if a.columns and a.exists(out):
            table = a.read(out)
            assert not len(table) or set(a.columns) <= set(table.columns), (a.path, list(table.columns))


def test_second_run_skips_everything(mined):
    out, _ = mined
    result = _mine(out)
    assert set(result["status"]) == {"skipped"}


def test_changed_setting_recomputes_only_dependent_steps(mined, tmp_path):
    out, _ = mined
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    result = _mine(copy, overrides={**FAST, "topics.n_topics": 4}).set_index("step")["status"]
    assert result["topics"] == "ran" and result["report"] == "ran"
    for name in ("read", "text", "labels", "embed", "cluster", "img2text"):
        assert result[name] == "skipped", name


def test_report_setting_read_by_cluster_and_img2text_redraws_them(mined, tmp_path):
    out, _ = mined
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    result = _mine(copy, overrides={**FAST, "report.n_examples": 3}).set_index("step")["status"]
    for name in ("cluster", "img2text", "report"):
        assert result[name] == "ran", name
    for name in ("read", "text", "labels", "topics", "embed"):
        assert result[name] == "skipped", name


def test_cluster_groups_the_images_in_the_joint_image_text_space(mined):
    out, _ = mined
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["steps"]["cluster"]["info"]["space"] == "report"
    assert "Clustered in the joint image-text space" in (out / "report.html").read_text()
    joint = artifacts.JOINT_EMBEDDINGS.read(out)
    ids = artifacts.IMAGE_IDS.read(out)
    model = radmine.ImageTextModel.load(out / "img2text" / "model")
    assert joint.shape == (len(ids), model.dim_)
    np.testing.assert_allclose(np.linalg.norm(joint, axis=1), 1.0, atol=1e-5)
    clusterer = radmine.JointClusterer.load(out / "cluster" / "model")
    assert clusterer.n_neighbors is None  # [cluster] n_neighbors = -1: k-means on the joint embeddings
    assert list(clusterer.image_ids_) == list(ids["image_id"])
    # the clusterer was given the joint embeddings: they go back to their own clusters (nearest centre)
    assert (clusterer.predict(image_features=joint) == clusterer.labels_).mean() > 0.8
    cnn = artifacts.EMBEDDINGS.read(out)
    with pytest.raises(ValueError, match=rf"expected features of shape \(n, {joint.shape[1]}\).*got \({len(cnn)}, {cnn.shape[1]}\)"):
        clusterer.predict(image_features=cnn)


def test_cluster_space_image_and_a_skipped_img2text_use_the_cnn_features(mined, tmp_path):
    out, _ = mined
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    result = _mine(copy, overrides={**FAST, "cluster.space": "image"}).set_index("step")["status"]
    assert result["cluster"] == "ran" and result["img2text"] == "skipped"
    info = json.loads((copy / "manifest.json").read_text())["steps"]["cluster"]["info"]
    assert info["space"] == "image"
    cnn = artifacts.EMBEDDINGS.read(copy)
    clusterer = radmine.JointClusterer.load(copy / "cluster" / "model")
    assert clusterer.n_neighbors == radmine.JointClusterer().n_neighbors
    assert (clusterer.predict(image_features=cnn) == clusterer.labels_).mean() > 0.8
    # img2text skipped (no joint embeddings): "report" falls back to the CNN features
    artifacts.JOINT_EMBEDDINGS.at(copy).unlink()
    np.save(artifacts.JOINT_EMBEDDINGS.at(copy), np.zeros((0, 0), dtype=np.float32))
    ctx = RunContext(out=copy, config=load_config(overrides=FAST), source=None, progress=False)
    X, space = steps_mod.cluster_features(ctx, "report", cnn, len(cnn))
    assert space == "image" and X is cnn
    with pytest.raises(ValueError, match=r"cluster.space must be one of \['report', 'image'\]; found 'pixels'"):
        steps_mod.cluster_features(ctx, "pixels", cnn, len(cnn))


def test_cluster_needs_img2text_only_in_the_report_space(mined, tmp_path):
    out, _ = mined
    cluster = next(s for s in steps_mod.STEPS if s.name == "cluster")
    cfg = load_config(overrides=FAST)
    assert "img2text" in cluster.deps_for(cfg)
    assert "img2text" not in cluster.deps_for(load_config(overrides={**FAST, "cluster.space": "image"}))
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    # the whole-CNN loop re-extracts CNN features: it cannot run in the joint space
    with pytest.raises(ValueError, match=r"cluster.finetune_mode = 'backbone' fine-tunes the CNN"):
        _mine(copy, steps=["cluster"], overrides={**FAST, "cluster.finetune": True, "cluster.finetune_mode": "backbone"})
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["steps"].pop("img2text")  # as if img2text never ran in this folder
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"Step 'cluster' needs \['img2text'\] to have run"):
        _mine(copy, steps=["cluster"])
    result = _mine(copy, steps=["cluster"], overrides={**FAST, "cluster.space": "image"}).set_index("step")["status"]
    assert result["cluster"] == "ran" and result["img2text"] == "not selected"


def test_folder_source_fingerprint_sees_files_in_sub_folders(tmp_path):
    import os

    from radmine.pipeline.runner import _source_fingerprint

    (tmp_path / "images").mkdir()
    (tmp_path / "cases.json").write_text("[]")
    img = tmp_path / "images" / "a.png"
    img.write_bytes(b"1234")
    first = _source_fingerprint(str(tmp_path))
    assert first == _source_fingerprint(str(tmp_path)) and first[1] == 2
    img.write_bytes(b"12345")  # a replaced image deep in the folder changes the fingerprint
    second = _source_fingerprint(str(tmp_path))
    assert second != first
    os.utime(img, (1_000_000, 1_000_000))
    assert _source_fingerprint(str(tmp_path)) != second


def test_a_crashed_run_resumes_without_redoing_finished_steps(mined, tmp_path, monkeypatch):
    out, _ = mined
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    for name in ("cluster", "report"):  # as if the run died during 'cluster', after 'img2text'
        manifest["steps"].pop(name)
    (copy / "manifest.json").write_text(json.dumps(manifest))

    def boom(ctx):
        raise KeyboardInterrupt("killed")

    crashed = [s if s.name != "cluster" else steps_mod.Step(s.name, boom, s.deps, s.sections, s.outputs) for s in steps_mod.STEPS]
    monkeypatch.setattr(steps_mod, "STEPS", crashed)
    with pytest.raises(KeyboardInterrupt, match="killed"):
        _mine(copy)
    monkeypatch.undo()
    result = _mine(copy).set_index("step")["status"]
    assert result[["read", "text", "labels", "topics", "embed", "img2text"]].eq("skipped").all()
    assert result[["cluster", "report"]].eq("ran").all()


def test_config_defaults_are_documented_and_typos_rejected(tmp_path):
    cfg = default_config()
    assert cfg["run"]["steps"] == [s.name for s in steps_mod.STEPS]
    bad = tmp_path / "bad.toml"
    bad.write_text("[topics]\nn_topic = 3\n")
    with pytest.raises(ValueError, match=r"unknown setting topics.n_topic"):
        load_config(bad)
    bad.write_text("[topicz]\n")
    with pytest.raises(ValueError, match=r"unknown config section \[topicz\]"):
        load_config(bad)
    bad.write_text("[topics]\nn_topics = 'ten'\n")
    with pytest.raises(ValueError, match=r"topics.n_topics must be of type int"):
        load_config(bad)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_unknown_step_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown step 'topic'"):
        _mine(tmp_path / "x", steps=["topic"])
