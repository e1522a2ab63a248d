"""What ``radmine mine`` promises about its output folder, under kills, changed settings and concurrent runs.

Every test ends the same way: each finished step's files agree with the
manifest (sizes and SHA-256), and the folder holds the same outputs as a clean
run with the same settings. Kills are real ``SIGKILL``s of a ``radmine mine``
subprocess (``tests/_mine_child.py`` picks the point). The corpus is the
embedded one, cut to 24 reports, with cheap settings.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.pipeline import steps as steps_mod
from radmine.pipeline.artifacts import LOCK
from radmine.pipeline.runner import OutputLockedError, verify_outputs

pytestmark = pytest.mark.slow

CHEAP = {
    "read.max_reports": 24,
    "topics.n_topics": 3,
    "topics.n_subtopics": 0,
    "topics.passes": 1,
    "embed.backbone": "random_cnn",
    "embed.image_size": 32,
    "cluster.finetune": False,
    "cluster.n_rounds": 1,
    "img2text.epochs": 2,
    "img2text.image_features": "last",
    "img2text.text_encoder": "word2vec",
    "img2text.n_ensemble": 1,
    "report.n_examples": 2,
}
CHILD = Path(__file__).with_name("_mine_child.py")
ROOT = Path(__file__).resolve().parents[1]


def _mine(out, overrides=None, **kw):
    return radmine.mine(None, out, overrides={**CHEAP, **(overrides or {})}, progress=False, echo=lambda s: None, **kw)


def _status(result) -> dict[str, str]:
    return result.set_index("step")["status"].to_dict()


def _cli_args(overrides: dict) -> list[str]:
    args = []
    for k, v in {**CHEAP, **overrides}.items():
        args += ["--set", f"{k}={json.dumps(v) if not isinstance(v, bool) else str(v).lower()}"]
    return args


def _child(out, point="none", overrides=None, extra=(), wait=True):
    """``radmine mine`` in a subprocess with a kill point; returns the Popen (or the finished process)."""
    cmd = [sys.executable, str(CHILD), point, "--out", str(out), "--no-progress", *_cli_args(overrides or {}), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def _manifest(out) -> dict:
    return json.loads((Path(out) / "manifest.json").read_text())


def _assert_agrees_with_manifest(out) -> None:
    """Every finished step's files match the sizes and hashes the manifest recorded; no temporary files."""
    out = Path(out)
    manifest = _manifest(out)
    for step in steps_mod.STEPS:
        entry = manifest["steps"].get(step.name)
        if entry is not None:
            assert verify_outputs(out, step, entry) is None, (step.name, verify_outputs(out, step, entry))
    assert not [p for p in out.rglob("*.tmp")], "temporary files left over"


def _volatile(key: str) -> bool:
    return any(w in key for w in ("seconds", "time", "resumed", "finished_at", "report"))


def _snapshot(out) -> dict:
    """Comparable content of an output folder (timings, checkpoints, caches and the HTML left out)."""
    out = Path(out)
    snap = {}
    caches = tuple(k + "/" for step in steps_mod.STEPS for k in step.keep)  # e.g. embed/cache/
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if not p.is_file() or "/checkpoints/" in rel or rel.startswith(caches) or rel in (
                "report.html", "manifest.json", "config.json", LOCK.path):
            continue
        if p.suffix == ".parquet":
            df = pd.read_parquet(p)
            snap[rel] = df[[c for c in df.columns if not _volatile(str(c))]]
        elif p.suffix == ".npy":
            snap[rel] = np.load(p, allow_pickle=False)
        elif p.suffix == ".json":
            obj = json.loads(p.read_text())
            snap[rel] = {k: v for k, v in obj.items() if not _volatile(k)} if isinstance(obj, dict) else obj
        else:
            snap[rel] = None  # figures, weights: present
    snap["finished steps"] = sorted(k for k, v in _manifest(out)["steps"].items() if v["status"] == "done")
    return snap


def _assert_same_outputs(a, b) -> None:
    sa, sb = _snapshot(a), _snapshot(b)
    assert sorted(sa) == sorted(sb)
    for key, va in sa.items():
        vb = sb[key]
        if isinstance(va, pd.DataFrame):
            pd.testing.assert_frame_equal(va, vb, check_exact=False, atol=1e-5, obj=key)
        elif isinstance(va, np.ndarray):
            np.testing.assert_allclose(va, vb, atol=1e-5, err_msg=key)
        else:
            assert va == vb, key


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean run with the cheap settings, under umask 022."""
    out = tmp_path_factory.mktemp("mine_clean") / "run"
    old = os.umask(0o022)
    try:
        result = _mine(out)
    finally:
        os.umask(old)
    assert set(result["status"]) == {"ran"}
    return out


def _epochs(out) -> list[int]:
    """Epochs in img2text's history (of the first seed-ensemble member)."""
    h = pd.read_parquet(Path(out) / "img2text" / "history.parquet")
    return h.loc[h["member"] == 0, "epoch"].tolist() if "member" in h else h["epoch"].tolist()


