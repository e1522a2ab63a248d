"""LDA topic models over reports or key-image sentences (Shin et al. 2015/2016).

:class:`TopicModel` fits Latent Dirichlet Allocation with gensim's
single-core ``LdaModel`` (online variational Bayes; honours ``random_state``)
or, with ``backend="tomotopy"``, tomotopy's collapsed Gibbs sampler (faster
on one core and usually more coherent; also seeded). Both backends end in the
same fitted state: a topic-word pseudo-count matrix ``components_`` (lambda)
and a per-topic ``alpha_``; transform, perplexity, save/load and the
inspection API work on that state alone, so a loaded model transforms exactly
like the one that was saved.

The defaults are the setting that measured best on the Open-i reports
(``benchmarks/bench_topics.py``, docs/topics.md): tomotopy's collapsed Gibbs
sampler (alpha starts at 0.1 and is re-estimated while sampling, term
smoothing 0.1, ``15e6 / n_tokens`` sweeps clipped to 500..1000,
:func:`tomotopy_sweeps`) run as up to 6 chains whose K most coherent distinct
topics are kept (``n_chains``, :func:`pool_topics`); negated words and normal-template clauses ("the
lungs are clear") left out, so topics describe what reports find; single
words of >= 3 characters in >= 3 documents, none in more than half of the
documents; documents of >= 5 terms. Shin et al.'s Stanford TMT settings
(gensim, smoothing 0.01, bigram phrases, the 10 most common terms dropped,
every clause kept) are one call away: see :data:`SHIN_PARAMS`. :meth:`TopicModel.from_arrays` builds a
fitted model from a topic-term matrix trained elsewhere (e.g. streamed over
Dask shards).
"""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._io import read_saved_meta
from radmine._repr import summary_html
from radmine._validation import check_int, check_is_fitted, check_option
from radmine.base import BaseEstimator, seed_int
from radmine.hub import TopicModelHubMixin
from radmine.topics.io import documents
from radmine.topics.preprocess import Preprocessor, Vocabulary

logger = logging.getLogger(__name__)

FORMAT = "radmine-topic-model"
FORMAT_VERSION = 1
_JSON = "topic_model.json"
_ARRAYS = "topic_model.safetensors"
_DOCS = "documents.parquet"


# ---------------------------------------------------------------- inference
def _bow_matrix(bows: list[list[tuple[int, int]]], n_terms: int):
    """CSR (n_docs, n_terms) count matrix from gensim bag-of-words lists."""
    from scipy import sparse

    indptr = np.zeros(len(bows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(b) for b in bows])
    idx = np.fromiter((i for b in bows for i, _ in b), dtype=np.int64, count=int(indptr[-1]))
    cnt = np.fromiter((c for b in bows for _, c in b), dtype=np.float64, count=int(indptr[-1]))
    return sparse.csr_matrix((cnt, idx, indptr), shape=(len(bows), n_terms))


def infer_gamma(X, exp_elog_beta: np.ndarray, alpha: np.ndarray, *, max_iter: int = 100, tol: float = 1e-3, batch_size: int = 4096) -> np.ndarray:
    """Variational posterior Dirichlet parameters of each document's topic mixture.

    The E-step of Hoffman et al.'s online LDA (as in gensim ``LdaModel.inference``)
    vectorised over a sparse batch, with a deterministic start
    (``gamma = alpha + n_words / n_topics``); each document stops updating once
    its mean absolute change is below ``tol``, so the result does not depend
    on the batch a document is in.

    Parameters
    ----------
    X : sparse matrix (n_docs, n_terms)
        Term counts.
    exp_elog_beta : array (n_topics, n_terms)
        ``exp(E[log beta])`` of the topic-word Dirichlets.
    alpha : array (n_topics,)

    Returns
    -------
    array (n_docs, n_topics)
    """
    from scipy import sparse
    from scipy.special import digamma

    X = sparse.csr_matrix(X)
    n, k = X.shape[0], exp_elog_beta.shape[0]
    alpha = np.asarray(alpha, dtype=np.float64)
    out = np.empty((n, k), dtype=np.float64)
    eb = np.asarray(exp_elog_beta, dtype=np.float64)
    ebt = np.ascontiguousarray(eb.T)
    for s in range(0, n, batch_size):
        Xb = X[s : s + batch_size]
        lens = np.asarray(Xb.sum(axis=1)).ravel()
        gamma = alpha[None, :] + (lens / k)[:, None]
        active = np.flatnonzero(lens > 0)
        for _ in range(max_iter):
            if active.size == 0:
                break
            Xa = Xb[active].tocoo()
            g = gamma[active]
            et = np.exp(digamma(g) - digamma(g.sum(axis=1, keepdims=True)))
            phinorm = np.einsum("ij,ij->i", et[Xa.row], ebt[Xa.col]) + 1e-100
            S = sparse.csr_matrix((Xa.data / phinorm, (Xa.row, Xa.col)), shape=Xa.shape)
            new = alpha[None, :] + et * (S @ ebt)
            change = np.abs(new - g).mean(axis=1)
            gamma[active] = new
            active = active[change >= tol]
        out[s : s + batch_size] = gamma
    return out


def exp_elog_beta(components: np.ndarray) -> np.ndarray:
    from scipy.special import digamma

    lam = np.asarray(components, dtype=np.float64)
    return np.exp(digamma(lam) - digamma(lam.sum(axis=1, keepdims=True)))


def completion_perplexity(topic_word: np.ndarray, X, alpha: np.ndarray | float = 0.1, *, random_state: int = 0) -> float:
    """Held-out per-word perplexity by document completion.

    Each document's tokens are split at random into two halves; the topic mix
    is inferred (same variational E-step for any model) from the first half
    and the second half is scored: ``exp(-sum log p(w | d) / n_words)`` with
    ``p(w | d) = sum_k theta_dk phi_kw``. Comparable across LDA
    implementations because only their topic-word matrices enter.

    Parameters
    ----------
    topic_word : array (n_topics, n_terms), rows summing to 1
    X : sparse matrix (n_docs, n_terms) of counts
    alpha : float or array (n_topics,)
    """
    from scipy import sparse

    X = sparse.csr_matrix(X)
    rng = np.random.default_rng(random_state)
    coo = X.tocoo()
    rows = np.repeat(coo.row, coo.data.astype(int))
    cols = np.repeat(coo.col, coo.data.astype(int))
    half = rng.random(rows.size) < 0.5
    shape = X.shape
    obs = sparse.csr_matrix((np.ones(half.sum()), (rows[half], cols[half])), shape=shape)
    held = sparse.csr_matrix((np.ones((~half).sum()), (rows[~half], cols[~half])), shape=shape).tocoo()
    k = topic_word.shape[0]
    alpha = np.full(k, float(alpha)) if np.isscalar(alpha) else np.asarray(alpha, dtype=float)
    phi = np.asarray(topic_word, dtype=np.float64)
    phi = phi / phi.sum(axis=1, keepdims=True)
    gamma = infer_gamma(obs, phi, alpha)
    theta = gamma / gamma.sum(axis=1, keepdims=True)
    p = np.einsum("ij,ij->i", theta[held.row], phi[:, held.col].T)
    n = held.data.sum()
    if n == 0:
        return float("nan")
    return float(np.exp(-(held.data * np.log(p + 1e-300)).sum() / n))


# ---------------------------------------------------------------- model
def tomotopy_sweeps(n_tokens: int, *, budget: float = 1.5e7, low: int = 500, high: int = 1000) -> int:
    """Default Gibbs sweeps of the tomotopy backend: ``budget / n_tokens`` clipped to ``[low, high]``.

    About 1-2 s single-threaded for corpora up to ~30,000 tokens; larger corpora get
    ``low`` sweeps (cost then grows linearly with tokens).
    """
    return int(np.clip(round(budget / max(int(n_tokens), 1)), low, high))


