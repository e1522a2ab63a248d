"""Topic fitting that streams the corpus from Dask shards, and the topic functions of one partition.

:func:`fit_topics_streaming` never holds all reports (or all bags of words) in
one process; it builds a :class:`~radmine.topics.model.TopicModel` through its
public core (:meth:`~radmine.topics.model.TopicModel.check_params`,
:meth:`~radmine.topics.model.TopicModel.from_arrays`,
:meth:`~radmine.topics.model.TopicModel.transform_tokens`), so the result
transforms, inspects and saves like a model from ``fit``. The ``*_partition``
functions are pandas functions of one partition: :mod:`radmine.distributed`
maps them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from radmine._validation import check_int
from radmine.base import seed_int
from radmine.distributed.client import DEFAULT_PARTITION_SIZE, current_client, from_pandas, iter_computed, shared
from radmine.topics.io import report_texts, sentence_documents
from radmine.topics.model import TopicModel
from radmine.topics.preprocess import Preprocessor, Vocabulary

logger = logging.getLogger(__name__)

__all__ = ["bow_partition", "count_partition", "document_info_partition", "document_texts", "documents_partition",
           "fit_topics_streaming", "topic_partition", "vocabulary_from_counts"]


def topic_partition(part: Any, model: Any, sections: Any) -> pd.DataFrame:
    """:meth:`TopicModel.transform` of one partition of reports (or a Series of texts) as a table.

    Returns ``report_id`` (``doc_id`` for a Series) then ``topic_0 .. topic_{k-1}``.
    """
    texts = document_texts(part, sections)
    k = model.n_topics_
    cols = [f"topic_{t}" for t in range(k)]
    if len(texts):
        theta = model.transform(texts)
    else:
        theta = np.zeros((0, k))
    out = pd.DataFrame(theta, columns=cols)
    out.insert(0, "report_id" if not isinstance(part, pd.Series) else "doc_id", texts.index.to_numpy())
    if not isinstance(part, pd.Series):
        out["report_id"] = out["report_id"].astype(part["report_id"].dtype)
    return out


def document_texts(part: Any, sections: Any, unit: str = "report") -> pd.Series:
    """The topic-model documents of one partition (texts indexed by ``doc_id``)."""
    docs = documents_partition(part, sections, unit)
    return pd.Series(docs["text"].to_numpy(), index=docs["doc_id"].to_numpy(), dtype=object)


def documents_partition(part: Any, sections: Any, unit: str = "report") -> pd.DataFrame:
    """``doc_id, report_id, sentence_id, text`` of one partition.

    ``unit="report"``: one document per report (its ``sections``);
    ``unit="sentence"``: one document per sentence in ``sections`` (as
    :class:`radmine.TopicModel` builds them for a corpus without links).
    A Series partition is taken as the documents themselves.
    """
    if isinstance(part, pd.Series):
        ids = part.index.to_numpy()
        return pd.DataFrame({"doc_id": ids, "report_id": ids, "sentence_id": -1, "text": part.to_numpy()})
    if not len(part):
        return pd.DataFrame({"doc_id": [], "report_id": [], "sentence_id": pd.Series([], dtype=np.int64), "text": []})
    if unit == "sentence":
        return sentence_documents(SimpleNamespace(sentences=None, reports=part), sections)
    ids = part["report_id"].to_numpy()
    return pd.DataFrame({"doc_id": ids, "report_id": ids, "sentence_id": -1, "text": report_texts(part, sections).to_numpy()})


def count_partition(part: Any, pre: Any, sections: Any, unit: str = "report") -> tuple[dict, dict, int]:
    """Document and collection frequencies of the tokens of one partition."""
    texts = document_texts(part, sections, unit)
    dfs: Counter = Counter()
    cfs: Counter = Counter()
    if len(texts):
        for toks in pre.transform(texts.tolist()):
            cfs.update(toks)
            dfs.update(set(toks))
    return dict(dfs), dict(cfs), len(texts)


def bow_partition(part: Any, pre: Any, vocab: Any, sections: Any, min_doc_terms: int, unit: str = "report") -> list:
    """gensim bags of words of the training documents (>= ``min_doc_terms`` terms) of one partition."""
    texts = document_texts(part, sections, unit)
    if not len(texts):
        return []
    kept = vocab.filter_docs(pre.transform(texts.tolist()))
    floor = max(min_doc_terms, 1)
    return [vocab.doc2bow(t) for t in kept if len(t) >= floor]


def document_info_partition(part: Any, model: Any, sections: Any, min_doc_terms: int, unit: str = "report") -> pd.DataFrame:
    """:meth:`TopicModel.get_document_info` rows of the documents of one partition."""
    docs = documents_partition(part, sections, unit)
    texts = docs["text"].tolist()
    tokens = model.preprocessor_.transform(texts) if texts else []
    kept = model.vocabulary_.filter_docs(tokens)
    n_terms = np.array([len(t) for t in kept], dtype=np.int64)
    theta = model.transform_tokens(kept) if len(kept) else np.zeros((0, model.n_topics_))
    empty = n_terms == 0
    return pd.DataFrame(
        {
            "doc_id": docs["doc_id"].to_numpy(),
            "report_id": docs["report_id"].to_numpy(),
            "sentence_id": docs["sentence_id"].to_numpy().astype(np.int64),
            "n_terms": n_terms,
            "in_training": n_terms >= max(min_doc_terms, 1),
            "dominant_topic": np.where(empty, -1, theta.argmax(axis=1) if len(theta) else 0).astype(int),
            "probability": np.where(empty, np.nan, theta.max(axis=1) if len(theta) else 0.0),
        }
    )


def vocabulary_from_counts(dfs: Counter, cfs: Counter, num_docs: int, min_df: int, drop_top: int, max_df: float):
    """A radmine Vocabulary from merged frequencies, with the filters of ``Vocabulary.fit``."""
    limit = max_df * num_docs
    keep = {w: d for w, d in dfs.items() if d >= min_df and d <= limit}
    top = sorted(keep.items(), key=lambda kv: (-kv[1], kv[0]))[:drop_top] if drop_top else []
    for w, _ in top:
        keep.pop(w)
    if not keep:
        raise ValueError(
            f"fit_topics_streaming: no term is left after the filters (min_df={min_df}, drop_top={drop_top}) "
            f"over {num_docs} document(s); use fewer filters or more documents."
        )
    words = sorted(keep)
    return Vocabulary.from_dict(
        {"min_df": min_df, "drop_top": drop_top, "max_df": max_df, "words": words,
         "dfs": [int(keep[w]) for w in words], "cfs": [int(cfs.get(w, 0)) for w in words],
         "num_docs": int(num_docs), "dropped_top": [w for w, _ in top]}
    )


def fit_topics_streaming(
    source: Any,
    n_topics: int = 20,
    *,
    unit: str = "report",
    sections: tuple[str, ...] | None = ("findings", "impression"),
    alpha: float = 0.01,
    eta: float = 0.01,
    passes: int = 1,
    iterations: int | None = None,
    chunksize: int = 2000,
    update_every: int = 1,
    decay: float = 0.5,
    offset: float = 1.0,
    min_df: int = 3,
    drop_top: int = 10,
    max_df: float = 1.0,
    min_doc_terms: int = 5,
    min_chars: int = 3,
    phrases: bool = True,
    mark_negation: bool = False,
    phrase_sample: int = 20000,
    max_in_flight: int = 2,
    document_info: bool = True,
    client: Any = None,
    random_state: int | None = None,
    progress: bool = False,
):
    """Fit a :class:`radmine.TopicModel` by streaming reports from shards (gensim online LDA).

    Never holds all reports (or all bags of words) in one process:

    1. *phrases* -- learned on the client from the first ``phrase_sample``
       documents (a sample; the full-corpus fit learns them from all);
    2. *dictionary* (distributed) -- each worker tokenises its partitions and
       returns their document/collection frequencies; the client merges these
       counters and applies the vocabulary filters (``min_df``, ``drop_top``,
       ``max_df``) exactly like :class:`radmine.topics.preprocess.Vocabulary`;
    3. *LDA* -- workers tokenise partitions into bags of words (distributed),
       the client feeds them in order to ``gensim.models.LdaModel.update``
       (online variational Bayes, Hoffman et al. 2010; ``chunksize``,
       ``update_every``, ``decay``, ``offset``); at most ``max_in_flight``
       partitions are computed ahead. ``passes`` repeats this over all shards;
    4. *document info* (distributed, optional) -- the dominant topic of every
       document, for ``get_topic_info()`` sizes and ``get_document_info()``.

    gensim's own distributed LDA (Pyro4 dispatcher) is not used.

    Parameters
    ----------
    source : str, list of paths, dask DataFrame or dask Series
        Shards read with :func:`read_reports_sharded`, a reports Dask
        DataFrame (one document per report: its ``sections``) or a Dask
        Series of texts.
    n_topics : int, default 20
    unit : {"report", "sentence"}, default "report"
        ``"report"``: one document per report (its ``sections``);
        ``"sentence"``: one document per sentence of those sections, split by
        the workers (``radmine.sentence_table``); ``doc_id`` is
        ``"<report_id>:<sentence_id>"`` as in the in-memory fit of a corpus
        without key-image links.
    sections, alpha, eta, iterations, min_df, drop_top, min_doc_terms, min_chars, phrases, mark_negation
        As for :class:`radmine.TopicModel`.
    passes : int, default 1
        Passes over all shards.
    chunksize, update_every, decay, offset
        gensim online LDA settings (documents per mini-batch; mini-batches
        per M-step; learning-rate decay and offset).
    max_df : float, default 1.0
    phrase_sample : int, default 20000
        Documents used to learn phrases.
    max_in_flight : int, default 2
        Partitions computed ahead of the LDA update (bounds client memory).
    document_info : bool, default True
        Compute every document's dominant topic at the end (one extra pass).
    client : distributed.Client, optional
        Default: the current client, if any, else Dask's local scheduler.
    random_state : int, optional
    progress : bool, default False

    Returns
    -------
    TopicModel
        Fitted (``components_``, ``alpha_``, ``preprocessor_``,
        ``vocabulary_``, ``documents_``); ``transform``, ``get_topic_info``,
        ``save``/``load`` work as for a model fitted in memory.
    """
    import dask
    import dask.dataframe as dd
    from gensim.models import LdaModel

    t0 = time.perf_counter()
    template = TopicModel(
        n_topics, unit=unit, alpha=alpha, eta=eta, passes=passes, iterations=iterations, min_df=min_df,
        min_chars=min_chars, drop_top=drop_top, min_doc_terms=min_doc_terms, phrases=phrases,
        mark_negation=mark_negation, sections=sections, random_state=random_state,
    )
    template.check_params()
    chunksize = check_int(chunksize, "chunksize", "fit_topics_streaming", min_value=1)
    update_every = check_int(update_every, "update_every", "fit_topics_streaming", min_value=0)
    max_in_flight = check_int(max_in_flight, "max_in_flight", "fit_topics_streaming", min_value=1)
    phrase_sample = check_int(phrase_sample, "phrase_sample", "fit_topics_streaming", min_value=1)
    if client is None:
        client = current_client()
    if isinstance(source, (dd.DataFrame, dd.Series)):
        ddf = source
    elif isinstance(source, (pd.DataFrame, pd.Series)):
        ddf = from_pandas(source) if isinstance(source, pd.DataFrame) else dd.from_pandas(source, chunksize=DEFAULT_PARTITION_SIZE, sort=False)
    else:
        from radmine.distributed.io import read_reports_sharded

        ddf = read_reports_sharded(source)
    parts = ddf.to_delayed()
    bar_desc = "streaming LDA"

    # 1. phrases on a sample
    pre = Preprocessor(min_chars=min_chars, mark_negation=mark_negation, phrases=phrases)
    if phrases:
        sample: list[str] = []
        for p in iter_computed(parts, client, max_in_flight):
            sample.extend(document_texts(p, sections, unit).tolist())
            if len(sample) >= phrase_sample:
                break
        pre.fit(sample[:phrase_sample])
    else:
        pre.fit([])  # phrases=False: no phrases to learn
    shared_pre = shared(pre)

    # 2. dictionary from merged per-partition frequencies
    dfs: Counter = Counter()
    cfs: Counter = Counter()
    num_docs = 0
    count_tasks = [dask.delayed(count_partition, pure=True)(p, shared_pre, sections, unit) for p in parts]
    for d, c, n in iter_computed(count_tasks, client, max(max_in_flight, 4)):
        dfs.update(d)
        cfs.update(c)
        num_docs += n
    vocab = vocabulary_from_counts(dfs, cfs, num_docs, min_df, drop_top, max_df)
    del dfs, cfs
    logger.info("fit_topics_streaming: %d documents, %d terms, %d partitions", num_docs, len(vocab), len(parts))

    # 3. online LDA on the client
    seed = seed_int(random_state)
    lda = LdaModel(
        id2word=vocab.dictionary_, num_topics=n_topics, alpha=np.full(n_topics, float(alpha)), eta=float(eta),
        iterations=50 if iterations is None else iterations, random_state=seed, eval_every=None,
        chunksize=chunksize, update_every=update_every, decay=decay, offset=offset, dtype=np.float32,
    )
    shared_vocab = shared(vocab)
    n_train = 0
    bar = None
    if progress:
        from radmine._progress import tqdm

        bar = tqdm(total=passes * len(parts), desc=bar_desc, unit="partition")
    try:
        for _ in range(passes):
            bow_tasks = [dask.delayed(bow_partition, pure=True)(p, shared_pre, shared_vocab, sections, min_doc_terms, unit) for p in parts]
            for bows in iter_computed(bow_tasks, client, max_in_flight):
                if bows:
                    lda.update(bows, chunksize=chunksize, update_every=update_every, decay=decay, offset=offset)
                    n_train += len(bows)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if n_train == 0:
        raise ValueError(
            f"fit_topics_streaming: no document has >= min_doc_terms={min_doc_terms} in-vocabulary terms "
            f"({num_docs} documents, {len(vocab)} terms); lower min_doc_terms/min_df or pass more text."
        )

    # 4. fitted state, ordered like TopicModel.fit (largest topic first)
    model = TopicModel.from_arrays(
        np.asarray(lda.state.get_lambda(), dtype=np.float64), np.asarray(lda.alpha, dtype=np.float64), vocab, pre,
        **template.get_params(),
    )
    cols = ["doc_id", "report_id", "sentence_id", "n_terms", "in_training", "dominant_topic", "probability"]
    if document_info:
        light = shared(model.without_documents())
        info_tasks = [dask.delayed(document_info_partition, pure=True)(p, light, sections, min_doc_terms, unit) for p in parts]
        frames = list(iter_computed(info_tasks, client, max(max_in_flight, 4)))
        info = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
        model.set_document_info(info)
    else:
        model.set_document_info(pd.DataFrame({c: pd.Series(dtype=object) for c in cols[:5]}))
    model.fit_seconds_ = time.perf_counter() - t0
    model.n_train_documents_ = n_train
    return model