def _copy(clean, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(clean, dst)
    return dst


# -- a clean run ---------------------------------------------------------
def test_clean_run_records_every_output_and_follows_the_umask(clean):
    manifest = _manifest(clean)
    for step in steps_mod.STEPS:
        outputs = manifest["steps"][step.name]["outputs"]
        # (deid is skipped for the embedded corpus: public corpora are already de-identified)
        assert outputs or manifest["steps"][step.name]["info"].get("skipped"), step.name
        for rel, (size, digest) in outputs.items():
            assert (clean / rel).stat().st_size == size and len(digest) == 64
    assert "embed/embeddings.npy" in manifest["steps"]["embed"]["outputs"]
    assert not any("/cache/" in rel for rel in manifest["steps"]["embed"]["outputs"])
    for p in clean.rglob("*"):  # a normal open() under umask 022: 0644 files, 0755 folders
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))
    _assert_agrees_with_manifest(clean)


def test_trained_models_are_saved_and_load(clean):
    from radmine.cluster import JointClusterer
    from radmine.img2text.model import ImageTextModel
    from radmine.topics.model import TopicModel

    clusterer = JointClusterer.load(clean / "cluster" / "model", device="cpu")
    X = np.load(clean / "img2text" / "image_embeddings.npy")  # [cluster] space = "report": the joint space
    ids = pd.read_parquet(clean / "embed" / "image_ids.parquet")["image_id"].astype(str)
    assign = pd.read_parquet(clean / "cluster" / "assignments.parquet").set_index("image_id")["cluster"]
    np.testing.assert_array_equal(clusterer.labels_, assign.loc[ids].to_numpy())
    np.testing.assert_array_equal(clusterer.predict(image_features=X), clusterer.labels_)

    model = ImageTextModel.load(clean / "img2text" / "model", device="cpu")
    pd.testing.assert_frame_equal(model.history_, pd.read_parquet(clean / "img2text" / "history.parquet"))
    assert model.history_["epoch"].max() == CHEAP["img2text.epochs"]
    topics = TopicModel.load(clean / "topics" / "model")
    assert topics.n_topics == CHEAP["topics.n_topics"]


