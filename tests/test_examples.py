"""The example scripts run end to end (``--quick``) and the CLI reference documents every setting.

Each script runs as a subprocess, as a user would run it, on the embedded synthetic corpus; the
``real`` tests run the same scripts on a slice of the shared real corpora (skipped when absent).
The image scripts use the small random CNN at a small input size here: the tests check that the
pipelines run and write their tables, not the numbers (those are in examples/README.md).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from radmine import _paths

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SCRIPTS = ["shin2015_key_images_topics.py", "wang2017_joint_clustering.py",
           "shin2016_chest_xray_labels.py", "weak_labels_openi.py"]
FAST_IMAGES = ["--backbone", "random_cnn", "--image-size", "48"]


def run_example(script: str, *args: str, timeout: int = 300) -> str:
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _in_unit_interval(series) -> bool:
    values = pd.to_numeric(series, errors="coerce").dropna()
    return len(values) > 0 and bool(((values >= 0) & (values <= 1)).all())


# -- embedded corpus: always runs ---------------------------------------------------------------
def test_weak_labels_example_on_embedded(tmp_path):
    out = run_example("weak_labels_openi.py", "--corpus", "embedded", "--out", str(tmp_path))
    assert "held-out" in out and "micro avg" in out
    scores = pd.read_csv(tmp_path / "scores_ct_mr.csv", header=[0, 1], index_col=0)
    assert "micro avg" in scores.index
    assert _in_unit_interval(scores[("held-out", "f1")])
    assert (tmp_path / "labels_chest_xray.csv").is_file()


def test_shin2016_example_on_embedded(tmp_path):
    out = run_example("shin2016_chest_xray_labels.py", "--corpus", "embedded", "--out", str(tmp_path))
    assert "label sequences" in out and "CNN+RNN annotation of images: not run" in out
    stats = pd.read_csv(tmp_path / "sequence_stats.csv", index_col=0)["value"]
    assert stats["annotated reports"] > 0
    assert 0 <= stats["normal reports (share)"] <= 1
    assert (tmp_path / "weak_labels_vs_annotation.csv").is_file()


def test_shin2015_example_on_embedded(tmp_path):
    out = run_example("shin2015_key_images_topics.py", "--corpus", "embedded", "--out", str(tmp_path / "o"),
                      "--cache-dir", str(tmp_path / "cache"), *FAST_IMAGES)
    assert "== summary" in out and "keyword R@1" in out
    clf = pd.read_csv(tmp_path / "o" / "topic_classifier.csv", index_col=0)
    assert set(clf.index) == {"document", "level2", "sentence"}
    assert _in_unit_interval(clf["top-1 (dev)"]) and (clf["top-5 (dev)"] >= clf["top-1 (dev)"]).all()
    retrieval = pd.read_csv(tmp_path / "o" / "image_text.csv", index_col=0)
    assert set(retrieval.index) == {"regression", "contrastive"}
    assert _in_unit_interval(retrieval["image->text R@10"])
    for name in ("topic_selection.csv", "topics_document.csv", "topics_level2.csv", "keywords_dev.csv"):
        assert (tmp_path / "o" / name).is_file(), name


def test_wang2017_example_on_embedded(tmp_path):
    out = run_example("wang2017_joint_clustering.py", "--corpus", "embedded", "--out", str(tmp_path / "o"),
                      "--cache-dir", str(tmp_path / "cache"), *FAST_IMAGES)
    assert "NMI" in out and "purity" in out
    agreement = pd.read_csv(tmp_path / "o" / "agreement.csv", index_col=0)
    assert len(agreement) == 3 and _in_unit_interval(agreement["NMI"]) and _in_unit_interval(agreement["purity"])
    assert "report-aligned space (radmine mine's default)" in agreement.index
    montages = list((tmp_path / "o" / "montages").glob("cluster_*.png"))
    assert montages and all(p.stat().st_size > 1000 for p in montages)
    assert (tmp_path / "o" / "history.png").is_file()
    history = pd.read_csv(tmp_path / "o" / "history.csv")
    assert len(history) >= 1 and "nmi_true" in history.columns


def test_bad_corpus_path_is_reported(tmp_path):
    proc = subprocess.run([sys.executable, str(EXAMPLES / "weak_labels_openi.py"), "--corpus",
                           str(tmp_path / "missing.csv"), "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "missing.csv" in proc.stderr


# -- real corpora: a slice of each (skipped when ../shared/corpora is absent) -------------------
@pytest.mark.real
def test_weak_labels_example_on_openi(openi_tgz, tmp_path):
    out = run_example("weak_labels_openi.py", "--out", str(tmp_path))
    assert "openi-iu" in out
    scores = pd.read_csv(tmp_path / "scores_chest_xray.csv", header=[0, 1], index_col=0)
    assert scores.loc["micro avg", ("held-out", "f1")] > 0.5   # the weak labeler agrees with MeSH far above chance


@pytest.mark.real
def test_shin2016_example_on_openi(openi_tgz, tmp_path):
    out = run_example("shin2016_chest_xray_labels.py", "--out", str(tmp_path))
    assert "no image files" in out           # the IU release has none: stated, not hidden
    top = pd.read_csv(tmp_path / "top_labels.csv", index_col=0)
    assert "normal" in top.index


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.parametrize("script", ["shin2015_key_images_topics.py", "wang2017_joint_clustering.py"])
def test_image_examples_on_medpix(script, medpix_dir, tmp_path):
    out = run_example(script, "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "cache"), *FAST_IMAGES)
    assert "medpix-2.0" in out


# -- the docs stay true to the code ---------------------------------------------------------------
def test_cli_reference_lists_every_setting():
    from radmine.pipeline.config import default_config

    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for section, values in default_config().items():
        assert f"**`[{section}]`**" in doc, f"docs/cli.md has no [{section}] section"
        for key in values:
            assert re.search(rf"^\| `{re.escape(key)}` \|", doc, re.M), f"docs/cli.md does not document {section}.{key}"


def test_cli_reference_shows_the_config_defaults():
    """Each setting's row in docs/cli.md shows the value of default_config.toml (a TOML literal)."""
    import tomllib

    from radmine.pipeline.config import default_config

    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    wrong = []
    for section, values in default_config().items():
        block = doc.split(f"**`[{section}]`**", 1)[1].split("| **`[", 1)[0]
        for key, value in values.items():
            m = re.search(rf"^\| `{re.escape(key)}` \| `([^`]*)` \|", block, re.M)
            if m is None:
                wrong.append(f"{section}.{key}: no default shown")
                continue
            shown = tomllib.loads(f"v = {m.group(1)}")["v"]
            if shown != value:
                wrong.append(f"{section}.{key}: docs show {m.group(1)}, the config has {value!r}")
    assert not wrong, "docs/cli.md settings table differs from default_config.toml: " + "; ".join(wrong)


