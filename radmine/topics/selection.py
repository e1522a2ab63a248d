"""Choosing the number of topics: held-out perplexity and coherence over a range of K.

Shin et al. picked 80 document-level topics by held-out perplexity;
:func:`select_n_topics` fits one :class:`~radmine.topics.model.TopicModel`
per K on a training part, scores held-out documents (perplexity) and the
topics' coherence (c_v, c_npmi; gensim ``CoherenceModel`` over the training
texts) and returns a table; plot it with
:func:`radmine.plotting.topics.selection_curve`.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from radmine._validation import check_int, check_option

logger = logging.getLogger(__name__)

MEASURES = ("perplexity", "c_v", "c_npmi", "u_mass")

#: The K tried by default: :func:`select_n_topics` and ``radmine mine`` (``[topics] candidates``;
#: a test keeps the two equal). Measured c_npmi of the defaults on Open-i: docs/topics.md, "Choosing K".
N_TOPICS_CANDIDATES = (5, 10, 20)


def _holdout_mask(X: Any, docs: pd.DataFrame, holdout: float, random_state: int | None) -> np.ndarray:
    """True for held-out documents; a Corpus is split by patient (never a patient on both sides)."""
    from radmine.corpus import Corpus

    rng = np.random.default_rng(random_state)
    if isinstance(X, Corpus) and "patient_id" in X.reports.columns:
        patient = dict(zip(X.reports["report_id"], X.reports["patient_id"].astype(str)))
        groups = docs["report_id"].map(patient).fillna(docs["report_id"].astype(str)).to_numpy()
    else:
        groups = docs["report_id"].astype(str).to_numpy()
    uniq = np.unique(groups)
    n_out = int(round(holdout * len(uniq)))
    out = set(uniq[rng.permutation(len(uniq))[:n_out]])
    return np.array([g in out for g in groups])


def select_n_topics(
    X: Any,
    n_topics: Sequence[int] = N_TOPICS_CANDIDATES,
    *,
    dev_fraction: float = 0.2,
    holdout: float | None = None,
    random_state: int | None = 0,
    measures: Sequence[str] = ("perplexity", "c_v", "c_npmi"),
    progress: bool = False,
    **model_params: Any,
) -> pd.DataFrame:
    """Fit a TopicModel per K and score it.

    Parameters
    ----------
    X : Corpus or list/Series of str
    n_topics : sequence of int, default :data:`N_TOPICS_CANDIDATES` (5, 10, 20)
        Values of K to try.
    dev_fraction : float, default 0.2
        Fraction of documents held out for perplexity (a Corpus is split by
        ``patient_id``). Phrases and vocabulary are learned on the training
        part only. ``holdout=`` is a deprecated alias (``FutureWarning``).
    random_state : int, default 0
        Seed of the split and of every model.
    measures : subset of {"perplexity", "c_v", "c_npmi", "u_mass"}
    **model_params
        Passed to :class:`~radmine.topics.model.TopicModel` (``unit``,
        ``backend``, ``mark_negation``, ...).

    Returns
    -------
    DataFrame
        ``n_topics, perplexity, c_v, c_npmi, fit_seconds`` (one row per K;
        a measure not asked for is NaN). Perplexity is per-word document
        completion perplexity on the held-out documents (lower is better);
        coherences are means over topics of the top-10 words (higher is better).
    """
    from radmine.topics.model import TopicModel, completion_perplexity, topic_coherence

    owner = "select_n_topics"
    if isinstance(n_topics, (int, np.integer)):
        n_topics = [int(n_topics)]
    ks = [check_int(k, "n_topics", owner, min_value=1) for k in n_topics]
    if not ks:
        raise ValueError("select_n_topics: 'n_topics' must list at least one K; got an empty sequence.")
    for m in measures:
        check_option(m, "measures", owner, MEASURES)
    if holdout is not None:
        warnings.warn("select_n_topics: the 'holdout' keyword is deprecated; use 'dev_fraction' (same values).",
                      FutureWarning, stacklevel=2)
        dev_fraction = holdout
    if isinstance(dev_fraction, bool) or not isinstance(dev_fraction, (int, float)) or not 0 < dev_fraction < 1:
        raise ValueError(f"select_n_topics: 'dev_fraction' must be a float in (0, 1); got {dev_fraction!r}.")
    model_params.pop("n_topics", None)
    model_params["random_state"] = random_state
    base = TopicModel(ks[0], **model_params)
    base.check_params()
    docs = base.make_documents(X)
    test = _holdout_mask(X, docs, dev_fraction, random_state)
    if test.all() or not test.any():
        raise ValueError(f"select_n_topics: dev_fraction={dev_fraction} leaves no training or no held-out documents ({len(docs)} in all).")
    pre = base.make_preprocessor()
    train_docs = docs[~test].reset_index(drop=True)
    tokens = pre.fit_transform(train_docs["text"])
    test_tokens = pre.transform(docs.loc[test, "text"])
    rows = []
    it = ks
    if progress:
        from radmine._progress import tqdm

        it = tqdm(ks, desc="select_n_topics")
    for k in it:
        tm = TopicModel(k, **model_params)
        t0 = time.perf_counter()
        tm.fit_tokens(tokens, train_docs.drop(columns="text"), pre)
        secs = time.perf_counter() - t0
        row: dict[str, Any] = {"n_topics": k, "perplexity": np.nan, "c_v": np.nan, "c_npmi": np.nan}
        if "perplexity" in measures:
            row["perplexity"] = completion_perplexity(tm.topic_word_, tm.bag_of_words(test_tokens), tm.alpha_, random_state=random_state or 0)
        tops = [tm.top_words(t, 10)[0] for t in range(tm.n_topics_)]
        for m in ("c_v", "c_npmi", "u_mass"):
            if m in measures:
                row[m] = topic_coherence(tops, tm.train_tokens_, tm.vocabulary_.dictionary_, m)
        row["fit_seconds"] = secs
        rows.append(row)
        logger.info("select_n_topics: K=%d fitted in %.1fs", k, secs)
    cols = ["n_topics", "perplexity", "c_v", "c_npmi"] + (["u_mass"] if "u_mass" in measures else []) + ["fit_seconds"]
    return pd.DataFrame(rows)[cols]
