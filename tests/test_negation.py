"""Known-answer tests for the NegEx-style negation / uncertainty detector."""

from __future__ import annotations

import pytest

import radmine
from radmine.text.negation import DEFAULT_TRIGGERS, KINDS, NegationDetector, find_negations, trie_regex


_DET = NegationDetector()


def status(sentence: str, target: str, det: NegationDetector | None = None) -> tuple[str, str | None]:
    det = det or _DET
    start = sentence.lower().index(target.lower())
    return det.classify(sentence, start, start + len(target))


# (sentence, target, expected status, expected trigger (lower-case) or None)
CASES = [
    # pre-negation
    ("No pneumothorax.", "pneumothorax", "negated", "no"),
    ("There is no pleural effusion.", "pleural effusion", "negated", "no"),
    ("Heart size normal without effusion.", "effusion", "negated", "without"),
    ("Negative for pneumothorax.", "pneumothorax", "negated", "negative for"),
    ("No evidence of focal consolidation.", "consolidation", "negated", "no evidence of"),
    ("Lungs are free of infiltrate.", "infiltrate", "negated", "free of"),
    ("Absence of pleural fluid.", "pleural fluid", "negated", "absence of"),
    ("The lungs are clear of focal airspace disease, pneumothorax, or pleural effusion.", "pleural effusion", "negated", "clear of"),
    ("Interval resolution of the left effusion.", "effusion", "negated", "interval resolution of"),
    ("No signs of pneumonia.", "pneumonia", "negated", "no signs of"),
    ("The heart is not enlarged.", "heart is not enlarged", "negated", "not"),
    # double statements: every item of the list is negated
    ("No pneumothorax or effusion.", "effusion", "negated", "no"),
    ("No focal consolidation, pleural effusion, or pneumothorax.", "pneumothorax", "negated", "no"),
    ("No acute cardiopulmonary disease.", "cardiopulmonary disease", "negated", "no"),
    # post-negation
    ("Pneumothorax is absent.", "pneumothorax", "negated", "is absent"),
    ("Pleural effusion not seen.", "pleural effusion", "negated", "not seen"),
    ("The previously seen effusion has resolved.", "effusion", "negated", "has resolved"),
    ("Nodules are not identified.", "nodules", "negated", "are not identified"),
    ("Pneumonia is ruled out.", "pneumonia", "negated", "is ruled out"),
    ("The pneumothorax is no longer seen.", "pneumothorax", "negated", "is no longer"),
    # pseudo-negations: the finding stays positive
    ("No change in the right pleural effusion.", "pleural effusion", "positive", None),
    ("No interval change in cardiomegaly.", "cardiomegaly", "positive", None),
    ("Not only atelectasis but also effusion.", "atelectasis", "positive", None),
    ("No increase in the size of the nodule.", "nodule", "positive", None),
    ("Effusion without change from prior.", "effusion", "positive", None),
    ("Gram negative pneumonia.", "pneumonia", "positive", None),
    ("No significant interval change in the left lower lobe opacity.", "opacity", "positive", None),
    # uncertainty (pre)
    ("This may represent atelectasis.", "atelectasis", "uncertain", "may represent"),
    ("Possible left lower lobe pneumonia.", "pneumonia", "uncertain", "possible"),
    ("Possibly early edema.", "edema", "uncertain", "possibly"),
    ("Cannot exclude pneumonia.", "pneumonia", "uncertain", "cannot exclude"),
    ("This could be atelectasis.", "atelectasis", "uncertain", "could be"),
    ("Opacity suggestive of pneumonia.", "pneumonia", "uncertain", "suggestive of"),
    ("Likely atelectasis.", "atelectasis", "uncertain", "likely"),
    ("Questionable small effusion.", "effusion", "uncertain", "questionable"),
    ("Concern for pneumonia.", "pneumonia", "uncertain", "concern for"),
    ("Suspicious for malignancy.", "malignancy", "uncertain", "suspicious for"),
    ("Differential includes pneumonia.", "pneumonia", "uncertain", "differential includes"),
    ("Probable scarring.", "scarring", "uncertain", "probable"),
    # uncertainty (post) and both sides
    ("Pneumonia cannot be excluded.", "pneumonia", "uncertain", "cannot be excluded"),
    ("Early pneumonia is not excluded.", "pneumonia", "uncertain", "is not excluded"),
    ("Atelectasis versus pneumonia.", "atelectasis", "uncertain", "versus"),
    ("Atelectasis versus pneumonia.", "pneumonia", "uncertain", "versus"),
    ("Atelectasis vs. pneumonia.", "pneumonia", "uncertain", "vs."),
    # terminators close the scope
    ("No effusion, but there is atelectasis.", "atelectasis", "positive", None),
    ("No pneumothorax; small left effusion.", "effusion", "positive", None),
    ("No focal consolidation however there is atelectasis.", "atelectasis", "positive", None),
    ("No effusion although atelectasis persists.", "atelectasis", "positive", None),
    ("No focal consolidation except for basilar atelectasis.", "atelectasis", "positive", None),
    ("No acute findings aside from mild cardiomegaly.", "cardiomegaly", "positive", None),
    ("No pneumothorax. Small effusion.", "effusion", "positive", None),
    ("No effusion and the heart is enlarged.", "heart is enlarged", "positive", None),
    ("Possible pneumonia, no effusion.", "effusion", "negated", "no"),
    ("Possible pneumonia, no effusion.", "pneumonia", "uncertain", "possible"),
    # continuation: "to suggest" carries an open negation
    ("No opacity is seen to suggest pneumonia.", "pneumonia", "negated", "to suggest"),
    # plain positives
    ("Small left pleural effusion.", "pleural effusion", "positive", None),
    ("Mild cardiomegaly.", "cardiomegaly", "positive", None),
]