def test_cli_reference_lists_every_step_and_command():
    from radmine.cli import _parser
    from radmine.pipeline.steps import STEPS

    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for step in STEPS:
        assert f"| {step.name} |" in doc, f"docs/cli.md: no fingerprint row for step {step.name!r}"
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    mine = commands.choices["mine"]
    for action in mine._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in doc, f"docs/cli.md does not document radmine mine {flag}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_examples_use_public_api_only(script):
    """No private radmine helper (a ``_name``) except ``radmine._paths``, which locates the shared corpora."""
    tree = ast.parse((EXAMPLES / script).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("radmine"):
            assert not any(p.startswith("_") for p in node.module.split(".")), node.module
            assert all(a.name == "_paths" or not a.name.startswith("_") for a in node.names), ast.dump(node)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            pytest.fail(f"{script} line {node.lineno}: private attribute {node.attr!r}")


def test_embedded_default_when_no_real_corpus(monkeypatch):
    """Without the shared corpora every script falls back to the embedded corpus (no error, no network)."""
    import importlib.util

    monkeypatch.setattr(_paths, "shared_corpora_dir", lambda: None)
    for script in SCRIPTS:
        spec = importlib.util.spec_from_file_location(script[:-3], EXAMPLES / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.load_corpus(None).name == "synthetic-pacs", script
