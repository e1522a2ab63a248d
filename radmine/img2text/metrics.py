"""Retrieval and text metrics for image <-> text models.

* :func:`recall_at_k` -- image->text and text->image Recall@K with median and
  mean rank (open_clip's retrieval metrics), for one or many texts per image,
  computed in chunks so that 100k x 100k candidates run in bounded memory.
* :func:`word_match_rate` -- Shin et al.'s (CVPR 2015) "R@1": how often the
  predicted disease words appear in the image's own report sentences.
* :func:`bleu_scores` -- corpus BLEU-1..4 (Papineni et al. 2002) for the
  annotation generator.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["recall_at_k", "word_match_rate", "bleu_scores", "tokenize"]

_TOKEN = re.compile(r"[a-z][a-z0-9]*(?:[-'][a-z0-9]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters first; digits and inner hyphens kept).

    >>> tokenize("Right-sided 1.6 cm mass, kidney.")
    ['right-sided', 'cm', 'mass', 'kidney']
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    return _TOKEN.findall(str(text).lower())


def _as_2d(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"recall_at_k: {name} must be a numeric array, got {type(x).__name__}.") from None
    if arr.ndim != 2:
        raise ValueError(f"recall_at_k: {name} must be 2-D (n, dim); got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"recall_at_k: {name} contains NaN or infinite values.")
    return arr


def _best_positive_ranks(
    queries: np.ndarray,
    keys: np.ndarray,
    query_pos_score: np.ndarray,
    query_label: np.ndarray,
    key_label: np.ndarray,
    chunk_size: int,
) -> np.ndarray:
    """1 + number of *negative* keys scoring >= the query's best positive score.

    A key is a positive of a query when ``key_label == query_label``. Ties with
    negatives count against the query (pessimistic), so a constant model gets
    the worst rank, never the best.
    """
    n_q = len(queries)
    counts = np.zeros(n_q, dtype=np.int64)
    for qs in range(0, n_q, chunk_size):
        q = queries[qs : qs + chunk_size]
        best = query_pos_score[qs : qs + chunk_size, None]
        ql = query_label[qs : qs + chunk_size, None]
        for ks in range(0, len(keys), chunk_size):
            s = q @ keys[ks : ks + chunk_size].T  # (chunk, chunk) block, never the full matrix
            hit = s >= best
            hit &= key_label[None, ks : ks + chunk_size] != ql
            counts[qs : qs + chunk_size] += hit.sum(axis=1)
    return counts + 1


def _summarise(prefix: str, ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in ks:
        out[f"{prefix}_R@{k}"] = float(np.mean(ranks <= k)) if len(ranks) else float("nan")
    out[f"{prefix}_median_rank"] = float(np.median(ranks)) if len(ranks) else float("nan")
    out[f"{prefix}_mean_rank"] = float(np.mean(ranks)) if len(ranks) else float("nan")
    return out


def recall_at_k(
    image_emb,
    text_emb,
    ks: Iterable[int] = (1, 5, 10),
    *,
    text_to_image=None,
    chunk_size: int = 4096,
) -> dict[str, float]:
    """Image->text and text->image Recall@K, median and mean rank.

    Scores are inner products ``image_emb @ text_emb.T`` (cosine similarity
    when both are L2-normalised, as :meth:`ImageTextModel.encode_images` and
    ``encode_texts`` return them).

    * **text->image**: each text has exactly one correct image
      (``text_to_image[j]``); its rank is 1 + the number of *other* images
      scoring at least as high as the correct one.
    * **image->text**: an image may have several correct texts (all ``j`` with
      ``text_to_image[j] == i``); its rank is the rank of its best-scoring
      correct text among the other images' texts, i.e. 1 + the number of wrong
      texts scoring at least as high. So an image counts as a hit at ``k`` if
      ANY of its texts ranks within the top ``k``. Images without any text are
      left out of the image->text figures.

    Ties count against the query (a wrong candidate with the same score ranks
    first), so a model that scores everything equally gets the worst rank.
    Ranks are 1-based. Memory stays at about ``chunk_size**2`` floats: the
    full similarity matrix is never built.

    Parameters
    ----------
    image_emb : array-like of shape (n_images, dim)
    text_emb : array-like of shape (n_texts, dim)
    ks : iterable of int, default (1, 5, 10)
        Cut-offs, each >= 1.
    text_to_image : array-like of int of shape (n_texts,), optional
        Row of ``image_emb`` that each text belongs to. Default: one text
        per image in the same order (``n_texts == n_images``, the diagonal).
    chunk_size : int, default 4096
        Rows per block of the similarity computation.

    Returns
    -------
    dict of str -> float
        ``image_to_text_R@{k}`` for each k, ``image_to_text_median_rank``,
        ``image_to_text_mean_rank`` and the same keys for ``text_to_image``.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.eye(3, dtype="float32")
    >>> recall_at_k(e, e, ks=(1,))["image_to_text_R@1"]
    1.0
    """
    img = _as_2d(image_emb, "image_emb")
    txt = _as_2d(text_emb, "text_emb")
    if img.shape[1] != txt.shape[1]:
        raise ValueError(
            f"recall_at_k: image_emb and text_emb must have the same dim; got {img.shape[1]} and {txt.shape[1]}."
        )
    ks = list(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"recall_at_k: ks must be a non-empty list of ints >= 1; got {ks}.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"recall_at_k: chunk_size must be an int >= 1; got {chunk_size!r}.")
    n_img, n_txt = len(img), len(txt)
    if text_to_image is None:
        if n_img != n_txt:
            raise ValueError(
                f"recall_at_k: without text_to_image there must be one text per image; got {n_img} images "
                f"and {n_txt} texts. Pass text_to_image to map each text to its image row."
            )
        t2i = np.arange(n_txt)
    else:
        t2i = np.asarray(text_to_image)
        if t2i.shape != (n_txt,) or not np.issubdtype(t2i.dtype, np.integer):
            raise ValueError(
                f"recall_at_k: text_to_image must be an int array of shape ({n_txt},); got dtype {t2i.dtype} "
                f"and shape {t2i.shape}."
            )
        if n_txt and (t2i.min() < 0 or t2i.max() >= n_img):
            raise ValueError(f"recall_at_k: text_to_image values must be image rows in [0, {n_img}).")
        t2i = t2i.astype(np.int64)
    # text -> image: the positive score of each text, from its own image row
    pos_t = np.einsum("ij,ij->i", txt, img[t2i]) if n_txt else np.zeros(0, np.float32)
    ranks_t = _best_positive_ranks(txt, img, pos_t, t2i, np.arange(n_img), chunk_size)
    # image -> text: the best positive score of each image over its texts
    best_i = np.full(n_img, -np.inf, dtype=np.float32)
    np.maximum.at(best_i, t2i, pos_t)
    has_text = np.isfinite(best_i)
    rows = np.flatnonzero(has_text)
    ranks_i = _best_positive_ranks(img[rows], txt, best_i[rows], rows, t2i, chunk_size)
    out = _summarise("image_to_text", ranks_i, ks)
    out.update(_summarise("text_to_image", ranks_t, ks))
    return out


def word_match_rate(predicted_words, reference_texts, k: int = 1) -> float:
    """Shin et al.'s word-match "R@1": share of images whose top-k words occur in their own text.

    For image ``i`` the first ``k`` entries of ``predicted_words[i]`` (ranked
    best first) are compared with the words of ``reference_texts[i]`` (the
    image's own report sentence(s): a string or a list of strings). Both sides
    are lower-cased and split into word tokens with :func:`tokenize`. A
    predicted entry matches when all its tokens occur, in order and adjacent,
    in one reference text (so a single word matches a whole word, never a
    substring: "mass" does not match "massive"; a phrase such as
    "pleural effusion" must appear as that phrase). The image is a hit when at
    least one of its top-k entries matches. Images with no prediction count
    as misses. With ``k=1`` this is the R@1 of Shin et al. (CVPR 2015, 0.56).

    Parameters
    ----------
    predicted_words : sequence of sequence of str, length n_images
        Ranked words/phrases per image (e.g. ``ImageTextModel.describe`` words).
    reference_texts : sequence of (str or sequence of str), length n_images
    k : int, default 1

    Returns
    -------
    float
        Hit rate in [0, 1] (NaN for zero images).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"word_match_rate: k must be an int >= 1; got {k!r}.")
    if isinstance(predicted_words, str) or isinstance(reference_texts, str):
        raise TypeError("word_match_rate: pass one list of words and one reference per image, not a single string.")
    preds, refs = list(predicted_words), list(reference_texts)
    if len(preds) != len(refs):
        raise ValueError(
            f"word_match_rate: predicted_words has {len(preds)} images but reference_texts has {len(refs)}."
        )
    if not preds:
        return float("nan")
    hits = 0
    for words, ref in zip(preds, refs):
        if isinstance(words, str):
            words = [words]
        texts = [ref] if isinstance(ref, str) or ref is None else list(ref)
        toks = [" " + " ".join(tokenize(t)) + " " for t in texts]
        for w in list(words)[:k]:
            wt = tokenize(w)
            if wt and any(f" {' '.join(wt)} " in t for t in toks):
                hits += 1
                break
    return hits / len(preds)


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu_scores(hypotheses, references, max_n: int = 4) -> dict[str, float]:
    """Corpus-level BLEU-1..max_n (Papineni et al. 2002), no smoothing.

    BLEU-n = BP * exp(mean_{m=1..n} log p_m), where p_m is the clipped m-gram
    precision summed over the corpus (each hypothesis m-gram counts at most
    as often as in the reference that has the most of it) and
    BP = exp(1 - r/c) when the total hypothesis length c is below the total
    closest-reference length r, else 1. This is the formula of nltk's
    ``corpus_bleu`` with uniform weights.

    Parameters
    ----------
    hypotheses : sequence of sequence of str
        Token lists, one per item.
    references : sequence of (sequence of str or sequence of sequence of str)
        One reference token list or several per item.

    Returns
    -------
    dict
        ``{"BLEU-1": ..., ..., "BLEU-{max_n}": ...}``.
    """
    hyps = [list(h) for h in hypotheses]
    refs_all = []
    for r in references:
        r = list(r)
        refs_all.append([list(x) for x in r] if r and not isinstance(r[0], str) else [r])
    if len(hyps) != len(refs_all):
        raise ValueError(f"bleu_scores: {len(hyps)} hypotheses but {len(refs_all)} references.")
    num = np.zeros(max_n)
    den = np.zeros(max_n)
    c = r_len = 0
    for h, refs in zip(hyps, refs_all):
        c += len(h)
        r_len += min((abs(len(r) - len(h)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            hc = _ngrams(h, n)
            maxref: Counter = Counter()
            for r in refs:
                maxref |= _ngrams(r, n)
            num[n - 1] += sum(min(v, maxref[g]) for g, v in hc.items())
            den[n - 1] += max(len(h) - n + 1, 0)
    bp = 1.0 if c > r_len else (math.exp(1 - r_len / c) if c else 0.0)
    out = {}
    for n in range(1, max_n + 1):
        p = num[:n] / np.maximum(den[:n], 1)
        out[f"BLEU-{n}"] = 0.0 if (p <= 0).any() else float(bp * math.exp(np.mean(np.log(p))))
    return out
