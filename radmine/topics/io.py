"""Which text a topic model reads: reports, sentences or key-image sentence windows.

:func:`documents` turns a :class:`~radmine.corpus.Corpus` (or plain texts)
into a documents table ``doc_id, report_id, sentence_id, text`` that both
:class:`~radmine.topics.model.TopicModel` and
:class:`~radmine.topics.hierarchy.HierarchicalTopicModel` use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

DOC_COLUMNS = ["doc_id", "report_id", "sentence_id", "text"]


def clean_text(s: Any) -> str:
    """A cell as text: ``""`` for None/NaN/NA."""
    if s is None or (isinstance(s, float) and np.isnan(s)) or s is pd.NA:
        return ""
    return str(s)


def report_texts(reports: pd.DataFrame, sections: Sequence[str] | None) -> pd.Series:
    """Each report's text restricted to ``sections`` (joined by a blank line).

    Falls back to the full ``text`` column when ``sections`` is None or the
    reports table has none of those section columns.

    Returns
    -------
    Series of str, indexed like ``reports``
    """
    cols = [s for s in (sections or ()) if s in reports.columns]
    if not cols:
        if sections:
            logger.info("Reports have none of the section columns %s; using the full text.", list(sections))
        return reports["text"].map(clean_text)
    parts = reports[cols].map(clean_text)
    return parts.apply(lambda row: "\n\n".join(p for p in row if p.strip()), axis=1).astype(object)


def sentence_window(prev: Any, sent: Any, nxt: Any, context: int) -> str:
    """A sentence with its neighbours (``context >= 1``) or alone, joined by spaces."""
    items = [prev, sent, nxt] if context >= 1 else [sent]
    return " ".join(clean_text(x) for x in items if clean_text(x).strip())


def link_documents(links: pd.DataFrame, context: int = 1) -> pd.DataFrame:
    """One document per distinct key-image sentence window of a ``links`` table.

    The document is the linked sentence plus its previous and next sentence
    (``context >= 1``) or the sentence alone (``context=0``). Caption links
    (``sentence_id == -1``) become one document per distinct caption.

    Returns
    -------
    DataFrame
        ``doc_id, report_id, sentence_id, text``
    """
    rows = []
    seen = set()
    for r in links.itertuples(index=False):
        sent = clean_text(getattr(r, "sentence", ""))
        if not sent.strip():
            continue
        sid = getattr(r, "sentence_id", -1)
        sid = -1 if sid is None or (isinstance(sid, float) and np.isnan(sid)) else int(sid)
        text = sentence_window(getattr(r, "prev_sentence", ""), sent, getattr(r, "next_sentence", ""), context)
        key = (r.report_id, sid) if sid >= 0 else (r.report_id, "caption", text)
        if key in seen:
            continue
        seen.add(key)
        doc_id = f"{r.report_id}:{sid}" if sid >= 0 else f"{r.report_id}:caption:{r.image_id}"
        rows.append((doc_id, r.report_id, sid, text))
    return pd.DataFrame(rows, columns=DOC_COLUMNS)


def sentence_documents(corpus: Any, sections: Sequence[str] | None, engine: str = "rules", progress: bool = False) -> pd.DataFrame:
    """One document per sentence (from ``corpus.sentences`` or computed), in ``sections``."""
    sents = corpus.sentences
    if sents is None or len(sents) == 0:
        from radmine.text.sentences import sentence_table

        sents = sentence_table(corpus.reports, engine=engine, progress=progress)
    if sections and "section" in sents.columns:
        keep = sents["section"].isin(list(sections))
        if keep.any():
            sents = sents[keep]
        else:
            logger.info("No sentence is in sections %s; using all sentences.", list(sections))
    sid = sents["sentence_id"].astype(int)
    return pd.DataFrame(
        {
            "doc_id": sents["report_id"].astype(str) + ":" + sid.astype(str),
            "report_id": sents["report_id"].to_numpy(),
            "sentence_id": sid.to_numpy(),
            "text": sents["text"].map(clean_text).to_numpy(),
        }
    ).reset_index(drop=True)


def documents(
    X: Any,
    *,
    unit: str = "report",
    sections: Sequence[str] | None = ("findings", "impression"),
    engine: str = "rules",
    progress: bool = False,
    context: int = 1,
) -> pd.DataFrame:
    """The documents table of a Corpus or of plain texts.

    Parameters
    ----------
    X : Corpus, list/Series of str
        Plain texts are taken as they are (``doc_id`` = Series index or
        position, ``report_id`` = ``doc_id``, ``sentence_id`` = -1).
    unit : {"report", "sentence"}
        For a Corpus: ``"report"`` -> one document per report (its
        ``sections``); ``"sentence"`` -> each key image's linked sentence
        with its neighbours when ``corpus.links`` has rows, else every
        sentence.

    Returns
    -------
    DataFrame
        ``doc_id, report_id, sentence_id, text`` (one row per document).
    """
    from radmine.corpus import Corpus

    if isinstance(X, Corpus):
        if unit == "report":
            rep = X.reports
            return pd.DataFrame(
                {
                    "doc_id": rep["report_id"].to_numpy(),
                    "report_id": rep["report_id"].to_numpy(),
                    "sentence_id": -1,
                    "text": report_texts(rep, sections).to_numpy(),
                }
            )
        links = X.links
        if links is not None and len(links) and "sentence" in links.columns:
            docs = link_documents(links, context=context)
            if len(docs):
                return docs
        return sentence_documents(X, sections, engine=engine, progress=progress)
    if isinstance(X, pd.DataFrame):
        raise TypeError(
            "Topic models take a radmine.Corpus or a list/Series of texts; got a DataFrame. "
            "Pass df['text'] or wrap the reports in radmine.Corpus(reports)."
        )
    if isinstance(X, str):
        raise TypeError("Topic models take a list/Series of texts, not a single string; wrap it in a list.")
    if isinstance(X, pd.Series):
        ids = X.index.to_numpy()
        texts = X.to_numpy()
    else:
        try:
            texts = list(X)
        except TypeError:
            raise TypeError(f"Topic models take a radmine.Corpus or a list/Series of texts; got {type(X).__name__}.") from None
        ids = np.arange(len(texts))
    out = []
    for i, t in enumerate(texts):
        if not (t is None or isinstance(t, str) or (isinstance(t, float) and np.isnan(t))):
            raise TypeError(f"texts[{i}] must be a string; got {type(t).__name__}.")
        out.append(clean_text(t))
    return pd.DataFrame({"doc_id": ids, "report_id": ids, "sentence_id": -1, "text": out})
