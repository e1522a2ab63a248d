"""select_n_topics and the topic plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.plotting import topics as tplot

BLOCKS = [
    "cardiomegaly enlarged ventricle atrium cardiac silhouette pericardial aortic".split(),
    "fracture clavicle humerus vertebra scoliosis osteophyte kyphosis sternum".split(),
    "catheter pacemaker wire port picc drain stent tracheostomy".split(),
    "nodule mass granuloma calcified opacity consolidation pneumonia infiltrate".split(),
]
FAST = dict(min_df=2, drop_top=0, min_doc_terms=3, phrases=False, backend="tomotopy", iterations=200)


def block_texts(n_per=25, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(w, size=20)) for w in BLOCKS for _ in range(n_per)]


@pytest.fixture(scope="module")
def table():
    return radmine.select_n_topics(block_texts(), n_topics=(2, 4, 8), random_state=0, **FAST)


def test_select_table(table):
    assert list(table.columns) == ["n_topics", "perplexity", "c_v", "c_npmi", "fit_seconds"]
    assert table["n_topics"].tolist() == [2, 4, 8]
    assert np.isfinite(table[["perplexity", "c_v", "c_npmi", "fit_seconds"]].to_numpy()).all()
    # the true K (4 blocks) explains held-out words better than too few topics
    ppl = table.set_index("n_topics")["perplexity"]
    assert ppl[4] < ppl[2]
    assert table.set_index("n_topics")["c_npmi"][4] > table.set_index("n_topics")["c_npmi"][2]


def test_select_measures_subset_and_errors():
    texts = block_texts(10)
    t = radmine.select_n_topics(texts, n_topics=3, measures=("perplexity",), **FAST)
    assert t["c_v"].isna().all() and t["perplexity"].notna().all()
    with pytest.raises(ValueError, match="'measures'"):
        radmine.select_n_topics(texts, measures=("bleu",))
    with pytest.raises(ValueError, match="'dev_fraction' must be a float in"):
        radmine.select_n_topics(texts, dev_fraction=1.5)
    with pytest.warns(FutureWarning, match="'holdout' keyword is deprecated; use 'dev_fraction'"), \
            pytest.raises(ValueError, match="'dev_fraction' must be a float in"):
        radmine.select_n_topics(texts, holdout=1.5)
    with pytest.raises(ValueError, match="at least one K"):
        radmine.select_n_topics(texts, n_topics=())
    with pytest.raises(TypeError, match="'n_topics'"):
        radmine.select_n_topics(texts, n_topics=("ten",))


def test_corpus_holdout_keeps_patients_together():
    from radmine.topics.io import documents
    from radmine.topics.selection import _holdout_mask

    texts = block_texts(10)
    n = len(texts)
    reports = pd.DataFrame({"report_id": [f"r{i}" for i in range(n)], "patient_id": [f"p{i // 4}" for i in range(n)],
                            "study_id": "s", "modality": "CR", "text": texts})
    corpus = radmine.Corpus(reports)
    docs = documents(corpus, sections=None)
    mask = _holdout_mask(corpus, docs, 0.3, 0)
    by_patient = pd.Series(mask).groupby(reports["patient_id"]).nunique()
    assert (by_patient == 1).all() and 0 < mask.mean() < 1


def test_plots(table):
    from matplotlib.figure import Figure

    fig = tplot.selection_curve(table)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    with pytest.raises(ValueError, match="n_topics"):
        tplot.selection_curve(pd.DataFrame({"x": [1]}))
    tm = radmine.TopicModel(4, random_state=0, **FAST).fit(block_texts())
    fig = tplot.barchart(tm, n_words=5)
    assert isinstance(fig, Figure) and sum(ax.get_visible() for ax in fig.axes) == 4
    fig = tplot.barchart(tm, topics=[0, 2], n_words=3)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == tm.get_topic(0, 3)["word"].tolist()
    with pytest.raises(KeyError, match="Unknown topic"):
        tplot.barchart(tm, topics=[9])


def test_default_candidates_are_minings():
    """One rule for K: select_n_topics' default candidates are `radmine mine`'s [topics] candidates."""
    import inspect

    from radmine.pipeline.config import default_config
    from radmine.topics.selection import N_TOPICS_CANDIDATES, select_n_topics

    assert inspect.signature(select_n_topics).parameters["n_topics"].default == N_TOPICS_CANDIDATES
    assert list(N_TOPICS_CANDIDATES) == default_config()["topics"]["candidates"]
