"""The outputs of ``radmine mine`` are declared once, in ``radmine/pipeline/artifacts.py``.

The steps, the loaders, the runner and the HTML report reach files of the
output folder only through those declarations (checked on the source with
``ast``), and the list in ``docs/cli.md`` is the table's :func:`listing`.
"""

from __future__ import annotations

import ast
import json
import pathlib
import re

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.pipeline import artifacts
from radmine.pipeline.artifacts import ARTIFACTS, Artifact
from radmine.pipeline.runner import RunContext, save_table
from radmine.pipeline.steps import STEPS

PIPELINE = pathlib.Path(radmine.__file__).parent / "pipeline"
ROOT = PIPELINE.parents[1]
OUTPUT_SUFFIXES = (".parquet", ".npy", ".json", ".csv", ".png", ".html")


def _other_modules() -> list[pathlib.Path]:
    return [p for p in sorted(PIPELINE.glob("*.py")) if p.name != "artifacts.py"]


def test_the_walk_finds_the_pipeline_modules():
    assert {p.name for p in _other_modules()} >= {"steps.py", "runner.py", "report.py", "config.py"}


@pytest.mark.parametrize("path", _other_modules(), ids=lambda p: p.name)
def test_no_output_path_is_spelled_outside_the_table(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(OUTPUT_SUFFIXES):
            bad.append(f"line {node.lineno}: the file name {node.value!r}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and isinstance(node.right, ast.Constant) \
                and isinstance(node.right.value, str):
            bad.append(f"line {node.lineno}: a path joined with {node.right.value!r}")
    assert bad == []


def test_every_declaration_is_in_the_table_once():
    declared = [v for v in vars(artifacts).values() if isinstance(v, Artifact)]
    assert sorted(a.path for a in declared) == sorted(a.path for a in ARTIFACTS)
    assert len({a.path for a in ARTIFACTS}) == len(ARTIFACTS)


def test_the_steps_and_the_table_name_the_same_steps():
    names = [s.name for s in STEPS]
    assert {a.step for a in ARTIFACTS} - {artifacts.RUN} == set(names)
    for step in STEPS:
        assert step.outputs == artifacts.of_step(step.name), step.name
        assert step.required, f"{step.name} declares no output it always writes"


def test_no_two_steps_own_the_same_entry():
    owners: dict[str, str] = {a.top: artifacts.RUN for a in artifacts.of_step(artifacts.RUN)}
    for step in STEPS:
        for top in step.owned():
            assert owners.setdefault(top, step.name) == step.name, (top, owners[top], step.name)


def test_file_kinds_match_their_suffix_and_folders_have_none():
    for a in ARTIFACTS:
        if a.kind in ("parquet", "csv", "npy", "json", "png", "html"):
            assert a.path.endswith("." + a.kind), a.path
        elif a.is_folder:
            assert "." not in a.path.rsplit("/", 1)[-1], a.path
        assert not a.columns or a.kind in ("parquet", "csv"), a.path


def test_resume_state_and_conditional_outputs_are_not_required():
    assert artifacts.EMBED_CACHE.path in dict.fromkeys(s for step in STEPS for s in step.keep)
    assert {step.name for step in STEPS if step.checkpoints is not None} == {"cluster", "img2text"}
    for a in ARTIFACTS:
        if a.kind in artifacts.RESUME_KINDS or a.when or a.step == artifacts.RUN:
            assert not a.required, a.path


def _doc_listing() -> str:
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    m = re.search(r"^### The output folder\n.*?^```\n(.*?)^```", doc, re.M | re.S)
    assert m, "docs/cli.md has no code block under '### The output folder'"
    return m.group(1)


def test_docs_list_the_outputs_of_the_table():
    assert _doc_listing() == artifacts.listing(), (
        "docs/cli.md's output folder differs from radmine/pipeline/artifacts.py; "
        "paste the output of `python -m radmine.pipeline.artifacts`"
    )


def test_listing_has_one_line_per_artifact():
    lines = artifacts.listing().splitlines()
    assert lines[0] == "DIR/" and len(lines) == len(ARTIFACTS) + 1
    assert "  cluster/montages/cluster_<id>.png " in artifacts.listing()
    assert "  topics/model/ " in artifacts.listing()


# -- the Artifact methods, on a folder made here -------------------------
def test_read_exists_member_and_members(tmp_path):
    table = Artifact("x", "x/t.parquet", "parquet", "a table", columns=("a",))
    assert not table.exists(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"t.parquet not found: the x step has not written it"):
        table.read(tmp_path)
    table.at(tmp_path).parent.mkdir()
    pd.DataFrame({"a": [1, 2]}).to_parquet(table.at(tmp_path))
    assert table.exists(tmp_path) and table.read(tmp_path)["a"].tolist() == [1, 2]

    arr = Artifact("x", "x/a.npy", "npy", "an array")
    np.save(arr.at(tmp_path), np.eye(2, dtype=np.float32))
    np.testing.assert_array_equal(arr.read(tmp_path), np.eye(2))
    doc = Artifact("x", "x/m.json", "json", "a document")
    doc.at(tmp_path).write_text(json.dumps({"k": 1}))
    assert doc.read(tmp_path) == {"k": 1}

    figs = Artifact("x", "x/figs", "figures", "figures", item="f_<id>.png")
    assert figs.members(tmp_path) == [] and figs.shown == "x/figs/f_<id>.png"
    assert figs.member(tmp_path, id=3) == tmp_path / "x" / "figs" / "f_3.png"
    figs.at(tmp_path).mkdir()
    for name in ("f_2.png", "f_10.png", "other.txt"):
        (figs.at(tmp_path) / name).write_bytes(b"")
    assert [p.name for p in figs.members(tmp_path)] == ["f_10.png", "f_2.png"]

    ckpt = Artifact("x", "x/checkpoints", "checkpoints", "resume", item="<fingerprint>/")
    assert ckpt.member(tmp_path, fingerprint="ab") == tmp_path / "x" / "checkpoints" / "ab"
    assert not ckpt.required and ckpt.shown == "x/checkpoints/<fingerprint>/"


def test_a_saved_corpus_exists_only_with_its_manifest(tmp_path):
    reports = pd.DataFrame({"report_id": ["r1"], "patient_id": ["p1"], "study_id": ["s1"], "modality": ["CT"],
                            "text": ["No acute findings."]})
    corpus = radmine.Corpus(reports)
    art = Artifact("x", "saved", "corpus", "a corpus")
    art.at(tmp_path).mkdir()
    assert not art.exists(tmp_path)
    corpus.save(art.at(tmp_path))
    assert art.exists(tmp_path) and art.read(tmp_path).n_reports == 1


def test_bad_declarations_and_calls_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"kind must be one of .*found 'xlsx'"):
        Artifact("x", "x/t.xlsx", "xlsx", "a sheet")
    with pytest.raises(ValueError, match=r"must be relative, without a trailing '/'; found 'x/'"):
        Artifact("x", "x/", "cache", "a cache")
    with pytest.raises(ValueError, match=r"only folders have an item pattern; kind is 'parquet'"):
        Artifact("x", "x/t.parquet", "parquet", "a table", item="<id>")
    with pytest.raises(ValueError, match=r"has no item pattern; member\(\) needs one"):
        artifacts.TOPIC_INFO.member(tmp_path, id=1)
    with pytest.raises(ValueError, match=r"needs \['id'\]; found \['cluster'\]"):
        artifacts.MONTAGES.member(tmp_path, cluster=1)
    model = artifacts.CLUSTER_MODEL
    model.at(tmp_path).mkdir(parents=True)
    with pytest.raises(ValueError, match=r"cluster/model' is a saved model folder"):
        model.read(tmp_path)
    with pytest.raises(ValueError, match=r"No artifact is written by step 'tpoics'"):
        artifacts.of_step("tpoics")
    ctx = RunContext(out=tmp_path, config={}, source=None)
    with pytest.raises(ValueError, match=r"save_table: 'labels/prevalence.csv' is a csv artifact; expected a parquet table"):
        save_table(ctx, pd.DataFrame({"a": [1]}), artifacts.PREVALENCE)
    with pytest.raises(RuntimeError, match=r"only available while a step runs"):
        ctx.checkpoint_dir()