@pytest.mark.parametrize("sentence,target,expected,trigger", CASES)
def test_known_answers(sentence, target, expected, trigger):
    got, trig = status(sentence, target)
    assert got == expected, (sentence, target, got, trig)
    if trigger is None:
        assert trig is None
    else:
        assert trig.lower() == trigger


def test_every_kind_has_a_known_answer():
    kinds_seen = {"pre_negation", "post_negation", "pseudo", "pre_uncertain", "post_uncertain", "bi_uncertain", "terminator", "continuation", "pre_terminator"}
    assert kinds_seen == set(KINDS) == set(DEFAULT_TRIGGERS)


def test_scopes_structure_and_offsets():
    text = "No pneumothorax. Possible effusion."
    scopes = NegationDetector().scopes(text)
    assert [s["kind"] for s in scopes] == ["negated", "uncertain"]
    for s in scopes:
        assert set(s) == {"kind", "trigger", "trigger_start", "trigger_end", "start", "end", "direction"}
        assert text[s["trigger_start"] : s["trigger_end"]] == s["trigger"]
    assert text[scopes[0]["start"] : scopes[0]["end"]].strip() == "pneumothorax"
    assert text[scopes[1]["start"] : scopes[1]["end"]].strip() == "effusion."[:-1]


def test_find_negations_public_name():
    assert radmine.find_negations is find_negations
    out = radmine.find_negations("Pleural effusion is not seen.")
    assert out[0]["kind"] == "negated" and out[0]["direction"] == "post"
    assert find_negations("Stable cardiomegaly.") == []


def test_case_and_non_ascii_text():
    assert status("NO PNEUMOTHORAX.", "pneumothorax")[0] == "negated"
    assert status("Kein Befund — no effusion.", "effusion")[0] == "negated"


def test_extra_and_removed_triggers():
    det = NegationDetector(extra_triggers={"pre_negation": ["no sonographic evidence of"], "pseudo": ["not limited to"]})
    assert status("No sonographic evidence of effusion.", "effusion", det) == ("negated", "No sonographic evidence of")
    assert status("Findings include but not limited to effusion.", "effusion", det)[0] == "positive"
    det2 = NegationDetector(remove_triggers=["likely"])
    assert status("Likely atelectasis.", "atelectasis", det2)[0] == "positive"
    assert "likely" not in det2.triggers["pre_uncertain"]


def test_regex_trigger():
    det = NegationDetector(extra_triggers={"pre_negation": ["re:ohne\\s+hinweis\\s+auf"]})
    assert status("Ohne Hinweis auf Erguss.", "Erguss", det)[0] == "negated"


def test_max_scope_words():
    text = "No focal consolidation in the left or right lower lobes or effusion."
    assert status(text, "effusion")[0] == "negated"
    assert status(text, "effusion", NegationDetector(max_scope_words=3))[0] == "positive"


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown kind 'prenegation'"):
        NegationDetector(extra_triggers={"prenegation": ["nope"]}).scopes("x")
    with pytest.raises(TypeError, match="must be a list of non-empty strings"):
        NegationDetector(extra_triggers={"pre_negation": "no"}).scopes("x")
    with pytest.raises(TypeError, match="mapping kind -> list"):
        NegationDetector(extra_triggers=["no"]).scopes("x")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        NegationDetector(extra_triggers={"pre_negation": ["re:(unclosed"]}).scopes("x")
    with pytest.raises(ValueError, match="max_scope_words"):
        NegationDetector(max_scope_words=0).scopes("x")
    with pytest.raises(TypeError, match="text must be a str"):
        NegationDetector().scopes(None)
    with pytest.raises(ValueError, match="outside the text"):
        NegationDetector().classify("No effusion.", 3, 99)


def test_trie_regex_longest_first():
    import re

    pat = re.compile(r"(?:" + trie_regex(["no", "no evidence of", "not", "none"]) + r")\b")
    assert pat.match("no evidence of x").group() == "no evidence of"
    assert pat.match("none").group() == "none"
    assert pat.match("not here").group() == "not"
    assert trie_regex([]) == ""


def test_repr():
    assert "NegationDetector(" in repr(NegationDetector())
