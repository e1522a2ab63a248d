"""The numeric pieces of the joint clustering loop (Wang et al., WACV 2017).

Each function works on plain arrays so it can be tested on Gaussian blobs:

* :class:`FeatureReducer` -- PCA (+ whitening) and L2 normalisation;
* :func:`spectral_embed` -- the spectral embedding of the k-nearest-neighbour
  graph, where the loop runs k-means (spectral clustering);
* :func:`kmeans` -- seeded faiss k-means (scikit-learn as a fallback engine);
* :func:`reseed_empty` -- re-seed empty clusters by splitting the largest one;
* :func:`refine_rim` -- regularised information maximisation (Krause et al.,
  NIPS 2010) started from the k-means solution; clusters it empties are merged;
* :func:`dissolve_small` -- move the images of clusters below a minimum size
  to their next-nearest cluster;
* :func:`match_labels` -- Hungarian matching of a new clustering to the
  previous round's ids, so ids keep their meaning across rounds;
* :func:`extract_features` / :func:`finetune` -- torch feature extraction and
  fine-tuning of a backbone + linear head on the cluster ids (on :class:`radmine.nn.Trainer`).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from radmine._validation import check_is_fitted
from radmine.base import BaseEstimator

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- features
class FeatureReducer(BaseEstimator):
    """PCA to ``n_components`` (optionally whitened), then L2 normalisation.

    Parameters
    ----------
    n_components : int or None
        PCA dimension; ``None`` keeps the input dimension (no PCA, only
        centring and L2 normalisation).
    whiten : bool
        Divide each component by its standard deviation.
    random_state : int or None
        Seed for the randomized SVD.
    """

    def __init__(self, n_components: int | None = 128, whiten: bool = True, random_state=None):
        self.n_components = n_components
        self.whiten = whiten
        self.random_state = random_state

    def fit(self, X: np.ndarray) -> FeatureReducer:
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        if self.n_components is None:
            self.components_ = np.eye(X.shape[1])
            self.scale_ = np.ones(X.shape[1])
            return self
        from sklearn.decomposition import PCA

        k = int(min(self.n_components, X.shape[0] - 1, X.shape[1]))
        k = max(k, 1)
        pca = PCA(n_components=k, whiten=False, svd_solver="auto", random_state=self.random_state)
        pca.fit(X)
        self.components_ = pca.components_
        var = np.maximum(pca.explained_variance_, 1e-12)
        self.scale_ = 1.0 / np.sqrt(var) if self.whiten else np.ones_like(var)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Project, whiten and L2-normalise; returns float32 ``(n, n_components)``."""
        check_is_fitted(self, "components_")
        Z = (np.asarray(X, dtype=np.float64) - self.mean_) @ self.components_.T
        Z *= self.scale_
        norm = np.linalg.norm(Z, axis=1, keepdims=True)
        Z /= np.maximum(norm, 1e-12)
        return np.ascontiguousarray(Z, dtype=np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    def state(self) -> dict[str, np.ndarray]:
        return {
            "reducer_mean": self.mean_.astype(np.float64),
            "reducer_components": np.ascontiguousarray(self.components_, dtype=np.float64),
            "reducer_scale": self.scale_.astype(np.float64),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> FeatureReducer:
        out = cls(n_components=state["reducer_components"].shape[0])
        out.mean_ = np.asarray(state["reducer_mean"])
        out.components_ = np.asarray(state["reducer_components"])
        out.scale_ = np.asarray(state["reducer_scale"])
        return out


def spectral_embed(Z: np.ndarray, n_components: int, n_neighbors: int, *, seed: int = 0) -> np.ndarray:
    """Spectral embedding of the k-nearest-neighbour graph of ``Z``, rows L2-normalised.

    The graph joins each row to its ``n_neighbors`` nearest rows (Euclidean; on
    unit-norm features the same as cosine), symmetrised; its Laplacian
    eigenmaps (:func:`sklearn.manifold.spectral_embedding`) with the rows scaled
    to unit length are the space spectral clustering runs k-means in (Ng,
    Jordan & Weiss 2001). Groups joined by chains of close neighbours become
    compact there even when they are not round in ``Z``.

    Parameters
    ----------
    Z : ndarray, shape (n, d)
    n_components : int
        Embedding dimension (the number of clusters).
    n_neighbors : int
    seed : int
        Seed of the eigen-solver's start vector.

    Returns
    -------
    ndarray of float32, shape (n, min(n_components, n - 1))
    """
    import warnings

    from sklearn.manifold import spectral_embedding
    from sklearn.neighbors import kneighbors_graph

    n = len(Z)
    A = kneighbors_graph(np.asarray(Z, dtype=np.float64), max(1, min(int(n_neighbors), n - 1)), include_self=False)
    A = 0.5 * (A + A.T)
    with warnings.catch_warnings():  # a graph of separate groups is the easy case here, not a problem
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        E = spectral_embedding(A, n_components=max(1, min(int(n_components), n - 1)), random_state=seed,
                               drop_first=False)
    E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(E, dtype=np.float32)


# --------------------------------------------------------------------------- k-means
def assign(Z: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre (squared Euclidean) for each row of ``Z``.

    Returns
    -------
    labels : ndarray of int64, shape (n,)
    dist : ndarray of float32, shape (n,)
    """
    import faiss

    Z = np.ascontiguousarray(Z, dtype=np.float32)
    index = faiss.IndexFlatL2(Z.shape[1])
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    dist, idx = index.search(Z, 1)
    return idx[:, 0].astype(np.int64), dist[:, 0]


def centers_of(Z: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean of each cluster ``0..k-1`` (zeros for empty ones), float32 ``(k, d)``."""
    C = np.zeros((k, Z.shape[1]), dtype=np.float64)
    np.add.at(C, labels, Z)
    counts = np.bincount(labels, minlength=k)
    C[counts > 0] /= counts[counts > 0, None]
    return C.astype(np.float32)


def kmeans_plus_plus(Z: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007); returns float32 ``(k, d)`` initial centres."""
    rng = np.random.default_rng(seed)
    Z = np.asarray(Z, dtype=np.float32)
    n = len(Z)
    idx = [int(rng.integers(n))]
    d2 = ((Z - Z[idx[0]]) ** 2).sum(1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:
            j = int(rng.integers(n))
        else:
            j = int(rng.choice(n, p=d2 / total))
        idx.append(j)
        d2 = np.minimum(d2, ((Z - Z[j]) ** 2).sum(1))
    return Z[idx].copy()


def kmeans(
    Z: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    niter: int = 25,
    nredo: int = 3,
    init_centroids: np.ndarray | None = None,
    engine: str = "faiss",
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded k-means.

    Parameters
    ----------
    Z : ndarray, shape (n, d)
    k : int
        Number of clusters (``<= n``).
    seed : int
        Seed of the k-means initialisation.
    init_centroids : ndarray of shape (k, d), optional
        Start from these centres (faiss engine only); default k-means++
        seeding (``nredo`` seedings, the best objective kept).
    engine : {"faiss", "sklearn"}

    Returns
    -------
    labels : ndarray of int64, shape (n,)
    centers : ndarray of float32, shape (k, d)
    """
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    n, d = Z.shape
    if k > n:
        raise ValueError(f"kmeans: n_clusters={k} is larger than the number of samples {n}.")
    if engine == "sklearn":
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k, n_init=nredo, max_iter=niter, random_state=seed).fit(Z)
        return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)
    import faiss

    best = None
    for r in range(1 if init_centroids is not None else max(1, nredo)):
        km = faiss.Kmeans(
            d, k, niter=niter, nredo=1, seed=int(seed + r) % (2**31 - 1), verbose=False,
            min_points_per_centroid=1, max_points_per_centroid=max(256, n),
        )
        init = init_centroids if init_centroids is not None else kmeans_plus_plus(Z, k, seed=seed + r)
        obj = km.train(Z, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
        if best is None or obj < best[0]:
            best = (obj, np.array(km.centroids, dtype=np.float32))
    centers = best[1]
    labels, _ = assign(Z, centers)
    return labels, centers


def reseed_empty(
    Z: np.ndarray, labels: np.ndarray, k: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, int]:
    """Give every empty cluster ``0..k-1`` half of the currently largest cluster.

    The largest cluster is split in two with 2-means; one half takes the empty
    id (the fix DeepCluster users apply by hand).

    Returns
    -------
    labels : ndarray of int64, shape (n,)
    centers : ndarray of float32, shape (k, d)
    n_reseeded : int
        Number of empty clusters that were re-seeded.
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    n_reseeded = 0
    for _ in range(k):
        counts = np.bincount(labels, minlength=k)
        empty = np.flatnonzero(counts == 0)
        if len(empty) == 0:
            break
        big = int(np.argmax(counts))
        if counts[big] < 2:
            break
        members = np.flatnonzero(labels == big)
        sub = Z[members]
        if len(np.unique(sub, axis=0)) >= 2:
            half, _ = kmeans(sub, 2, seed=seed + n_reseeded, niter=10)
        else:  # identical points: split arbitrarily
            half = np.arange(len(members)) % 2
        if half.min() == half.max():
            half = np.arange(len(members)) % 2
        labels[members[half == 1]] = empty[0]
        n_reseeded += 1
    return labels, centers_of(Z, labels, k), n_reseeded


# --------------------------------------------------------------------------- refine / merge
def refine_rim(
    Z: np.ndarray,
    labels: np.ndarray,
    centers: np.ndarray,
    *,
    reg: float = 0.5,
    balance: float = 1.0,
    n_iter: int = 150,
    lr: float = 0.05,
    temperature: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Regularised information maximisation started from k-means.

    Fits a multinomial logistic model ``p(y|z) = softmax(zW + b)`` maximising
    ``balance * H(mean_z p(y|z)) - mean_z H(p(y|z)) - reg * ||W||^2``
    (Krause, Perona & Gomes, NIPS 2010). The weights start at the k-means
    centres (``W = c / T``, ``b = -|c|^2 / 2T``), so the start is k-means' own
    nearest-centre rule. The conditional-entropy term moves boundaries out of
    dense regions; the weight penalty makes clusters that are not supported by
    a gap in the data lose all their images -- those clusters are merged into
    their neighbours.

    ``reg`` is relative: the penalty is the mean squared norm of ``T * W``
    divided by its value at the start, so ``reg`` does not depend on the
    number of clusters or the feature scale. On unit-norm features ``reg``
    around 0.3-1 merges clusters that split one blob; much larger values
    merge everything (see :func:`refine_merge` for the guard against that).

    Returns
    -------
    labels : ndarray of int64, shape (n,)
        New labels in ``0..k-1`` (some clusters may be empty: merged).
    """
    k = centers.shape[0]
    if k < 2:
        return np.asarray(labels, dtype=np.int64)
    X = np.asarray(Z, dtype=np.float64)
    C = np.asarray(centers, dtype=np.float64)
    W = C.T / temperature
    b = -(C * C).sum(1) / (2 * temperature)
    w0 = max(float((C**2).sum() / k), 1e-6)
    coef = 2.0 * reg * temperature**2 / (k * w0)  # d(penalty)/dW = coef * W
    n = len(X)
    # Adam on (W, b) with the analytic gradient of the objective
    mW, vW, mb, vb = np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, n_iter + 1):
        logits = X @ W + b
        logits -= logits.max(1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        p = np.exp(logp)
        H = -(p * logp).sum(1, keepdims=True)
        logpbar = np.log(p.mean(0) + 1e-12)
        # d/dz of mean_i H(p_i) and of H(pbar)
        g_cond = -p * (logp + H) / n
        g_marg = p * (-logpbar[None, :] + (p * logpbar[None, :]).sum(1, keepdims=True)) / n
        G = g_cond - balance * g_marg
        gW = X.T @ G + coef * W
        gb = G.sum(0)
        mW = b1 * mW + (1 - b1) * gW
        vW = b2 * vW + (1 - b2) * gW**2
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb**2
        c1, c2 = 1 - b1**t, 1 - b2**t
        W -= lr * (mW / c1) / (np.sqrt(vW / c2) + eps)
        b -= lr * (mb / c1) / (np.sqrt(vb / c2) + eps)
    return (X @ W + b).argmax(1).astype(np.int64)


def refine_merge(
    Z: np.ndarray,
    labels: np.ndarray,
    centers: np.ndarray,
    *,
    reg: float = 0.5,
    min_keep: float = 0.5,
    min_clusters: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """RIM refinement with a guard against collapse; returns contiguous labels and the number merged.

    If RIM keeps fewer than ``max(2, ceil(min_keep * k), min_clusters)``
    clusters, ``reg`` is halved and RIM run again (up to 4 times); if it still
    collapses the k-means labels are kept. The loop passes ``min_clusters =
    ceil(min_keep * n_clusters)`` so merges over all rounds together never
    remove more than half of the clusters it started with (without this, a
    loop from a random CNN merges round after round down to a few clusters).
    """
    k = centers.shape[0]
    floor = max(2, math.ceil(min_keep * k), min_clusters or 0) if k >= 2 else 1
    if floor >= k:
        out, _ = relabel_contiguous(np.asarray(labels, dtype=np.int64))
        return out, 0
    r = reg
    out = np.asarray(labels, dtype=np.int64)
    for _ in range(5):
        cand = refine_rim(Z, labels, centers, reg=r, seed=seed)
        if len(np.unique(cand)) >= floor:
            out = cand
            break
        r /= 2
    out, _ = relabel_contiguous(out)
    return out, k - (int(out.max()) + 1)


def merge_close(
    Z: np.ndarray, labels: np.ndarray, *, threshold: float
) -> tuple[np.ndarray, int]:
    """Merge clusters whose centres are closer than ``threshold`` (Euclidean, single link)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    labels, _ = relabel_contiguous(labels)
    k = int(labels.max()) + 1
    if k < 2:
        return labels, 0
    C = centers_of(Z, labels, k)
    groups = fcluster(linkage(C, method="single"), t=threshold, criterion="distance") - 1
    new, _ = relabel_contiguous(groups[labels])
    return new, k - (int(new.max()) + 1)


def dissolve_small(
    Z: np.ndarray, labels: np.ndarray, min_size: int
) -> tuple[np.ndarray, int]:
    """Move images of clusters with fewer than ``min_size`` images to their nearest other cluster.

    Smallest clusters go first; the centres are updated after each move.

    Returns
    -------
    labels : ndarray of int64, contiguous ids ``0..k'-1``
    n_dissolved : int
    """
    labels, _ = relabel_contiguous(labels)
    n_dissolved = 0
    while True:
        k = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=k)
        small = np.flatnonzero(counts < min_size)
        if len(small) == 0 or k <= 1:
            break
        j = int(small[np.argmin(counts[small])])
        C = centers_of(Z, labels, k)
        C[j] = np.inf
        members = np.flatnonzero(labels == j)
        d = ((Z[members, None, :] - C[None, :, :]) ** 2).sum(-1)
        d[:, j] = np.inf
        labels[members] = d.argmin(1)
        labels, _ = relabel_contiguous(labels)
        n_dissolved += 1
    return labels, n_dissolved


def relabel_contiguous(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map ids to ``0..k-1`` in order of first appearance of sorted ids; returns (labels, old ids)."""
    uniq, inv = np.unique(np.asarray(labels), return_inverse=True)
    return inv.astype(np.int64), uniq


def match_labels(prev: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Rename ``new`` cluster ids to the ``prev`` ids they overlap most (Hungarian algorithm).

    Clusters of ``new`` left without a partner (more clusters than before)
    get fresh ids above ``max(prev)``.

    Parameters
    ----------
    prev, new : ndarray of int, shape (n,)

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    from scipy.optimize import linear_sum_assignment

    prev = np.asarray(prev, dtype=np.int64)
    new_c, new_ids = relabel_contiguous(new)
    prev_c, prev_ids = relabel_contiguous(prev)
    cont = np.zeros((len(new_ids), len(prev_ids)), dtype=np.int64)
    np.add.at(cont, (new_c, prev_c), 1)
    rows, cols = linear_sum_assignment(-cont)
    mapping = np.full(len(new_ids), -1, dtype=np.int64)
    mapping[rows] = prev_ids[cols]
    nxt = int(prev_ids.max()) + 1 if len(prev_ids) else 0
    for i in np.flatnonzero(mapping < 0):
        mapping[i] = nxt
        nxt += 1
    return mapping[new_c]


# --------------------------------------------------------------------------- metrics
def purity(y_true, y_pred) -> float:
    """Fraction of items in the majority ``y_true`` class of their ``y_pred`` cluster."""
    import pandas as pd

    t = pd.Series(np.asarray(y_true)).astype(str).to_numpy()
    p = pd.Series(np.asarray(y_pred)).astype(str).to_numpy()
    if len(t) == 0:
        return float("nan")
    tab = pd.crosstab(p, t)
    return float(tab.max(axis=1).sum() / len(t))


def nmi(a, b) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(np.asarray(a).astype(str), np.asarray(b).astype(str)))


def ami(a, b) -> float:
    from sklearn.metrics import adjusted_mutual_info_score

    return float(adjusted_mutual_info_score(np.asarray(a).astype(str), np.asarray(b).astype(str)))


# --------------------------------------------------------------------------- torch parts
def extract_features(model, tensors, *, batch_size: int = 64, device: str = "cpu", progress: bool = False,
                     desc: str = "extract") -> np.ndarray:
    """Run ``model`` (eval mode, no grad) over ``tensors`` ``(n, 3, H, W)``; returns float32 ``(n, dim)``."""
    import torch
    from radmine._progress import tqdm

    model.eval()
    model.to(device)
    dtype = _param_dtype(model)
    out = []
    with torch.no_grad():
        for i in tqdm(range(0, len(tensors), batch_size), disable=not progress, desc=desc, leave=False):
            x = tensors[i : i + batch_size].to(device=device, dtype=dtype)
            out.append(model(x).float().cpu().numpy())
    if not out:
        return np.zeros((0, getattr(model, "dim", 0)), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def _param_dtype(model):
    """The floating dtype of ``model``'s first parameter (float32 for a model without parameters)."""
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _make_adapter_class():
    import torch
    from torch import nn

    class Adapter(nn.Module):
        """Residual MLP on frozen features: ``x + W2 relu(W1 x)``, ``W2 = 0`` at the start (identity).

        Trained by the loop in ``finetune_mode="adapter"``; ``.dim`` like a backbone. It computes
        in float64: its sums do not depend on the number of CPU threads at float32 precision,
        so the loop gives the same clusters whatever ``torch.get_num_threads()`` is.
        """

        def __init__(self, dim: int, hidden: int | None = None, seed: int = 0):
            super().__init__()
            hidden = hidden or dim
            self.dim = int(dim)
            # every weight comes from ``gen`` below: the layers are made without drawing from torch's global RNG
            self.fc1 = torch.nn.utils.skip_init(nn.Linear, dim, hidden, dtype=torch.float64)
            self.fc2 = torch.nn.utils.skip_init(nn.Linear, hidden, dim, dtype=torch.float64)
            gen = torch.Generator().manual_seed(int(seed) % (2**63 - 1))
            with torch.no_grad():
                nn.init.normal_(self.fc1.weight, 0.0, 1.0 / math.sqrt(dim), generator=gen)
                self.fc1.bias.zero_()
                self.fc2.weight.zero_()
                self.fc2.bias.zero_()

        def forward(self, x):
            x = x.to(self.fc1.weight.dtype)
            return x + self.fc2(torch.relu(self.fc1(x)))

    return Adapter


def Adapter(dim: int, hidden: int | None = None, seed: int = 0):
    """Build the residual MLP adapter (see ``finetune_mode="adapter"``)."""
    return _make_adapter_class()(dim, hidden, seed)


def _augment(x, gen):
    """Random horizontal flip and a random shift of up to 1/8 of the side (reflect padding).

    ``gen``: a ``torch.Generator``, or None for torch's (locally seeded) RNG.
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = max(1, h // 8)
    xp = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy, dx = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=gen))
    return xp[:, :, dy : dy + h, dx : dx + w]


def finetune(
    model,
    tensors,
    labels: np.ndarray,
    *,
    epochs: int = 1,
    dev_fraction: float = 0.1,
    lr: float = 1e-4,
    head_lr_mult: float = 10.0,
    batch_size: int = 64,
    device: str = "cpu",
    seed: int = 0,
    checks_per_epoch: int = 2,
    augment: bool = True,
    progress: bool = False,
) -> dict:
    """Fine-tune ``model`` + a fresh linear head to predict ``labels`` with cross-entropy.

    Runs on :class:`radmine.nn.Trainer` (``torch.optim.Adam``, the head at
    ``head_lr_mult`` times ``lr``). A random ``dev_fraction`` slice is held back;
    it is scored ``checks_per_epoch`` times per epoch and the weights with the
    lowest held-back loss are kept (early stopping: training stops once the
    held-back loss got worse at two checks in a row). Batches are drawn with
    class-balanced weights (DeepCluster's uniform sampling over clusters) so
    large clusters do not dominate. ``model`` is changed in place.

    Every random draw (the split, the head, batches, augmentations, dropout
    or drop-connect inside ``model``) comes from ``seed``; torch's global RNG
    is left as it was.

    Returns
    -------
    dict with ``loss`` (mean training loss), ``val_loss``, ``val_acc`` (of the
    kept weights), ``steps``.
    """
    import torch
    import torch.nn.functional as F

    from radmine.nn import Trainer

    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1
    n = len(labels)
    rng = np.random.default_rng(int(seed))
    perm = rng.permutation(n)
    n_val = min(int(round(dev_fraction * n)) if dev_fraction else 0, n - 1)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])

    dtype = _param_dtype(model)
    head = torch.nn.utils.skip_init(torch.nn.Linear, model.dim, k, dtype=dtype)
    with torch.no_grad():
        torch.nn.init.normal_(head.weight, 0.0, 0.01, generator=torch.Generator().manual_seed(int(seed)))
        head.bias.zero_()
    net = torch.nn.ModuleDict({"model": model, "head": head}).to(device)
    opt = torch.optim.Adam(
        [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr},
         {"params": head.parameters(), "lr": lr * head_lr_mult}],
    )
    y_all = torch.from_numpy(labels)
    counts = np.bincount(labels[train_idx], minlength=k).astype(np.float64)
    w = 1.0 / np.maximum(counts[labels[train_idx]], 1)
    w /= w.sum()

    def make_batches(epoch_rng):
        order = epoch_rng.choice(train_idx, size=len(train_idx), replace=True, p=w)
        return [np.sort(order[s : s + batch_size]) for s in range(0, len(order), batch_size)]

    train_losses = []

    def step(idx):
        x = tensors[idx].to(device=device, dtype=dtype)
        if augment and x.ndim == 4:
            x = _augment(x, None)
        elif augment:  # feature inputs: dropout
            x = x * (torch.rand(x.shape, dtype=x.dtype) > 0.1).to(x.dtype).to(device) / 0.9
        loss = F.cross_entropy(head(model(x)), y_all[idx].to(device))
        train_losses.append(float(loss.detach()))
        return loss

    def evaluate():
        loss_sum, correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, n_val, batch_size):
                idx = val_idx[i : i + batch_size]
                logits = head(model(tensors[idx].to(device=device, dtype=dtype)))
                y = y_all[idx].to(device)
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
        return {"val_loss": loss_sum / n_val, "val_acc": correct / n_val}

    trainer = Trainer(net, optimizer=opt, epochs=epochs, patience=2 if n_val else None, monitor="val_loss",
                      mode="min", checks_per_epoch=checks_per_epoch, random_state=int(seed), device=device,
                      progress=progress, desc="fine-tune")
    trainer.run(make_batches, step, evaluate if n_val else None, restore_best=bool(n_val))
    model.eval()
    best = {"val_loss": float("nan"), "val_acc": float("nan")}
    if n_val:
        best = min(trainer.history, key=lambda row: row["val_loss"])
    return {
        "loss": float(np.mean(train_losses)) if train_losses else float("nan"),
        "val_loss": float(best["val_loss"]),
        "val_acc": float(best["val_acc"]),
        "steps": len(train_losses),
    }
