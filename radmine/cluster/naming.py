"""Name image clusters from the words of their images' report text.

As in Wang et al. (WACV 2017) each cluster is described by its most frequent
words ("liver 524, abdomen 337, ..."); words that set it apart from the other
clusters are ranked by the log-odds ratio with an informative Dirichlet prior
(Monroe, Colaresi & Quinn 2008), z-scored, and the top ones form its name.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Words that say nothing about a radiology image on top of scikit-learn's English stop words.
RADIOLOGY_FILLERS = frozenset(
    """image images imaging seen shows show showing shown demonstrates demonstrate demonstrated demonstrating
    noted note notes arrow arrows arrowhead arrowheads also within there which patient patients case cases
    figure fig view views study studies left right may well without identified appears appear visible
    consistent compatible likely measuring measures measure approximately cm mm year old male female
    mpx synpic yo series se im img key representative""".split()
)
TOKEN_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z0-9]+\b"


def stop_word_list(stop_words="radiology") -> list[str]:
    """``"radiology"`` (English + fillers), ``"english"``, ``None`` or a list of words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    if stop_words is None:
        return []
    if isinstance(stop_words, str):
        if stop_words == "english":
            return sorted(ENGLISH_STOP_WORDS)
        if stop_words == "radiology":
            return sorted(ENGLISH_STOP_WORDS | RADIOLOGY_FILLERS)
        raise ValueError(f"stop_words must be 'radiology', 'english', None or a list; got {stop_words!r}.")
    return [str(w).lower() for w in stop_words]


def image_texts(corpus, image_ids) -> pd.Series:
    """Text describing each image, indexed by ``image_id``.

    The image's linked sentence(s) from ``corpus.links`` when present, else its
    ``caption``, else its report's ``findings`` (else the report ``text``).
    Missing images get ``""``.
    """
    ids = pd.Index([str(i) for i in image_ids])
    out = pd.Series("", index=ids, dtype=object)
    images = corpus.images.copy()
    images["_id"] = images["image_id"].astype(str)
    images = images.drop_duplicates("_id").set_index("_id")
    # 3. report findings / text
    rep = corpus.reports
    if len(rep) and "report_id" in images.columns:
        col = rep["findings"] if "findings" in rep.columns else pd.Series(np.nan, index=rep.index)
        text = col.where(col.notna() & (col.astype(str).str.strip() != ""), rep.get("text"))
        rtext = pd.Series(text.values, index=rep["report_id"].astype(str))
        rtext = rtext[~rtext.index.duplicated()]
        rid = images["report_id"].astype(str).reindex(ids)
        vals = rtext.reindex(rid.values).values
        out = pd.Series(np.where(pd.isna(vals), out.values, vals), index=ids, dtype=object)
    # 2. caption
    if "caption" in images.columns:
        cap = images["caption"].reindex(ids)
        ok = cap.notna() & (cap.astype(str).str.strip() != "")
        out[ok.values] = cap[ok].astype(str).values
    # 1. linked sentences
    links = corpus.links
    if len(links) and "sentence" in links.columns:
        lk = links[links["sentence"].notna()].copy()
        lk = lk[lk["sentence"].astype(str).str.strip() != ""]
        if len(lk):
            lk["_id"] = lk["image_id"].astype(str)
            joined = lk.groupby("_id", sort=False)["sentence"].agg(lambda s: " ".join(dict.fromkeys(map(str, s))))
            joined = joined.reindex(ids)
            ok = joined.notna()
            out[ok.values] = joined[ok].values
    return out.fillna("")


