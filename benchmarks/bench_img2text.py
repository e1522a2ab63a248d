"""Image <-> caption retrieval and topic classification on MedPix 2.0 (Shin et al. 2015/2016 tasks).

Train on the published ``train`` split, score on ``dev`` (197 images, one
caption each: the "200 candidates" setting). Prints, side by side:

* image->text and text->image R@1/5/10 and median rank for: ``ImageTextModel()`` with
  its defaults (the "defaults" row: the selected single-model recipe), random
  embeddings, the TF-IDF caption-transfer baseline (captions of the 10
  nearest training images by EfficientNet-Lite0 features, TF-IDF cosine to
  each candidate caption), Shin's word2vec regression, contrastive heads
  with word2vec, contrastive heads with MiniLM (default settings, then the
  settings chosen on the train sub-splits, then those plus the kNN memory,
  then those as a seed ensemble ``n_ensemble`` with the chosen image
  features, then that ensemble plus the contrastive word2vec model in an
  ``ImageTextEnsemble``); each model's R@10 as a multiple of chance;
* TopicImageClassifier top-1/top-5 on dev per level (document / level-2 /
  sentence topics), next to the majority-class rate.

Image features are cached in ``benchmarks/results/cache`` (reruns are fast).

Usage::

    .venv/bin/python benchmarks/bench_img2text.py            # full run
    .venv/bin/python benchmarks/bench_img2text.py --quick    # fewer epochs, fewer models
    .venv/bin/python benchmarks/bench_img2text.py --defaults-only  # TF-IDF, the selected model and the defaults row
    .venv/bin/python benchmarks/bench_img2text.py --select   # the selection on train_1 <-> train_2 only
    .venv/bin/python benchmarks/bench_img2text.py --select --select-ensemble  # n_ensemble 1/3/5 x last / last+mid
    .venv/bin/python benchmarks/bench_img2text.py --select --select-cross     # word2vec weight in ImageTextEnsemble
    .venv/bin/python benchmarks/bench_img2text.py --select --select-views     # plain / content preprocessing views

Selection never looks at dev: ``--select`` fits on the published ``train_1``
cases and scores on ``train_2`` (and the reverse), R@10 over random
197-image candidate sets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import radmine
from radmine import _paths

#: The settings every row starts from (the pre-selection recipe: one member, last-layer features,
#: constant learning rate, early stopping on a tenth of the training cases). Spelled out so that the
#: rows keep their meaning whatever ImageTextModel's defaults are; the "defaults" row uses none of it.
BASELINE: dict = {"lr_schedule": "constant", "n_ensemble": 1, "image_features": "last", "dev_fraction": 0.1}
#: Chosen on the published train sub-splits (fit on train_1, score on train_2 and the reverse), never on dev.
SELECTED_NAME = "cosine 30 ep"
SELECTED: dict = {"lr_schedule": "cosine", "epochs": 30, "dev_fraction": 0.0}
MEMORY: dict = {"memory_weight": 1.0, "memory_k": 20}
#: Seed ensemble and image features, chosen with ``--select --select-ensemble`` (train sub-splits only).
ENSEMBLE: dict = {"n_ensemble": 3, "image_features": "last+mid"}
ENSEMBLE_NAME = "last+mid features, ensemble of 3"
#: Image views of the multi-view ImageTextEnsemble, as ``(image_preprocessing, image_size)``
#: (``--select --select-views``: each view a MiniLM model with the selected settings and ENSEMBLE;
#: train sub-splits only). ``None`` = the backbone's 224 pixels.
VIEWS: tuple = (("plain", 320), ("content", 320))
#: Earlier view sets, kept in the dev table beside VIEWS (the two 224-pixel views).
EARLIER_VIEWS: tuple = ((("plain", None), ("content", None)),)
#: Weight of the contrastive word2vec model beside the MiniLM ensemble in an ImageTextEnsemble
#: (``--select --select-cross``; None: no such row).
CROSS_WEIGHT: float | None = 0.25

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CACHE = RESULTS / "cache"


def image_features(corpus, backbone: str = "efficientnet_lite0", features: str = "last",
                   preprocessing: str = "plain", image_size: int | None = None) -> pd.DataFrame:
    """Backbone features of every image, keyed by absolute path in a resumable cache.

    The embedder settings are the ones the image-to-text models pin
    (``ImageTextModel(image_preprocessing=...)``: ``"plain"`` = pad, replicate, auto, avg;
    ``"content"`` = content crop + percentile clip); ``features``: ``"last"`` or
    ``"last+mid"`` (``ImageTextModel(image_features=...)``); ``image_size``: the
    CNN input side (``ImageTextModel(image_size=...)``; None = 224).
    """
    from radmine.img2text.training import make_embedder

    emb = make_embedder(backbone, cache_dir=CACHE / backbone, progress=True, features=features,
                        preprocessing=preprocessing, image_size=image_size)
    paths = [str(Path(p).resolve()) for p in corpus.image_paths()]
    X = emb.transform(paths)
    return pd.DataFrame(X, index=pd.Index(corpus.images["image_id"].tolist(), name="image_id"))


def tfidf_transfer(train_caps, train_F, dev_caps, dev_F, n_neighbors: int = 10):
    """Query = mean TF-IDF of the captions of the n nearest training images; candidates = dev captions."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    vec = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=1).fit(train_caps)
    T_train = vec.transform(train_caps)
    T_dev = normalize(vec.transform(dev_caps))
    a = normalize(train_F)
    b = normalize(dev_F)
    nn = np.argsort(-(b @ a.T), axis=1)[:, :n_neighbors]
    Q = np.vstack([np.asarray(T_train[idx].mean(axis=0)) for idx in nn])
    Q = normalize(Q)
    return Q.astype(np.float32), T_dev.toarray().astype(np.float32)