# -- resume checks the files, not only the manifest --------------------------
def test_changed_truncated_or_foreign_files_make_their_step_run_again(clean, tmp_path):
    out = _copy(clean, tmp_path)
    labels = pd.read_parquet(out / "labels" / "labels.parquet")
    labels.iloc[:3].to_parquet(out / "labels" / "labels.parquet")  # edited table
    emb = out / "embed" / "embeddings.npy"
    emb.write_bytes(emb.read_bytes()[: emb.stat().st_size // 2])  # truncated in place
    (out / "topics" / "topic_info_level2.parquet").write_bytes(b"stale")  # a file the step did not write
    (out / "cluster" / ".assignments.parquet.123.tmp").write_bytes(b"half")  # a killed writer's leftover
    status = _status(_mine(out))
    assert [s for s, v in status.items() if v == "ran"][:3] == ["labels", "topics", "embed"]
    # re-made byte for byte: what depends on them is still up to date
    assert status["cluster"] == status["img2text"] == "skipped"
    assert not (out / "topics" / "topic_info_level2.parquet").exists()
    _assert_agrees_with_manifest(out)
    _assert_same_outputs(out, clean)


# -- changed settings ----------------------------------------------------
def test_every_section_changed_on_an_existing_folder_starts_clean_and_back(clean, tmp_path):
    out = _copy(clean, tmp_path)
    changed = {
        "run.random_state": 1, "read.max_reports": 20, "deid.method": "mask", "text.context": 0, "labels.sections": ["impression"],
        "topics.n_topics": 0, "topics.candidates": [2, 3], "topics.n_subtopics": 2, "embed.image_size": 48,
        "cluster.n_clusters": 3, "img2text.epochs": 3, "img2text.batch_size": 16, "report.n_examples": 1,
    }
    from radmine.pipeline.config import default_config

    assert {k.split(".")[0] for k in changed} == set(default_config())  # every section
    status = _status(_mine(out, changed))
    assert set(status.values()) == {"ran"}
    assert (out / "topics" / "selection.parquet").is_file() and (out / "topics" / "topic_info_level2.parquet").is_file()
    assert _epochs(out) == [1, 2, 3]  # retrained: a fresh history
    assert len(list((out / "cluster" / "checkpoints").iterdir())) == 1
    assert len(list((out / "img2text" / "checkpoints").iterdir())) == 1
    assert len(list((out / "embed" / "cache").iterdir())) == 1
    assert len(list((out / "cluster" / "montages").glob("*.png"))) == 1
    _assert_agrees_with_manifest(out)
    html = (out / "report.html").read_text()
    assert "Level 2" in html and "Choosing K" in html
    # back to the first settings: no stale selection / level-2 tables, same outputs as the clean run
    assert set(_status(_mine(out)).values()) == {"ran"}
    assert not (out / "topics" / "selection.parquet").exists()
    assert not (out / "topics" / "topic_info_level2.parquet").exists()
    assert "Level 2" not in (out / "report.html").read_text()
    _assert_agrees_with_manifest(out)
    _assert_same_outputs(out, clean)


# -- kill -9 ---------------------------------------------------------------
def test_kill_inside_a_table_write_after_a_changed_setting(clean, tmp_path):
    out = _copy(clean, tmp_path)
    proc = _child(out, "write:cluster_info.parquet", {"cluster.n_clusters": 4})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert list((out / "cluster").glob(".cluster_info.parquet.*.tmp"))  # killed between write and rename
    assert "cluster" not in _manifest(out)["steps"]  # never "up to date" over half-written tables
    status = _status(_mine(out))  # the original settings again
    assert status["cluster"] == "ran" and status["topics"] == "skipped"
    _assert_agrees_with_manifest(out)
    _assert_same_outputs(out, clean)


def test_kill_inside_embed_resumes_from_the_cache(clean, tmp_path):
    out = tmp_path / "run"
    only = ("--steps", "deid,read,embed")
    proc = _child(out, "shard:3", {"embed.batch_size": 8}, only)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "embed" not in _manifest(out)["steps"] and "read" in _manifest(out)["steps"]
    _mine(out, {"embed.batch_size": 8}, steps=["deid", "read", "embed"])
    info = _manifest(out)["steps"]["embed"]["info"]
    assert info["from_cache"] == 24 and info["images"] == 96  # 3 committed shards of 8 were not redone
    _assert_agrees_with_manifest(out)
    # batch_size is a setting of [embed]: the fingerprints differ from the clean run, the tables do not
    snap, ref = _snapshot(out), _snapshot(clean)
    for key in ("embed/embeddings.npy",):
        np.testing.assert_allclose(snap[key], ref[key], atol=1e-5)
    pd.testing.assert_frame_equal(snap["embed/image_ids.parquet"], ref["embed/image_ids.parquet"])


def test_kill_inside_img2text_training_then_changed_epochs_retrain(clean, tmp_path):
    out = _copy(clean, tmp_path)
    proc = _child(out, "epoch:2", {"img2text.epochs": 3})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "img2text" not in _manifest(out)["steps"]
    (ckpt,) = list((out / "img2text" / "checkpoints").iterdir())  # the old settings' checkpoints are gone
    assert json.loads((ckpt / "trainer.json").read_text())["epoch"] == 2
    _mine(out, {"img2text.epochs": 3})  # same settings: resumes after epoch 2
    meta = json.loads((out / "img2text" / "model" / "model.json").read_text())
    assert meta["resumed_from"] == 2
    assert _epochs(out) == [1, 2, 3]
    _assert_agrees_with_manifest(out)
    assert _status(_mine(out))["img2text"] == "ran"  # back to 2 epochs: trained again from scratch, as in the clean run
    assert json.loads((out / "img2text" / "model" / "model.json").read_text())["resumed_from"] == 0
    _assert_agrees_with_manifest(out)
    _assert_same_outputs(out, clean)


# -- concurrent runs -------------------------------------------------------
def test_a_second_run_on_the_same_folder_stops_or_waits(clean, tmp_path):
    from radmine.cli import main

    out = _copy(clean, tmp_path)
    marker = tmp_path / "holding"
    first = _child(out, f"hold:cluster:4:{marker}", {"cluster.n_clusters": 5}, wait=False)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert first.poll() is None, first.communicate()
            assert time.time() < deadline
            time.sleep(0.2)
        with pytest.raises(OutputLockedError, match=r"in use by another radmine mine \(pid \d+"):
            _mine(out, {"cluster.n_clusters": 8})
        assert main(["mine", "--out", str(out), "--no-progress"]) == 2
        status = _status(_mine(out, {"cluster.n_clusters": 8}, wait=True))  # waits for the first run
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert status["cluster"] == "ran" and status["topics"] == "skipped"
    assert _manifest(out)["steps"]["cluster"]["info"]["k"] == 8  # the last run's manifest ...
    assert json.loads((out / "config.json").read_text())["cluster"]["n_clusters"] == 8
    history = pd.read_parquet(out / "cluster" / "history.parquet")
    from radmine.cluster import JointClusterer

    assert JointClusterer.load(out / "cluster" / "model").n_clusters == 8  # ... its model and its tables
    assert history["n_clusters"].iloc[-1] == _manifest(out)["steps"]["cluster"]["info"]["n_clusters"]
    _assert_agrees_with_manifest(out)


# -- small and partly broken exports (issue 17) -------------------------------
def test_tiny_exports_finish_with_skipped_steps_named_in_the_report(tmp_path):
    small = _status(_mine(tmp_path / "nine", {"read.max_reports": 9}))
    assert set(small.values()) == {"ran"}
    info = _manifest(tmp_path / "nine")["steps"]["topics"]["info"]
    assert "scaled down for 9 reports" in info["filters"] and info["n_topics"] == 3
    out = tmp_path / "one"
    assert set(_status(_mine(out, {"read.max_reports": 1})).values()) == {"ran"}
    steps = _manifest(out)["steps"]
    assert "topics need at least 3" in steps["topics"]["info"]["skipped"]
    assert "img2text needs at least" in steps["img2text"]["info"]["skipped"]
    assert "The img2text step was skipped" in (out / "report.html").read_text()
    html = (out / "report.html").read_text()
    assert "Skipped steps" in html and "The topics step was skipped: 1 report(s)" in html
    _assert_agrees_with_manifest(out)
    assert set(_status(_mine(out, {"read.max_reports": 1})).values()) == {"skipped"}


def test_an_undecodable_image_is_left_out_downstream(tmp_path):
    from radmine.datasets import load_embedded

    corpus = load_embedded()
    corpus = corpus.subset(corpus.reports["report_id"].iloc[:12])
    from radmine.linking import link_key_images

    links = link_key_images(corpus)
    bad_id = str(links.loc[links["resolved"].fillna(False).astype(bool), "image_id"].iloc[0])  # a linked image
    images = corpus.images.copy()
    images["path"] = corpus.image_paths()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    images.loc[images["image_id"].astype(str) == bad_id, "path"] = str(bad)
    corpus.images, corpus.root = images, None
    src = tmp_path / "export"
    corpus.save(src)
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match=r"1 of \d+ images could not be loaded"):
        result = radmine.mine(src, out, overrides={**CHEAP, "read.max_reports": 0}, progress=False, echo=lambda s: None)
    assert set(result["status"]) == {"ran"}
    q = pd.read_csv(out / "quarantine.csv")
    assert ((q["step"] == "embed") & (q["item"].astype(str) == bad_id)).sum() == 1
    ids = pd.read_parquet(out / "embed" / "image_ids.parquet")["image_id"].astype(str)
    assert bad_id not in set(ids) and len(ids) == len(images) - 1
    assert bad_id not in set(pd.read_parquet(out / "cluster" / "assignments.parquet")["image_id"].astype(str))
    assert json.loads((out / "img2text" / "metrics.json").read_text())  # trained and scored
    _assert_agrees_with_manifest(out)


def test_a_folder_with_other_files_is_refused(tmp_path):
    from radmine.cli import main

    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "my_notes.txt").write_text("not radmine's")
    (tmp_path / "thesis.docx").write_text("not radmine's")
    with pytest.raises(ValueError, match=r"is not empty and was not written by radmine mine \(it holds 'thesis.docx'\)"):
        _mine(tmp_path)
    assert main(["mine", "--out", str(tmp_path), "--no-progress"]) == 2
    assert (tmp_path / "text" / "my_notes.txt").is_file() and not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize("kw", [dict(finetune=True, n_rounds=2), dict(finetune=False, hierarchical=True, min_cluster_size=2)])
def test_joint_clusterer_save_load_round_trip(tmp_path, kw):
    from radmine.cluster import JointClusterer

    X = np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32)
    fitted = JointClusterer(n_clusters=4, backbone="random_cnn", pca_dim=8, random_state=0, progress=False, **kw)
    fitted.fit(None, image_features=X)
    loaded = JointClusterer.load(fitted.save(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.labels_, fitted.labels_)
    np.testing.assert_array_equal(loaded.predict(image_features=X[:7] + 0.01), fitted.predict(image_features=X[:7] + 0.01))
    pd.testing.assert_frame_equal(loaded.history_, fitted.history_)
    assert loaded.get_params() == {**fitted.get_params(), "checkpoint_dir": None}
    with pytest.raises(FileNotFoundError, match="is not a saved JointClusterer: clusterer.json not found"):
        JointClusterer.load(tmp_path)
    with pytest.raises(TypeError, match="only a clusterer with a named backbone can be saved"):
        fitted.backbone = object()
        fitted.save(tmp_path / "other")
