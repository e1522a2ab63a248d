"""Key-image references: every form radiologists write, and look-alikes that must not fire."""

from __future__ import annotations

import pytest

import radmine
from radmine.text.references import MAX_RANGE, find_image_references, references_by_sentence


def read(text):
    return [(r.series, r.image) for r in find_image_references(text)]


# (text, expected [(series, image), ...])
FORMS = [
    ("series 3 image 45", [(3, 45)]),
    ("A 1.6 cm mass arises from the right kidney (series 3, image 45).", [(3, 45)]),
    ("SERIES 3 IMAGE 45", [(3, 45)]),
    ("Series 3, images 45-47", [(3, 45), (3, 46), (3, 47)]),
    ("series 3 images 45 through 47", [(3, 45), (3, 46), (3, 47)]),
    ("series 3 images 45 to 46", [(3, 45), (3, 46)]),
    ("images 1013-78", [(None, i) for i in range(1013, 1079)]),
    ("images 45-7", [(None, 45), (None, 46), (None, 47)]),
    ("images 12, 14 and 17", [(None, 12), (None, 14), (None, 17)]),
    ("images 12, 14, and 17", [(None, 12), (None, 14), (None, 17)]),
    ("Images 6,7: both lobes", [(None, 6), (None, 7)]),
    ("Images 2,3, and 4 demonstrate it", [(None, 2), (None, 3), (None, 4)]),
    ("Image 6 and 7 demonstrate it", [(None, 6), (None, 7)]),
    ("images 12-13, 17", [(None, 12), (None, 13), (None, 17)]),
    ("image 45 of series 3", [(3, 45)]),
    ("image 45 on series 3", [(3, 45)]),
    ("images 45 through 47 on series 4", [(4, 45), (4, 46), (4, 47)]),
    ("(image 45, series 3)", [(3, 45)]),
    ("image 45 (series 3)", [(3, 45)]),
    ("Image 45, Se 3", [(3, 45)]),
    ("se 3 im 45", [(3, 45)]),
    ("ser 3 img 45", [(3, 45)]),
    ("(Ser. 3, Img. 45)", [(3, 45)]),
    ("mass (se:3, im:45)", [(3, 45)]),
    ("series: 3 image: 45", [(3, 45)]),
    ("series #3 image #45", [(3, 45)]),
    ("series 3 key image 45", [(3, 45)]),
    ("s3 i45", [(3, 45)]),
    ("S3/I45", [(3, 45)]),
    ("series 5/6", [(5, 6)]),
    ("series 5:6", [(5, 6)]),
    ("series/image 5/6", [(5, 6)]),
    ("se/im 5:6", [(5, 6)]),
    ("Nodule seen on series 3 (3:45).", [(3, 45)]),
    ("Nodules (4:56; 4:60) on key images.", [(4, 56), (4, 60)]),
    ("Small effusion (1:6). Mass on series 4 image 12.", [(1, 6), (4, 12)]),  # the report names a series
    ("On series 3 there is a nodule #45 and #46.", [(3, 45), (3, 46)]),
    ("key image", [(None, None)]),
    ("See (key image).", [(None, None)]),
    ("see key image 4", [(None, 4)]),
    ("image 45", [(None, 45)]),
    ("image #16 measuring 3.6 cm", [(None, 16)]),
    ("image no. 45", [(None, 45)]),
    ("CT image 1 of 6", [(None, 1)]),
    ("image 45/120", [(None, 45)]),
    ("DWI image 21b.", [(None, 21)]),
    ("Image 1: axial CT.", [(None, 1)]),
    ("slice 45", [(None, 45)]),
    ("On series 3 a mass (image 45) and a cyst (image 50).", [(3, 45), (3, 50)]),
    ("CT series 2 with images 3 and 4", [(2, 3), (2, 4)]),
    ("series 3 image 45 and series 4 image 12", [(3, 45), (4, 12)]),
    ("series 601 image 45, 2 cm mass", [(601, 45)]),
    ("images 12 and 3 nodules", [(None, 12)]),
    # carry-over stops at the sentence end
    ("On series 3 a mass (image 45). Another (image 7).", [(3, 45), (None, 7)]),
]

LOOK_ALIKES = [
    "3 images were obtained.",
    "2 series of images were obtained.",
    "3 series, 120 images.",
    "Seen on 3/4/2011.",
    "Compared with 12/05.",
    "Mass 1.6 x 2.3 cm.",
    "T2-weighted images show edema.",
    "Axial images of the chest.",
    "Multiple images were reviewed.",
    "At 3:45 pm the patient was called.",
    "(3:45) nodule",  # a bracketed pair in a text that names no series or image
    "Ratio 3/45.",
    "image 1.6 x 2.3 cm",
    "images 5-7 mm apart",
    "Clin Im 2004:28;216-218.",
    "T1-weighted image (600/12), mass enhances.",
    "series 3/4/2011",
    "#45 alone",
    "image 3:45",
    "series 2 weeks ago",
    "No. 5 tube.",
    "Imaging was performed.",
    "The images are degraded by motion.",
    "Case images courtesy of Dr. Smith.",
]


@pytest.mark.parametrize("text, expected", FORMS)
def test_forms(text, expected):
    assert read(text) == expected


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_look_alikes_do_not_fire(text):
    assert read(text) == []


def test_spans_and_fields():
    text = "FINDINGS: A mass (series 3, images 45-46). Normal."
    refs = find_image_references(text)
    assert [r.form for r in refs] == ["series-image", "series-image"]
    for r in refs:
        assert text[r.start : r.end] == r.text == "series 3, images 45-46"
    assert radmine.find_image_references is find_image_references


def test_range_cap():
    assert read(f"images 1-{MAX_RANGE + 5}") == [(None, 1), (None, MAX_RANGE + 5)]


def test_sentences_param_controls_carry_over():
    text = "On series 3 a mass; image 45 shows it"
    assert read(text) == [(3, 45)]
    cut = text.index(";") + 1
    refs = find_image_references(text, sentences=[(0, cut), (cut + 1, len(text))])
    assert [(r.series, r.image) for r in refs] == [(None, 45)]


def test_references_by_sentence():
    text = "Series 3 shows a mass (image 45). Cyst (image 50). Stable (series 4, image 2)."
    sents = [(s.start, s.end) for s in radmine.split_sentences(text)]
    got = [(i, r.series, r.image) for i, r in references_by_sentence(text, sents)]
    assert got == [(0, 3, 45), (1, None, 50), (2, 4, 2)]


def test_errors():
    with pytest.raises(TypeError, match="text must be a str"):
        find_image_references(None)
    with pytest.raises(ValueError, match="outside the text"):
        find_image_references("image 4", sentences=[(0, 99)])
    with pytest.raises(ValueError, match="outside the text"):
        references_by_sentence("image 4", [(-1, 3)])
    with pytest.raises(TypeError, match="text must be a str"):
        references_by_sentence(3, [])