def fmt_row(name, r, n, extra=""):
    chance10 = min(10 / n, 1.0)
    return (
        f"| {name:<50} | {r['image_to_text_R@1']:.3f} | {r['image_to_text_R@5']:.3f} | {r['image_to_text_R@10']:.3f} "
        f"| {r['image_to_text_median_rank']:>5.1f} | {r['text_to_image_R@1']:.3f} | {r['text_to_image_R@5']:.3f} "
        f"| {r['text_to_image_R@10']:.3f} | {r['text_to_image_median_rank']:>5.1f} "
        f"| {r['image_to_text_R@10'] / chance10:>4.1f}x | {extra} |"
    )


def select(corpus, F, candidates: dict, seed: int = 0, n_candidates: int = 197, reps: int = 5,
           ensemble_sizes=(1, 3, 5)) -> dict:
    """Model selection without dev: fit on train_1, score on train_2 and the reverse (published sub-splits).

    ``F`` is one features DataFrame or a dict ``{image_features kind: DataFrame}``
    (picked by the candidate's ``image_features``). A candidate with
    ``n_ensemble = n > 1`` is also scored as the ensembles of its first
    ``k`` members for every ``k`` in ``ensemble_sizes`` below ``n``: member
    ``m``'s seeds depend only on ``random_state`` and ``m``, so those prefixes
    are exactly the models ``n_ensemble=k`` would train.

    Returns ``{name: mean image->text R@10}`` over both directions and ``reps``
    random samples of ``n_candidates`` held-out images.
    """
    sub = corpus.copy()
    sub.reports = sub.reports.assign(split=sub.reports["subsplit"])
    out = {}
    for name, params in candidates.items():
        t0 = time.perf_counter()
        feats = F[params.get("image_features", "last")] if isinstance(F, dict) else F
        n = int(params.get("n_ensemble", 1))
        sizes = [k for k in ensemble_sizes if k < n] + [n]
        vals: dict[int, list] = {k: [] for k in sizes}
        for a, b in (("train_1", "train_2"), ("train_2", "train_1")):
            model = radmine.ImageTextModel(**{**params, "train_split": a}).fit(sub, image_features=feats)
            members = model.members_
            for k in sizes:
                model.members_ = members[:k]
                for r in range(reps):
                    vals[k].append(model.score(sub, split=b, image_features=feats, n_candidates=n_candidates,
                                               random_state=r)["image_to_text_R@10"])
            model.members_ = members
        for k in sizes:
            key = name if k == n else f"{name} [first {k} of {n}]"
            out[key] = float(np.mean(vals[k]))
            print(f"  select {key}: train_1<->train_2 i2t R@10 {out[key]:.3f} ({time.perf_counter() - t0:.0f}s)",
                  flush=True)
    return out