def image_annotations(corpus, image_ids, kinds=None) -> pd.DataFrame:
    """Annotations per image: its own rows plus its report's image-less rows.

    Returns
    -------
    DataFrame with columns ``image_id, label`` (``label`` is ``"kind: value"``),
    one row per distinct (image, label).
    """
    ann = corpus.annotations
    if not len(ann) or "kind" not in ann.columns:
        return pd.DataFrame({"image_id": pd.Series(dtype=object), "label": pd.Series(dtype=object)})
    ann = ann[ann["value"].notna()].copy()
    if kinds is not None:
        ann = ann[ann["kind"].isin(list(kinds))]
    ann["label"] = ann["kind"].astype(str) + ": " + ann["value"].astype(str)
    ids = pd.DataFrame({"image_id": [str(i) for i in image_ids]})
    imgs = corpus.images[["image_id", "report_id"]].astype({"image_id": str})
    ids = ids.merge(imgs, on="image_id", how="left")
    parts = []
    if "image_id" in ann.columns:
        own = ann[ann["image_id"].notna()].assign(image_id=lambda d: d["image_id"].astype(str))
        parts.append(own.merge(ids[["image_id"]], on="image_id")[["image_id", "label"]])
        rep_level = ann[ann["image_id"].isna()]
    else:
        rep_level = ann
    if len(rep_level):
        rep_level = rep_level[["report_id", "label"]]
        parts.append(ids.dropna(subset=["report_id"]).merge(rep_level, on="report_id")[["image_id", "label"]])
    if not parts:
        return pd.DataFrame({"image_id": pd.Series(dtype=object), "label": pd.Series(dtype=object)})
    return pd.concat(parts, ignore_index=True).drop_duplicates()