def tomotopy_chains(n_tokens: int, sweeps: int, *, budget: float = 4.5e7, high: int = 6) -> int:
    """Default number of pooled Gibbs chains of the tomotopy backend: ``budget / (n_tokens * sweeps)``
    token samples, clipped to ``[1, high]``.

    Six chains on a few hundred reports, three on the 3,145 Open-i reports, one from about
    90,000 training tokens on (:class:`TopicModel`, ``n_chains``): the sampling stays below
    gensim's ``LdaModel(passes=10)`` time at every size measured (docs/topics.md).
    """
    return int(np.clip(budget // max(int(n_tokens) * int(sweeps), 1), 1, high))


#: Two pooled topics whose topic-word distributions have a cosine similarity >= this are the same topic.
POOL_MAX_COSINE = 0.5


def chain_seed(seed: int, chain: int) -> int:
    """The seed of pooled chain ``chain`` (chain 0 keeps ``seed``; the others derive from ``(seed, chain)``)."""
    if chain == 0:
        return int(seed)
    return int(np.random.default_rng([int(seed), int(chain)]).integers(2**31 - 1))


def window_npmi(topics: list[list[str]], tokens: list[list[str]], *, window: int = 10, eps: float = 1e-12) -> np.ndarray:
    """c_npmi of each topic over tokenized texts, as gensim's ``CoherenceModel(coherence="c_npmi")``
    computes it (boolean sliding windows of ``window`` tokens, a text shorter than the window is one
    window; NPMI ``log((p_ij + eps) / (p_i p_j)) / -log(p_ij + eps)`` averaged over word pairs), with
    the co-occurrences of all topics counted in one sparse product: about 100x faster than gensim's
    per-pair lookups when a few hundred topics are scored (:func:`pool_topics` candidates).

    Parameters
    ----------
    topics : list of list of str (n_topics,)
    tokens : list of list of str (n_docs,)

    Returns
    -------
    ndarray (n_topics,)
        NaN for a topic with fewer than two distinct words.
    """
    import scipy.sparse as sp

    words = sorted({w for t in topics for w in t})
    col = {w: i for i, w in enumerate(words)}
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    n_win = 0
    for doc in tokens:
        ids = np.fromiter((col.get(w, -1) for w in doc), dtype=np.int64, count=len(doc))
        if not len(ids):
            continue
        wins = ids[None, :] if len(ids) <= window else np.lib.stride_tricks.sliding_window_view(ids, window)
        r = np.repeat(np.arange(n_win, n_win + len(wins)), wins.shape[1])
        c = wins.ravel()
        rows.append(r[c >= 0])
        cols.append(c[c >= 0])
        n_win += len(wins)
    out = np.full(len(topics), np.nan)
    if not n_win or not words:
        return out
    r, c = np.concatenate(rows), np.concatenate(cols)
    occ = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n_win, len(words)))
    occ.data[:] = 1.0  # a word counts once per window
    co = (occ.T @ occ).toarray() / n_win
    p = np.diag(co)
    for k, t in enumerate(topics):
        ids = np.array(sorted({col[w] for w in t}))
        if len(ids) < 2:
            continue
        i, j = np.triu_indices(len(ids), 1)
        pij = co[ids[i], ids[j]]
        with np.errstate(divide="ignore"):
            npmi = np.log((pij + eps) / (p[ids[i]] * p[ids[j]])) / -np.log(pij + eps)
        out[k] = float(np.mean(npmi))
    return out