def select_cross(corpus, F, minilm: dict, word2vec: dict, weights=(0.0, 0.25, 0.5, 1.0), n_candidates: int = 197,
                 reps: int = 5) -> dict:
    """Weight of a word2vec model beside a MiniLM model in an ImageTextEnsemble, on train_1 <-> train_2 only.

    Returns ``{w: mean image->text R@10}`` for ``ImageTextEnsemble([minilm, word2vec], weights=[1, w])``.
    """
    from radmine.img2text.model import ImageTextEnsemble

    sub = corpus.copy()
    sub.reports = sub.reports.assign(split=sub.reports["subsplit"])
    vals: dict[float, list] = {w: [] for w in weights}
    t0 = time.perf_counter()
    for a, b in (("train_1", "train_2"), ("train_2", "train_1")):
        m1 = radmine.ImageTextModel(**{**minilm, "train_split": a}).fit(sub, image_features=F)
        m2 = radmine.ImageTextModel(**{**word2vec, "train_split": a}).fit(sub, image_features=F)
        for w in weights:
            ens = ImageTextEnsemble([m1, m2], weights=[1.0, w])
            for r in range(reps):
                vals[w].append(ens.score(sub, split=b, image_features=F, n_candidates=n_candidates,
                                         random_state=r)["image_to_text_R@10"])
    out = {w: float(np.mean(v)) for w, v in vals.items()}
    for w, v in out.items():
        print(f"  select MiniLM + {w} x word2vec: train_1<->train_2 i2t R@10 {v:.3f} ({time.perf_counter() - t0:.0f}s)",
              flush=True)
    return out