def log_odds_z(counts: np.ndarray, prior_scale: float = 1.0) -> np.ndarray:
    """Z-scored log-odds of each word in each group against all other groups.

    Informative Dirichlet prior = the pooled word counts times ``prior_scale``
    (Monroe et al. 2008, "Fightin' words").

    Parameters
    ----------
    counts : ndarray, shape (n_groups, n_words)

    Returns
    -------
    ndarray of float, shape (n_groups, n_words)
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(0)
    a = prior_scale * total + 1e-9
    a0 = a.sum()
    n_i = counts.sum(1, keepdims=True)
    rest = total[None, :] - counts
    n_j = rest.sum(1, keepdims=True)
    d_i = np.log(counts + a) - np.log(np.maximum(n_i + a0 - counts - a, 1e-9))
    d_j = np.log(rest + a) - np.log(np.maximum(n_j + a0 - rest - a, 1e-9))
    var = 1.0 / (counts + a) + 1.0 / (rest + a)
    return (d_i - d_j) / np.sqrt(var)


def describe_clusters(
    corpus,
    image_ids,
    labels,
    *,
    n_words: int = 10,
    stop_words="radiology",
    n_annotations: int = 5,
    annotation_kinds=None,
    name_words: int = 3,
    min_reports: int = 3,
) -> pd.DataFrame:
    """Per-cluster words and annotations.

    Parameters
    ----------
    corpus : Corpus
    image_ids : array-like, shape (n_images,)
    labels : array-like, shape (n_images,)
        Cluster id per image.
    min_reports : int, default=3
        A distinctive word must occur in at least this many distinct reports
        of the cluster (fewer when the cluster has fewer reports): words of a
        single case with many images do not name a cluster.

    Distinctiveness is computed on report-level presence (a word counts once
    per report in a cluster), so images of one case do not outvote the
    others; ``top_words`` keeps the raw counts, as in the paper.

    Returns
    -------
    DataFrame
        ``cluster, size, name, top_words, distinctive_words, top_annotations``,
        largest cluster first. ``top_words``: list of ``(word, count)``;
        ``distinctive_words``: list of ``(word, z)`` with ``z > 0``;
        ``top_annotations``: list of ``(label, n_images)``.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    image_ids = [str(i) for i in image_ids]
    labels = np.asarray(labels)
    if len(labels) != len(image_ids):
        raise ValueError(f"labels has {len(labels)} values but image_ids has {len(image_ids)}.")
    texts = image_texts(corpus, image_ids)
    clusters, inv = np.unique(labels, return_inverse=True)
    vec = CountVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, stop_words=stop_word_list(stop_words))
    try:
        X = vec.fit_transform(texts.tolist())
        vocab = np.asarray(vec.get_feature_names_out())
    except ValueError:  # empty vocabulary
        X, vocab = None, np.array([], dtype=object)
    k = len(clusters)
    if X is not None:
        from scipy import sparse

        G = sparse.csr_matrix((np.ones(len(inv)), (inv, np.arange(len(inv)))), shape=(k, len(inv)))
        C = np.asarray((G @ X).todense())
        # report-level presence per cluster: rows (cluster, report) -> any image of that report has the word
        rid = _report_ids(corpus, image_ids)
        pair = pd.Series(list(zip(inv, rid))).astype(str)
        codes, uniq = pd.factorize(pair)
        P = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(len(uniq), len(codes)))
        R = (P @ (X > 0).astype(np.float64)) > 0
        pair_cluster = np.zeros(len(uniq), dtype=np.int64)
        pair_cluster[codes] = inv
        Gp = sparse.csr_matrix((np.ones(len(uniq)), (pair_cluster, np.arange(len(uniq)))), shape=(k, len(uniq)))
        D = np.asarray((Gp @ R.astype(np.float64)).todense())
        n_rep = np.bincount(pair_cluster, minlength=k)
        Zs = log_odds_z(D) if k > 1 else D.astype(float)
        need = np.minimum(min_reports, n_rep)[:, None]
        Zs = np.where(D >= need, Zs, -np.inf)
    else:
        C = Zs = np.zeros((k, 0))
    ann = image_annotations(corpus, image_ids, annotation_kinds)
    lab_of = pd.Series(labels, index=image_ids)
    lab_of = lab_of[~lab_of.index.duplicated()]
    ann_counts = {}
    if len(ann):
        ann = ann.assign(cluster=lab_of.reindex(ann["image_id"]).values)
        for c, g in ann.groupby("cluster", sort=False):
            vc = g["label"].value_counts()
            ann_counts[c] = [(str(a), int(b)) for a, b in vc.head(n_annotations).items()]
    rows = []
    sizes = np.bincount(inv, minlength=k)
    for j, c in enumerate(clusters):
        top = np.argsort(-C[j], kind="stable")[:n_words] if C.shape[1] else []
        top_words = [(str(vocab[t]), int(C[j, t])) for t in top if C[j, t] > 0]
        # by z, ties broken by the raw count
        dist = np.lexsort((-C[j], -Zs[j]))[:n_words] if Zs.shape[1] else []
        distinctive = [(str(vocab[t]), round(float(Zs[j, t]), 2)) for t in dist
                       if np.isfinite(Zs[j, t]) and Zs[j, t] > 0 and C[j, t] > 0]
        words = [w for w, _ in (distinctive or top_words)][:name_words]
        rows.append({
            "cluster": c.item() if hasattr(c, "item") else c,
            "size": int(sizes[j]),
            "name": " / ".join(words) if words else f"cluster {c}",
            "top_words": top_words,
            "distinctive_words": distinctive,
            "top_annotations": ann_counts.get(c, []),
        })
    out = pd.DataFrame(rows, columns=["cluster", "size", "name", "top_words", "distinctive_words",
                                      "top_annotations"])
    return out.sort_values(["size", "cluster"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _report_ids(corpus, image_ids) -> list[str]:
    """Report id per image (the image id itself when unknown)."""
    images = corpus.images
    if "report_id" not in images.columns:
        return [str(i) for i in image_ids]
    m = pd.Series(images["report_id"].values, index=images["image_id"].astype(str))
    m = m[~m.index.duplicated()]
    got = m.reindex([str(i) for i in image_ids])
    return [str(r) if pd.notna(r) else f"image:{i}" for r, i in zip(got.values, image_ids)]


def format_words(pairs, n: int | None = None) -> str:
    """``[("liver", 524), ("abdomen", 337)]`` -> ``"liver 524, abdomen 337"``."""
    pairs = list(pairs)[:n] if n else list(pairs)
    return ", ".join(f"{w} {c}" for w, c in pairs)
