"""Two-level topics: LDA inside each document-level topic (Shin et al. 2016).

Shin et al. fit 80 document-level topics, then a second LDA inside each one
over the reports whose dominant topic it is, naming sub-topics like
"Topic 77.0 ... 77.9". :class:`HierarchicalTopicModel` does the same:

1. a level-1 :class:`~radmine.topics.model.TopicModel` over all documents;
2. for each level-1 topic ``t``, a level-2 TopicModel with ``n_subtopics``
   topics over the documents whose dominant topic is ``t``, on the same
   tokens (same preprocessing and phrases), with its own vocabulary filters
   (``min_df`` within the group, ``sub_drop_top`` most common terms dropped);
3. sub-topic ids are strings ``"t.s"`` (``"7.2"``).

Tiny groups: a level-1 topic with fewer than ``min_group_docs`` training
documents (or whose group vocabulary is too small) is **not split**: it gets
a single sub-topic ``"t.0"`` whose words are the parent's words, and all its
documents take it. ``subtopic_info_`` says which topics were split.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._validation import check_int, check_is_fitted, check_option
from radmine.base import BaseEstimator
from radmine.topics.model import (
    TopicModel,
    image_documents,
    image_topic_table,
    read_model_meta,
    topic_table_html,
    unique_names,
)

logger = logging.getLogger(__name__)

FORMAT = "radmine-hierarchical-topic-model"
_JSON = "hierarchical_topic_model.json"


class HierarchicalTopicModel(BaseEstimator):
    """Level-1 topics, then level-2 LDA inside each level-1 topic.

    Parameters
    ----------
    n_topics : int, default 10
        Level-1 topics.
    n_subtopics : int, default 5
        Level-2 topics per level-1 topic.
    min_group_docs : int, optional
        Smallest group (training documents of one level-1 topic) that is
        split; default ``max(10, 3 * n_subtopics)``.
    sub_drop_top : int, default 0
        Most common terms of a group dropped before its level-2 LDA.
    **topic_params
        Any :class:`~radmine.topics.model.TopicModel` parameter but
        ``n_topics`` (``unit, alpha, eta, passes, iterations, min_df,
        min_chars, drop_top, min_doc_terms, phrases, mark_negation, sections,
        engine, random_state, progress, backend, n_jobs``), with TopicModel's
        defaults; shared by both levels. ``get_params()`` lists them all.

    Attributes
    ----------
    level1_ : TopicModel
    level2_ : dict of int -> TopicModel or None
        None for level-1 topics that were not split.
    subtopic_ids_ : list of str
        All sub-topic ids (``"t.s"``), level-1 order.
    """

    def __init__(self, n_topics: int = 10, n_subtopics: int = 5, *, min_group_docs: int | None = None,
                 sub_drop_top: int = 0, **topic_params: Any) -> None:
        # the TopicModel parameters (unit, alpha, ..., n_jobs) are TopicModel's own: one
        # definition, defaults included; __signature__ below lists them for get_params/repr/help
        shared = _shared_params()
        unknown = sorted(set(topic_params) - set(shared))
        if unknown:
            raise TypeError(f"HierarchicalTopicModel got unexpected keyword argument(s) {unknown}; "
                            f"TopicModel parameters are {sorted(shared)}.")
        self.n_topics = n_topics
        self.n_subtopics = n_subtopics
        self.min_group_docs = min_group_docs
        self.sub_drop_top = sub_drop_top
        for name, p in shared.items():
            setattr(self, name, topic_params.get(name, p.default))

    def _model_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _shared_params()}

    # -- fit ----------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> HierarchicalTopicModel:
        """Fit both levels on a Corpus or a list/Series of texts."""
        owner = type(self).__name__
        check_int(self.n_topics, "n_topics", owner, min_value=1)
        n_sub = check_int(self.n_subtopics, "n_subtopics", owner, min_value=1)
        check_int(self.sub_drop_top, "sub_drop_top", owner, min_value=0)
        min_group = max(10, 3 * n_sub) if self.min_group_docs is None else check_int(self.min_group_docs, "min_group_docs", owner, min_value=1)
        params = self._model_params()
        level1 = TopicModel(self.n_topics, **params)
        level1.check_params()
        docs = level1.make_documents(X)
        pre = level1.make_preprocessor()
        tokens = pre.fit_transform(docs["text"])
        reference = None
        if (level1.n_chains or 1) > 1 or (level1.n_chains is None and level1.backend == "tomotopy"):
            reference = level1.make_reference_preprocessor().fit_transform(docs["text"])
        level1.fit_tokens(tokens, docs.drop(columns="text"), pre, reference=reference)
        info1 = level1.get_document_info()
        dom = info1["dominant_topic"].to_numpy()
        train = info1["in_training"].to_numpy()
        rng_seed = level1.random_state
        level2: dict[int, TopicModel | None] = {}
        rows = []
        topics = range(level1.n_topics_)
        if self.progress:
            from radmine._progress import tqdm

            topics = tqdm(topics, desc="level-2 topics")
        for t in topics:
            members = np.flatnonzero((dom == t) & train)
            sub = None
            reason = ""
            if len(members) < min_group:
                reason = f"{len(members)} training documents < min_group_docs={min_group}"
            else:
                seed = None if rng_seed is None else int(np.random.SeedSequence([int(rng_seed), t]).generate_state(1)[0] % (2**31 - 1))
                p2 = dict(params, drop_top=self.sub_drop_top, random_state=seed, progress=False)
                sub = TopicModel(n_sub, **p2)
                try:
                    sub.fit_tokens([tokens[i] for i in members], docs.drop(columns="text").iloc[members], pre)
                    if sub.n_features_ < max(2, n_sub):
                        raise ValueError(f"only {sub.n_features_} terms")
                except ValueError as err:
                    reason = f"level-2 fit not possible: {err}"
                    sub = None
            level2[t] = sub
            rows.append((t, len(members), sub is not None, reason))
            if sub is None:
                logger.info("Level-1 topic %d not split: %s", t, reason)
        self.level1_ = level1
        self.level2_ = level2
        self.subtopic_info_ = pd.DataFrame(rows, columns=["topic", "n_docs", "split", "reason"])
        self._tokens = tokens
        self._doc_info = None
        return self

    # -- ids ------------------------------------------------------------
    @property
    def subtopic_ids_(self) -> list[str]:
        check_is_fitted(self, "level1_")
        ids = []
        for t in range(self.level1_.n_topics_):
            sub = self.level2_.get(t)
            n = 1 if sub is None else sub.n_topics_
            ids += [f"{t}.{s}" for s in range(n)]
        return ids

    def _parse(self, topic: Any) -> tuple[int, int | None]:
        check_is_fitted(self, "level1_")
        k = self.level1_.n_topics_
        if isinstance(topic, (int, np.integer)) and not isinstance(topic, bool):
            if 0 <= int(topic) < k:
                return int(topic), None
        elif isinstance(topic, str):
            parts = topic.split(".")
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                t, s = int(parts[0]), int(parts[1])
                if 0 <= t < k:
                    sub = self.level2_.get(t)
                    n = 1 if sub is None else sub.n_topics_
                    if s < n:
                        return t, s
            elif topic.isdigit() and int(topic) < k:
                return int(topic), None
        raise KeyError(f"Unknown topic {topic!r}: level-1 topics are 0..{k - 1}, level-2 ids look like '3.1' (see subtopic_ids_).")

    # -- transform ------------------------------------------------------
    def _subtheta(self, t: int, tokens) -> np.ndarray:
        sub = self.level2_.get(t)
        if sub is None:
            return np.ones((len(tokens), 1))
        return sub.transform_tokens(tokens)

    def transform(self, X: Any, level: int = 1) -> np.ndarray:
        """Topic mix per document.

        Parameters
        ----------
        X : Corpus or list/Series of str (n_docs,)
        level : {1, 2}
            1: level-1 mix, (n_docs, n_topics). 2: joint mix over all
            sub-topics, ``p(t) * p(s | t)``, (n_docs, len(subtopic_ids_)),
            columns in ``subtopic_ids_`` order.
        """
        check_is_fitted(self, "level1_")
        check_option(level, "level", "transform", [1, 2])
        docs = self.level1_.make_documents(X)
        tokens = self.level1_.preprocessor_.transform(docs["text"])
        theta1 = self.level1_.transform_tokens(tokens)
        if level == 1:
            return theta1
        parts = [theta1[:, [t]] * self._subtheta(t, tokens) for t in range(self.level1_.n_topics_)]
        return np.hstack(parts)

    def _assign(self, tokens) -> pd.DataFrame:
        theta1 = self.level1_.transform_tokens(tokens)
        dom = theta1.argmax(axis=1)
        prob = theta1.max(axis=1)
        sub_id = np.empty(len(tokens), dtype=object)
        sub_p = np.full(len(tokens), np.nan)
        for t in np.unique(dom):
            idx = np.flatnonzero(dom == t)
            th = self._subtheta(int(t), [tokens[i] for i in idx])
            s = th.argmax(axis=1)
            sub_id[idx] = [f"{t}.{x}" for x in s]
            sub_p[idx] = th.max(axis=1)
        return pd.DataFrame({"dominant_topic": dom.astype(int), "probability": prob, "dominant_subtopic": sub_id, "subtopic_probability": sub_p})

    # -- inspection -----------------------------------------------------
    def get_topic(self, topic: Any, n_words: int = 10) -> pd.DataFrame:
        """Top words of a level-1 topic (int) or a sub-topic (``"t.s"``): ``word, weight``.

        Raises
        ------
        KeyError
            Unknown topic id.
        """
        t, s = self._parse(topic)
        sub = self.level2_.get(t)
        if s is None or sub is None:
            return self.level1_.get_topic(t, n_words)
        return sub.get_topic(s, n_words)

    def get_topic_info(self, level: int = 1, n_words: int = 10) -> pd.DataFrame:
        """Topic table of one level.

        Returns
        -------
        DataFrame
            level 1: as :meth:`TopicModel.get_topic_info`. level 2: ``topic``
            (``"t.s"``), ``parent``, ``size`` (fit documents), ``name``
            (its words, as at level 1), ``top_words``, ``weights``.
        """
        check_is_fitted(self, "level1_")
        check_option(level, "level", "get_topic_info", [1, 2])
        if level == 1:
            return self.level1_.get_topic_info(n_words)
        info = self.get_document_info()
        sizes = info["dominant_subtopic"].value_counts()
        rows = []
        for t in range(self.level1_.n_topics_):
            sub = self.level2_.get(t)
            n = 1 if sub is None else sub.n_topics_
            for s in range(n):
                df = self.get_topic(f"{t}.{s}", n_words)
                words, weights = df["word"].tolist(), df["weight"].tolist()
                tid = f"{t}.{s}"
                name = sub.topic_label(s) if sub is not None else self.level1_.topic_label(t)
                rows.append([tid, t, int(sizes.get(tid, 0)), name, words, weights])
        for row, name in zip(rows, unique_names([r[3] for r in rows])):
            row[3] = name
        return pd.DataFrame(rows, columns=["topic", "parent", "size", "name", "top_words", "weights"])

    def get_document_info(self) -> pd.DataFrame:
        """Both levels per fit document.

        Returns
        -------
        DataFrame
            ``doc_id, report_id`` (+ ``sentence_id``), ``dominant_topic``,
            ``probability``, ``dominant_subtopic`` (``"t.s"``),
            ``subtopic_probability`` (p(s | t, doc)), ``n_terms``, ``in_training``.
        """
        check_is_fitted(self, "level1_")
        if getattr(self, "_doc_info", None) is None:
            base = self.level1_.get_document_info()
            tokens = getattr(self, "_tokens", None)
            if tokens is None:
                raise ValueError("Document info was not saved with this model.")
            a = self._assign(tokens)
            base["dominant_topic"] = np.where(base["n_terms"] == 0, -1, a["dominant_topic"])
            base["probability"] = np.where(base["n_terms"] == 0, np.nan, a["probability"])
            base["dominant_subtopic"] = np.where(base["n_terms"] == 0, None, a["dominant_subtopic"])
            base["subtopic_probability"] = np.where(base["n_terms"] == 0, np.nan, a["subtopic_probability"])
            self._doc_info = base
        d = self._doc_info
        lead = [c for c in ("doc_id", "report_id", "sentence_id") if c in d.columns]
        return d[lead + ["dominant_topic", "probability", "dominant_subtopic", "subtopic_probability", "n_terms", "in_training"]].copy()

    def topic_labels_for_images(self, corpus: Any, level: int = 2, context: int = 1) -> pd.DataFrame:
        """Per-image labels: level 1 (int topic) or level 2 (``"t.s"``: the
        dominant sub-topic inside the dominant level-1 topic; probability is
        p(s | t, text)). Columns ``image_id, report_id, topic, probability, source``."""
        check_is_fitted(self, "level1_")
        check_option(level, "level", "topic_labels_for_images", [1, 2])
        if level == 1:
            return self.level1_.topic_labels_for_images(corpus, context=context)
        m = self.level1_
        image_texts = image_documents(corpus, unit=m.unit, sections=m.sections, context=check_int(context, "context", "topic_labels_for_images", min_value=0))
        if not len(image_texts):
            return pd.DataFrame(columns=["image_id", "report_id", "topic", "probability", "source"])
        tokens = m.preprocessor_.transform(image_texts["text"])
        theta = m.transform_tokens(tokens)
        out = image_topic_table(image_texts, theta, tokens, m.vocabulary_)
        a = self._assign(tokens)
        empty = out["topic"].to_numpy() == -1
        out["topic"] = np.where(empty, "-1", a["dominant_subtopic"]).astype(object)
        out["probability"] = np.where(empty, np.nan, a["subtopic_probability"])
        return out

    # -- plots ----------------------------------------------------------
    def plot_topics(self, topics: Any = None, n_words: int = 8, *, level: int = 1, **kwargs: Any):
        """Top-word bars of one level, titled with topic names; see :func:`radmine.plotting.topics.barchart`."""
        from radmine.plotting.topics import barchart

        return barchart(self, topics, n_words, level=level, **kwargs)

    def plot_over_time(self, dates: Any, **kwargs: Any):
        """Level-1 topic shares per period; see :func:`radmine.plotting.topics.over_time`."""
        from radmine.plotting.topics import over_time

        return over_time(self, dates, **kwargs)

    # -- persistence ----------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save as folders of TopicModels (``level1/``, ``level2/<t>/``) plus a JSON index. No pickle."""
        from radmine import __version__
        from radmine._io import atomic_write_json, atomic_write_parquet

        check_is_fitted(self, "level1_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        info = self.get_document_info() if getattr(self, "_tokens", None) is not None or self._doc_info is not None else None
        self.level1_.save(path / "level1")
        split = []
        for t, sub in self.level2_.items():
            if sub is not None:
                sub.save(path / "level2" / str(t))
                split.append(int(t))
        if info is not None:
            d = self._doc_info.copy()
            d["dominant_subtopic"] = d["dominant_subtopic"].astype(object)
            atomic_write_parquet(d, path / "documents.parquet")
        params = self.get_params(deep=False)
        params["sections"] = None if self.sections is None else list(self.sections)
        params["random_state"] = self.random_state if isinstance(self.random_state, (int, type(None))) else None
        atomic_write_json(path / _JSON, {
            "format": FORMAT, "format_version": 1, "radmine_version": __version__, "params": params,
            "split_topics": split, "subtopic_info": self.subtopic_info_.to_dict(orient="list"),
        })
        return path

    @classmethod
    def load(cls, path: str | Path) -> HierarchicalTopicModel:
        """Load a model written by :meth:`save`."""
        path = Path(path)
        meta = read_model_meta(path, FORMAT)
        params = dict(meta["params"])
        if params.get("sections") is not None:
            params["sections"] = tuple(params["sections"])
        obj = cls(**params)
        obj.level1_ = TopicModel.load(path / "level1")
        obj.level2_ = {t: None for t in range(obj.level1_.n_topics_)}
        for t in meta["split_topics"]:
            sub = TopicModel.load(path / "level2" / str(t))
            sub.preprocessor_ = obj.level1_.preprocessor_
            obj.level2_[int(t)] = sub
        obj.subtopic_info_ = pd.DataFrame(meta["subtopic_info"])
        obj._tokens = None
        f = path / "documents.parquet"
        obj._doc_info = pd.read_parquet(f) if f.is_file() else None
        return obj

    # -- display --------------------------------------------------------
    def _repr_html_(self) -> str:
        if not hasattr(self, "level1_"):
            return super()._repr_html_()
        info = self.get_topic_info(level=2, n_words=8)
        return topic_table_html(info, title=f"HierarchicalTopicModel: {self.level1_.n_topics_} topics, "
                                f"{len(info)} sub-topics")


def _shared_params() -> dict[str, inspect.Parameter]:
    """TopicModel's keyword parameters that both levels share (all but ``n_topics``)."""
    sig = inspect.signature(TopicModel.__init__)
    return {n: p for n, p in sig.parameters.items() if n not in ("self", "n_topics")}


def _hierarchical_signature() -> inspect.Signature:
    own = inspect.signature(HierarchicalTopicModel.__init__)
    head = [p for n, p in own.parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    return own.replace(parameters=head + list(_shared_params().values()))


HierarchicalTopicModel.__init__.__signature__ = _hierarchical_signature()
