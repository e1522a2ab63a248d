"""Plots for :class:`radmine.JointClusterer`: image montages per cluster and convergence curves.

Every function returns a :class:`matplotlib.figure.Figure` (no pyplot global state).
"""

from __future__ import annotations

import numpy as np


def _load_thumb(path, size: int = 96) -> np.ndarray:
    """A gray thumbnail of an image file (PIL for PNG/JPEG, the pixel loader otherwise)."""
    from radmine.images.embed import decode_image

    arr, _ = decode_image(str(path), size=size)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(-1) if arr.shape[-1] in (3, 4) else arr[arr.shape[0] // 2]
    lo, hi = np.nanpercentile(arr, [0.5, 99.5]) if arr.size else (0.0, 1.0)
    return np.clip((arr - lo) / max(hi - lo, 1e-6), 0, 1)


def _image_paths(corpus, image_ids) -> list:
    paths = corpus.image_paths()
    lookup = dict(zip(corpus.images["image_id"].astype(str), paths))
    return [lookup.get(str(i)) for i in image_ids]


def montage(clusterer, corpus=None, cluster=None, n: int = 16, *, ncols: int | None = None, order: str = "nearest",
            random_state=0, title: str | None = None, thumb_size: int = 96, ax_size: float = 1.6):
    """Sample images of one cluster in a grid, titled with the cluster's name.

    Parameters
    ----------
    clusterer : JointClusterer
        Fitted.
    corpus : Corpus, optional
        Where the images are (defaults to the corpus given to ``fit``).
    cluster : int or str
        A top-level id (``labels_level1_``) or a sub-cluster id (``"12.3"``).
    n : int, default=16
        Number of images shown.
    order : {"nearest", "random"}
        Images nearest the centre first, or a random sample.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    from radmine._validation import check_is_fitted, check_option

    check_is_fitted(clusterer, "labels_")
    check_option(order, "order", "montage", ["nearest", "random"])
    corpus = corpus if corpus is not None else getattr(clusterer, "_corpus", None)
    if corpus is None:
        raise ValueError("montage needs a Corpus with the image paths: pass corpus=..., or fit on a Corpus.")
    members = clusterer.members(cluster)  # KeyError for unknown ids
    level = 2 if isinstance(cluster, str) and "." in cluster else 1
    if order == "nearest":
        ids = clusterer._nearest(cluster, n, level)
    else:
        rng = np.random.default_rng(random_state)
        ids = list(rng.choice(members, size=min(n, len(members)), replace=False))
    if title is None:
        from radmine.cluster import naming

        labels = clusterer.labels_level1_ if level == 1 else clusterer.labels_
        key = int(cluster) if level == 1 else cluster
        mask = labels == key
        info = naming.describe_clusters(corpus, clusterer.image_ids_[mask], labels[mask], n_words=5)
        name = info["name"].iloc[0] if len(info) else ""
        title = f"Cluster {cluster} ({len(members)} images): {name}"
    ncols = ncols or int(np.ceil(np.sqrt(max(len(ids), 1))))
    nrows = int(np.ceil(max(len(ids), 1) / ncols))
    fig = Figure(figsize=(ax_size * ncols, ax_size * nrows + 0.5), constrained_layout=True)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    paths = _image_paths(corpus, ids)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, iid, p in zip(axes.ravel(), ids, paths):
        try:
            ax.imshow(_load_thumb(p, thumb_size), cmap="gray", vmin=0, vmax=1)
        except (OSError, ValueError, TypeError):
            ax.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=7)
        ax.set_title(str(iid)[-14:], fontsize=6)
    fig.suptitle(title, fontsize=9)
    return fig


def montages(clusterer, corpus=None, clusters=None, n: int = 8, *, max_clusters: int = 12, thumb_size: int = 64,
             ax_size: float = 1.0):
    """One row of ``n`` images (nearest the centre) per cluster, labelled with the cluster name.

    Parameters
    ----------
    clusters : list, optional
        Top-level ids; default the ``max_clusters`` largest.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    from radmine._validation import check_is_fitted

    check_is_fitted(clusterer, "labels_")
    corpus = corpus if corpus is not None else getattr(clusterer, "_corpus", None)
    if corpus is None:
        raise ValueError("montages needs a Corpus with the image paths: pass corpus=..., or fit on a Corpus.")
    info = clusterer.cluster_info(corpus, n_words=5, n_nearest=n)
    if clusters is None:
        info = info.head(max_clusters)
    else:
        known = set(info["cluster"].tolist())
        unknown = [c for c in clusters if c not in known]
        if unknown:
            raise KeyError(f"Unknown cluster id(s) {unknown}.")
        info = info.set_index("cluster").loc[list(clusters)].reset_index()
    fig = Figure(figsize=(ax_size * n + 2.5, ax_size * len(info) + 0.3), constrained_layout=True)
    axes = fig.subplots(max(len(info), 1), n, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for r, row in enumerate(info.itertuples()):
        paths = _image_paths(corpus, row.nearest_image_ids)
        for c, p in enumerate(paths[:n]):
            try:
                axes[r, c].imshow(_load_thumb(p, thumb_size), cmap="gray", vmin=0, vmax=1)
            except (OSError, ValueError, TypeError):
                pass
        axes[r, 0].text(-0.1, 0.5, f"#{row.cluster} ({row.size})\n{row.name}", transform=axes[r, 0].transAxes,
                        ha="right", va="center", fontsize=7)
    return fig


def history(clusterer, *, figsize=(9, 3)):
    """Convergence of the loop: NMI/purity per round (vs previous round and truth), loss and cluster count.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    from radmine._validation import check_is_fitted

    check_is_fitted(clusterer, "history_")
    h = clusterer.history_
    fig = Figure(figsize=figsize, constrained_layout=True)
    a1, a2, a3 = fig.subplots(1, 3)
    for col, style in [("nmi_prev", "o-"), ("purity_prev", "s-"), ("nmi_true", "o--"), ("purity_true", "s--"),
                       ("ami_true", "^--")]:
        if col in h and h[col].notna().any():
            a1.plot(h["round"], h[col], style, label=col)
    a1.set_xlabel("round")
    a1.set_ylim(0, 1.02)
    a1.set_title("agreement")
    a1.legend(fontsize=7)
    for col, style in [("finetune_loss", "o-"), ("val_loss", "s--")]:
        if col in h and h[col].notna().any():
            a2.plot(h["round"], h[col], style, label=col)
    if "val_acc" in h and h["val_acc"].notna().any():
        a2b = a2.twinx()
        a2b.plot(h["round"], h["val_acc"], "^:", color="gray", label="val_acc")
        a2b.set_ylim(0, 1.02)
        a2b.set_ylabel("held-back accuracy", fontsize=8)
    a2.set_xlabel("round")
    a2.set_title("fine-tuning")
    if a2.get_legend_handles_labels()[0]:
        a2.legend(fontsize=7)
    a3.plot(h["round"], h["n_clusters"], "o-", label="clusters")
    a3.fill_between(h["round"], h["size_min"], h["size_max"], alpha=0.2, label="size min-max")
    a3.plot(h["round"], h["size_median"], "--", label="median size")
    a3.set_xlabel("round")
    a3.set_title("clusters")
    a3.legend(fontsize=7)
    return fig
