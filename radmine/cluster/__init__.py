"""Unsupervised joint mining of image clusters and their names (Wang et al., WACV 2017).

:class:`JointClusterer` runs the loop

1. extract CNN features of all images (round 0: pretrained backbone, or the
   ``image_features`` given to ``fit``);
2. PCA (+ optional whitening) + L2 normalisation;
3. the spectral embedding of the k-nearest-neighbour graph of those features
   (``n_neighbors``; spectral clustering), where steps 4-5 run;
4. faiss k-means (seeded; from round 1 on started at the previous round's
   clusters), empty clusters re-seeded by splitting the largest one;
5. refine/merge: regularised information maximisation (RIM, Krause et al.
   2010) started at the k-means solution -- clusters it empties are merged --
   then clusters below ``min_cluster_size`` are dissolved into their nearest
   neighbour;
6. cluster ids matched to the previous round's with the Hungarian algorithm;
7. with ``finetune=True``: fine-tune the backbone (or an adapter on frozen
   features) + a linear head on the cluster ids (cross-entropy, class-balanced
   batches, a held-back slice for early stopping, :class:`radmine.nn.Trainer`);

and repeats 1-7 until the clusterings of two consecutive rounds agree
(``1 - NMI < tol``) or ``n_rounds`` is reached. The default is one round
(``finetune=False``), which measured best on MedPix (docs/clusters.md).
Clusters are then named from the words of the images' report text
(:meth:`JointClusterer.get_cluster_info`).
"""

from __future__ import annotations

import copy
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._io import atomic_write_json, atomic_write_parquet, fingerprint, read_saved_meta
from radmine._validation import check_int, check_is_fitted, check_option, check_random_state, renamed_keyword
from radmine.base import BaseEstimator
from radmine.cluster import loop as _loop

logger = logging.getLogger(__name__)

__all__ = ["CLUSTER_INFO_COLUMNS", "JointClusterer"]

#: The columns of :meth:`JointClusterer.get_cluster_info`, in order.
CLUSTER_INFO_COLUMNS = ["cluster", "size", "name", "top_words", "distinctive_words", "top_annotations",
                        "nearest_image_ids"]

_NOT_IN_FINGERPRINT = {"progress", "checkpoint_dir", "device", "batch_size"}


