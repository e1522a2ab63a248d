"""Plots for :class:`radmine.JointClusterer`: image montages per cluster and convergence curves.

Every function returns a :class:`radmine.plotting.Figure` (a matplotlib Figure
that renders inline in Jupyter and saves to PNG/SVG); no pyplot global state.
Thumbnails are decoded at ``thumb_size`` pixels, so a montage of a large
archive stays small.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from radmine.plotting._figure import new_figure



def _corpus_of(clusterer, corpus, function: str, needs: str):
    """``corpus``, or the Corpus the clusterer was fitted on; a ValueError naming ``function`` when neither."""
    corpus = corpus if corpus is not None else getattr(clusterer, "fit_corpus_", None)
    if corpus is None:
        raise ValueError(f"{function} needs a Corpus with {needs}: pass corpus=..., or fit on a Corpus.")
    return corpus

def _load_thumb(path, size: int = 96) -> np.ndarray:
    """A gray thumbnail of an image file (PIL for PNG/JPEG, the pixel loader otherwise)."""
    from radmine.images.embed import decode_image

    arr, _ = decode_image(str(path), size=size)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(-1) if arr.shape[-1] in (3, 4) else arr[arr.shape[0] // 2]
    from radmine.pixels import downscale

    arr = downscale(arr, size)  # a montage never holds full-resolution images
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
    radmine.plotting.Figure
    """
    from radmine._validation import check_is_fitted, check_option

    check_is_fitted(clusterer, "labels_")
    check_option(order, "order", "montage", ["nearest", "random"])
    corpus = _corpus_of(clusterer, corpus, "montage", "the image paths")
    members = clusterer.members(cluster)  # KeyError for unknown ids
    level = 2 if isinstance(cluster, str) and "." in cluster else 1
    if order == "nearest":
        ids = clusterer.nearest(cluster, n, level)
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
    fig = new_figure(figsize=(ax_size * ncols, ax_size * nrows + 0.5))
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
    radmine.plotting.Figure
    """
    from radmine._validation import check_is_fitted

    check_is_fitted(clusterer, "labels_")
    corpus = _corpus_of(clusterer, corpus, "montages", "the image paths")
    info = clusterer.get_cluster_info(corpus, n_words=5, n_nearest=n)
    if clusters is None:
        info = info.head(max_clusters)
    else:
        known = set(info["cluster"].tolist())
        unknown = [c for c in clusters if c not in known]
        if unknown:
            raise KeyError(f"Unknown cluster id(s) {unknown}.")
        info = info.set_index("cluster").loc[list(clusters)].reset_index()
    fig = new_figure(figsize=(ax_size * n + 2.5, ax_size * len(info) + 0.3))
    axes = fig.subplots(max(len(info), 1), n, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    unreadable = []
    for r, row in enumerate(info.itertuples()):
        paths = _image_paths(corpus, row.nearest_image_ids)
        for c, p in enumerate(paths[:n]):
            try:
                axes[r, c].imshow(_load_thumb(p, thumb_size), cmap="gray", vmin=0, vmax=1)
            except (OSError, ValueError, TypeError) as err:  # the tile stays blank
                unreadable.append(f"{p}: {err}")
        axes[r, 0].text(-0.1, 0.5, f"#{row.cluster} ({row.size})\n{row.name}", transform=axes[r, 0].transAxes,
                        ha="right", va="center", fontsize=7)
    if unreadable:
        import warnings

        warnings.warn(f"montages: {len(unreadable)} image(s) could not be read and are left blank "
                      f"(first: {unreadable[0]}).", stacklevel=2)
    return fig


def history(clusterer, *, figsize=None):
    """Convergence of the loop: NMI/purity per round (vs previous round and truth), loss and cluster count.

    The fine-tuning panel is drawn only when the history has fine-tuning
    losses (``finetune=True``); the agreement panel only when there is more
    than one round or a ground truth.

    Returns
    -------
    radmine.plotting.Figure
    """
    from radmine._validation import check_is_fitted

    check_is_fitted(clusterer, "history_")
    h = clusterer.history_

    def has(col):
        return col in h and h[col].notna().any()

    agreement = [(c, st) for c, st in [("nmi_prev", "o-"), ("purity_prev", "s-"), ("nmi_true", "o--"),
                                       ("purity_true", "s--"), ("ami_true", "^--")] if has(c)]
    finetune = [(c, st) for c, st in [("finetune_loss", "o-"), ("val_loss", "s--")] if has(c)]
    panels = (["agreement"] if agreement else []) + (["fine-tuning"] if finetune or has("val_acc") else []) + ["clusters"]
    fig = new_figure(figsize=figsize or (3.2 * len(panels), 3))
    axes = dict(zip(panels, np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)[0])))
    if "agreement" in axes:
        a1 = axes["agreement"]
        for col, style in agreement:
            a1.plot(h["round"], h[col], style, label=col)
        a1.set_xlabel("round")
        a1.set_ylim(0, 1.02)
        a1.set_title("agreement")
        a1.legend(fontsize=7)
    if "fine-tuning" in axes:
        a2 = axes["fine-tuning"]
        for col, style in finetune:
            a2.plot(h["round"], h[col], style, label=col)
        if has("val_acc"):
            a2b = a2.twinx()
            a2b.plot(h["round"], h["val_acc"], "^:", color="gray", label="val_acc")
            a2b.set_ylim(0, 1.02)
            a2b.set_ylabel("held-back accuracy", fontsize=8)
        a2.set_xlabel("round")
        a2.set_title("fine-tuning")
        if a2.get_legend_handles_labels()[0]:
            a2.legend(fontsize=7)
    a3 = axes["clusters"]
    a3.plot(h["round"], h["n_clusters"], "o-", label="clusters")
    a3.fill_between(h["round"], h["size_min"], h["size_max"], alpha=0.2, label="size min-max")
    a3.plot(h["round"], h["size_median"], "--", label="median size")
    a3.set_xlabel("round")
    a3.set_title("clusters")
    a3.legend(fontsize=7)
    return fig


def sizes(clusterer, corpus=None, *, max_clusters: int = 30):
    """Bar chart of cluster sizes, each bar labelled with the cluster's name.

    Returns
    -------
    radmine.plotting.Figure
    """
    from radmine._validation import check_is_fitted

    check_is_fitted(clusterer, "labels_")
    corpus = corpus if corpus is not None else getattr(clusterer, "fit_corpus_", None)
    if corpus is not None:
        info = clusterer.get_cluster_info(corpus, n_words=3, n_nearest=1).head(max_clusters)
        labels = [f"#{c} {n}" for c, n in zip(info["cluster"], info["name"])]
    else:
        counts = pd.Series(clusterer.labels_level1_).value_counts().head(max_clusters)
        info = pd.DataFrame({"cluster": counts.index, "size": counts.to_numpy()})
        labels = [f"#{c}" for c in info["cluster"]]
    fig = new_figure(figsize=(7, 0.28 * len(info) + 0.8))
    ax = fig.subplots()
    ax.barh(range(len(info)), info["size"].to_numpy(), color="#72b7b2")
    ax.set_yticks(range(len(info)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_title(f"{len(info)} largest clusters", fontsize=9)
    return fig


def over_time(clusterer, corpus=None, *, freq: str = "YS", top: int = 8):
    """Share of each cluster among the images of each period (dates from the reports).

    Parameters
    ----------
    clusterer : JointClusterer (fitted)
    corpus : Corpus, optional
        Images and report dates (a ``date`` or ``study_date`` column); default
        the corpus given to ``fit``.
    freq : str, default "YS"
        Period: ``"YS"`` years, ``"QS"`` quarters, ``"MS"`` months.
    top : int, default 8

    Returns
    -------
    radmine.plotting.Figure
    """
    from radmine._validation import check_is_fitted
    from radmine.plotting.topics import over_time_figure, report_dates, share_over_time

    check_is_fitted(clusterer, "labels_")
    corpus = _corpus_of(clusterer, corpus, "over_time", "report dates")
    report_of = dict(zip(corpus.images["image_id"].astype(str), corpus.images["report_id"]))
    rid = [report_of.get(str(i)) for i in clusterer.image_ids_]
    assign = pd.Series(np.asarray(clusterer.labels_level1_), index=rid)
    assign = assign[assign.index.notna()]
    table = share_over_time(assign, report_dates(corpus), freq=freq, top=top)
    return over_time_figure(table, "clusters over time")
