"""The steps of ``radmine mine``: deid -> read -> text -> labels -> topics -> embed -> cluster -> img2text -> report.

Every step reads what earlier steps wrote in the output folder and writes its
own tables and models there. What each step writes (paths, kinds, columns) is
declared once in :mod:`radmine.pipeline.artifacts`; :data:`STEPS` gives each
step its dependencies and the config sections in its fingerprint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._io import atomic_folder, atomic_save_figure, atomic_write_csv, atomic_write_json, atomic_write_npy
from radmine.pipeline import artifacts
from radmine.pipeline.config import CLUSTER_SPACES, load_config
from radmine.pipeline.runner import RunContext, Step, check_output_folder, output_lock, run_steps, save_table

logger = logging.getLogger(__name__)

#: what manifest.json / config.json record instead of the SOURCE and --reports paths of user data
NOT_RECORDED = "(not recorded: de-identified user data; folder names of exports can carry PHI)"
#: fewer reports than this: the topics step is skipped (with the reason in the report)
MIN_TOPIC_DOCUMENTS = 3
#: fewer linked image-sentence pairs with features than this: the img2text step is skipped
MIN_IMG2TEXT_PAIRS = 4


# -- helpers ---------------------------------------------------------------
def _corpus(ctx: RunContext):
    """The corpus as the text step left it (sentences + links), or as read."""

    def load():
        corpus = artifacts.CORPUS.read(ctx.out)
        if artifacts.SENTENCES.exists(ctx.out):
            corpus.sentences = artifacts.SENTENCES.read(ctx.out)
        if artifacts.LINKS.exists(ctx.out):
            corpus.links = artifacts.LINKS.read(ctx.out)
        return corpus

    return ctx.cached("corpus", load)


def _embeddings(ctx: RunContext) -> tuple[np.ndarray, pd.DataFrame]:
    def load():
        return artifacts.EMBEDDINGS.read(ctx.out), artifacts.IMAGE_IDS.read(ctx.out)

    return ctx.cached("embeddings", load)


# -- steps -----------------------------------------------------------------
def _source_corpus(ctx: RunContext):
    """The corpus as ``SOURCE`` holds it (``[read]`` settings, ``max_reports`` applied), in memory only."""

    def load():
        from radmine.readers import read_source
        from radmine.readers.limits import limits_from_config, set_limits

        cfg = ctx.config["read"]
        set_limits(**limits_from_config(cfg))
        if ctx.source is None:
            from radmine.datasets import load_embedded

            corpus = load_embedded()
        else:
            corpus = read_source(ctx.source, reports=cfg["reports_file"] or None, columns=cfg["columns"],
                                 encoding=cfg["encoding"], dicom_table=cfg["dicom_table"] or None, progress=ctx.progress)
        if cfg["max_reports"] and cfg["max_reports"] < corpus.n_reports:
            corpus = corpus.subset(corpus.reports["report_id"].iloc[: cfg["max_reports"]])
        return corpus

    return ctx.cached("source corpus", load)


def step_deid(ctx: RunContext) -> dict[str, Any]:
    """Read SOURCE and write its de-identified copy to ``deid/`` (user data; see :mod:`radmine.deid`).

    The un-scrubbed corpus stays in memory: ``deid/corpus/`` (scrubbed reports
    and tables), ``deid/images/`` (de-identified image files) and
    ``deid/phi_spans.parquet`` (offsets and labels, no text) are all this step
    writes. The public corpora are skipped (already de-identified): the read
    step then reads SOURCE itself.
    """
    from radmine.deid.corpus import SPANS_TABLE, deid_decision, deidentify_corpus

    cfg = ctx.config["deid"]
    corpus = _source_corpus(ctx)
    wanted, reason = deid_decision(cfg["enabled"], ctx.source, corpus)
    if not wanted:
        return {"skipped": reason}
    # deidentify_corpus writes the image files to <out>/images/, the DEID_IMAGES artifact
    clean = deidentify_corpus(corpus, out=artifacts.DEID_IMAGES.at(ctx.out).parent, method=cfg["method"],
                              key=cfg["key"] or None, burned_in=cfg["burned_in"], dates=cfg["dates"])
    ctx.forget("source corpus")  # nothing un-scrubbed is kept around for the next steps
    clean.save(artifacts.DEID_CORPUS.at(ctx.out))
    save_table(ctx, clean.tables[SPANS_TABLE], artifacts.PHI_SPANS)
    n_q = int((clean.quarantine["source"] == "deid").sum()) if len(clean.quarantine) and "source" in clean.quarantine else 0
    return {"method": cfg["method"], "reports": clean.n_reports, "images": clean.n_images,
            "phi_spans": len(clean.tables[SPANS_TABLE]), "images_quarantined": n_q}


def step_read(ctx: RunContext) -> dict[str, Any]:
    deid = artifacts.DEID_CORPUS.exists(ctx.out)  # the deid step ran: read its scrubbed copy, never SOURCE
    corpus = artifacts.DEID_CORPUS.read(ctx.out) if deid else _source_corpus(ctx)
    ctx.forget("source corpus")
    # Resolve image paths now: later steps read the saved corpus from DIR.
    if len(corpus.images) and "path" in corpus.images:
        images = corpus.images.copy()
        images["path"] = corpus.image_paths()
        corpus.images = images
        corpus.root = None
    ctx.add_quarantine("read", corpus.quarantine)
    corpus.save(artifacts.CORPUS.at(ctx.out))
    ctx.forget("corpus")
    return {"reports": corpus.n_reports, "images": corpus.n_images, "patients": int(corpus.reports["patient_id"].nunique()),
            "deid": ctx.config["deid"]["method"] if deid else "off"}


def step_text(ctx: RunContext) -> dict[str, Any]:
    from radmine.linking import link_key_images
    from radmine.text.sentences import sentence_table

    cfg = ctx.config["text"]
    corpus = _corpus(ctx)
    if ctx.client is not None:  # same tables, computed partition by partition on the Dask cluster
        from radmine import distributed as rdask

        ddf = rdask.from_pandas(corpus.reports)
        s_dd = rdask.sentences(ddf, engine=cfg["engine"])
        l_dd = rdask.links(ddf, corpus.images, context=cfg["context"], name=corpus.name, sentences=s_dd)
        sentences, links = rdask.compute(s_dd, l_dd, client=ctx.client)
        sentences, links = sentences.reset_index(drop=True), rdask.order_links(links, corpus.images)
        corpus.sentences = sentences
    else:
        sentences = sentence_table(corpus.reports, engine=cfg["engine"], progress=ctx.progress)
        corpus.sentences = sentences
        links = link_key_images(corpus, context=cfg["context"])
    corpus.links = links
    save_table(ctx, sentences, artifacts.SENTENCES)
    save_table(ctx, links, artifacts.LINKS)
    resolved = int(links["resolved"].fillna(False).astype(bool).sum()) if "resolved" in links else 0
    unresolved = links[~links["resolved"].fillna(False).astype(bool)] if "resolved" in links else links.iloc[:0]
    ctx.add_quarantine(
        "text",
        pd.DataFrame(
            {
                "source": "link",
                "item": unresolved["report_id"].astype(str) + " series " + unresolved["series"].astype(str)
                + " image " + unresolved["instance"].astype(str),
                "reason": unresolved.get("reason", pd.Series("unresolved", index=unresolved.index)).astype(str),
            }
        ),
    )
    methods = links["method"].value_counts().to_dict() if "method" in links else {}
    return {"sentences": len(sentences), "links": len(links), "resolved": resolved, "methods": methods}


def _vocabulary_for(ctx: RunContext, corpus) -> str:
    from radmine.labels.vocabulary import auto_vocabulary  # the rule of WeakLabeler and `radmine label`

    v = ctx.config["labels"]["vocabulary"]
    return auto_vocabulary(corpus.reports) if v == "auto" else v


def step_labels(ctx: RunContext) -> dict[str, Any]:
    from radmine.labels.labeler import WeakLabeler

    corpus = _corpus(ctx)
    vocab = _vocabulary_for(ctx, corpus)
    labeler = WeakLabeler(vocabulary=vocab, sections=tuple(ctx.config["labels"]["sections"]))
    if ctx.client is not None:  # partition by partition on the Dask cluster (same rows and values)
        from radmine import distributed as rdask

        l_dd, m_dd = rdask.label_reports(rdask.from_pandas(corpus.reports), labeler=labeler.fit(corpus.reports), return_mentions=True)
        labels, mentions = rdask.compute(l_dd, m_dd, client=ctx.client)
        mentions = mentions.reset_index(drop=True)
    else:
        labels = labeler.fit(corpus.reports).transform(corpus.reports)
        mentions = labeler.mentions_ if hasattr(labeler, "mentions_") else pd.DataFrame()
    save_table(ctx, labels.reset_index(), artifacts.LABELS)
    save_table(ctx, mentions, artifacts.MENTIONS)
    info: dict[str, Any] = {"vocabulary": vocab, "reports": len(labels), "mentions": len(mentions)}
    if "mesh_major" in corpus.reports.columns and vocab == "chest_xray":
        from radmine.labels.evaluate import evaluate_labels, mesh_reference

        ref = mesh_reference(corpus.reports, vocabulary=vocab)
        scores = evaluate_labels(labels, ref)
        atomic_write_csv(scores, ctx.path(artifacts.MESH_EVALUATION))
        if "micro avg" in scores.index:
            info["micro_f1_vs_mesh"] = round(float(scores.loc["micro avg", "f1"]), 4)
    prevalence = (labels == 1).mean().sort_values(ascending=False)
    atomic_write_csv(prevalence.rename("prevalence").to_frame(), ctx.path(artifacts.PREVALENCE))
    return info


#: ``[topics] mark_negation`` in the config (TOML has no ``False | "drop"`` type) -> TopicModel's value.
TOPIC_NEGATION = {"drop": "drop", "mark": True, "keep": False}


def topic_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The TopicModel parameters of a ``[topics]`` config section (besides K, filters, unit, passes, backend).

    Raises
    ------
    ValueError
        An unknown ``mark_negation`` value.
    """
    neg = cfg["mark_negation"]
    if neg not in TOPIC_NEGATION:
        raise ValueError(f"topics.mark_negation must be one of {sorted(TOPIC_NEGATION)}; found {neg!r}.")
    return dict(mark_negation=TOPIC_NEGATION[neg], drop_normal=cfg["drop_normal"], phrases=cfg["phrases"],
                eta=float(cfg["eta"]), max_df=float(cfg["max_df"]))