class JointClusterer(BaseEstimator):
    """Joint image clustering and CNN fine-tuning (Wang et al., WACV 2017; DeepCluster-style loop).

    Parameters
    ----------
    n_clusters : int, default=50
        Number of k-means clusters in round 0 (merges may lower it).
    backbone : str or torch.nn.Module, default="efficientnet_lite0"
        A name for :func:`radmine.images.backbones.build_backbone`
        (``"efficientnet_lite0"``, ``"random_cnn"``, ``"hf:<id-or-path>"``) or a
        module with ``.dim`` and ``.input_spec`` (it is copied, not changed).
    pretrained : bool, default=True
        Load pretrained weights for a named backbone.
    n_rounds : int, default=5
        Maximum number of clustering rounds (``n_rounds - 1`` fine-tunings)
        with ``finetune=True``. ``radmine mine`` uses the same defaults.
    tol : float, default=0.02
        Stop when ``1 - NMI`` between two consecutive rounds is below ``tol``.
    finetune : bool, default=False
        Run the loop: fine-tune and cluster again, up to ``n_rounds`` rounds.
        ``False`` (the default) is one round: cluster + refine on the
        backbone's (pretrained) features. On MedPix the fine-tuning rounds
        lowered NMI against modality x region once the clusters come from
        the neighbour graph (``n_neighbors``), so one round measured best
        (docs/clusters.md).
    finetune_epochs : int, default=3
        Epochs of fine-tuning per round.
    finetune_mode : {"backbone", "adapter"}, default="adapter"
        ``"backbone"``: fine-tune the whole CNN on the images (the paper's
        loop; needs a GPU for big sets). ``"adapter"``: keep the CNN frozen,
        extract its features once and train a residual MLP adapter (started
        at the identity) + head on them; every round re-extracts through the
        adapter. Orders of magnitude cheaper; works from ``image_features`` alone.
    dev_fraction : float, default=0.1
        Fraction of images held back to early-stop the fine-tuning (the
        name ``ImageTextModel`` uses for the same thing).
    pca_dim : int or None, default=128
        PCA dimension before k-means (``None``: no PCA).
    whiten : bool, default=False
        Whiten the PCA components (DeepCluster does; on a few thousand
        images it amplifies noise directions and lowered NMI on MedPix from
        0.395 to 0.334, see ``docs/clusters.md``).
    n_neighbors : int or None, default=20
        Cluster in the spectral embedding of the ``n_neighbors``-nearest-
        neighbour graph of the reduced features (spectral clustering, see
        :func:`radmine.cluster.loop.spectral_embed`; at most ``n_images //
        n_clusters - 1`` neighbours, the size of an average cluster): k-means, refine/merge
        and the small-cluster rule run there. ``None``: k-means on the reduced
        features themselves. ``cluster_centers_`` and ``predict`` use the
        reduced features either way (new images go to the nearest centre).
    merge : bool or {"rim", "centroid"}, default=True
        Refine/merge step. ``True``/``"rim"``: RIM started at k-means (see
        :func:`radmine.cluster.loop.refine_rim`); ``"centroid"``: merge clusters
        whose centres are closer than ``merge_threshold``; ``False``: none.
    merge_reg : float, default=0.5
        RIM weight penalty (relative; larger merges more).
    merge_threshold : float, default=0.5
        Centre distance for ``merge="centroid"`` (features are unit-norm).
    min_cluster_size : int, default=5
        Clusters with fewer images are dissolved into their nearest cluster.
    hierarchical : bool, default=False
        Cluster each top cluster again; ``labels_`` become strings ``"12.3"``.
    n_subclusters : int or None, default=None
        Sub-clusters per top cluster (implies ``hierarchical``; default 4).
    warm_start : bool, default=True
        Start each round's k-means at the previous round's clusters (in the
        new feature space), which keeps ids and lets the loop converge.
    image_size : int or None, default=None
        Side of the square network input; ``None`` uses the backbone's.
    batch_size : int, default=64
    lr : float, optional
        Adam learning rate of the adapter or backbone (the new head uses 10x).
        Default: 1e-3 for ``finetune_mode="adapter"``, 1e-4 for the whole CNN.
    checkpoint_dir : str or Path or None, default=None
        Save each round in ``checkpoint_dir/round_XX/`` and resume a stopped
        run with the same settings at its last finished round.
    random_state : int or None, default=None
    progress : bool, default=True
    device : str, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    holdout : float, default="deprecated"
        Deprecated name of ``dev_fraction`` (a ``FutureWarning`` when set;
        it overrides ``dev_fraction``).

    Attributes
    ----------
    labels_ : ndarray, shape (n_images,)
        Cluster id per image (int; strings ``"top.sub"`` when hierarchical).
    labels_level1_ : ndarray of int, shape (n_images,)
        Top-level cluster id per image.
    clusters_ : ndarray of int, shape (n_clusters_,)
        The top-level ids in use (ids are kept across rounds, so after merges
        they need not be ``0..n_clusters_-1``).
    n_clusters_ : int
    cluster_centers_ : ndarray of float32, shape (n_clusters_, dim_reduced)
        Centres in the reduced feature space, row ``i`` for ``clusters_[i]``.
    features_ : ndarray of float32, shape (n_images, dim_reduced)
        Final-round features after PCA/whitening/L2 (what was clustered).
    image_ids_ : ndarray, shape (n_images,)
    history_ : DataFrame
        One row per round: ``round, n_clusters, nmi_prev, purity_prev,
        nmi_true, ami_true, purity_true, size_min, size_median, size_max,
        n_empty_reseeded, n_merged, finetune_loss, val_loss, val_acc,
        seconds`` (``*_true`` only with ``y_true``; NaN where not applicable).
    backbone_ : torch.nn.Module or None
        The final backbone (fine-tuned in ``"backbone"`` mode); ``None`` when
        fitted on features only.
    adapter_ : torch.nn.Module or None
        The trained adapter (``finetune_mode="adapter"``).
    converged_ : bool
    resumed_from_ : int or None
        The checkpointed round a resumed run started after.
    quarantine_ : DataFrame
        Images that could not be read (``source, item, reason``); left out.

    Examples
    --------
    >>> import numpy as np, radmine
    >>> from sklearn.datasets import make_blobs
    >>> X, y = make_blobs(300, n_features=16, centers=3, random_state=0)
    >>> jc = radmine.JointClusterer(n_clusters=3, finetune=False, pca_dim=None,
    ...                             merge=False, progress=False, random_state=0)
    >>> jc.fit(None, image_features=X).n_clusters_
    3
    """

    def __init__(
        self,
        n_clusters: int = 50,
        *,
        backbone: Any = "efficientnet_lite0",
        pretrained: bool = True,
        n_rounds: int = 5,
        tol: float = 0.02,
        finetune: bool = False,
        finetune_epochs: int = 3,
        finetune_mode: str = "adapter",
        dev_fraction: float = 0.1,
        pca_dim: int | None = 128,
        whiten: bool = False,
        n_neighbors: int | None = 20,
        merge: bool | str = True,
        merge_reg: float = 0.5,
        merge_threshold: float = 0.5,
        min_cluster_size: int = 5,
        hierarchical: bool = False,
        n_subclusters: int | None = None,
        warm_start: bool = True,
        image_size: int | None = None,
        batch_size: int = 64,
        lr: float | None = None,
        checkpoint_dir: str | Path | None = None,
        random_state: int | None = None,
        progress: bool = True,
        device: str = "auto",
        holdout: Any = "deprecated",
    ) -> None:
        self.n_clusters = n_clusters
        self.backbone = backbone
        self.pretrained = pretrained
        self.n_rounds = n_rounds
        self.tol = tol
        self.finetune = finetune
        self.finetune_epochs = finetune_epochs
        self.finetune_mode = finetune_mode
        self.dev_fraction = dev_fraction
        self.pca_dim = pca_dim
        self.whiten = whiten
        self.n_neighbors = n_neighbors
        self.merge = merge
        self.merge_reg = merge_reg
        self.merge_threshold = merge_threshold
        self.min_cluster_size = min_cluster_size
        self.hierarchical = hierarchical
        self.n_subclusters = n_subclusters
        self.warm_start = warm_start
        self.image_size = image_size
        self.batch_size = batch_size
        self.lr = lr
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.progress = progress
        self.device = device
        self.holdout = holdout

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        owner = type(self).__name__
        check_int(self.n_clusters, "n_clusters", owner, min_value=1)
        check_int(self.n_rounds, "n_rounds", owner, min_value=1)
        check_int(self.finetune_epochs, "finetune_epochs", owner, min_value=1)
        check_int(self.min_cluster_size, "min_cluster_size", owner, min_value=1)
        check_int(self.batch_size, "batch_size", owner, min_value=1)
        if self.pca_dim is not None:
            check_int(self.pca_dim, "pca_dim", owner, min_value=1)
        if self.n_neighbors is not None:
            check_int(self.n_neighbors, "n_neighbors", owner, min_value=1)
        if self.image_size is not None:
            check_int(self.image_size, "image_size", owner, min_value=8)
        if self.n_subclusters is not None:
            check_int(self.n_subclusters, "n_subclusters", owner, min_value=1)
        check_option(self.merge, "merge", owner, [True, False, "rim", "centroid"])
        check_option(self.finetune_mode, "finetune_mode", owner, ["backbone", "adapter"])
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0):
            raise ValueError(f"The 'lr' parameter of {owner} must be a float > 0 or None. Got {self.lr!r} instead.")
        dev = str(self.device)
        if not (dev in ("auto", "cpu", "mps") or dev.startswith("cuda")):
            raise ValueError(f"The 'device' parameter of {owner} must be 'auto', 'cpu', 'cuda[:i]' or 'mps'. "
                             f"Got {self.device!r} instead.")
        if self.holdout != "deprecated":
            warnings.warn(f"The 'holdout' parameter of {owner} is deprecated; use 'dev_fraction' (same meaning).",
                          FutureWarning, stacklevel=3)
        for name in ("dev_fraction",) + (("holdout",) if self.holdout != "deprecated" else ()):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"The '{name}' parameter of {owner} must be a float in [0, 1). Got {value!r}.")
        if not float(self.tol) >= 0:
            raise ValueError(f"The 'tol' parameter of {owner} must be >= 0. Got {self.tol!r}.")
        if not isinstance(self.backbone, str) and not (
            hasattr(self.backbone, "dim") and hasattr(self.backbone, "forward")
        ):
            raise TypeError(
                f"The 'backbone' parameter of {owner} must be a backbone name or a torch module with "
                f"'.dim' and '.input_spec'. Got {type(self.backbone).__name__}."
            )

    def _dev_fraction(self) -> float:
        """``dev_fraction``, or the deprecated ``holdout`` when that is set."""
        return float(self.dev_fraction if self.holdout == "deprecated" else self.holdout)

    def _device(self) -> str:
        if self.device != "auto":
            return str(self.device)
        try:
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:  # pragma: no cover
            return "cpu"

    @property
    def _hier(self) -> bool:
        return bool(self.hierarchical) or self.n_subclusters is not None

    # ------------------------------------------------------------------ inputs
    def _build_backbone(self, seed: int):
        if isinstance(self.backbone, str):
            from radmine.images.backbones import build_backbone

            return build_backbone(self.backbone, pretrained=self.pretrained, random_state=seed,
                                  image_size=self.image_size)
        return copy.deepcopy(self.backbone)

    def _spec(self, model) -> dict:
        spec = dict(getattr(model, "input_spec", {}) or {})
        if self.image_size is not None:
            spec["image_size"] = int(self.image_size)
        return spec

    def _load_tensors(self, images, spec) -> tuple[np.ndarray, Any, pd.DataFrame]:
        """Turn the ``fit``/``predict`` input into (image_ids, float16 tensor (n,3,H,W), quarantine)."""
        import torch

        qcols = ["source", "item", "reason"]
        if isinstance(images, torch.Tensor) or (isinstance(images, np.ndarray) and images.ndim == 4):
            t = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images)
            if t.ndim != 4 or t.shape[1] != 3:
                raise ValueError(f"images: a 4-D input must have shape (n, 3, H, W); got {tuple(t.shape)}.")
            return np.arange(len(t)), t.to(torch.float16), pd.DataFrame(columns=qcols)
        ids, items = _image_items(images)
        from radmine._progress import tqdm

        from radmine.images.embed import decode_image
        from radmine.images.preprocess import preprocess

        size = int(spec["image_size"])
        keep, tensors, bad = [], [], []
        for i, item in enumerate(tqdm(items, disable=not self.progress, desc="load images", leave=False)):
            try:
                if item is None or (isinstance(item, float) and np.isnan(item)):
                    raise ValueError("no image path")
                if not isinstance(item, (str, Path)):
                    item = _to_2d(item)
                arr, hu = decode_image(item if not isinstance(item, Path) else str(item), size=size)
                x = torch.as_tensor(preprocess(arr, spec, hu=hu))
                if not torch.isfinite(x).all():
                    raise ValueError("image has non-finite pixel values")
                tensors.append(x.to(torch.float16))
                keep.append(i)
            except (OSError, ValueError, TypeError, RuntimeError) as exc:
                bad.append({"source": "JointClusterer", "item": str(ids[i]), "reason": f"{type(exc).__name__}: {exc}"})
        if bad:
            warnings.warn(f"JointClusterer: {len(bad):,} of {len(ids):,} images could not be loaded; see `.quarantine_` "
                          f"(first: {bad[0]['item']}: {bad[0]['reason'][:200]}).", stacklevel=3)
        if not tensors:
            raise ValueError(f"images: none of the {len(ids)} images could be read; first problem: "
                             f"{bad[0]['reason'] if bad else 'no images given'}.")
        return np.asarray(ids, dtype=object)[keep], torch.stack(tensors), pd.DataFrame(bad, columns=qcols)

    # ------------------------------------------------------------------ fit
    def fit(self, corpus_or_images=None, image_features=None, y_true=None, *, features=None) -> JointClusterer:
        """Run the joint clustering loop.

        Parameters
        ----------
        corpus_or_images : Corpus, DataFrame, list of paths, list/array of 2-D arrays, array (n, 3, H, W) or None
            The images (a Corpus uses its ``images`` table and ``image_paths()``;
            a DataFrame needs ``path`` and uses ``image_id`` when present).
            ``None`` is allowed with ``image_features`` and ``finetune=False``.
        image_features : array-like of shape (n_images, dim), optional
            Precomputed round-0 features (skips the first extraction).
        y_true : array-like of shape (n_images,) or str, optional
            Known classes to score each round against (or the name of a
            column of the corpus ``images`` table).

        Returns
        -------
        self
        """
        features = renamed_keyword(image_features, features, "image_features", "features", "JointClusterer.fit")
        self._validate()
        owner = type(self).__name__
        t_start = time.time()
        rng = check_random_state(self.random_state)
        base_seed = int(self.random_state) if isinstance(self.random_state, (int, np.integer)) else int(
            rng.integers(2**31 - 1))
        self._corpus = corpus_or_images if _is_corpus(corpus_or_images) else None
        self._lazy_backbone_seed = None
        device = self._device()
        use_loop = bool(self.finetune) and self.n_rounds > 1
        adapter_mode = self.finetune_mode == "adapter"

        if features is not None:
            features = np.asarray(features, dtype=np.float32)
            if features.ndim != 2:
                raise ValueError(f"features must be 2-D (n_images, dim); got shape {features.shape}.")
        if corpus_or_images is None:
            if features is None:
                raise ValueError(f"{owner}.fit needs images (a Corpus, table, paths or arrays) or 'image_features'.")
            if use_loop and not adapter_mode:
                raise ValueError(f"{owner}.fit: fine-tuning the backbone needs the images; pass them, set "
                                 "finetune_mode='adapter', or set finetune=False to cluster the given 'image_features'.")
        backbone, tensors = None, None
        self.quarantine_ = pd.DataFrame(columns=["source", "item", "reason"])
        need_pixels = features is None or (use_loop and not adapter_mode)
        if corpus_or_images is not None and need_pixels:
            backbone = self._build_backbone(base_seed)
            ids, tensors, self.quarantine_ = self._load_tensors(corpus_or_images, self._spec(backbone))
        elif corpus_or_images is not None:
            ids, _ = _image_items(corpus_or_images, need_items=False)
            ids = np.asarray(ids, dtype=object)
            self._lazy_backbone_seed = base_seed  # predict(images) builds the same frozen backbone
        else:
            ids = np.arange(len(features))
        if features is not None and len(features) != len(ids):
            if len(self.quarantine_):
                keep = ~pd.Index(_image_items(corpus_or_images, need_items=False)[0]).isin(
                    self.quarantine_["item"])
                features = features[np.asarray(keep)]
            if len(features) != len(ids):
                raise ValueError(f"features has {len(features)} rows but there are {len(ids)} images.")
        # what the loop trains (``model``) and feeds it (``inputs``)
        if adapter_mode:
            import torch

            if features is None:
                features = _loop.extract_features(backbone, tensors, batch_size=self.batch_size, device=device,
                                                  progress=self.progress, desc="extract (frozen backbone)")
                tensors = None  # the pixels are not needed any more
            # the adapter starts as the identity and only the loop trains it: without the loop there is none
            model = _loop.Adapter(features.shape[1], seed=base_seed) if use_loop else None
            inputs = torch.from_numpy(np.ascontiguousarray(features)) if use_loop else None
        else:
            model, inputs = backbone, tensors
        if backbone is not None and (adapter_mode or not use_loop):
            # used frozen only: predict(images) rebuilds it from its name and seed, save() stores no weights
            self._lazy_backbone_seed = base_seed
        y = self._resolve_truth(y_true, corpus_or_images, ids)
        if self.n_clusters > len(ids):
            raise ValueError(f"n_clusters={self.n_clusters} is larger than the number of images ({len(ids)}).")
        self.image_ids_ = ids

        # -- resume
        ckpt = Path(self.checkpoint_dir) if self.checkpoint_dir is not None else None
        fp = self._fingerprint(ids, features)
        start_round, prev_labels, history = 0, None, []
        self.resumed_from_ = None
        state = None
        if ckpt is not None:
            state = _last_round(ckpt, fp)
        if state is not None:
            r_done = state["json"]["round"]
            self.resumed_from_ = r_done
            history = state["json"]["history"]
            prev_labels = state["labels"]
            if model is not None and state["weights"] is not None:
                model.load_state_dict(state["weights"])
            start_round = r_done + 1
            logger.info("JointClusterer: resuming after round %d from %s", r_done, ckpt)
            if state["json"].get("finished") or not use_loop:
                reducer = _loop.FeatureReducer.from_state(state["arrays"])
                self._set_final(state["arrays"]["features"], state["labels"], reducer, model, history,
                                state["json"].get("converged", False), backbone, adapter_mode)
                self._fit_subclusters(base_seed)
                self.fit_seconds_ = time.time() - t_start
                return self

        Z = centers = reducer = labels = None
        converged = False
        last_round = self.n_rounds - 1 if use_loop else 0
        r = start_round
        for r in range(start_round, last_round + 1):
            t0 = time.time()
            seed = base_seed + 1009 * r
            if r == 0 and features is not None:
                raw = features
            else:
                raw = _loop.extract_features(model, inputs, batch_size=self.batch_size, device=device,
                                             progress=self.progress, desc=f"round {r}: extract")
            reducer = _loop.FeatureReducer(self.pca_dim, self.whiten, random_state=seed).fit(raw)
            Z = reducer.transform(raw)
            labels, centers, n_reseeded, n_merged = self._cluster(self._cluster_space(Z, prev_labels, seed),
                                                                  prev_labels, seed)
            centers = _loop.centers_of(Z, np.searchsorted(np.unique(labels), labels), len(centers))
            row = {"round": r, "n_clusters": int(len(np.unique(labels)))}
            if prev_labels is not None:
                row["nmi_prev"] = _loop.nmi(prev_labels, labels)
                row["purity_prev"] = _loop.purity(prev_labels, labels)
            else:
                row["nmi_prev"] = row["purity_prev"] = float("nan")
            if y is not None:
                row["nmi_true"] = _loop.nmi(y, labels)
                row["ami_true"] = _loop.ami(y, labels)
                row["purity_true"] = _loop.purity(y, labels)
            sizes = np.unique(labels, return_counts=True)[1]
            row.update(size_min=int(sizes.min()), size_median=float(np.median(sizes)), size_max=int(sizes.max()),
                       n_empty_reseeded=int(n_reseeded), n_merged=int(n_merged))
            converged = prev_labels is not None and (1.0 - row["nmi_prev"]) < self.tol
            finished = converged or r == last_round
            ft = {"loss": float("nan"), "val_loss": float("nan"), "val_acc": float("nan")}
            if not finished:
                dense, _ = _loop.relabel_contiguous(labels)
                ft = _loop.finetune(model, inputs, dense, epochs=self.finetune_epochs, dev_fraction=self._dev_fraction(),
                                    lr=self._lr(), batch_size=self.batch_size, device=device, seed=seed + 1,
                                    progress=self.progress)
            row.update(finetune_loss=ft["loss"], val_loss=ft["val_loss"], val_acc=ft["val_acc"],
                       seconds=time.time() - t0)
            history.append(row)
            logger.info("JointClusterer round %d: %d clusters, nmi_prev=%.3f (%.1fs)", r, row["n_clusters"],
                        row["nmi_prev"], row["seconds"])
            prev_labels = labels
            if ckpt is not None:
                self._save_round(ckpt, r, fp, model, ids, labels, Z, centers, reducer, history, finished,
                                 converged)
            if finished:
                break

        self._set_final(Z, labels, reducer, model, history, converged, backbone, adapter_mode)
        self._fit_subclusters(base_seed)
        self.fit_seconds_ = time.time() - t_start
        return self

    def _resolve_truth(self, y_true, images, ids):
        if y_true is None:
            return None
        if isinstance(y_true, str):
            table = images.images if _is_corpus(images) else images
            if not isinstance(table, pd.DataFrame) or y_true not in table.columns:
                raise KeyError(f"y_true={y_true!r} is not a column of the images table.")
            table = table.set_index("image_id") if "image_id" in table.columns else table
            return table.loc[list(ids), y_true].astype(str).to_numpy()
        y = np.asarray(y_true)
        if len(y) != len(ids):
            raise ValueError(f"y_true has {len(y)} values but there are {len(ids)} images.")
        return y

    def _cluster_space(self, Z, prev_labels, seed):
        """Where k-means runs: the spectral embedding of the kNN graph of ``Z`` (``n_neighbors``), or ``Z``."""
        if self.n_neighbors is None:
            return Z
        k = min(self.n_clusters if prev_labels is None else int(len(np.unique(prev_labels))), len(Z))
        # no more neighbours than the images of an average cluster, or small clusters merge in the graph
        return _loop.spectral_embed(Z, k, min(self.n_neighbors, max(1, len(Z) // k - 1)), seed=seed)

    def _cluster(self, Z, prev_labels, seed):
        k = self.n_clusters if prev_labels is None else int(len(np.unique(prev_labels)))
        k = min(k, len(Z))
        init = None
        if prev_labels is not None and self.warm_start:
            dense, _ = _loop.relabel_contiguous(prev_labels)
            init = _loop.centers_of(Z, dense, int(dense.max()) + 1)
            k = init.shape[0]
        labels, centers = _loop.kmeans(Z, k, seed=seed, init_centroids=init)
        labels, centers, n_reseeded = _loop.reseed_empty(Z, labels, k, seed=seed)
        n_merged = 0
        if self.merge in (True, "rim"):
            labels, n_merged = _loop.refine_merge(Z, labels, centers, reg=self.merge_reg, seed=seed,
                                                  min_clusters=int(np.ceil(0.5 * self.n_clusters)))
        elif self.merge == "centroid":
            labels, n_merged = _loop.merge_close(Z, labels, threshold=self.merge_threshold)
        labels, n_dissolved = _loop.dissolve_small(Z, labels, self.min_cluster_size)
        n_merged += n_dissolved
        if prev_labels is not None:
            labels = _loop.match_labels(prev_labels, labels)
        ids = np.unique(labels)
        lookup = np.searchsorted(ids, labels)
        centers = _loop.centers_of(Z, lookup, len(ids))
        return labels.astype(np.int64), centers, n_reseeded, n_merged

    def _set_final(self, Z, labels, reducer, model, history, converged, backbone=None, adapter_mode=False):
        self.features_ = Z
        self.labels_level1_ = np.asarray(labels, dtype=np.int64)
        self.labels_ = self.labels_level1_
        self.clusters_ = np.unique(self.labels_level1_)
        self.n_clusters_ = int(len(self.clusters_))
        self.cluster_centers_ = _loop.centers_of(Z, np.searchsorted(self.clusters_, self.labels_level1_),
                                                 self.n_clusters_)
        self._reducer = reducer
        self.backbone_ = backbone if adapter_mode else model
        self.adapter_ = model if adapter_mode else None
        self.history_ = _history_frame(history)
        self.converged_ = bool(converged)

    # ------------------------------------------------------------------ hierarchy
    def _fit_subclusters(self, base_seed: int) -> None:
        self.subcluster_centers_ = {}
        if not self._hier:
            return
        n_sub = self.n_subclusters or 4
        sub = np.zeros(len(self.labels_level1_), dtype=np.int64)
        for c in self.clusters_:
            m = np.flatnonzero(self.labels_level1_ == c)
            kk = min(n_sub, len(m) // max(2, self.min_cluster_size))
            if kk < 2:
                self.subcluster_centers_[int(c)] = _loop.centers_of(self.features_[m], np.zeros(len(m), int), 1)
                continue
            lab, _ = _loop.kmeans(self.features_[m], kk, seed=base_seed + int(c))
            order = np.argsort(-np.bincount(lab, minlength=kk), kind="stable")  # sub 0 = largest
            rank = np.empty(kk, dtype=np.int64)
            rank[order] = np.arange(kk)
            lab = rank[lab]
            sub[m] = lab
            self.subcluster_centers_[int(c)] = _loop.centers_of(self.features_[m], lab, kk)
        self.labels_level2_ = sub
        self.labels_ = np.array([f"{a}.{b}" for a, b in zip(self.labels_level1_, sub)], dtype=object)

    # ------------------------------------------------------------------ predict
    def transform_features(self, features) -> np.ndarray:
        """Reduce raw backbone features with the fitted PCA/whitening; returns ``(n, dim_reduced)``.

        Raises
        ------
        ValueError
            The features do not have the width of those the clusterer was fitted on, or a row is
            not finite.
        """
        check_is_fitted(self, "labels_")
        return self._reducer.transform(self._checked_width(features, int(self._reducer.mean_.shape[0])))

    def _checked_width(self, features, want: int) -> np.ndarray:
        X = np.asarray(features, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != want:
            raise ValueError(f"JointClusterer: expected features of shape (n, {want}), the width of those it was "
                             f"fitted on; got {X.shape}. Embed new images the way the fitted ones were embedded "
                             "(e.g. ImageTextModel.encode_images for a clusterer fitted in its joint space).")
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        if len(bad):
            raise ValueError(f"JointClusterer: {len(bad)} row(s) of the features are NaN or infinite (first: row "
                             f"{int(bad[0])}), e.g. images that could not be read; leave them out before predict.")
        return X

    def predict(self, images=None, image_features=None, *, features=None) -> np.ndarray:
        """Assign new images to the nearest final cluster centre.

        Parameters
        ----------
        images : same kinds as ``fit``, optional
            Extracted with the final (fine-tuned) backbone.
        image_features : array-like of shape (n, dim), optional
            Raw backbone features instead of images.
        features : array-like, optional
            Deprecated alias of ``image_features`` (``FutureWarning``).

        Returns
        -------
        ndarray of shape (n,)
            Cluster ids (strings ``"top.sub"`` when hierarchical).
        """
        features = renamed_keyword(image_features, features, "image_features", "features", "JointClusterer.predict")
        check_is_fitted(self, "labels_")
        if (images is None) == (features is None):
            raise ValueError("JointClusterer.predict needs exactly one of 'images' or 'image_features'.")
        if features is None:
            if self.backbone_ is None and getattr(self, "_lazy_backbone_seed", None) is not None:
                self.backbone_ = self._build_backbone(self._lazy_backbone_seed)
            if self.backbone_ is None:
                raise ValueError("predict(images=...) needs a backbone; this clusterer was fitted on features "
                                 "only: pass 'image_features'.")
            _, tensors, q = self._load_tensors(images, self._spec(self.backbone_))
            if len(q):
                raise ValueError(f"predict: {len(q)} image(s) could not be read; first: {q.iloc[0]['reason']}.")
            features = _loop.extract_features(self.backbone_, tensors, batch_size=self.batch_size,
                                              device=self._device(), progress=self.progress, desc="predict")
        if self.adapter_ is not None:
            import torch

            features = self._checked_width(features, int(self.adapter_.dim))
            features = _loop.extract_features(self.adapter_, torch.from_numpy(features),
                                              batch_size=1024, device=self._device())
        Z = self.transform_features(features)
        idx, _ = _loop.assign(Z, self.cluster_centers_)
        top = self.clusters_[idx]
        if not self._hier:
            return top
        out = []
        for z, c in zip(Z, top):
            sub, _ = _loop.assign(z[None], self.subcluster_centers_[int(c)])
            out.append(f"{c}.{int(sub[0])}")
        return np.array(out, dtype=object)

    # ------------------------------------------------------------------ inspection
    def get_cluster_info(self, corpus=None, n_words: int = 10, *, level: int = 1, n_nearest: int = 5,
                         stop_words="radiology") -> pd.DataFrame:
        """Name each cluster from the words of its images' report text.

        Parameters
        ----------
        corpus : Corpus, optional
            Defaults to the corpus given to ``fit``. Text per image: its
            linked sentence(s) in ``corpus.links``, else its ``caption``, else
            its report's ``findings`` (else ``text``).
        n_words : int, default=10
        level : {1, 2}
            1: top clusters; 2: sub-clusters (``hierarchical`` only).
        n_nearest : int, default=5
        stop_words : "radiology", "english" or list of str

        Returns
        -------
        DataFrame
            One row per cluster, largest first, always the columns
            :data:`CLUSTER_INFO_COLUMNS`: ``cluster, size, name,
            top_words`` (list of ``(word, count)``), ``distinctive_words``
            (list of ``(word, z)``: log-odds with an informative Dirichlet
            prior against the other clusters), ``top_annotations`` (list of
            ``("kind: value", count)``; empty without annotations),
            ``nearest_image_ids`` (list).
        """
        from radmine.cluster import naming

        check_is_fitted(self, "labels_")
        corpus = corpus if corpus is not None else getattr(self, "_corpus", None)
        if corpus is None or not _is_corpus(corpus):
            raise ValueError("get_cluster_info needs a Corpus: pass corpus=..., or fit on a Corpus.")
        check_option(level, "level", "get_cluster_info", [1, 2])
        if level == 2 and not self._hier:
            raise ValueError("get_cluster_info(level=2) needs hierarchical=True or n_subclusters.")
        labels = self.labels_level1_ if level == 1 else self.labels_
        table = naming.describe_clusters(corpus, self.image_ids_, labels, n_words=n_words, stop_words=stop_words)
        table["nearest_image_ids"] = [self.nearest(c, n_nearest, level) for c in table["cluster"]]
        return table[CLUSTER_INFO_COLUMNS]

    def cluster_info(self, *args, **kwargs) -> pd.DataFrame:
        """Deprecated name of :meth:`get_cluster_info` (same arguments and table; a ``FutureWarning``)."""
        warnings.warn("JointClusterer.cluster_info is deprecated; use JointClusterer.get_cluster_info "
                      "(same arguments, same table).", FutureWarning, stacklevel=2)
        return self.get_cluster_info(*args, **kwargs)

    def nearest(self, cluster, n: int = 5, level: int = 1) -> list:
        """Image ids of ``cluster`` closest to its centre in feature space, nearest first.

        Parameters
        ----------
        cluster : int or str
            A level-1 cluster id (``level=1``) or a sub-cluster id ``"c.s"`` (``level=2``).
        n : int, default 5
        level : {1, 2}, default 1
        """
        check_is_fitted(self, "labels_")
        if level == 1:
            m = np.flatnonzero(self.labels_level1_ == int(cluster))
            centre = self.cluster_centers_[int(np.searchsorted(self.clusters_, int(cluster)))]
        else:
            m = np.flatnonzero(self.labels_ == cluster)
            top, sub = str(cluster).split(".")
            centre = self.subcluster_centers_[int(top)][int(sub)]
        d = ((self.features_[m] - centre) ** 2).sum(1)
        return [self.image_ids_[i] for i in m[np.argsort(d, kind="stable")[:n]]]

    @property
    def fit_corpus_(self):
        """The Corpus given to :meth:`fit` (None when fitted on images or features alone, or loaded)."""
        return getattr(self, "_corpus", None)

    def members(self, cluster) -> np.ndarray:
        """Image ids of ``cluster`` (an id of ``labels_`` or of ``labels_level1_``); ``KeyError`` if unknown."""
        check_is_fitted(self, "labels_")
        if cluster in set(self.labels_.tolist()):
            return self.image_ids_[self.labels_ == cluster]
        try:
            c = int(cluster)
        except (TypeError, ValueError):
            c = None
        if c is not None and c in set(self.clusters_.tolist()):
            return self.image_ids_[self.labels_level1_ == c]
        raise KeyError(f"Unknown cluster {cluster!r}; known top-level ids: {self.clusters_.tolist()[:20]}...")

    def plot_cluster(self, cluster, corpus=None, n: int = 16, **kwargs):
        """Montage of images of ``cluster`` with its name; see :func:`radmine.plotting.clusters.montage`."""
        from radmine.plotting.clusters import montage

        return montage(self, corpus, cluster, n=n, **kwargs)

    def plot_history(self, **kwargs):
        """Convergence curves; see :func:`radmine.plotting.clusters.history`."""
        from radmine.plotting.clusters import history

        return history(self, **kwargs)

    def plot_clusters(self, corpus=None, clusters=None, n: int = 8, **kwargs):
        """One row of thumbnails per cluster with its name and size; see :func:`radmine.plotting.clusters.montages`."""
        from radmine.plotting.clusters import montages

        return montages(self, corpus, clusters, n=n, **kwargs)

    def plot_sizes(self, corpus=None, **kwargs):
        """Cluster sizes with names; see :func:`radmine.plotting.clusters.sizes`."""
        from radmine.plotting.clusters import sizes

        return sizes(self, corpus, **kwargs)

    def plot_over_time(self, corpus=None, **kwargs):
        """Cluster shares per period; see :func:`radmine.plotting.clusters.over_time`."""
        from radmine.plotting.clusters import over_time

        return over_time(self, corpus, **kwargs)

    def _summary_rows(self) -> dict[str, Any]:
        rows = super()._summary_rows()
        if hasattr(self, "labels_"):
            rows.update(n_images=len(self.labels_), n_clusters_=self.n_clusters_, rounds=len(self.history_),
                        converged_=self.converged_)
        return rows

    # ------------------------------------------------------------------ save / load
    def save(self, path) -> Path:
        """Save the fitted clusterer to a folder (no pickle).

        Files: ``clusterer.json`` (parameters, image ids, convergence, radmine
        version), ``history.parquet``, ``state.safetensors`` (reduced
        features, labels, cluster and sub-cluster centres, the PCA/whitening
        state) and, when trained, ``adapter.safetensors`` (``finetune_mode=
        "adapter"``) or ``backbone.safetensors`` (the fine-tuned CNN).

        Parameters
        ----------
        path : str or Path
            The folder (created; files in it are replaced).

        Returns
        -------
        Path
        """
        from safetensors.numpy import save as save_np

        import radmine
        from radmine._io import atomic_write_bytes

        check_is_fitted(self, "labels_")
        if not isinstance(self.backbone, str):
            raise TypeError("JointClusterer.save: only a clusterer with a named backbone can be saved "
                            f"(backbone={type(self.backbone).__name__}); pass the backbone by name.")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {"features": self.features_, "labels_level1": self.labels_level1_, "clusters": self.clusters_,
                  "cluster_centers": self.cluster_centers_, **self._reducer.state()}
        if self._hier:
            arrays["labels_level2"] = self.labels_level2_
            arrays.update({f"subcluster_centers.{c}": v for c, v in self.subcluster_centers_.items()})
        meta = {"radmine_version": radmine.__version__}
        atomic_write_bytes(path / "state.safetensors",
                           save_np({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=meta))
        trained = self.adapter_ if self.adapter_ is not None else (
            self.backbone_ if getattr(self, "_lazy_backbone_seed", None) is None and self.backbone_ is not None else None)
        if trained is not None:
            from safetensors.torch import save as save_t

            name = "adapter.safetensors" if self.adapter_ is not None else "backbone.safetensors"
            atomic_write_bytes(path / name, save_t(
                {k: v.detach().cpu().contiguous().clone() for k, v in trained.state_dict().items()}, metadata=meta))
        params = {k: getattr(self, k) for k in _init_params(type(self))}
        params["checkpoint_dir"] = None
        atomic_write_parquet(self.history_, path / "history.parquet")
        atomic_write_json(path / "clusterer.json", {
            "format": "radmine-joint-clusterer",
            "radmine_version": radmine.__version__,
            "params": params,
            "image_ids": [str(i) for i in self.image_ids_],
            "converged": bool(self.converged_),
            "trained": None if trained is None else ("adapter" if self.adapter_ is not None else "backbone"),
            "adapter_dim": None if self.adapter_ is None else int(self.adapter_.dim),
            "lazy_backbone_seed": getattr(self, "_lazy_backbone_seed", None),
        })
        return path

    @classmethod
    def load(cls, path, *, device: str | None = None) -> JointClusterer:
        """Load a clusterer written by :meth:`save`; ``predict`` and ``get_cluster_info`` work on it.

        Parameters
        ----------
        path : str or Path
        device : str, optional
            Overrides the saved ``device`` parameter (e.g. ``"cpu"``).
        """
        from safetensors.numpy import load_file as load_np

        path = Path(path)
        meta = read_saved_meta(path, "clusterer.json", "radmine-joint-clusterer", "JointClusterer")
        params = dict(meta["params"])
        if device is not None:
            params["device"] = device
        est = cls(**params)
        arrays = load_np(str(path / "state.safetensors"))
        reducer = _loop.FeatureReducer.from_state(arrays)
        model, backbone = None, None
        if meta.get("trained") == "adapter":
            from safetensors.torch import load_file

            model = _loop.Adapter(int(meta["adapter_dim"]))
            model.load_state_dict(load_file(str(path / "adapter.safetensors")))
        elif meta.get("trained") == "backbone":
            from safetensors.torch import load_file

            model = est._build_backbone(0)
            model.load_state_dict(load_file(str(path / "backbone.safetensors")))
        est.image_ids_ = np.asarray(meta["image_ids"], dtype=object)
        est.quarantine_ = pd.DataFrame(columns=["source", "item", "reason"])
        est._corpus = None
        est._lazy_backbone_seed = meta.get("lazy_backbone_seed")
        est._set_final(arrays["features"], arrays["labels_level1"], reducer, model,
                       pd.read_parquet(path / "history.parquet").to_dict("records"), meta.get("converged", False),
                       backbone, meta.get("trained") == "adapter")
        est.cluster_centers_ = arrays["cluster_centers"]
        est.subcluster_centers_ = {}
        if est._hier:
            est.labels_level2_ = arrays["labels_level2"]
            est.labels_ = np.array([f"{a}.{b}" for a, b in zip(est.labels_level1_, est.labels_level2_)], dtype=object)
            est.subcluster_centers_ = {int(k.rsplit(".", 1)[1]): v for k, v in arrays.items()
                                       if k.startswith("subcluster_centers.")}
        return est

    # ------------------------------------------------------------------ checkpoints
    def _lr(self) -> float:
        """The learning rate used: ``lr``, or 1e-3 (adapter) / 1e-4 (whole CNN) when None."""
        if self.lr is not None:
            return float(self.lr)
        return 1e-3 if self.finetune_mode == "adapter" else 1e-4

    def _fingerprint(self, ids, features) -> str:
        params = {k: v for k, v in vars(self).items() if not k.startswith("_") and not k.endswith("_")
                  and k not in _NOT_IN_FINGERPRINT}
        if not isinstance(params.get("backbone"), str):
            params["backbone"] = type(params["backbone"]).__name__
        params["image_ids"] = fingerprint([str(i) for i in ids])
        if features is not None:
            import hashlib

            params["features"] = hashlib.sha256(np.ascontiguousarray(features).tobytes()).hexdigest()[:16]
        return fingerprint(params)

    def _save_round(self, ckpt, r, fp, model, ids, labels, Z, centers, reducer, history, finished, converged):
        from safetensors.numpy import save as save_np

        import radmine
        from radmine._io import atomic_write_bytes

        d = ckpt / f"round_{r:02d}"
        d.mkdir(parents=True, exist_ok=True)
        if model is not None:  # every file atomic (and following the umask); state.json last
            from safetensors.torch import save

            atomic_write_bytes(d / "backbone.safetensors", save(
                {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()},
                metadata={"radmine_version": radmine.__version__}))
        atomic_write_parquet(pd.DataFrame({"image_id": [str(i) for i in ids], "label": labels}),
                             d / "assignments.parquet")
        arrays = {"features": Z, "centers": centers, **reducer.state()}
        atomic_write_bytes(d / "state.safetensors", save_np({k: np.ascontiguousarray(v) for k, v in arrays.items()},
                                                             metadata={"radmine_version": radmine.__version__}))
        atomic_write_json(d / "state.json", {
            "round": r, "fingerprint": fp, "radmine_version": radmine.__version__, "history": history,
            "finished": bool(finished), "converged": bool(converged), "has_backbone": model is not None,
        })


# ---------------------------------------------------------------------- helpers
def _init_params(klass) -> list[str]:
    import inspect

    return [n for n, p in inspect.signature(klass.__init__).parameters.items()
            if n != "self" and p.kind is not p.VAR_KEYWORD]


def _is_corpus(obj) -> bool:
    from radmine.corpus import Corpus

    return isinstance(obj, Corpus)


def _image_items(images, need_items: bool = True):
    """(ids, items) for a Corpus, images DataFrame, list of paths or list/array of 2-D arrays."""
    if _is_corpus(images):
        table = images.images
        if "image_id" not in table.columns:
            raise ValueError("Corpus.images has no 'image_id' column.")
        paths = images.image_paths() if "path" in table.columns else None
        if paths is None:
            raise ValueError("Corpus.images has no 'path' column: the clusterer needs the image files.")
        return table["image_id"].tolist(), paths.tolist()
    if isinstance(images, pd.DataFrame):
        if "path" not in images.columns:
            raise ValueError(f"images table is missing required column 'path'; it has {list(images.columns)}.")
        ids = images["image_id"].tolist() if "image_id" in images.columns else images.index.tolist()
        return ids, images["path"].tolist()
    if isinstance(images, np.ndarray) and images.ndim == 3:
        return list(range(len(images))), list(images)
    if isinstance(images, (list, tuple)):
        if all(isinstance(x, (str, Path)) for x in images):
            return [str(x) for x in images], list(images)
        return list(range(len(images))), list(images)
    raise TypeError(
        "images must be a Corpus, an images DataFrame, a list of paths, a list/array of 2-D arrays or an "
        f"array (n, 3, H, W); got {type(images).__name__}."
    )


def _to_2d(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3]
    elif arr.ndim == 3:
        arr = arr[arr.shape[0] // 2]
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D image, got shape {arr.shape}")
    return arr


_HISTORY_COLUMNS = ["round", "n_clusters", "nmi_prev", "purity_prev", "nmi_true", "ami_true", "purity_true",
                    "size_min", "size_median", "size_max", "n_empty_reseeded", "n_merged", "finetune_loss",
                    "val_loss", "val_acc", "seconds"]


def _history_frame(rows) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    cols = [c for c in _HISTORY_COLUMNS if c in df.columns]
    return df[cols].reset_index(drop=True)


def _last_round(ckpt: Path, fp: str):
    """Load the last finished round in ``ckpt`` with fingerprint ``fp`` (ValueError on other settings)."""
    from safetensors.numpy import load_file as load_np

    if not ckpt.is_dir():
        return None
    done = []
    for d in sorted(ckpt.glob("round_[0-9][0-9]")):
        f = d / "state.json"
        if not f.is_file():
            continue
        info = json.loads(f.read_text())
        if info.get("fingerprint") != fp:
            raise ValueError(
                f"checkpoint_dir {str(ckpt)!r} holds a run with other settings or images "
                f"(fingerprint {info.get('fingerprint')} != {fp}); use another folder or delete it."
            )
        done.append((info["round"], d, info))
    if not done:
        return None
    r, d, info = max(done, key=lambda t: t[0])
    weights = None
    if info.get("has_backbone") and (d / "backbone.safetensors").is_file():
        from safetensors.torch import load_file

        weights = load_file(str(d / "backbone.safetensors"))
    assign = pd.read_parquet(d / "assignments.parquet")
    return {"json": info, "labels": assign["label"].to_numpy().astype(np.int64), "weights": weights,
            "arrays": load_np(str(d / "state.safetensors"))}
