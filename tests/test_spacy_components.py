"""spaCy components: radmine_sections and radmine_labeler give radmine's sections and label_reports' labels."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

spacy = pytest.importorskip("spacy")

import radmine  # noqa: E402
import radmine.spacy_components  # noqa: E402,F401  (registers the factories when the entry points are not installed)

TEXT = ("INDICATION: Cough.\nFINDINGS: No pneumothorax. Possible small left pleural effusion. "
        "The heart is enlarged.\nIMPRESSION: Cardiomegaly.")


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("radmine_sections")
    nlp.add_pipe("radmine_labeler", config={"vocabulary": "chest_xray"})
    return nlp


def test_entities_carry_negation_and_uncertainty(nlp):
    doc = nlp(TEXT)
    ents = {e.label_: (e.text, e._.is_negated, e._.is_uncertain) for e in doc.ents}
    assert ents["pneumothorax"] == ("pneumothorax", True, False)
    assert ents["pleural_effusion"] == ("pleural effusion", False, True)
    assert ents["cardiomegaly"][1:] == (False, False)
    assert {s._.finding_status for s in doc.spans["radmine_findings"]} == {"positive", "negated", "uncertain"}
    assert doc._.labels["pneumothorax"] == 0 and doc._.labels["pleural_effusion"] == -1
    assert doc._.labels["cardiomegaly"] == 1 and doc._.labels["atelectasis"] is None


def test_sections_and_sentences(nlp):
    doc = nlp(TEXT)
    assert [s.label_ for s in doc.spans["sections"]] == ["indication", "findings", "impression"]
    assert doc.spans["sections"][2].text == "Cardiomegaly."
    tok = next(t for t in doc if t.text == "pneumothorax")
    assert tok._.section == "findings" and doc[0]._.section == "other"
    assert "Possible small left pleural effusion." in [s.text.strip() for s in doc.sents]


def test_same_labels_as_label_reports_on_known_texts(nlp):
    texts = [TEXT, "IMPRESSION: No acute cardiopulmonary abnormality.", "FINDINGS: Stable rib fracture. No edema.", ""]
    expected = radmine.label_reports(texts, vocabulary="chest_xray")
    for i, doc in enumerate(nlp.pipe(texts, batch_size=2)):
        got = [np.nan if v is None else v for v in doc._.labels.values()]
        assert list(doc._.labels) == list(expected.columns)
        np.testing.assert_array_equal(np.array(got, dtype=float), expected.iloc[i].to_numpy())


def test_keeps_entities_of_earlier_components():
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PROBLEM", "pattern": "pleural effusion"}])
    nlp.add_pipe("radmine_labeler")
    doc = nlp(TEXT)
    labels = [e.label_ for e in doc.ents]
    assert "PROBLEM" in labels and "pleural_effusion" not in labels and "pneumothorax" in labels
    assert any(s.label_ == "pleural_effusion" for s in doc.spans["radmine_findings"])


def test_unknown_vocabulary_is_a_clear_error():
    nlp = spacy.blank("en")
    with pytest.raises((ValueError, FileNotFoundError, KeyError), match="nope"):
        nlp.add_pipe("radmine_labeler", config={"vocabulary": "nope"})


def test_registered_through_spacy_entry_points():
    names = {ep.name for ep in metadata.entry_points(group="spacy_factories")}
    if "radmine_labeler" not in names:
        pytest.skip("radmine is installed without its entry points (re-run pip install -e .)")
    code = ("import spacy; nlp = spacy.blank('en'); nlp.add_pipe('radmine_sections'); nlp.add_pipe('radmine_labeler'); "
            "d = nlp('FINDINGS: No pneumothorax.'); print(d._.labels['pneumothorax'], d.ents[0]._.is_negated)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "True"]


@pytest.mark.real
def test_same_labels_as_label_reports_on_openi(openi_tgz, nlp):
    corpus = radmine.read_openi(openi_tgz, progress=False)
    reports = corpus.reports.iloc[:400]
    expected = radmine.label_reports(reports, vocabulary="chest_xray")
    docs = list(nlp.pipe(reports["text"].tolist()))
    got = np.array([[np.nan if v is None else v for v in d._.labels.values()] for d in docs], dtype=float)
    np.testing.assert_array_equal(got, expected.to_numpy())
    n_ents = sum(len(d.ents) for d in docs)
    assert n_ents > 100 and sum(e._.is_negated for d in docs for e in d.ents) > 20
    with_sections = sum(any(s.label_ in ("findings", "impression") for s in d.spans["sections"]) for d in docs)
    assert with_sections >= 0.9 * len(docs)


def test_pipeline_saves_and_loads_with_spacy(tmp_path, nlp):
    nlp.to_disk(tmp_path / "pipe")
    loaded = spacy.load(tmp_path / "pipe")
    assert loaded.pipe_names == ["radmine_sections", "radmine_labeler"]
    assert loaded(TEXT)._.labels == nlp(TEXT)._.labels


def test_sentence_starts_match_radmine_sentencizer(nlp):
    from radmine.text.sentences import rules_nlp

    texts = [TEXT, "FINDINGS: Heart size normal. Lungs clear.\n\nIMPRESSION:\n1. No acute disease.\n2. Stable.", "x"]
    for text in texts:
        assert [s.text for s in nlp(text).sents] == [s.text for s in rules_nlp()(text).sents]
    parsed = spacy.blank("en")
    parsed.add_pipe("radmine_sections", config={"sentences": False})
    assert not parsed(TEXT).has_annotation("SENT_START")
