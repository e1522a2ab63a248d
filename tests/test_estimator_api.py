"""The same scikit-learn API checks over every radmine estimator.

In the spirit of scikit-learn's ``parametrize_with_checks``: each estimator is on
:class:`radmine.base.BaseEstimator`, ``__init__`` only stores its parameters,
``clone`` / ``get_params`` / ``set_params`` round-trip, the repr is radmine's
short summary, and methods that need a fitted model raise ``NotFittedError``
before ``fit``. A walk over the source finds every class with a ``fit`` method,
so a new estimator cannot skip these checks.
"""

from __future__ import annotations

import ast
import inspect
import pathlib

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import radmine
from radmine.base import BaseEstimator, derived_seed, seed_int
from radmine.cluster.loop import FeatureReducer
from radmine.images.index import ImageIndex
from radmine.img2text.model import ImageTextEnsemble
from radmine.img2text.text_encoders import TransformersTextEncoder, Word2VecTextEncoder
from radmine.text.negation import NegationDetector
from radmine.topics.preprocess import Preprocessor
from radmine.topics.preprocess import Vocabulary as TermVocabulary

FEATURES = np.zeros((2, 8), dtype=np.float32)

# estimator class -> a call that needs a fitted model (None: usable before fit by design)
ESTIMATORS = {
    radmine.TopicModel: lambda e: e.transform(["no pleural effusion"]),
    radmine.HierarchicalTopicModel: lambda e: e.transform(["no pleural effusion"]),
    radmine.WeakLabeler: lambda e: e.transform(["FINDINGS: No pneumothorax."]),
    radmine.ImageEmbedder: None,  # fit() only loads the pretrained backbone: transform loads it itself
    radmine.JointClusterer: lambda e: e.predict(image_features=FEATURES),
    radmine.ImageTextModel: lambda e: e.encode_texts(["no effusion"]),
    ImageTextEnsemble: None,  # holds already fitted models; nothing of its own to learn
    radmine.TopicImageClassifier: lambda e: e.predict(image_features=FEATURES),
    radmine.AnnotationGenerator: lambda e: e.generate(image_features=FEATURES),
    Word2VecTextEncoder: lambda e: e.transform(["no effusion"]),
    TransformersTextEncoder: lambda e: e.transform(["no effusion"]),
    ImageIndex: lambda e: e.search(FEATURES),
    NegationDetector: None,  # rules only, nothing to learn
    FeatureReducer: lambda e: e.transform(FEATURES),
    Preprocessor: lambda e: e.transform(["no effusion"]),
    TermVocabulary: lambda e: e.filter_docs([["effusion"]]),
}

#: the arguments an estimator needs to be constructed at all (everything else: defaults)
REQUIRED = {ImageTextEnsemble: {"models": []}}


def _make(cls):
    return cls(**REQUIRED.get(cls, {}))


def _param_names(cls) -> list[str]:
    return [n for n, p in inspect.signature(cls.__init__).parameters.items()
            if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]


def _ids(classes):
    return [c.__name__ for c in classes]