def pool_topics(lams: list[np.ndarray], alphas: list[np.ndarray], scores: np.ndarray, n_topics: int, *,
                max_cosine: float = POOL_MAX_COSINE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``n_topics`` best-scoring distinct topics of several fits.

    Parameters
    ----------
    lams : list of ndarray (n_topics_r, n_terms)
        Topic-term pseudo-counts of each fit (same vocabulary).
    alphas : list of ndarray (n_topics_r,)
        Each fit's document-topic prior.
    scores : ndarray (sum of n_topics_r,)
        A score per pooled topic (higher is better; NaN counts as the lowest).
    n_topics : int
        Topics to keep.
    max_cosine : float, default :data:`POOL_MAX_COSINE`
        A topic whose topic-word distribution has cosine similarity >= this with one already
        kept is skipped (taken only when fewer than ``n_topics`` distinct topics exist).

    Returns
    -------
    lam : ndarray (n_topics, n_terms), alpha : ndarray (n_topics,), picked : ndarray (n_topics,)
        The kept rows, their alpha, their indices in the pool (best first).
    """
    lam = np.vstack(lams).astype(np.float64)
    alpha = np.concatenate([np.asarray(a, dtype=np.float64) for a in alphas])
    phi = lam / lam.sum(axis=1, keepdims=True)
    unit = phi / np.linalg.norm(phi, axis=1, keepdims=True)
    order = np.argsort(-np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf), kind="stable")
    picked: list[int] = []
    for j in order:
        if len(picked) == n_topics:
            break
        if not picked or float((unit[picked] @ unit[j]).max()) < max_cosine:
            picked.append(int(j))
    for j in order:
        if len(picked) == n_topics:
            break
        if int(j) not in picked:
            picked.append(int(j))
    idx = np.array(picked, dtype=np.int64)
    return lam[idx], alpha[idx], idx


#: Columns of ``TopicModel.documents_`` (one row per fit document).
DOCUMENT_COLUMNS = ("doc_id", "report_id", "sentence_id", "n_terms", "in_training")


def _empty_documents() -> pd.DataFrame:
    """The ``documents_`` table of a model that keeps no fit documents."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in DOCUMENT_COLUMNS})


#: Shin et al.'s Stanford TMT settings (the baseline radmine's defaults are measured against):
#: ``TopicModel(20, **SHIN_PARAMS)``.
SHIN_PARAMS: dict[str, Any] = {
    "backend": "gensim", "eta": 0.01, "phrases": True, "mark_negation": False, "drop_normal": False,
    "drop_top": 10, "max_df": 1.0,
}

#: Words never used in a topic's name: sides, degrees and time courses describe every finding.
NAME_SKIP = frozenset(
    """
    left right bilateral bilaterally mild mildly moderate moderately severe minimal small large
    stable unchanged new increased decreased interval slightly upper lower mid
    """.split()
)


def topic_name(words: list[str], weights: list[float], marginal: dict[str, float], n: int = 3) -> str:
    """A readable topic name: ``"cardiomegaly / edema / effusion"``.

    The ``n`` words of highest relevance (Sievert and Shirley's
    ``0.6 log p(w | t) + 0.4 log(p(w | t) / p(w))``, which lifts words typical of
    the topic over words frequent everywhere) among the topic's top words,
    skipping :data:`NAME_SKIP`, most probable first; phrase underscores become spaces.
    """
    cand = [(w, p) for w, p in zip(words, weights) if w not in NAME_SKIP and p > 0] or list(zip(words, weights))
    rel = sorted(cand, key=lambda wp: -(0.6 * np.log(wp[1]) + 0.4 * np.log(wp[1] / max(marginal.get(wp[0], wp[1]), 1e-12))))
    chosen = sorted(rel[:n], key=lambda wp: -wp[1])  # stable: ties keep the relevance order
    return " / ".join(w.replace("_", " ") for w, _ in chosen)


def unique_names(names: list[str]) -> list[str]:
    """``names`` with repeats numbered: ``"effusion / pleural"``, ``"effusion / pleural (2)"``."""
    seen: dict[str, int] = {}
    out = []
    for nm in names:
        seen[nm] = seen.get(nm, 0) + 1
        out.append(nm if seen[nm] == 1 else f"{nm} ({seen[nm]})")
    return out


class TopicModel(TopicModelHubMixin, BaseEstimator):
    """LDA topics over reports or sentences, with Shin et al.'s settings as defaults.

    Parameters
    ----------
    n_topics : int, default 20
    unit : {"report", "sentence"}, default "report"
        What a document is when fitting a Corpus: a report (its ``sections``),
        or a sentence -- each key image's linked sentence plus its neighbours
        when ``corpus.links`` has rows, else every sentence. Plain texts are
        used as they are.
    alpha : float, optional
        Document-topic smoothing (symmetric prior). Default: Shin's 0.01 for
        gensim; 0.1 as the start value for tomotopy, which re-estimates it
        every 10 sweeps as tomotopy does by default (0.1 gave more coherent
        topics than 0.01 on the IU and MedPix training sets over 5 seeds; see
        docs/topics.md).
    eta : float, default 0.1
        Topic-term smoothing (Shin: 0.01; 0.1 was more coherent on Open-i
        reports large and small, docs/topics.md).
    passes : int, default 10
        gensim: passes over the corpus (ignored by tomotopy).
    iterations : int, optional
        gensim: E-step iterations per document (default 50); tomotopy: Gibbs
        sweeps (default: about 1.5e7 token samples, ``15_000_000 / n_tokens``
        clipped to 500..1000 sweeps -- small corpora, where sweeps are cheap,
        get tomotopy's usual 1,000).
        ``n_iterations_`` is the number used.
    n_chains : int, optional
        Fits (Gibbs chains, or gensim runs) with different seeds whose topics
        are pooled: the ``n_topics`` topics with the highest c_npmi of their
        top 10 words (:func:`window_npmi`) on the documents' full text (every
        clause and negated word kept: :meth:`make_reference_preprocessor`;
        the training tokens in :meth:`fit_tokens` without ``reference``) are kept, skipping a topic whose
        topic-word distribution has a cosine similarity >= 0.5
        (:data:`POOL_MAX_COSINE`) with one already kept (:func:`pool_topics`).
        Each kept topic keeps its chain's alpha. Default: tomotopy
        :func:`tomotopy_chains` (``4.5e7`` token samples over all chains, 1..6
        chains: 6 on a few hundred reports, 3 on the 3,145 Open-i reports, 1
        from ~90,000 training tokens on); gensim 1. ``n_chains_`` is the
        number used. Pooling made the topics of small report collections as
        coherent as plain LDA's without their normal-template topics
        (docs/topics.md).
    min_df : int, default 3
        Keep terms in at least ``min_df`` documents.
    max_df : float, default 0.5
        Drop terms in more than this fraction of the documents (a filter that
        scales with the corpus; 1.0 = off).
    min_chars : int, default 3
        Drop words shorter than this.
    drop_top : int, default 0
        Drop this many most common terms (by document frequency; Shin: 10).
    min_doc_terms : int, default 5
        Documents with fewer (in-vocabulary) terms are not used for training;
        they still get a topic mix from :meth:`transform`.
    phrases : bool, default False
        Join frequent bigrams ("pleural_effusion") with gensim ``Phrases``
        (readable, but less coherent topics on Open-i: docs/topics.md).
    mark_negation : bool or "drop", default "drop"
        ``"drop"``: leave negated words out ("no pleural effusion"), so topics
        describe positive findings only; ``True``: prefix words in negated
        scopes with ``NEG_`` ("no effusion" and "effusion" become different
        terms); ``False``: keep them as they are.
    drop_normal : bool, default True
        Leave out clauses that state a normal finding ("the lungs are clear",
        "heart size is normal": :data:`radmine.topics.preprocess.NORMAL_CUES`),
        so the normal-report template does not fill the topics.
    sections : tuple of str or None, default ("findings", "impression")
        Report sections to read (None: the full text).
    engine : str, default "rules"
        Sentence splitter engine when ``unit="sentence"`` needs sentences.
    random_state : int, optional
        Seed. Same data + same seed -> identical topics (single-core paths).
    progress : bool, default False
        tqdm bars while training.
    backend : {"gensim", "tomotopy"}, default "tomotopy"
    n_jobs : int, default 1
        gensim: ``> 1`` uses ``LdaMulticore`` (faster, **not reproducible**:
        workers race, so topics change between runs even with a seed);
        tomotopy: sampler threads (also not reproducible when ``> 1``).

    Attributes
    ----------
    components_ : ndarray (n_topics, n_terms)
        Topic-term Dirichlet parameters (lambda = eta + expected counts).
    alpha_ : ndarray (n_topics,)
    preprocessor_ : Preprocessor
    vocabulary_ : Vocabulary
    documents_ : DataFrame
        ``doc_id, report_id, sentence_id, n_terms, in_training`` for the fit documents.
    fit_seconds_ : float
    n_iterations_ : int
        gensim E-step iterations or tomotopy sweeps used (models from :meth:`fit`).
    n_chains_ : int
        Fits pooled (models from :meth:`fit`).
    chain_scores_ : ndarray (n_chains_ * n_topics,)
        c_npmi of every pooled topic (chain by chain; NaN with one chain; models from :meth:`fit`).

    Examples
    --------
    >>> import radmine
    >>> corpus = radmine.load_embedded()                     # doctest: +SKIP
    >>> tm = radmine.TopicModel(8, random_state=0).fit(corpus)  # doctest: +SKIP
    >>> tm.get_topic_info()[["topic", "size", "name"]]       # doctest: +SKIP
    """

    def __init__(
        self,
        n_topics: int = 20,
        *,
        unit: str = "report",
        alpha: float | None = None,
        eta: float = 0.1,
        passes: int = 10,
        iterations: int | None = None,
        n_chains: int | None = None,
        min_df: int = 3,
        max_df: float = 0.5,
        min_chars: int = 3,
        drop_top: int = 0,
        min_doc_terms: int = 5,
        phrases: bool = False,
        mark_negation: bool | str = "drop",
        drop_normal: bool = True,
        sections: tuple[str, ...] | None = ("findings", "impression"),
        engine: str = "rules",
        random_state: int | None = None,
        progress: bool = False,
        backend: str = "tomotopy",
        n_jobs: int = 1,
    ) -> None:
        self.n_topics = n_topics
        self.unit = unit
        self.alpha = alpha
        self.eta = eta
        self.passes = passes
        self.iterations = iterations
        self.n_chains = n_chains
        self.min_df = min_df
        self.max_df = max_df
        self.min_chars = min_chars
        self.drop_top = drop_top
        self.min_doc_terms = min_doc_terms
        self.phrases = phrases
        self.mark_negation = mark_negation
        self.drop_normal = drop_normal
        self.sections = sections
        self.engine = engine
        self.random_state = random_state
        self.progress = progress
        self.backend = backend
        self.n_jobs = n_jobs

    # -- params -------------------------------------------------------
    # -- the topic core: documents -> tokens -> topics, shared by HierarchicalTopicModel,
    #    select_n_topics and radmine.topics.streaming ---------------------------
    def check_params(self) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first invalid parameter (``fit`` calls it)."""
        owner = type(self).__name__
        check_int(self.n_topics, "n_topics", owner, min_value=1)
        check_option(self.unit, "unit", owner, ["report", "sentence"])
        check_option(self.backend, "backend", owner, ["gensim", "tomotopy"])
        for name in ("alpha", "eta"):
            v = getattr(self, name)
            if name == "alpha" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"The {name!r} parameter of {owner} must be a float > 0{' or None' if name == 'alpha' else ''}. Got {v!r} instead.")
        check_int(self.passes, "passes", owner, min_value=1)
        if self.iterations is not None:
            check_int(self.iterations, "iterations", owner, min_value=1)
        if self.n_chains is not None:
            check_int(self.n_chains, "n_chains", owner, min_value=1)
        check_int(self.min_df, "min_df", owner, min_value=1)
        check_int(self.min_chars, "min_chars", owner, min_value=1)
        check_int(self.drop_top, "drop_top", owner, min_value=0)
        check_int(self.min_doc_terms, "min_doc_terms", owner, min_value=0)
        check_int(self.n_jobs, "n_jobs", owner, min_value=1)
        check_option(self.mark_negation, "mark_negation", owner, [False, True, "drop"])
        check_option(self.drop_normal, "drop_normal", owner, [False, True])
        if isinstance(self.max_df, bool) or not isinstance(self.max_df, (int, float)) or not 0 < self.max_df <= 1:
            raise ValueError(f"The 'max_df' parameter of {owner} must be a float in (0, 1]. Got {self.max_df!r} instead.")
        if self.sections is not None and (isinstance(self.sections, str) or not all(isinstance(s, str) for s in self.sections)):
            raise TypeError(f"The 'sections' parameter of {owner} must be a tuple of section names or None. Got {self.sections!r}.")
        seed_int(self.random_state)

    def make_documents(self, X: Any) -> pd.DataFrame:
        """The documents of ``X`` for this model's ``unit``/``sections``: ``doc_id, report_id, sentence_id, text``."""
        return documents(X, unit=self.unit, sections=self.sections, engine=self.engine, progress=self.progress)

    def make_preprocessor(self) -> Preprocessor:
        """An unfitted :class:`~radmine.topics.preprocess.Preprocessor` with this model's token options."""
        return Preprocessor(min_chars=self.min_chars, mark_negation=self.mark_negation, phrases=self.phrases,
                            drop_normal=self.drop_normal)

    # -- fit ----------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> TopicModel:
        """Fit topics to a Corpus or a list/Series of texts.

        Parameters
        ----------
        X : Corpus or list/Series of str (n_docs,)

        Returns
        -------
        self
        """
        self.check_params()
        docs = self.make_documents(X)
        pre = self.make_preprocessor()
        tokens = pre.fit_transform(docs["text"])
        reference = None
        if (self.n_chains or 1) > 1 or (self.n_chains is None and self.backend == "tomotopy"):
            reference = self.make_reference_preprocessor().fit_transform(docs["text"])
        return self.fit_tokens(tokens, docs.drop(columns="text"), pre, reference=reference)

    def make_reference_preprocessor(self) -> Preprocessor:
        """The preprocessor of the texts that pooled topics are scored on (``n_chains``): this model's
        token options with every clause and every negated word kept (``NEG_`` marks when
        ``mark_negation=True``)."""
        return Preprocessor(min_chars=self.min_chars, mark_negation=self.mark_negation is True, phrases=self.phrases,
                            drop_normal=False)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the topic mix of the fit documents, (n_docs, n_topics)."""
        self.fit(X)
        return self._theta_of_fit_docs()

    def fit_tokens(self, tokens: list[list[str]], docs: pd.DataFrame, pre: Preprocessor, *, vocabulary: Vocabulary | None = None,
                   reference: list[list[str]] | None = None) -> TopicModel:
        """Fit on already tokenized documents.

        Parameters
        ----------
        tokens : list of list of str (n_docs,)
            ``pre.transform`` of the documents' texts.
        docs : DataFrame (n_docs,)
            ``doc_id, report_id, sentence_id`` of the documents (:meth:`make_documents` without ``text``).
        pre : Preprocessor
            The fitted preprocessor that made ``tokens`` (kept as ``preprocessor_``).
        vocabulary : Vocabulary, optional
            A fitted vocabulary to use instead of one fitted on ``tokens``.
        reference : list of list of str, optional
            Token lists that pooled topics are scored on (``n_chains``; :meth:`fit` passes the
            documents' full text, :meth:`make_reference_preprocessor`); default: the training tokens.

        Returns
        -------
        self
        """
        self.check_params()
        if len(tokens) != len(docs):
            raise ValueError(f"{len(tokens)} token lists for {len(docs)} documents.")
        t0 = time.perf_counter()
        vocab = vocabulary or Vocabulary(min_df=self.min_df, drop_top=self.drop_top, max_df=float(self.max_df)).fit(tokens)
        kept = vocab.filter_docs(tokens)
        n_terms = np.array([len(t) for t in kept], dtype=np.int64)
        train = n_terms >= max(self.min_doc_terms, 1)
        if not train.any():
            raise ValueError(
                f"No document has >= min_doc_terms={self.min_doc_terms} in-vocabulary terms "
                f"({len(docs)} documents, {len(vocab)} terms); lower min_doc_terms/min_df or pass more text."
            )
        train_tokens = [t for t, m in zip(kept, train) if m]
        seed = seed_int(self.random_state)
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        fit_one = self._fit_gensim if self.backend == "gensim" else self._fit_tomotopy
        lam, alpha = fit_one(train_tokens, vocab, seed)
        n_chains = self.n_chains
        if n_chains is None:
            n_chains = 1 if self.backend == "gensim" else tomotopy_chains(sum(map(len, train_tokens)), self.n_iterations_)
        self.n_chains_ = int(n_chains)
        if n_chains > 1:
            lams, alphas = [lam], [alpha]
            for r in range(1, n_chains):
                lam_r, alpha_r = fit_one(train_tokens, vocab, chain_seed(seed, r))
                lams.append(lam_r)
                alphas.append(alpha_r)
            words = vocab.words
            tops = [[words[i] for i in np.argsort(-row, kind="stable")[:10]] for row in np.vstack(lams)]
            self.chain_scores_ = window_npmi(tops, train_tokens if reference is None else reference)
            lam, alpha, _ = pool_topics(lams, alphas, self.chain_scores_, self.n_topics)
        else:
            self.chain_scores_ = np.full(self.n_topics, np.nan)
        d = docs.reset_index(drop=True).copy()
        d["n_terms"] = n_terms
        d["in_training"] = train
        self._set_state(lam, alpha, vocab, pre, d, sort_topics=True)
        self.fit_seconds_ = time.perf_counter() - t0
        self._fit_X = _bow_matrix([vocab.doc2bow(t) for t in kept], len(vocab))
        self._train_tokens = train_tokens
        logger.info(
            "TopicModel(%s) fitted %d topics on %d/%d documents, %d terms in %.1fs",
            self.backend, self.n_topics, int(train.sum()), len(d), len(vocab), self.fit_seconds_,
        )
        return self

    def _set_state(self, lam: np.ndarray, alpha: Any, vocab: Vocabulary, pre: Preprocessor,
                   documents: pd.DataFrame | None, *, sort_topics: bool) -> np.ndarray:
        """Store the fitted state; with ``sort_topics`` topics are ordered by size
        (expected tokens, largest first; ties by top word: deterministic and readable). Returns the order."""
        lam = np.asarray(lam, dtype=np.float64)
        k = lam.shape[0]
        alpha = np.full(k, float(alpha)) if np.ndim(alpha) == 0 else np.asarray(alpha, dtype=np.float64)
        if sort_topics:
            mass = lam.sum(axis=1) - float(self.eta) * lam.shape[1]
            # ties (equal Gibbs counts) broken by the topic's top word: the order depends on content only
            order = np.lexsort((lam.argmax(axis=1), -np.round(mass, 6)))
        else:
            order = np.arange(k)
        self.components_ = np.ascontiguousarray(lam[order], dtype=np.float32)
        self.alpha_ = np.asarray(alpha, dtype=np.float32)[order]
        self.preprocessor_ = pre
        self.vocabulary_ = vocab
        self.n_features_ = len(vocab)
        self.documents_ = documents if documents is not None else _empty_documents()
        self._fit_X = None
        self._train_tokens = None
        self._doc_info = None
        self._eeb = None
        self._marginal_cache = None
        return order

    @classmethod
    def from_arrays(
        cls,
        components: Any,
        alpha: Any,
        vocabulary: Vocabulary,
        preprocessor: Preprocessor,
        /,
        *,
        document_info: pd.DataFrame | None = None,
        fit_seconds: float = float("nan"),
        sort_topics: bool = True,
        **params: Any,
    ) -> TopicModel:
        """A fitted TopicModel from a topic-term matrix trained elsewhere.

        For LDA fitted outside :meth:`fit` (e.g. streamed over Dask shards by
        :func:`radmine.topics.streaming.fit_topics_streaming`): the result transforms,
        inspects, scores and saves exactly like a model from :meth:`fit`.

        Parameters
        ----------
        components : array (n_topics, n_terms)
            Topic-term Dirichlet parameters (lambda = eta + expected counts;
            gensim ``LdaModel.state.get_lambda()``); columns in ``vocabulary`` order.
        alpha : float or array (n_topics,)
            Document-topic prior as fitted (stored as ``alpha_``). The first
            four arguments are positional-only, so ``alpha=`` in ``**params``
            is the constructor parameter (the prior's start value).
        vocabulary : Vocabulary
            Fitted vocabulary, ``len(vocabulary) == n_terms``.
        preprocessor : Preprocessor
            Fitted preprocessor (its phrases are applied to new texts).
        document_info : DataFrame, optional
            The fit documents: ``doc_id, report_id, sentence_id, n_terms,
            in_training`` and optionally ``dominant_topic, probability`` (topic
            ids refer to the rows of ``components`` as passed; they are
            renumbered when ``sort_topics``). Without ``dominant_topic``,
            :meth:`get_document_info` and topic sizes need the fit documents,
            which such a model does not keep (see :meth:`set_document_info`).
        fit_seconds : float, default nan
            Stored as ``fit_seconds_``.
        sort_topics : bool, default True
            Order topics by size (expected tokens, largest first) like :meth:`fit`.
        **params
            TopicModel parameters (``unit``, ``eta``, ``sections``, ``random_state``,
            ...); ``n_topics`` defaults to ``n_topics`` of ``components``.

        Returns
        -------
        TopicModel (fitted)

        Raises
        ------
        ValueError
            Shapes that do not match, or an unfitted vocabulary/preprocessor.
        """
        lam = np.asarray(components, dtype=np.float64)
        if lam.ndim != 2 or lam.shape[0] < 1:
            raise ValueError(f"from_arrays: components must be a 2-D array (n_topics, n_terms); got shape {lam.shape}.")
        k, v = lam.shape
        params.setdefault("n_topics", k)
        if params["n_topics"] != k:
            raise ValueError(f"from_arrays: n_topics={params['n_topics']!r} but components has {k} rows.")
        if not isinstance(vocabulary, Vocabulary) or getattr(vocabulary, "dictionary_", None) is None:
            raise ValueError("from_arrays: vocabulary must be a fitted radmine.topics.preprocess.Vocabulary.")
        if len(vocabulary) != v:
            raise ValueError(f"from_arrays: components has {v} columns but the vocabulary has {len(vocabulary)} terms.")
        if not isinstance(preprocessor, Preprocessor) or not hasattr(preprocessor, "phrasegrams_"):
            raise ValueError("from_arrays: preprocessor must be a fitted radmine.topics.preprocess.Preprocessor.")
        if not np.all(np.isfinite(lam)) or (lam <= 0).any():
            raise ValueError("from_arrays: components must be finite and > 0 (lambda = eta + expected counts).")
        a = np.asarray(alpha, dtype=np.float64)
        if a.ndim not in (0, 1) or (a.ndim == 1 and a.shape != (k,)) or not np.all(a > 0):
            raise ValueError(f"from_arrays: alpha must be a float > 0 or an array of {k} values > 0; got shape {a.shape}.")
        obj = cls(**params)
        obj.check_params()
        order = obj._set_state(lam, a, vocabulary, preprocessor, None, sort_topics=sort_topics)
        obj.fit_seconds_ = float(fit_seconds)
        if document_info is not None:
            info = document_info.reset_index(drop=True).copy()
            if "dominant_topic" in info.columns:
                new_id = np.empty(k, dtype=np.int64)
                new_id[order] = np.arange(k)
                dom = info["dominant_topic"].to_numpy(dtype=np.int64)
                info["dominant_topic"] = np.where(dom >= 0, new_id[np.clip(dom, 0, k - 1)], -1)
            obj.set_document_info(info)
        return obj

    @property
    def train_tokens_(self) -> list[list[str]] | None:
        """In-vocabulary token lists of the training documents (None after ``load``/``without_documents``)."""
        return getattr(self, "_train_tokens", None)

    def without_documents(self) -> TopicModel:
        """A shallow copy that keeps what ``transform`` needs and drops the fit documents.

        The copy shares the topic-term matrix, vocabulary and preprocessor with
        this model but not its training bag-of-words, token lists or document
        table: small to ship to Dask workers. ``get_document_info`` on the copy
        raises ``ValueError``, as on a loaded model.
        """
        import copy

        check_is_fitted(self, "components_")
        light = copy.copy(self)
        light._fit_X = None
        light._train_tokens = None
        light._doc_info = None
        light._eeb = None
        light.documents_ = _empty_documents()
        return light

    def set_document_info(self, info: pd.DataFrame) -> TopicModel:
        """Attach the fit documents' table to a model built by :meth:`from_arrays`.

        Parameters
        ----------
        info : DataFrame
            ``doc_id, report_id, sentence_id`` (optional: -1), ``n_terms,
            in_training`` plus ``dominant_topic`` (in this model's topic order, -1 for empty
            documents) and ``probability`` -- what :meth:`get_document_info`
            returns and :meth:`get_topic_info` counts.

        Returns
        -------
        self
        """
        check_is_fitted(self, "components_")
        base = list(DOCUMENT_COLUMNS)
        if "sentence_id" not in info.columns:
            info = info.assign(sentence_id=-1)
        missing = [c for c in base if c not in info.columns]
        if missing:
            raise ValueError(f"set_document_info: info lacks the columns {missing}; has {list(info.columns)}.")
        info = info.reset_index(drop=True)
        self.documents_ = info[base].copy()
        if "dominant_topic" in info.columns:
            if "probability" not in info.columns:
                raise ValueError("set_document_info: 'dominant_topic' needs a 'probability' column too.")
            dom = info["dominant_topic"].to_numpy()
            if len(dom) and (dom.max() >= self.n_topics_ or dom.min() < -1):
                raise ValueError(f"set_document_info: dominant_topic must be in -1..{self.n_topics_ - 1}.")
            self._doc_info = info.copy()
        else:
            self._doc_info = None
        return self

    def _alpha_start(self) -> float:
        """The document-topic prior (start value for tomotopy, which re-estimates it)."""
        if self.alpha is not None:
            return float(self.alpha)
        return 0.01 if self.backend == "gensim" else 0.1

    def _fit_gensim(self, train_tokens, vocab, seed):
        from gensim.models import LdaModel, LdaMulticore

        k = self.n_topics
        bows = [vocab.doc2bow(t) for t in train_tokens]
        iterations = 50 if self.iterations is None else self.iterations
        self.n_iterations_ = iterations
        corpus = bows
        bar = None
        if self.progress:
            from radmine._progress import tqdm

            bar = tqdm(total=self.passes * len(bows), desc="LDA (gensim)", unit="doc")
            corpus = _ProgressCorpus(bows, bar)
        common = dict(
            corpus=corpus, id2word=vocab.dictionary_, num_topics=k, eta=float(self.eta), passes=self.passes,
            iterations=iterations, random_state=seed, eval_every=None, chunksize=2000, dtype=np.float32,
        )
        try:
            if self.n_jobs > 1:
                logger.warning("n_jobs > 1 uses gensim LdaMulticore: results are not reproducible, even with a seed.")
                lda = LdaMulticore(workers=self.n_jobs, alpha=np.full(k, self._alpha_start()), **common)
            else:
                lda = LdaModel(alpha=np.full(k, self._alpha_start()), **common)
        finally:
            if bar is not None:
                bar.close()
        return np.asarray(lda.state.get_lambda(), dtype=np.float64), np.asarray(lda.alpha, dtype=np.float64)

    def _fit_tomotopy(self, train_tokens, vocab, seed):
        import tomotopy as tp

        k = self.n_topics
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        mdl = tp.LDAModel(k=k, alpha=self._alpha_start(), eta=float(self.eta), seed=seed)
        for t in train_tokens:
            mdl.add_doc(t)
        n_tokens = sum(map(len, train_tokens))
        total = tomotopy_sweeps(n_tokens) if self.iterations is None else self.iterations
        self.n_iterations_ = total
        step = max(1, min(50, total))
        bar = None
        if self.progress:
            from radmine._progress import tqdm

            bar = tqdm(total=total, desc="LDA (tomotopy)", unit="sweep")
        done = 0
        while done < total:
            n = min(step, total - done)
            mdl.train(n, workers=self.n_jobs)
            done += n
            if bar is not None:
                bar.update(n)
        if bar is not None:
            bar.close()
        words = list(mdl.used_vocabs)
        t2i = vocab.dictionary_.token2id
        cols = np.array([t2i[w] for w in words], dtype=np.int64)
        lam = np.full((k, len(vocab)), float(self.eta), dtype=np.float64)
        for t in range(k):
            lam[t, cols] = np.asarray(mdl.get_topic_word_dist(t, normalize=False), dtype=np.float64)
        return lam, np.asarray(mdl.alpha, dtype=np.float64)

    # -- transform ----------------------------------------------------
    def bag_of_words(self, tokens: list[list[str]]):
        """Sparse term counts (n_docs, n_terms) of token lists in the fitted vocabulary."""
        vocab = self.vocabulary_
        return _bow_matrix([vocab.doc2bow(t) for t in tokens], len(vocab))

    def _exp_elog_beta(self) -> np.ndarray:
        if getattr(self, "_eeb", None) is None:
            self._eeb = exp_elog_beta(self.components_)
        return self._eeb

    def _theta(self, X) -> np.ndarray:
        gamma = infer_gamma(X, self._exp_elog_beta(), self.alpha_.astype(np.float64))
        theta = gamma / gamma.sum(axis=1, keepdims=True)
        empty = np.asarray(X.sum(axis=1)).ravel() == 0
        theta[empty] = 1.0 / self.n_topics_
        return theta

    def transform_tokens(self, tokens: list[list[str]]) -> np.ndarray:
        """Topic mix (n_docs, n_topics) of already tokenized documents (rows sum to 1)."""
        return self._theta(self.bag_of_words(tokens))

    def _theta_of_fit_docs(self) -> np.ndarray:
        X = getattr(self, "_fit_X", None)
        if X is None:
            raise ValueError("The fit documents are not kept by this model (loaded from disk or made by "
                             "without_documents()); call transform(texts).")
        return self._theta(X)

    def transform(self, X: Any) -> np.ndarray:
        """Topic mix of each document.

        Parameters
        ----------
        X : Corpus or list/Series of str (n_docs,)
            A Corpus gives the same documents as :meth:`fit` (``unit``).

        Returns
        -------
        ndarray (n_docs, n_topics)
            Rows sum to 1; a document with no in-vocabulary term gets the
            uniform mix.
        """
        check_is_fitted(self, "components_")
        docs = self.make_documents(X)
        return self.transform_tokens(self.preprocessor_.transform(docs["text"]))

    @property
    def n_topics_(self) -> int:
        return int(self.components_.shape[0])

    @property
    def topic_word_(self) -> np.ndarray:
        """Topic-term probabilities, (n_topics, n_terms), rows sum to 1."""
        check_is_fitted(self, "components_")
        c = self.components_.astype(np.float64)
        return c / c.sum(axis=1, keepdims=True)

    @property
    def topic_ids_(self) -> list[int]:
        return list(range(self.n_topics_))

    # -- inspection ---------------------------------------------------
    def top_words(self, t: int, n_words: int) -> tuple[list[str], list[float]]:
        """The ``n_words`` most probable words of topic ``t`` and their p(word | topic)."""
        phi = self.topic_word_[t]
        idx = np.argsort(-phi, kind="stable")[:n_words]
        words = self.vocabulary_.words
        return [words[i] for i in idx], [float(phi[i]) for i in idx]

    def get_topic(self, t: Any, n_words: int = 10) -> pd.DataFrame:
        """Top words of topic ``t``: DataFrame ``word, weight`` (weight = p(word | topic)).

        Raises
        ------
        KeyError
            If ``t`` is not a topic id (0 .. n_topics-1).
        """
        check_is_fitted(self, "components_")
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= int(t) < self.n_topics_:
            raise KeyError(f"Unknown topic {t!r}: topics are the ints 0..{self.n_topics_ - 1}.")
        words, weights = self.top_words(int(t), check_int(n_words, "n_words", "get_topic", min_value=1))
        return pd.DataFrame({"word": words, "weight": weights})

    def get_topic_info(self, n_words: int = 10) -> pd.DataFrame:
        """One row per topic.

        Returns
        -------
        DataFrame
            ``topic`` (int), ``size`` (fit documents whose dominant topic it
            is), ``name`` (e.g. ``"cardiomegaly / enlarged / edema"``: see
            :func:`topic_name`; repeats get ``" (2)"``),
            ``top_words`` (list of str), ``weights`` (list of float).
        """
        check_is_fitted(self, "components_")
        n_words = check_int(n_words, "n_words", "get_topic_info", min_value=1)
        info = self.get_document_info()
        sizes = info.loc[info["dominant_topic"] >= 0, "dominant_topic"].value_counts()
        rows = []
        for t in range(self.n_topics_):
            words, weights = self.top_words(t, n_words)
            rows.append([t, int(sizes.get(t, 0)), self.topic_label(t), words, weights])
        for row, name in zip(rows, unique_names([r[2] for r in rows])):
            row[2] = name
        return pd.DataFrame(rows, columns=["topic", "size", "name", "top_words", "weights"])

    def _marginal(self) -> dict[str, float]:
        """p(word) over the fitted topics (expected counts), for :func:`topic_name`."""
        lam = self.components_.astype(np.float64)
        counts = np.clip(lam - float(self.eta), 0, None).sum(axis=0) + 1e-12
        return dict(zip(self.vocabulary_.words, counts / counts.sum()))

    def topic_label(self, t: int) -> str:
        """The short name of topic ``t`` (:func:`topic_name` of its top words); repeats not numbered."""
        if getattr(self, "_marginal_cache", None) is None:
            self._marginal_cache = self._marginal()
        words, weights = self.top_words(t, 30)
        return topic_name(words, weights, self._marginal_cache)

    def get_document_info(self) -> pd.DataFrame:
        """Dominant topic of each fit document.

        Returns
        -------
        DataFrame
            ``doc_id, report_id`` (+ ``sentence_id`` when ``unit="sentence"``),
            ``dominant_topic`` (-1 when the document has no in-vocabulary term),
            ``probability``, ``n_terms``, ``in_training``.
        """
        check_is_fitted(self, "components_")
        if getattr(self, "_doc_info", None) is None:
            theta = self._theta_of_fit_docs()
            d = self.documents_.copy()
            dom = theta.argmax(axis=1)
            prob = theta.max(axis=1)
            empty = d["n_terms"].to_numpy() == 0
            d["dominant_topic"] = np.where(empty, -1, dom).astype(int)
            d["probability"] = np.where(empty, np.nan, prob)
            self._doc_info = d
        d = self._doc_info
        cols = ["doc_id", "report_id"] + (["sentence_id"] if self.unit == "sentence" else [])
        cols += ["dominant_topic", "probability", "n_terms", "in_training"]
        return d[cols].copy()

    # -- image labels -------------------------------------------------
    def topic_labels_for_images(self, corpus: Any, context: int = 1) -> pd.DataFrame:
        """One topic label per image, as Shin et al. used them to train a CNN.

        ``unit="report"``: the image takes its report's dominant topic.
        ``unit="sentence"``: the image takes the dominant topic of its linked
        sentence(s) (``corpus.links``, or :func:`radmine.link_key_images`
        when empty) with ``context`` neighbouring sentences on each side
        (0 or 1; captions count as the image's sentence); images without a
        linked sentence fall back to their report. An image without a report
        but with a caption takes the caption's topic.

        Returns
        -------
        DataFrame
            ``image_id, report_id, topic, probability, source`` with source in
            ``"report" | "sentence" | "caption"``; ``topic`` is -1 (and
            probability NaN) when no text is left after preprocessing.
        """
        check_is_fitted(self, "components_")
        context = check_int(context, "context", "topic_labels_for_images", min_value=0)
        image_texts = image_documents(corpus, unit=self.unit, sections=self.sections, context=context)
        if not len(image_texts):
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                                 [("image_id", object), ("report_id", object), ("topic", int), ("probability", float), ("source", object)]})
        tokens = self.preprocessor_.transform(image_texts["text"])
        theta = self.transform_tokens(tokens)
        return image_topic_table(image_texts, theta, tokens, self.vocabulary_)

    # -- scores ---------------------------------------------------------
    def perplexity(self, X: Any, *, method: str = "completion", random_state: int = 0) -> float:
        """Per-word perplexity of (held-out) documents; lower is better.

        Parameters
        ----------
        X : Corpus or list/Series of str
        method : {"completion", "bound"}, default "completion"
            ``"completion"``: document completion (infer the topic mix from a
            random half of each document's words, score the other half); the
            same estimate the benchmark computes for every library.
            ``"bound"``: gensim's variational bound, ``2 ** -log_perplexity``.
        """
        check_is_fitted(self, "components_")
        check_option(method, "method", "perplexity", ["completion", "bound"])
        tokens = self.preprocessor_.transform(self.make_documents(X)["text"])
        X_ = self.bag_of_words(tokens)
        if method == "completion":
            return completion_perplexity(self.topic_word_, X_, self.alpha_, random_state=random_state)
        lda = self.to_gensim()
        from gensim.matutils import Sparse2Corpus

        bows = list(Sparse2Corpus(X_.astype(int), documents_columns=False))
        bows = [[(int(i), int(c)) for i, c in b] for b in bows if b]
        return float(2 ** (-lda.log_perplexity(bows)))

    def coherence(self, measure: str = "c_npmi", texts: Any = None, *, top_n: int = 10) -> float:
        """Mean topic coherence (gensim ``CoherenceModel``) of the top ``top_n`` words.

        Parameters
        ----------
        measure : {"c_npmi", "c_v", "u_mass", "c_uci"}
        texts : Corpus or list/Series of str, optional
            Reference texts (default: the fit documents; required after ``load``).
        """
        check_is_fitted(self, "components_")
        check_option(measure, "measure", "coherence", ["c_npmi", "c_v", "u_mass", "c_uci"])
        if texts is None:
            tokens = getattr(self, "_train_tokens", None)
            if tokens is None:
                raise ValueError("coherence: a loaded model does not keep its training texts; pass texts=.")
        else:
            tokens = self.vocabulary_.filter_docs(self.preprocessor_.transform(self.make_documents(texts)["text"]))
        topics = [self.top_words(t, top_n)[0] for t in range(self.n_topics_)]
        return topic_coherence(topics, tokens, self.vocabulary_.dictionary_, measure)

    def boilerplate_share(self, texts: Any, *, top_n: int = 5, min_words: int = 3) -> float:
        """Share of topics that restate the normal-report template of ``texts``.

        A topic counts when at least ``min_words`` of its first ``top_n`` words (split at ``_``)
        are :func:`~radmine.topics.preprocess.boilerplate_words` of ``texts``: words used mostly
        in normal-template clauses or negated scopes ("lungs", "clear", "pneumothorax").

        Parameters
        ----------
        texts : Corpus or list/Series of str
            The reports the words are judged on (usually the fit texts); this model's
            ``sections`` are read.
        top_n, min_words : int, default 5, 3

        Returns
        -------
        float in [0, 1]
        """
        from radmine.topics.preprocess import boilerplate_share, boilerplate_words

        check_is_fitted(self, "components_")
        top_n = check_int(top_n, "top_n", "boilerplate_share", min_value=1)
        min_words = check_int(min_words, "min_words", "boilerplate_share", min_value=1)
        words = boilerplate_words(self.make_documents(texts)["text"])
        topics = [self.top_words(t, top_n * 2)[0] for t in range(self.n_topics_)]
        return boilerplate_share(topics, words, top_n=top_n, min_words=min_words)

    # -- exports --------------------------------------------------------
    def to_gensim(self):
        """A gensim ``LdaModel`` with this model's topics (for gensim tools)."""
        from gensim.models import LdaModel

        check_is_fitted(self, "components_")
        k, v = self.components_.shape
        lda = LdaModel(id2word=self.vocabulary_.dictionary_, num_topics=k, alpha=self.alpha_.astype(np.float64),
                       eta=float(self.eta), random_state=0, dtype=np.float32)
        lda.state.sstats = (self.components_.astype(np.float64) - float(self.eta)).clip(min=0).astype(np.float32)
        lda.sync_state()
        return lda

    def to_pyldavis(self, texts: Any = None, **kwargs: Any):
        """A pyLDAvis ``PreparedData`` (display with ``pyLDAvis.display``).

        Parameters
        ----------
        texts : Corpus or list/Series of str, optional
            Documents for topic sizes (default: the fit documents; required after ``load``).
        **kwargs
            Passed to ``pyLDAvis.prepare``.
        """
        check_is_fitted(self, "components_")
        try:
            import pyLDAvis
        except ImportError:  # pragma: no cover
            raise ImportError("to_pyldavis needs the 'pyLDAvis' package: pip install pyLDAvis") from None
        if texts is None:
            X = getattr(self, "_fit_X", None)
            if X is None:
                raise ValueError("to_pyldavis: a loaded model does not keep its fit documents; pass texts=.")
        else:
            X = self.bag_of_words(self.preprocessor_.transform(self.make_documents(texts)["text"]))
        lens = np.asarray(X.sum(axis=1)).ravel()
        keep = lens > 0
        theta = self._theta(X[keep])
        tf = np.asarray(X.sum(axis=0)).ravel()
        kwargs.setdefault("sort_topics", False)
        return pyLDAvis.prepare(
            topic_term_dists=self.topic_word_, doc_topic_dists=theta, doc_lengths=lens[keep],
            vocab=self.vocabulary_.words, term_frequency=np.maximum(tf, 1e-12), **kwargs,
        )

    # -- plots ----------------------------------------------------------
    def plot_topics(self, topics: Any = None, n_words: int = 8, **kwargs: Any):
        """Top-word bars titled with topic names; see :func:`radmine.plotting.topics.barchart`."""
        from radmine.plotting.topics import barchart

        return barchart(self, topics, n_words, **kwargs)

    def plot_over_time(self, dates: Any, **kwargs: Any):
        """Topic shares per period; see :func:`radmine.plotting.topics.over_time`."""
        from radmine.plotting.topics import over_time

        return over_time(self, dates, **kwargs)

    # -- persistence ----------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save to a folder: ``topic_model.json`` (params, vocabulary, phrases),
        ``topic_model.safetensors`` (topic-term matrix, alpha) and
        ``documents.parquet`` (fit documents and their dominant topics). No pickle."""
        from safetensors.numpy import save as st_save

        from radmine import __version__
        from radmine._io import (
            atomic_write_bytes,
            atomic_write_json,
            atomic_write_parquet,
        )

        check_is_fitted(self, "components_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        params = self.get_params(deep=False)
        params["sections"] = None if self.sections is None else list(self.sections)
        params["random_state"] = self.random_state if isinstance(self.random_state, (int, type(None))) else None
        atomic_write_bytes(path / _ARRAYS, st_save({"components": np.ascontiguousarray(self.components_, dtype=np.float32),
                                                    "alpha": np.ascontiguousarray(self.alpha_, dtype=np.float32)}))
        info = self.get_document_info() if getattr(self, "_fit_X", None) is not None or getattr(self, "_doc_info", None) is not None else None
        if info is not None:
            full = self._doc_info.copy()
            for c in ("doc_id", "report_id"):
                full[c] = full[c].astype(str) if full[c].dtype == object else full[c]
            atomic_write_parquet(full, path / _DOCS)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "radmine_version": __version__,
            "class": type(self).__name__,
            "params": params,
            "preprocessor": self.preprocessor_.to_dict(),
            "vocabulary": self.vocabulary_.to_dict(),
            "fit_seconds": self.fit_seconds_,
        }
        atomic_write_json(path / _JSON, meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TopicModel:
        """Load a model written by :meth:`save` (JSON + safetensors + parquet; no pickle)."""
        from safetensors.numpy import load as st_load

        path = Path(path)
        meta = read_model_meta(path, FORMAT)
        params = dict(meta["params"])
        if params.get("sections") is not None:
            params["sections"] = tuple(params["sections"])
        # files without these options: every clause kept, no document-fraction filter
        params.setdefault("drop_normal", False)
        params.setdefault("max_df", 1.0)
        obj = cls(**params)
        arrays = st_load((path / _ARRAYS).read_bytes())
        documents = None
        d = pd.read_parquet(path / _DOCS) if (path / _DOCS).is_file() else None
        if d is not None:
            documents = d[[c for c in DOCUMENT_COLUMNS if c in d.columns]].copy()
        obj._set_state(arrays["components"], arrays["alpha"], Vocabulary.from_dict(meta["vocabulary"]),
                       Preprocessor.from_dict(meta["preprocessor"]), documents, sort_topics=False)
        obj._doc_info = d
        obj.fit_seconds_ = float(meta.get("fit_seconds", float("nan")))
        return obj

    # -- display --------------------------------------------------------
    def _summary_rows(self) -> dict[str, Any]:
        rows = super()._summary_rows()
        if hasattr(self, "components_"):
            rows = {"fitted": True, "topics": self.n_topics_, "terms": self.n_features_,
                    "documents": len(self.documents_), "backend": self.backend, "unit": self.unit}
        return rows

    def _repr_html_(self) -> str:
        if not hasattr(self, "components_"):
            return super()._repr_html_()
        return topic_table_html(self.get_topic_info(n_words=8), title=f"TopicModel: {self.n_topics_} topics",
                                summary=self._summary_rows())


class _ProgressCorpus:
    """Iterable over bag-of-words lists that advances a tqdm bar (gensim pass progress)."""

    def __init__(self, bows, bar):
        self.bows, self.bar = bows, bar

    def __len__(self):
        return len(self.bows)

    def __iter__(self):
        for b in self.bows:
            self.bar.update(1)
            yield b


def topic_coherence(topics: list[list[str]], tokens: list[list[str]], dictionary: Any, measure: str = "c_npmi") -> float:
    """Mean coherence of ``topics`` (lists of top words) over tokenized ``texts`` with gensim's
    ``CoherenceModel`` (``processes=1``: deterministic). Words not in ``dictionary`` are skipped."""
    from gensim.models import CoherenceModel

    t2i = dictionary.token2id
    topics = [[w for w in t if w in t2i] for t in topics]
    topics = [t for t in topics if len(t) >= 2]
    if not topics:
        return float("nan")
    cm = CoherenceModel(topics=topics, texts=tokens, dictionary=dictionary, coherence=measure, topn=max(len(t) for t in topics), processes=1)
    return float(cm.get_coherence())


def image_documents(corpus: Any, *, unit: str, sections: Any, context: int = 1) -> pd.DataFrame:
    """The text each image is labelled from: ``image_id, report_id, source, text``."""
    from radmine.corpus import Corpus
    from radmine.topics.io import clean_text, sentence_window, report_texts

    if not isinstance(corpus, Corpus):
        raise TypeError(f"topic_labels_for_images needs a radmine.Corpus; got {type(corpus).__name__}.")
    images = corpus.images
    if not len(images):
        return pd.DataFrame(columns=["image_id", "report_id", "source", "text"])
    rep_text = dict(zip(corpus.reports["report_id"], report_texts(corpus.reports, sections)))
    sent_text: dict[Any, tuple[str, str]] = {}
    if unit == "sentence":
        links = corpus.links
        if links is None or not len(links):
            try:
                from radmine.linking import link_key_images

                links = link_key_images(corpus, context=max(context, 1))
            except ImportError:
                logger.warning("radmine.linking is not available; images are labelled from their reports.")
                links = None
        if links is not None and len(links) and "sentence" in links.columns:
            sentences = corpus.sentences if context > 1 and len(corpus.sentences) else None
            by_img: dict[Any, list[tuple[str, str]]] = {}
            for r in links.itertuples(index=False):
                s = clean_text(getattr(r, "sentence", ""))
                if not s.strip():
                    continue
                sid = getattr(r, "sentence_id", -1)
                sid = -1 if sid is None or pd.isna(sid) else int(sid)
                method = str(getattr(r, "method", "") or "")
                if method == "caption" or sid < 0:
                    src, text = "caption", s
                else:
                    src = "sentence"
                    if sentences is not None:
                        w = sentences[(sentences["report_id"] == r.report_id) & sentences["sentence_id"].between(sid - context, sid + context)]
                        text = " ".join(w.sort_values("sentence_id")["text"].map(clean_text)) or s
                    else:
                        text = sentence_window(getattr(r, "prev_sentence", ""), s, getattr(r, "next_sentence", ""), context)
                by_img.setdefault(r.image_id, []).append((src, text))
            for img, items in by_img.items():
                src = "sentence" if any(s == "sentence" for s, _ in items) else "caption"
                sent_text[img] = (src, " ".join(t for _, t in items))
    rows = []
    has_caption = "caption" in images.columns
    for r in images.itertuples(index=False):
        rid = getattr(r, "report_id", None)
        if r.image_id in sent_text:
            src, text = sent_text[r.image_id]
        elif rid is not None and not pd.isna(rid) and clean_text(rep_text.get(rid, "")).strip():
            src, text = "report", rep_text[rid]
        elif has_caption and clean_text(getattr(r, "caption", "")).strip():
            src, text = "caption", clean_text(r.caption)
        else:
            src, text = "report", clean_text(rep_text.get(rid, "")) if rid is not None and not pd.isna(rid) else ""
        rows.append((r.image_id, rid, src, text))
    return pd.DataFrame(rows, columns=["image_id", "report_id", "source", "text"])


def image_topic_table(image_texts: pd.DataFrame, theta: np.ndarray, tokens, vocab) -> pd.DataFrame:
    """``image_id, report_id, topic, probability`` of images from their texts' topic mix (topic -1 for empty texts)."""
    n_terms = np.array([len(t) for t in vocab.filter_docs(tokens)])
    empty = n_terms == 0
    return pd.DataFrame(
        {
            "image_id": image_texts["image_id"].to_numpy(),
            "report_id": image_texts["report_id"].to_numpy(),
            "topic": np.where(empty, -1, theta.argmax(axis=1)).astype(int),
            "probability": np.where(empty, np.nan, theta.max(axis=1)),
            "source": image_texts["source"].to_numpy(),
        }
    )


def topic_table_html(info: pd.DataFrame, *, title: str, summary: dict[str, Any] | None = None, max_rows: int = 100) -> str:
    """HTML table of topics with their top words drawn as inline bars."""
    head = summary_html(title, summary) if summary else f"<strong>{html.escape(title)}</strong>"
    body = []
    for r in info.head(max_rows).itertuples(index=False):
        wmax = max(r.weights) if len(r.weights) else 1.0
        cells = "".join(
            f"<span style='display:inline-block;margin-right:0.8em;white-space:nowrap'>{html.escape(w)} "
            f"<span style='display:inline-block;height:0.6em;width:{max(2, int(60 * x / wmax))}px;"
            f"background:#4c78a8;vertical-align:middle'></span></span>"
            for w, x in zip(r.top_words, r.weights)
        )
        body.append(f"<tr><td style='text-align:left'>{html.escape(str(r.topic))}</td>"
                    f"<td style='text-align:right'>{int(r.size)}</td><td style='text-align:left'>{cells}</td></tr>")
    more = f"<div>... {len(info) - max_rows} more topics</div>" if len(info) > max_rows else ""
    return (f"<div>{head}<table><thead><tr><th>topic</th><th>size</th><th style='text-align:left'>top words</th>"
            f"</tr></thead><tbody>{''.join(body)}</tbody></table>{more}</div>")


def read_model_meta(path: Path, fmt: str) -> dict[str, Any]:
    """The JSON metadata of a saved topic model folder, checked to be of format ``fmt``."""
    name = _JSON if fmt == FORMAT else "hierarchical_topic_model.json"
    return read_saved_meta(path, name, fmt, "radmine topic model")