def step_topics(ctx: RunContext) -> dict[str, Any]:
    from radmine.topics.hierarchy import HierarchicalTopicModel
    from radmine.topics.model import TopicModel
    from radmine.topics.selection import select_n_topics

    cfg = ctx.config["topics"]
    corpus = _corpus(ctx)
    n_docs = corpus.n_reports
    if n_docs < MIN_TOPIC_DOCUMENTS:
        return {"skipped": f"{n_docs} report(s); topics need at least {MIN_TOPIC_DOCUMENTS}"}
    # Small corpora: the term filters scale down with the number of documents
    # (at most one document in ten must hold a term; at most n/10 top terms dropped).
    default_drop = TopicModel().drop_top
    min_df = min(int(cfg["min_df"]), max(1, n_docs // 10))
    drop_top = min(default_drop, n_docs // 10)
    info: dict[str, Any] = {}
    if (min_df, drop_top) != (cfg["min_df"], default_drop):
        info["filters"] = f"min_df={min_df}, drop_top={drop_top} (scaled down for {n_docs} reports)"
    k = int(cfg["n_topics"])
    filters = dict(min_df=min_df, drop_top=drop_top, **topic_settings(cfg))
    sel = None
    try:
        if k <= 0:
            cands = [c for c in cfg["candidates"] if c < max(3, n_docs // 5)] or [min(cfg["candidates"])]
            sel = select_n_topics(
                corpus, n_topics=cands, random_state=ctx.random_state, measures=("perplexity", "c_npmi"),
                unit=cfg["unit"], passes=cfg["passes"], backend=cfg["backend"], **filters,
            )
            k = int(sel.sort_values("c_npmi", ascending=False)["n_topics"].iloc[0])
            info["chosen_k"] = k
        common = dict(unit=cfg["unit"], passes=cfg["passes"], backend=cfg["backend"], random_state=ctx.random_state, **filters)
        if cfg["n_subtopics"] > 0:
            model = HierarchicalTopicModel(n_topics=k, n_subtopics=cfg["n_subtopics"], **common).fit(corpus)
        else:
            model = TopicModel(n_topics=k, **common).fit(corpus)
    except ValueError as err:  # too little text left after the filters: skip with the reason
        return {**info, "skipped": f"no topic model for {n_docs} report(s): {err}"}
    if sel is not None:
        save_table(ctx, sel, artifacts.TOPIC_SELECTION)
    if cfg["n_subtopics"] > 0:
        save_table(ctx, model.get_topic_info(level=1), artifacts.TOPIC_INFO)
        save_table(ctx, model.get_topic_info(level=2), artifacts.TOPIC_INFO_LEVEL2)
        image_topics = model.topic_labels_for_images(corpus, level=2) if corpus.n_images else pd.DataFrame()
    else:
        save_table(ctx, model.get_topic_info(), artifacts.TOPIC_INFO)
        image_topics = model.topic_labels_for_images(corpus) if corpus.n_images else pd.DataFrame()
    save_table(ctx, model.get_document_info(), artifacts.DOCUMENT_INFO)
    save_table(ctx, image_topics, artifacts.IMAGE_TOPICS)
    with atomic_folder(ctx.path(artifacts.TOPIC_MODEL)) as tmp:
        model.save(tmp)
    info.update({"n_topics": k, "images_labelled": len(image_topics)})
    return info


def step_embed(ctx: RunContext) -> dict[str, Any]:
    from radmine.images.embed import ImageEmbedder
    from radmine.readers.limits import limits_from_config, set_limits

    set_limits(**limits_from_config(ctx.config["read"]))  # the image size cap, also when read was up to date
    cfg = ctx.config["embed"]
    corpus = _corpus(ctx)
    images = corpus.images
    if "path" in images:
        no_file = images[images["path"].isna()]
        ctx.add_quarantine("embed", pd.DataFrame({"source": "embed", "item": no_file["image_id"].astype(str), "reason": "no image file"}))
        images = images[images["path"].notna()]
    if not len(images) or "path" not in images:
        atomic_write_npy(ctx.path(artifacts.EMBEDDINGS), np.zeros((0, 0), dtype=np.float32))
        save_table(ctx, pd.DataFrame({"image_id": pd.Series(dtype=str)}), artifacts.IMAGE_IDS)
        return {"images": 0, "skipped": "the corpus has no image files"}
    embedder = ImageEmbedder(
        backbone=cfg["backbone"],
        image_size=cfg["image_size"] or None,
        channels=cfg["channels"],
        batch_size=cfg["batch_size"] or "auto",
        num_workers=cfg["num_workers"] if cfg["num_workers"] >= 0 else "auto",
        cache_dir=str(artifacts.EMBED_CACHE.at(ctx.out)),
        progress=ctx.progress,
        random_state=ctx.random_state,
        device=ctx.config["run"]["device"],
    )
    if ctx.client is not None:  # chunks on the Dask workers, each committing its own cache shards
        from radmine import distributed as rdask

        X = rdask.embed_images(embedder, images, client=ctx.client)
    else:
        X = embedder.transform(images)
    q = getattr(embedder, "quarantine_", None)
    ctx.add_quarantine("embed", q)
    ok = ~np.isnan(X).any(axis=1)  # images that failed to decode (quarantined) are left out downstream
    atomic_write_npy(ctx.path(artifacts.EMBEDDINGS), X[ok].astype(np.float32))
    save_table(ctx, images.loc[ok, ["image_id"]].reset_index(drop=True), artifacts.IMAGE_IDS)
    # the cache keeps only the current settings' embeddings
    current = embedder.cache().folder
    for d in artifacts.EMBED_CACHE.at(ctx.out).iterdir():
        if d != current and d.is_dir():
            shutil.rmtree(d)
    return {"images": int(ok.sum()), "dim": int(X.shape[1]), "backbone": cfg["backbone"],
            "from_cache": int(getattr(embedder, "n_cached_", 0))}


def step_img2text(ctx: RunContext) -> dict[str, Any]:
    from radmine.img2text.model import ImageTextModel

    cfg = ctx.config["img2text"]
    corpus = _corpus(ctx)
    X, ids = _embeddings(ctx)
    corpus = corpus.copy()
    # images without an embedding (undecodable, quarantined by embed) are left out
    embedded = set(ids["image_id"].astype(str))
    corpus.images = corpus.images[corpus.images["image_id"].astype(str).isin(embedded)].reset_index(drop=True)
    if len(corpus.links) and "image_id" in corpus.links:
        corpus.links = corpus.links[corpus.links["image_id"].astype(str).isin(embedded)].reset_index(drop=True)
    n_pairs = int(corpus.links["resolved"].fillna(False).astype(bool).sum()) if "resolved" in corpus.links else len(corpus.links)
    if n_pairs < MIN_IMG2TEXT_PAIRS:
        atomic_write_json(ctx.path(artifacts.METRICS), {})
        atomic_write_npy(ctx.path(artifacts.JOINT_EMBEDDINGS), np.zeros((0, 0), dtype=np.float32))
        return {"skipped": f"{n_pairs} linked image-sentence pair(s) with image features; img2text needs at least {MIN_IMG2TEXT_PAIRS}"}
    splits = set(corpus.reports["split"].dropna()) if "split" in corpus.reports.columns else set()
    if "train" not in splits or not (splits & {"dev", "test"}):
        # No published split: hold out 20% of patients (never split a patient).
        parts = corpus.split(by="patient_id", sizes={"train": 0.8, "test": 0.2}, random_state=ctx.random_state)
        where = {rid: name for name, c in parts.items() for rid in c.reports["report_id"]}
        corpus.reports = corpus.reports.assign(split=corpus.reports["report_id"].map(where))
        splits = {"train", "test"}
    eval_split = "dev" if "dev" in splits else "test"
    held_out = corpus.reports.loc[corpus.reports["split"] == eval_split, "report_id"]
    if not len(held_out) or not corpus.links["report_id"].isin(held_out).any():
        atomic_write_json(ctx.path(artifacts.METRICS), {})
        atomic_write_npy(ctx.path(artifacts.JOINT_EMBEDDINGS), np.zeros((0, 0), dtype=np.float32))
        n_patients = corpus.reports["patient_id"].nunique()
        return {"skipped": f"no held-out {eval_split!r} report with image-text pairs ({n_patients} patient(s)); "
                           "img2text needs at least 2 patients with linked images"}
    features = pd.DataFrame(X, index=pd.Index(ids["image_id"], name="image_id"))
    from radmine.images.backbones import resolve_features

    kind = resolve_features(cfg["image_features"], ctx.config["embed"]["backbone"])
    if kind != "last":
        # the model's own pinned embedder (e.g. last + middle CNN stage), cached beside the model
        from radmine.img2text.training import embed_images, make_embedder

        embedder = make_embedder(ctx.config["embed"]["backbone"], cache_dir=artifacts.IMG2TEXT_FEATURES.at(ctx.out),
                                 progress=ctx.progress, features=kind,
                                 device=ctx.config["run"]["device"], random_state=ctx.random_state)
        F = embed_images(embedder, corpus, "radmine mine: img2text")
        features = pd.DataFrame(F, index=pd.Index(corpus.images["image_id"], name="image_id"))
    model = ImageTextModel(
        text_encoder=cfg["text_encoder"],
        objective=cfg["objective"],
        image_features=cfg["image_features"],
        n_ensemble=cfg["n_ensemble"],
        lr_schedule=cfg["lr_schedule"],
        dev_fraction=float(cfg["dev_fraction"]),
        backbone=ctx.config["embed"]["backbone"],
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        ks=tuple(cfg["ks"]),
        train_split="train",
        checkpoint_dir=str(ctx.checkpoint_dir()),
        random_state=ctx.random_state,
        device=ctx.config["run"]["device"],
        progress=ctx.progress,
    )
    model.fit(corpus, image_features=features)
    metrics = model.score(corpus, split=eval_split, image_features=features)
    model.checkpoint_dir = None  # the saved model does not point into this folder's resume state
    with atomic_folder(ctx.path(artifacts.IMG2TEXT_MODEL)) as tmp:
        model.save(tmp)
    metrics = {k: (float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v) for k, v in metrics.items()}
    metrics["eval_split"] = eval_split
    atomic_write_json(ctx.path(artifacts.METRICS), metrics)
    save_table(ctx, model.history_, artifacts.IMG2TEXT_HISTORY)
    # every embedded image in the joint space, in the rows of embed/image_ids: what cluster groups
    joint = model.encode_image_features(features.loc[ids["image_id"].astype(str)].to_numpy(np.float32))
    atomic_write_npy(ctx.path(artifacts.JOINT_EMBEDDINGS), joint.astype(np.float32))
    # A gallery of held-out images with the words and sentences the model gives them.
    held = corpus.reports.loc[corpus.reports["split"] == eval_split, "report_id"]
    shown = corpus.images[corpus.images["report_id"].isin(held) & corpus.images["image_id"].isin(features.index)]
    shown = shown.head(ctx.config["report"]["n_examples"])
    rows = []
    if len(shown):
        desc = model.describe(None, k=5, n_sentences=1, image_features=features.loc[shown["image_id"]].to_numpy(np.float32))
        for i, img in enumerate(shown.itertuples()):
            d = desc[desc["image"] == i]
            rows.append({
                "image_id": img.image_id,
                "path": _relative(img.path, ctx.out),
                "words": ", ".join(d.loc[d["kind"] == "word", "text"]),
                "nearest sentence": " | ".join(d.loc[d["kind"] == "sentence", "text"]),
            })
    save_table(ctx, pd.DataFrame(rows, columns=list(artifacts.DESCRIBE.columns)), artifacts.DESCRIBE)
    key = next((k for k in metrics if k.endswith("R@10")), None)
    return {"eval_split": eval_split, "images": int(metrics.get("n_images", 0)), **({key: round(metrics[key], 3)} if key else {})}


def step_cluster(ctx: RunContext) -> dict[str, Any]:
    from radmine.cluster import JointClusterer

    cfg = ctx.config["cluster"]
    corpus = _corpus(ctx)
    X, ids = _embeddings(ctx)
    X, space = cluster_features(ctx, cfg["space"], X, len(ids))
    if len(ids) < 4:
        save_table(ctx, pd.DataFrame({"image_id": pd.Series(dtype=str), "cluster": pd.Series(dtype=str)}), artifacts.ASSIGNMENTS)
        return {"images": len(ids), "skipped": f"{len(ids)} embedded image(s); clustering needs at least 4"}
    if space == "report" and cfg["finetune"] and cfg["finetune_mode"] == "backbone":
        raise ValueError("cluster.finetune_mode = 'backbone' fine-tunes the CNN, whose features are not the joint "
                         "image-text space the clusters are made in: set cluster.space = 'image' for it, or use "
                         "finetune_mode = 'adapter'.")
    k = int(cfg["n_clusters"]) or max(2, int(round(math.sqrt(len(ids) / 2))))
    images = corpus.images.set_index("image_id").loc[ids["image_id"]].reset_index()
    clusterer = JointClusterer(
        n_clusters=k,
        backbone=ctx.config["embed"]["backbone"],
        image_size=ctx.config["embed"]["image_size"] or None,
        n_neighbors=cluster_neighbors(cfg["n_neighbors"], space),
        n_rounds=cfg["n_rounds"],
        finetune=cfg["finetune"],
        finetune_mode=cfg["finetune_mode"],
        finetune_epochs=cfg["finetune_epochs"],
        hierarchical=cfg["hierarchical"],
        checkpoint_dir=str(ctx.checkpoint_dir()),
        random_state=ctx.random_state,
        device=ctx.config["run"]["device"],
        progress=ctx.progress,
    )
    clusterer.fit(images, image_features=X)
    with atomic_folder(ctx.path(artifacts.CLUSTER_MODEL)) as tmp:
        clusterer.save(tmp)
    assign = pd.DataFrame({"image_id": clusterer.image_ids_, "cluster": clusterer.labels_})
    save_table(ctx, assign, artifacts.ASSIGNMENTS)
    info_df = clusterer.get_cluster_info(corpus)
    save_table(ctx, _jsonable(info_df), artifacts.CLUSTER_INFO)
    save_table(ctx, clusterer.history_, artifacts.CLUSTER_HISTORY)
    from radmine.plotting import clusters as cplot

    fig = cplot.history(clusterer)
    atomic_save_figure(fig, ctx.path(artifacts.CLUSTER_HISTORY_PLOT), dpi=90, bbox_inches="tight")
    shown = info_df.sort_values("size", ascending=False)["cluster"].head(ctx.config["report"]["n_examples"])
    artifacts.MONTAGES.at(ctx.out).mkdir(parents=True, exist_ok=True)
    for c in shown:
        fig = cplot.montage(clusterer, corpus, c, n=9)
        atomic_save_figure(fig, artifacts.MONTAGES.member(ctx.out, id=c), dpi=80, bbox_inches="tight")
    return {"k": k, "n_clusters": int(clusterer.n_clusters_), "rounds": len(clusterer.history_), "space": space}


def cluster_neighbors(n_neighbors: int, space: str) -> int | None:
    """``JointClusterer(n_neighbors=...)`` for ``[cluster] n_neighbors`` in ``space``.

    ``-1`` (auto) is what measured best on MedPix train folds in each space
    (docs/clusters.md): k-means on the features themselves (``None``) in the
    joint image-text space, the estimator's default neighbour graph on CNN
    features. ``0`` is no graph; a positive value is used as given.
    """
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or n_neighbors < -1:
        raise ValueError(f"cluster.n_neighbors must be an integer >= -1 (-1 = auto, 0 = no graph); found {n_neighbors!r}.")
    if n_neighbors == -1:
        if space == "report":
            return None
        import inspect

        from radmine.cluster import JointClusterer

        return inspect.signature(JointClusterer).parameters["n_neighbors"].default
    return n_neighbors or None


def cluster_features(ctx: RunContext, space: str, X: np.ndarray, n_images: int) -> tuple[np.ndarray, str]:
    """The features ``cluster`` groups: the img2text joint space (``"report"``) or the CNN's (``"image"``).

    ``"report"`` falls back to the CNN features when the img2text step was
    skipped (too few image-sentence pairs) or did not run.
    """
    if space not in CLUSTER_SPACES:
        raise ValueError(f"cluster.space must be one of {list(CLUSTER_SPACES)}; found {space!r}.")
    if space == "report":
        Z = artifacts.JOINT_EMBEDDINGS.read(ctx.out) if artifacts.JOINT_EMBEDDINGS.exists(ctx.out) else np.zeros((0, 0))
        if Z.ndim == 2 and Z.shape[0] == n_images and Z.shape[1] > 0:
            return Z, "report"
        logger.info("cluster: no joint image-text embeddings (img2text skipped); clustering the CNN features")
    return X, "image"





def step_report(ctx: RunContext) -> dict[str, Any]:
    from radmine.pipeline.report import write_report

    path = write_report(ctx.out, step_order=[s.name for s in STEPS])
    return {"report": _relative(path, ctx.out)}


def _relative(path, out: Path) -> str | None:
    """``path`` relative to the output folder (tables in it may leave the machine; the folder may move)."""
    if path is None or (isinstance(path, float) and path != path):
        return None
    return Path(os.path.relpath(Path(str(path)).resolve(), Path(out).resolve())).as_posix()


def _jsonable(df: pd.DataFrame) -> pd.DataFrame:
    """Object cells holding lists of tuples/dicts become JSON strings (parquet-safe)."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object and df[c].map(lambda v: isinstance(v, (list, tuple, dict))).any():
            df[c] = df[c].map(lambda v: json.dumps(v, default=str) if isinstance(v, (list, tuple, dict)) else v)
    return df


#: name, function, the steps it depends on, the config sections in its fingerprint, its artifacts, description
STEPS = [
    Step("deid", step_deid, (), ("read", "deid"), artifacts.of_step("deid"), "de-identify user data ([deid]; public corpora are skipped)"),
    Step("read", step_read, ("deid",), ("read",), artifacts.of_step("read"), "load the corpus (the de-identified copy for user data)"),
    Step("text", step_text, ("read",), ("text",), artifacts.of_step("text"), "sections, sentences, key-image links"),
    Step("labels", step_labels, ("text",), ("labels",), artifacts.of_step("labels"), "weak labels"),
    Step("topics", step_topics, ("text",), ("topics",), artifacts.of_step("topics"), "LDA topics (two levels)"),
    Step("embed", step_embed, ("read",), ("embed",), artifacts.of_step("embed"), "CNN image embeddings"),
    Step("img2text", step_img2text, ("embed", "text"), ("img2text", "embed"), artifacts.of_step("img2text"),
         "image-to-text model + Recall@K", ("report.n_examples",)),
    Step("cluster", step_cluster, ("embed", "text"), ("cluster", "embed"), artifacts.of_step("cluster"),
         "image clusters (in the joint image-text space)", ("report.n_examples",),
         deps_when=(("img2text", "cluster.space", "report"),)),
    Step("report", step_report, ("read", "text", "labels", "topics", "embed", "img2text", "cluster"), ("report",),
         artifacts.of_step("report"), "HTML report"),
]


def mine(
    source: str | Path | None = None,
    out: str | Path = "radmine-out",
    *,
    config: str | Path | dict | None = None,
    steps: list[str] | None = None,
    force: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool | None = None,
    scheduler: str | None = None,
    wait: bool = False,
    echo=print,
) -> pd.DataFrame:
    """Run the main job: every pipeline on one corpus, resumable.

    Parameters
    ----------
    source : str or Path, optional
        The corpus: ``None`` = the embedded synthetic corpus; an Open-i ``.tgz``
        or folder; a MedPix folder; a DICOM folder; a saved corpus; a reports file.
    out : str or Path
        Output folder; re-using it resumes and skips up-to-date steps.
    config : str, Path or dict, optional
        A TOML/YAML file (or a nested dict) overriding the defaults
        (``radmine mine --print-config`` shows them).
    steps : list of str, optional
        Run only these steps (default: ``[run] steps`` of the config).
    force : list of str, optional
        Re-run these steps even if up to date.
    overrides : dict, optional
        ``{"section.key": value}`` settings applied last.
    progress : bool, optional
        Progress bars (default: the config's ``run.progress``).
    scheduler : str, optional
        A Dask scheduler address or ``"local"``: the report steps run on it.
    wait : bool, default=False
        When another process is running ``mine`` on ``out``: wait for it to
        finish (True) or raise :class:`~radmine.pipeline.runner.OutputLockedError`
        at once (False).

    Returns
    -------
    DataFrame
        One row per step with its status, time and summary.
    """
    if isinstance(config, dict):
        cfg = load_config(None)
        flat = {f"{s}.{k}": v for s, kv in config.items() for k, v in kv.items()}
        cfg = load_config(None, {**flat, **(overrides or {})})
    else:
        cfg = load_config(config, overrides)
    out = Path(out)
    check_output_folder(out, STEPS)
    with output_lock(out, wait=wait):  # one run per folder; leftover *.tmp files removed
        ctx = RunContext(
            out=out,
            config=cfg,
            source=None if source is None else str(source),
            progress=cfg["run"]["progress"] if progress is None else progress,
        )
        shown = {**cfg, "deid": {**cfg["deid"], "key": "<redacted>" if cfg["deid"]["key"] else ""}}  # the key never
        if source is not None and cfg["deid"]["enabled"] != "off":
            from radmine.readers import detect_kind

            try:
                kind = detect_kind(source)
            except (OSError, ValueError):
                kind = None  # the deid step reports what is wrong with SOURCE
            if kind not in ("openi", "medpix"):  # user data: the paths of an export may name a patient
                ctx.source_label = NOT_RECORDED
                if cfg["read"]["reports_file"]:
                    shown["read"] = {**cfg["read"], "reports_file": NOT_RECORDED}
        atomic_write_json(artifacts.CONFIG.at(out), shown)
        selected = steps or cfg["run"]["steps"]
        if scheduler:
            from radmine.distributed import get_client

            ctx.client = get_client(scheduler)
        try:
            return run_steps(STEPS, ctx, only=selected, force=force, echo=echo)
        finally:
            if ctx.client is not None and isinstance(scheduler, str):  # close only what this call opened
                ctx.client.close()
