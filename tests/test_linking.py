"""Key image <-> sentence links: reference resolution, fallbacks, and ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.corpus import LINK_COLUMNS
from radmine.linking import link_key_images


def _corpus(name="pacs"):
    reports = pd.DataFrame(
        {
            "report_id": ["r1", "r2", "r3"],
            "patient_id": ["p1", "p2", "p3"],
            "study_id": ["s1", "s2", "s3"],
            "modality": ["CT", "CT", "CT"],
            "text": [
                "FINDINGS: Liver normal. A 1.6 cm mass arises from the right kidney (series 3, image 45). "
                "Also a cyst (image 50). Nodule (image 7). Lesion (series 9, image 1).\n\n"
                "IMPRESSION: Renal mass (series 3, image 45). See key image.",
                "FINDINGS: No mass.\n\nIMPRESSION: Normal.",
                "FINDINGS: Fracture.",
            ],
        }
    )
    images = pd.DataFrame(
        {
            "image_id": ["i1", "i2", "i3", "i4", "i5", "i6", "i7"],
            "report_id": ["r1", "r1", "r1", "r2", "r3", "r1", "r1"],
            "study_id": ["s1", "s1", "s1", "s2", "s3", "s1", "s1"],
            "series_number": [3, 3, 4, 1, None, 5, 6],
            "instance_number": [45, 50, 7, 1, None, 7, 99],
            "caption": [None, None, None, None, "Axial CT: rib fracture.", None, None],
        }
    )
    return radmine.Corpus(reports, images, name=name)


def test_reference_links():
    corpus = _corpus()
    links = link_key_images(corpus)
    assert list(links.columns[: len(LINK_COLUMNS)]) == LINK_COLUMNS
    assert corpus.links is links and len(corpus.sentences) > 0
    ref = links[links.method == "reference"]
    got = list(zip(ref.image_id, ref.sentence_id, ref.series.astype(object), ref.instance, ref.resolved))
    assert got == [
        ("i1", 1, 3, 45, True),  # written series
        ("i2", 2, 3, 50, True),  # series not written: only series 3 has instance 50
        (None, 3, pd.NA, 7, False),  # instance 7 in series 4 and 5: ambiguous
        (None, 4, 9, 1, False),  # no such image
        ("i1", 5, 3, 45, True),  # cited again in the impression: one row per sentence
        (None, 6, pd.NA, pd.NA, False),  # bare key image, study has several images
    ]
    reasons = ref.reason.tolist()
    assert reasons[0] is None
    assert "only series with instance 50" in reasons[1]
    assert "series [4, 5]" in reasons[2]
    assert reasons[3] == "no image with series 9 instance 1 in study s1"
    assert "key image without a number" in reasons[5]
    first = ref.iloc[0]
    assert first.sentence == "A 1.6 cm mass arises from the right kidney (series 3, image 45)."
    assert first.prev_sentence == "Liver normal." and first.next_sentence == "Also a cyst (image 50)."
    assert first.section == "findings" and first.mention == "series 3, image 45"
    assert ref.iloc[4].section == "impression"
    # uncited images of a report whose references resolve get no row
    assert "i7" not in set(links.image_id)


def test_fallback_rows():
    links = link_key_images(_corpus())
    rep = links[links.method == "report"]
    assert rep.image_id.tolist() == ["i4"] and rep.sentence.tolist() == ["No mass. Normal."]
    assert (rep.sentence_id == -1).all()
    cap = links[links.method == "caption"]
    assert cap.image_id.tolist() == ["i5"] and cap.sentence.tolist() == ["Axial CT: rib fracture."]
    assert (cap.sentence_id == -1).all() and cap.resolved.all()
    # an Open-i-like source: images belong to the whole report even with a caption
    links = link_key_images(_corpus(name="openi-iu"))
    assert links.loc[links.image_id == "i5", "method"].tolist() == ["report"]
    assert links.loc[links.image_id == "i5", "sentence"].tolist() == ["Fracture."]
    none = link_key_images(_corpus(), fallback="none")
    assert set(none.method) == {"reference"}
    cap_only = link_key_images(_corpus(), fallback="caption")
    assert set(cap_only.loc[cap_only.method != "reference", "image_id"]) == {"i5"}


def test_context_widths():
    corpus = _corpus()
    wide = link_key_images(corpus, context=2)
    row = wide[(wide.method == "reference")].iloc[1]  # sentence 2
    assert row.prev_sentence == "Liver normal. A 1.6 cm mass arises from the right kidney (series 3, image 45)."
    assert row.next_sentence == "Nodule (image 7). Lesion (series 9, image 1)."
    zero = link_key_images(_corpus(), context=0)
    assert zero.prev_sentence.isna().all() and zero.next_sentence.isna().all()


def test_unresolvable_numbers_keep_caption_rows():
    reports = pd.DataFrame(
        {"report_id": ["c1"], "patient_id": ["c1"], "study_id": ["c1"], "modality": ["MR"],
         "text": ["Findings: Image 1: axial T2 shows a mass."]}
    )
    images = pd.DataFrame({"image_id": ["m1"], "report_id": ["c1"], "caption": ["T2 mass."]})
    links = link_key_images(radmine.Corpus(reports, images))
    assert links.method.tolist() == ["reference", "caption"]
    assert links.reason.iloc[0] == "the images have no series/instance numbers"
    assert not links.resolved.iloc[0]


def test_errors():
    with pytest.raises(TypeError, match="Corpus"):
        link_key_images(pd.DataFrame())
    with pytest.raises(ValueError, match="context"):
        link_key_images(_corpus(), context=-1)
    with pytest.raises(ValueError, match="fallback"):
        link_key_images(_corpus(), fallback="sometimes")


def _generated(rng, n_reports=40):
    """Reports citing their key images in many written forms, with the true links."""
    forms = [
        "({S}, image {I})", "(image {I} of {S})", "({s} {n} im {I})", "(series {n}/{I})",
        "(se {n}, images {I})", "on {S} (image {I})",
    ]
    reports, images, truth = [], [], []
    for r in range(n_reports):
        rid = f"r{r}"
        series_ids = rng.choice(np.arange(2, 9), size=2, replace=False)
        sents = ["The liver is normal."]
        for k, se in enumerate(series_ids):
            inst = int(rng.integers(1, 300))
            iid = f"{rid}-{se}-{inst}"
            images.append((iid, rid, rid, int(se), inst))
            form = forms[(r + k) % len(forms)]
            written = form.format(S=f"series {se}", s="se", n=se, I=inst)
            sents.append(f"A {k + 1}.{r % 10} cm lesion is seen {written}.")
            truth.append((iid, rid, len(sents) - 1))
        # a decoy image not cited, a look-alike sentence
        images.append((f"{rid}-x", rid, rid, 1, 1))
        sents.append("3 images were obtained on 3/4/2011; T2-weighted images show edema.")
        reports.append((rid, rid, rid, "CT", "FINDINGS: " + " ".join(sents)))
    rep = pd.DataFrame(reports, columns=["report_id", "patient_id", "study_id", "modality", "text"])
    img = pd.DataFrame(images, columns=["image_id", "report_id", "study_id", "series_number", "instance_number"])
    return radmine.Corpus(rep, img), set(truth)


def test_generated_corpus_precision_recall():
    corpus, truth = _generated(np.random.default_rng(0))
    links = link_key_images(corpus)
    got = set(zip(*(links.loc[links.resolved & (links.method == "reference"), c] for c in
                    ("image_id", "report_id", "sentence_id"))))
    assert got == truth
    assert (links.method == "reference").all()


def _embedded_or_skip():
    try:
        corpus = radmine.load_embedded()
    except (ImportError, AttributeError, FileNotFoundError) as err:
        pytest.skip(f"embedded corpus not available yet: {err}")
    if "truth_links" not in corpus.tables:
        pytest.skip("embedded corpus has no truth_links table")
    return corpus.copy()


def test_embedded_corpus_links_match_truth():
    corpus = _embedded_or_skip()
    truth = corpus.tables["truth_links"]
    links = link_key_images(corpus)
    ref = links[links.method == "reference"]
    # resolved links: (image, report, citing sentence)
    got = set(zip(ref.loc[ref.resolved, "image_id"], ref.loc[ref.resolved, "report_id"], ref.loc[ref.resolved, "sentence"]))
    t_res = truth[truth.resolved.astype(bool)]
    want = set(zip(t_res.image_id, t_res.report_id, t_res.sentence))
    tp = len(got & want)
    precision, recall = tp / max(len(got), 1), tp / max(len(want), 1)
    assert (precision, recall) == (1.0, 1.0), (sorted(got - want)[:5], sorted(want - got)[:5])
    # unresolved references are kept, with the written series/instance
    def unresolved(df, series, instance):
        df = df[~df.resolved.astype(bool)]
        return set(zip(df.report_id, df[series].astype("Int64").astype(object),
                       df[instance].astype("Int64").astype(object), df.sentence))

    assert unresolved(ref, "series", "instance") == unresolved(truth, "series", "instance")
    assert ref.loc[~ref.resolved, "image_id"].isna().all()
    assert ref.loc[~ref.resolved, "reason"].str.startswith("no image with series").all()


@pytest.mark.real
def test_real_openi_links(openi_corpus):
    corpus = openi_corpus.copy()
    links = link_key_images(corpus)
    assert set(links.method) == {"report"}
    assert set(links.image_id) == set(corpus.images.image_id)
    with_text = links.sentence.notna()
    assert links.loc[with_text, "resolved"].all() and (~links.loc[~with_text, "resolved"]).all()


@pytest.mark.real
def test_real_medpix_links(medpix_corpus):
    corpus = medpix_corpus.copy()
    links = link_key_images(corpus)
    cap = links[links.method == "caption"]
    assert set(cap.image_id) == set(corpus.images.loc[corpus.images.caption.fillna("").str.strip() != "", "image_id"])
    assert (cap.sentence_id == -1).all()
