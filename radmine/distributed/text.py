"""Report pipelines on Dask: each maps the pipeline's own public function of one partition.

================================  =============================================  ==================================
Dask function                     pandas function of one partition               output (one row per)
================================  =============================================  ==================================
:func:`sentences`                 :func:`radmine.sentence_table`                 sentence
:func:`references`                :func:`radmine.text.references.reference_table`  cited image (per sentence)
:func:`negations`                 :func:`radmine.text.negation.negation_table`   negation / uncertainty scope
:func:`links`                     :func:`radmine.linking.link_partition`         link (``corpus.links`` rows)
:func:`label_reports`             :func:`radmine.labels.labeler.label_partition`  report (index ``report_id``)
:func:`topic_transform`           :func:`radmine.topics.streaming.topic_partition`  report (``report_id, topic_0..``)
================================  =============================================  ==================================

Concatenated in partition order, each result equals the pandas function on
the whole table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from radmine._validation import check_columns, check_int, check_is_fitted, check_option
from radmine.distributed.client import DEFAULT_PARTITION_SIZE, as_dask_frame, compute, from_pandas, map_partitions, shared
from radmine.labels.labeler import WeakLabeler, label_partition
from radmine.linking import images_by_study, link_partition, study_of_report
from radmine.text.negation import negation_table
from radmine.text.references import reference_table
from radmine.text.sentences import sentence_table
from radmine.topics.streaming import topic_partition

__all__ = ["label_reports", "links", "negations", "order_links", "references", "sentences", "topic_transform"]


def sentences(ddf: Any, *, engine: Any = "rules"):
    """:func:`radmine.sentence_table` partition by partition.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame (or pandas)
        Reports with ``report_id, text``.
    engine : str, default "rules"

    Returns
    -------
    dask.dataframe.DataFrame
        ``report_id, section, sentence_id, start, end, text``; concatenated
        in order it equals ``sentence_table(reports)``.
    """
    return map_partitions(as_dask_frame(ddf), sentence_table, engine=engine)


def references(ddf: Any, *, engine: Any = "rules"):
    """:func:`~radmine.text.references.reference_table` partition by partition (written image references per sentence)."""
    return map_partitions(as_dask_frame(ddf), reference_table, engine=engine)


def negations(ddf: Any, *, detector: Any = None):
    """:func:`~radmine.text.negation.negation_table` partition by partition (negation / uncertainty scopes per report)."""
    return map_partitions(as_dask_frame(ddf), negation_table, detector=detector)


def links(
    ddf: Any,
    images: pd.DataFrame,
    *,
    context: int = 1,
    fallback: str = "auto",
    engine: Any = "rules",
    name: str = "corpus",
    sentences: Any = None,
):
    """:func:`radmine.link_key_images` partition by partition.

    Each partition's reports are linked against the images of their studies
    (an image table is small next to the reports; it enters the graph once).
    References resolve across reports of one study exactly as in the pandas
    path.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Reports (``report_id, text``, ``study_id``/``source`` when present).
    images : DataFrame
        The corpus's images table (``image_id, report_id``, ...).
    context, fallback, engine
        See :func:`radmine.link_key_images`.
    name : str, default "corpus"
        The corpus name (the linker reads the source from it when reports
        have no ``source`` column: pass ``corpus.name``).
    sentences : dask.dataframe.DataFrame, optional
        The output of :func:`sentences` on the *same* ``ddf`` (partition i
        holds the sentences of reports partition i); computed when omitted.

    Returns
    -------
    dask.dataframe.DataFrame
        The links table (:data:`radmine.linking.LINK_TABLE_COLUMNS`).
    """
    ddf = as_dask_frame(ddf)
    context = check_int(context, "context", "links", min_value=0)
    check_option(fallback, "fallback", "links", ["auto", "caption", "report", "none"])
    if not isinstance(images, pd.DataFrame):
        raise TypeError(f"links: images must be a pandas DataFrame (the corpus's images table); got {type(images).__name__}.")
    check_columns(images, ["image_id", "report_id"], "images")
    cols = [c for c in ("report_id", "study_id") if c in ddf.columns]
    study_of = study_of_report(compute(ddf[cols]) if "study_id" in cols else pd.DataFrame({"report_id": []}))
    imgs = shared(images_by_study(images, study_of))
    if sentences is None:
        return map_partitions(ddf, link_partition, imgs, context, fallback, engine, str(name))
    import dask.dataframe as dd

    if not isinstance(sentences, dd.DataFrame) or sentences.npartitions != ddf.npartitions:
        raise ValueError("links: sentences must be the Dask output of sentences(ddf) on the same ddf (same partitions).")
    return map_partitions(ddf, link_partition, imgs, context, fallback, engine, str(name), sentences)


def order_links(links: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """Put a computed :func:`links` table in the row order of :func:`radmine.link_key_images`.

    Reference rows by report id (stable: sentence order within a report),
    then caption/report rows in the order of ``images``; index reset.
    """
    if not len(links):
        return links.reset_index(drop=True)
    ref = links[links["method"] == "reference"]
    ref = ref.iloc[np.argsort(ref["report_id"].to_numpy(), kind="stable")] if len(ref) else ref
    rest = links[links["method"] != "reference"]
    if len(rest):
        pos = pd.Series(np.arange(len(images)), index=images["image_id"].to_numpy())
        pos = pos[~pos.index.duplicated()]
        rest = rest.iloc[np.argsort(rest["image_id"].map(pos).to_numpy(dtype=float), kind="stable")]
    return pd.concat([ref, rest]).reset_index(drop=True)


def _labels_only(part: pd.DataFrame, labeler: Any) -> pd.DataFrame:
    return label_partition(part, labeler)[0]


def label_reports(
    ddf: Any,
    vocabulary: Any = "chest_xray",
    *,
    sections: Sequence[str] = ("findings", "impression", "conclusion"),
    negation: Any = None,
    uncertain_blocks_normal: bool = False,
    return_mentions: bool = False,
    labeler: Any = None,
):
    """:func:`radmine.label_reports` partition by partition.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Reports with ``report_id`` (unique) and ``text``.
    vocabulary, sections, negation, uncertain_blocks_normal
        See :class:`radmine.WeakLabeler`.
    return_mentions : bool, default False
        Also return the mentions table (both come from one pass over the data
        when computed together, e.g. with :func:`~radmine.distributed.compute`).
    labeler : WeakLabeler, optional
        A configured labeller (overrides the other options); fitted here if needed.

    Returns
    -------
    labels : dask.dataframe.DataFrame
        Index ``report_id``, one float column per finding (1 / 0 / -1 / NaN).
    mentions : dask.dataframe.DataFrame
        Only with ``return_mentions=True``.
    """
    import dask
    import dask.dataframe as dd

    ddf = as_dask_frame(ddf)
    if labeler is None:
        labeler = WeakLabeler(vocabulary, sections=tuple(sections), negation=negation,
                              uncertain_blocks_normal=uncertain_blocks_normal)
    if not hasattr(labeler, "labels_"):
        labeler.fit()
    one = shared(labeler)
    meta_l, meta_m = label_partition(ddf._meta.copy(), labeler)
    if not return_mentions:
        with dask.config.set({"dataframe.convert-string": False}):
            return ddf.map_partitions(_labels_only, one, meta=meta_l)
    parts = [dask.delayed(label_partition, pure=True, nout=2)(p, one) for p in ddf.to_delayed()]
    with dask.config.set({"dataframe.convert-string": False}):
        labels = dd.from_delayed([p[0] for p in parts], meta=meta_l, verify_meta=False)
        mentions = dd.from_delayed([p[1] for p in parts], meta=meta_m, verify_meta=False)
    return labels, mentions


def topic_transform(model: Any, ddf: Any):
    """:meth:`radmine.TopicModel.transform` partition by partition.

    Parameters
    ----------
    model : TopicModel
        A fitted model (its fit documents are not shipped to the workers).
    ddf : dask.dataframe.DataFrame or dask Series
        Reports (one document per report: the model's ``sections``, as
        ``TopicModel.transform(Corpus)`` with ``unit="report"``), or a Series
        of texts (one document each).

    Returns
    -------
    dask.dataframe.DataFrame
        ``report_id`` (``doc_id`` for a Series) then ``topic_0 .. topic_{k-1}``;
        rows sum to 1.
    """
    import dask.dataframe as dd

    check_is_fitted(model, "components_")
    if isinstance(ddf, pd.Series):
        ddf = dd.from_pandas(ddf, npartitions=max(1, math.ceil(len(ddf) / DEFAULT_PARTITION_SIZE)), sort=False)
    elif isinstance(ddf, pd.DataFrame):
        ddf = from_pandas(ddf)
    light = model.without_documents()
    return map_partitions(ddf, topic_partition, shared(light), model.sections)