def select_views(corpus, views: dict, features: dict, params: dict, combos: dict, n_candidates: int = 197,
                 reps: int = 5) -> dict:
    """Ensembles of models on different image views, on train_1 <-> train_2 only.

    ``views``: ``{view name: (image_features, image_preprocessing, image_size)}``; ``features``:
    ``{(image_features, image_preprocessing, image_size): features DataFrame}``.

    One model per view and fold (member seeds offset by 100 per view); every
    combination in ``combos`` (``{name: [view, ...]}``) is scored as an
    equal-weight :class:`ImageTextEnsemble`. Returns ``{name: mean image->text R@10}``.
    """
    from radmine.img2text.model import ImageTextEnsemble

    sub = corpus.copy()
    sub.reports = sub.reports.assign(split=sub.reports["subsplit"])
    vals: dict[str, list] = {c: [] for c in combos}
    t0 = time.perf_counter()
    for a, b in (("train_1", "train_2"), ("train_2", "train_1")):
        models = {}
        for i, (view, (feat_kind, prep, size)) in enumerate(views.items()):
            p = {**params, "train_split": a, "random_state": params.get("random_state", 0) + 100 * i,
                 "image_features": feat_kind, "image_preprocessing": prep, "image_size": size}
            models[view] = radmine.ImageTextModel(**p).fit(sub, image_features=features[(feat_kind, prep, size)])
        for name, names in combos.items():
            ens = ImageTextEnsemble([models[v] for v in names])
            fs = [features[views[v]] for v in names]
            for r in range(reps):
                vals[name].append(ens.score(sub, split=b, image_features=fs, n_candidates=n_candidates,
                                            random_state=r)["image_to_text_R@10"])
    out = {c: float(np.mean(v)) for c, v in vals.items()}
    for c, v in out.items():
        print(f"  select views {c}: train_1<->train_2 i2t R@10 {v:.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs, skip MiniLM and two topic levels")
    ap.add_argument("--defaults-only", action="store_true",
                    help="only the retrieval rows random, TF-IDF, the selected single model and ImageTextModel() defaults")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-topics", type=int, default=10)
    ap.add_argument("--select", action="store_true",
                    help="only rerun the selection of the MiniLM settings on train_1 <-> train_2 (no dev)")
    ap.add_argument("--select-ensemble", action="store_true",
                    help="with --select: choose n_ensemble (1/3/5) and image_features (last / last+mid) instead")
    ap.add_argument("--select-views", action="store_true",
                    help="with --select: ensembles of models on different image preprocessings / feature kinds")
    ap.add_argument("--views", default="",
                    help="with --select-views: comma-separated view names to compare (default: all six)")
    ap.add_argument("--select-cross", action="store_true",
                    help="with --select: choose the word2vec weight of the MiniLM + word2vec ImageTextEnsemble")
    args = ap.parse_args(argv)
    folder = _paths.medpix_dir()
    if folder is None:
        print("MedPix 2.0 not found (../shared/corpora/medpix-2.0 or $RADMINE_CORPORA); nothing to do.")
        return 0
    t_all = time.perf_counter()
    corpus = radmine.read_medpix(folder, progress=False, image_sizes=False)
    t0 = time.perf_counter()
    F = image_features(corpus)
    t_feat = time.perf_counter() - t0
    rep = corpus.reports.set_index("report_id")["split"]
    im = corpus.images.assign(split=corpus.images["report_id"].map(rep))
    train_im, dev_im = im[im["split"] == "train"], im[im["split"] == "dev"]
    n_dev = len(dev_im)
    print(f"MedPix 2.0: {len(train_im)} train / {n_dev} dev images (dev = the ~200-candidate setting); "
          f"features {t_feat:.1f}s (EfficientNet-Lite0, cached)\n")
    if args.select:
        from radmine.img2text.text_encoders import TransformersTextEncoder

        base = dict(**BASELINE, epochs=40, batch_size=64, random_state=args.seed, progress=False, patience=8,
                    text_source="captions", text_encoder=TransformersTextEncoder().fit(), objective="contrastive")
        if args.select_cross:
            w2v = {**base, "text_encoder": "word2vec"}
            select_cross(corpus, F, {**base, **SELECTED}, w2v)
            return 0
        if args.select_views:
            views = {"plain": ("last+mid", "plain", None), "content": ("last+mid", "content", None),
                     "plain 320px": ("last+mid", "plain", 320), "content 320px": ("last+mid", "content", 320),
                     "plain 384px": ("last+mid", "plain", 384), "content 384px": ("last+mid", "content", 384)}
            if args.views:
                unknown = [name for name in args.views.split(",") if name not in views]
                if unknown:
                    ap.error(f"--views: unknown view(s) {unknown}; expected names from {list(views)}")
                views = {name: views[name] for name in args.views.split(",")}
            features = {kind: image_features(corpus, features=kind[0], preprocessing=kind[1], image_size=kind[2])
                        for kind in views.values()}
            names = list(views)
            pairs = [names[i:i + 2] for i in range(0, len(names) - 1, 2)]
            select_views(corpus, views, features, {**base, **SELECTED, "n_ensemble": ENSEMBLE["n_ensemble"]},
                         {" + ".join(v): v for v in [names[:1], *pairs, names]})
            return 0
        if args.select_ensemble:
            F_mid = image_features(corpus, features="last+mid")
            select(corpus, {"last": F, "last+mid": F_mid},
                   {f"{SELECTED_NAME}, last, n_ensemble=5": {**base, **SELECTED, "n_ensemble": 5},
                    f"{SELECTED_NAME}, last+mid, n_ensemble=5": {**base, **SELECTED, "n_ensemble": 5,
                                                                  "image_features": "last+mid"}})
            return 0
        select(corpus, F, {"defaults": base, SELECTED_NAME: {**base, **SELECTED},
                           f"{SELECTED_NAME} + kNN memory": {**base, **SELECTED, **MEMORY}})
        return 0
    ks = (1, 5, 10)
    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}

    rng = np.random.default_rng(args.seed)
    results["random"] = radmine.recall_at_k(rng.normal(size=(n_dev, 64)), rng.normal(size=(n_dev, 64)), ks)
    seconds["random"] = 0.0
    t0 = time.perf_counter()
    q, c = tfidf_transfer(train_im["caption"].fillna("").tolist(), F.loc[train_im["image_id"]].to_numpy(),
                          dev_im["caption"].fillna("").tolist(), F.loc[dev_im["image_id"]].to_numpy())
    results["TF-IDF caption transfer (10-NN)"] = radmine.recall_at_k(q, c, ks)
    seconds["TF-IDF caption transfer (10-NN)"] = time.perf_counter() - t0

    epochs = 8 if args.quick else 40
    common = dict(**BASELINE, epochs=epochs, batch_size=64, random_state=args.seed, progress=False, patience=8,
                  text_source="captions", train_split="train")
    from radmine.img2text.text_encoders import TransformersTextEncoder

    # one frozen MiniLM instance for every MiniLM model: it remembers the captions it has encoded
    minilm = dict(text_encoder=TransformersTextEncoder().fit(), objective="contrastive")
    models = {
        "word2vec regression (Shin)": dict(text_encoder="word2vec", objective="regression", lr=1e-3),
        "contrastive, word2vec": dict(text_encoder="word2vec", objective="contrastive"),
        "contrastive, MiniLM": minilm,
        # settings chosen on train_1 <-> train_2 (see docs/img2text.md), never on dev
        f"contrastive, MiniLM, {SELECTED_NAME}": {**minilm, **SELECTED},
        f"contrastive, MiniLM, {SELECTED_NAME} + kNN memory": {**minilm, **SELECTED, **MEMORY},
        f"contrastive, MiniLM, {SELECTED_NAME}, {ENSEMBLE_NAME}": {**minilm, **SELECTED, **ENSEMBLE},
    }
    feats = {"last": F}
    if any(p.get("image_features", "last") != "last" for p in models.values()):
        feats["last+mid"] = image_features(corpus, features="last+mid")
    if args.quick:
        for name in [n for n in models if "MiniLM" in n][:-1]:
            models.pop(name)
    if args.defaults_only:
        models = {n: p for n, p in models.items() if n.endswith(ENSEMBLE_NAME)}
    fitted = {}
    for name, params in models.items():
        t0 = time.perf_counter()
        Fm = feats[params.get("image_features", "last")]
        model = radmine.ImageTextModel(**{**common, **params}).fit(corpus, image_features=Fm)
        results[name] = model.score(corpus, split="dev", image_features=Fm)
        seconds[name] = time.perf_counter() - t0
        fitted[name] = model
        print(f"  {name}: {len(model.history_)} epochs (best {model.best_epoch_}), {seconds[name]:.1f}s", flush=True)
    # ImageTextModel() as a user gets it: only the seed and a quiet progress bar are set; its features
    # are the kind the defaults ask for (computed with the same pinned embedder the model uses)
    t0 = time.perf_counter()
    kind = radmine.ImageTextModel().image_features
    feats.setdefault(kind, F if kind == "last" else image_features(corpus, features=kind))
    defaults = radmine.ImageTextModel(random_state=args.seed, progress=False).fit(corpus, image_features=feats[kind])
    results["defaults: ImageTextModel()"] = defaults.score(corpus, split="dev", image_features=feats[kind])
    seconds["defaults: ImageTextModel()"] = time.perf_counter() - t0
    print(f"  defaults: {len(defaults.history_)} history rows, {seconds['defaults: ImageTextModel()']:.1f}s", flush=True)
    ens_name = f"contrastive, MiniLM, {SELECTED_NAME}, {ENSEMBLE_NAME}"
    if ens_name in fitted and not args.quick and not args.defaults_only:
        from radmine.img2text.model import ImageTextEnsemble

        kind = models[ens_name].get("image_features", "last")
        # one model per view, seeds offset by 100 per position in its view set (as in --select-views);
        # the plain 224-pixel view at position 0 is the ensemble row above
        view_fits = {(0, "plain", None): (fitted[ens_name], feats[kind], seconds[ens_name])}
        for view_set in (*EARLIER_VIEWS, VIEWS):
            members = []
            for i, (prep, size) in enumerate(view_set):
                if (i, prep, size) not in view_fits:
                    t0 = time.perf_counter()
                    Fv = image_features(corpus, features=kind, preprocessing=prep, image_size=size)
                    p = {**common, **models[ens_name], "image_preprocessing": prep, "image_size": size,
                         "random_state": args.seed + 100 * i}
                    view_fits[(i, prep, size)] = (radmine.ImageTextModel(**p).fit(corpus, image_features=Fv), Fv,
                                                  time.perf_counter() - t0)
                members.append(view_fits[(i, prep, size)])
            label = " + ".join(prep + (f" {size}px" if size else "") for prep, size in view_set)
            name = f"{ens_name}, views {label} (ImageTextEnsemble)"
            t0 = time.perf_counter()
            results[name] = ImageTextEnsemble([m for m, _, _ in members]).score(
                corpus, split="dev", image_features=[f for _, f, _ in members])
            seconds[name] = sum(sec for _, _, sec in members) + time.perf_counter() - t0
    if CROSS_WEIGHT is not None and ens_name in fitted and "contrastive, word2vec" in fitted:
        from radmine.img2text.model import ImageTextEnsemble

        name = f"{ens_name} + {CROSS_WEIGHT:g} x contrastive word2vec (ImageTextEnsemble)"
        t0 = time.perf_counter()
        cross = ImageTextEnsemble([fitted[ens_name], fitted["contrastive, word2vec"]], weights=[1.0, CROSS_WEIGHT])
        results[name] = cross.score(corpus, split="dev", image_features=[feats[models[ens_name].get("image_features", "last")], F])
        seconds[name] = seconds[ens_name] + seconds["contrastive, word2vec"] + time.perf_counter() - t0

    print(f"\nImage <-> caption retrieval, MedPix dev ({n_dev} candidates; chance R@10 = {10 / n_dev:.3f})\n")
    print("| method | i2t R@1 | i2t R@5 | i2t R@10 | i2t med | t2i R@1 | t2i R@5 | t2i R@10 | t2i med | R@10 / chance | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(fmt_row(name, r, n_dev, f"{seconds[name]:.1f}"))
    if args.defaults_only:
        print(f"\nwall time: {time.perf_counter() - t_all:.1f}s (defaults-only run)")
        return 0

    # Shin's word-match rate of the regression model's top words against the dev captions
    wm = {}
    dev_ids = dev_im["image_id"].tolist()
    for name, model in fitted.items():
        Fm = feats[models[name].get("image_features", "last")]
        d = model.describe(None, k=5, n_sentences=0, features=Fm.loc[dev_ids].to_numpy())
        words = [d[d.image == i].sort_values("rank")["text"].tolist() for i in range(len(dev_ids))]
        wm[name] = {f"word_match@{k}": radmine.word_match_rate(words, dev_im["caption"].tolist(), k=k) for k in (1, 5)}
    print("\nShin's word-match rate (top-k describe words found in the image's own dev caption)\n")
    print("| model | @1 | @5 |\n|---|---|---|")
    for name, r in wm.items():
        print(f"| {name} | {r['word_match@1']:.3f} | {r['word_match@5']:.3f} |")

    # topic classifier per level
    levels = ["document"] if args.quick else ["document", "level2", "sentence"]
    topic_rows = []
    for level in levels:
        t0 = time.perf_counter()
        clf = radmine.TopicImageClassifier(n_topics=args.n_topics, n_subtopics=3, level=level, random_state=args.seed,
                                           progress=False, epochs=60 if not args.quick else 15, hidden_dim=0,
                                           lr=3e-3, weight_decay=1e-2)
        clf.fit(corpus, image_features=F)
        dev = clf.score(corpus, split="dev", image_features=F)
        held = clf.score()
        topic_rows.append((level, clf, dev, held, time.perf_counter() - t0))
    print(f"\nTopicImageClassifier (EfficientNet-Lite0 features + linear head), n_topics={args.n_topics}\n")
    print("| level | classes | dev top-1 | dev top-5 | held-out train cases top-1 | top-5 | majority | fit s |")
    print("|---|---|---|---|---|---|---|---|")
    for level, clf, dev, held, sec in topic_rows:
        print(f"| {level} | {dev['n_classes']} | {dev['top1_accuracy']:.3f} | {dev['top5_accuracy']:.3f} | "
              f"{held.get('top1_accuracy', float('nan')):.3f} | {held.get('top5_accuracy', float('nan')):.3f} | "
              f"{clf.train_majority_:.3f} | {sec:.1f} |")
    wall = time.perf_counter() - t_all
    print(f"\nwall time: {wall:.1f}s ({'quick' if args.quick else 'full'} run)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "n_dev": n_dev, "retrieval": results, "fit_seconds": seconds, "word_match": wm,
        "topics": {lv: {"dev": d, "held_out": h, "majority": c.train_majority_} for lv, c, d, h, _ in topic_rows},
        "wall_seconds": wall, "quick": args.quick,
    }
    (RESULTS / f"img2text{'_quick' if args.quick else ''}.json").write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