def test_every_class_with_fit_is_checked_here():
    """A walk of the source: every class that defines ``fit`` is in ESTIMATORS."""
    root = pathlib.Path(radmine.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and any(
                    isinstance(f, ast.FunctionDef) and f.name == "fit" for f in node.body):
                module = path.relative_to(root.parent).with_suffix("").as_posix().replace("/", ".")
                found.add(f"{module.removesuffix('.__init__')}.{node.name}")
    checked = {f"{c.__module__}.{c.__name__}" for c in ESTIMATORS}
    assert found - checked == set(), "estimators without API checks"


@pytest.mark.parametrize("cls", list(ESTIMATORS), ids=_ids(ESTIMATORS))
def test_on_the_shared_base(cls):
    assert issubclass(cls, BaseEstimator)


@pytest.mark.parametrize("cls", list(ESTIMATORS), ids=_ids(ESTIMATORS))
def test_init_only_stores_parameters(cls):
    names = _param_names(cls)
    est = _make(cls)
    assert set(vars(est)) == set(names)
    # each parameter stored unchanged (the same object), nothing validated in __init__
    sentinels = {n: object() for n in names}
    est = cls(**sentinels)
    for n, v in sentinels.items():
        assert getattr(est, n) is v, n


@pytest.mark.parametrize("cls", list(ESTIMATORS), ids=_ids(ESTIMATORS))
def test_clone_and_params_round_trip(cls):
    est = _make(cls)
    params = est.get_params(deep=False)
    assert sorted(params) == sorted(_param_names(cls))
    twin = clone(est)
    assert type(twin) is cls and twin is not est
    assert repr(twin.get_params(deep=False)) == repr(params)
    assert est.set_params(**params) is est
    assert repr(est.get_params(deep=False)) == repr(params)
    deep = est.get_params(deep=True)
    assert set(params) <= set(deep)
    with pytest.raises(ValueError, match="Invalid parameter 'no_such_parameter'"):
        est.set_params(no_such_parameter=1)


@pytest.mark.parametrize("cls", list(ESTIMATORS), ids=_ids(ESTIMATORS))
def test_repr_is_the_short_summary(cls):
    est = _make(cls)
    text = repr(est)
    assert text.startswith(f"{cls.__name__}(") and "\n" not in text
    html = est._repr_html_()
    assert cls.__name__ in html and "<table" in html
    bundle = est._repr_mimebundle_()
    assert bundle["text/plain"] == text and bundle["text/html"] == html
    assert "get_params" in dir(est)  # tab completion before fit: no property raises


@pytest.mark.parametrize("cls", [c for c, call in ESTIMATORS.items() if call is not None],
                         ids=_ids([c for c, call in ESTIMATORS.items() if call is not None]))
def test_unfitted_estimator_raises_not_fitted(cls):
    est = _make(cls)
    # an ImageIndex "is empty" until vectors are added
    with pytest.raises(NotFittedError, match="not fitted|is empty"):
        ESTIMATORS[cls](est)


def test_clone_of_a_fitted_estimator_drops_the_fitted_state():
    lab = radmine.WeakLabeler("chest_xray", uncertain_blocks_normal=True).fit()
    twin = clone(lab)
    assert twin.uncertain_blocks_normal is True and not hasattr(twin, "labels_")


def test_nested_parameters_are_reachable_with_double_underscores():
    lab = radmine.WeakLabeler("chest_xray", negation=NegationDetector(max_scope_words=4))
    assert lab.get_params(deep=True)["negation__max_scope_words"] == 4
    lab.set_params(negation__max_scope_words=6)
    assert lab.negation.max_scope_words == 6


REPORTS = [
    "FINDINGS: Small left pleural effusion. IMPRESSION: Pleural effusion.",
    "FINDINGS: Moderate right pleural effusion with atelectasis.",
    "FINDINGS: Bilateral pleural effusions are present.",
    "FINDINGS: Loculated pleural effusion on the left.",
    "FINDINGS: No pneumothorax. Heart size is normal. Lungs are clear.",
    "FINDINGS: No pleural effusion or pneumothorax. Clear lungs.",
    "FINDINGS: Normal heart size. No focal consolidation.",
    "FINDINGS: No acute cardiopulmonary abnormality.",
]
HAS_EFFUSION = np.array([1, 1, 1, 1, 0, 0, 0, 0])


def test_weak_labels_in_a_pipeline_with_cross_val_score():
    """The issue's failing call: WeakLabeler as a scikit-learn Pipeline step under cross-validation."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(radmine.WeakLabeler("chest_xray"),
                         SimpleImputer(strategy="constant", fill_value=0, keep_empty_features=True),
                         LogisticRegression())
    scores = cross_val_score(pipe, REPORTS, HAS_EFFUSION, cv=2)
    # the pleural_effusion weak label separates the two groups exactly
    assert scores.tolist() == [1.0, 1.0]


def test_topic_model_in_a_grid_search():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("topics", radmine.TopicModel(2, min_df=1, min_doc_terms=1, max_df=1.0, sections=None,
                                                   iterations=50, random_state=0)),
                     ("clf", LogisticRegression())])
    search = GridSearchCV(pipe, {"topics__n_topics": [2, 3]}, cv=2).fit(REPORTS, HAS_EFFUSION)
    assert search.best_params_["topics__n_topics"] in (2, 3)
    assert search.best_estimator_.named_steps["topics"].components_.shape[0] == search.best_params_["topics__n_topics"]


def test_random_state_helpers():
    assert seed_int(None) is None and seed_int(np.int64(7)) == 7
    assert seed_int(np.random.default_rng(0)) == seed_int(np.random.default_rng(0))
    with pytest.raises(TypeError, match="random_state must be None, an int or a numpy Generator; got str"):
        seed_int("7")
    assert derived_seed(None, 5) == derived_seed(0, 5) == 5
    assert derived_seed(3, 1) == 3 * 1_000_003 + 1 and derived_seed(3, 1) != derived_seed(3, 2)
