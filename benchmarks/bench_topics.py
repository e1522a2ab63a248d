"""Benchmark radmine's TopicModel against tomotopy, scikit-learn and plain gensim LDA.

Part 0 (defaults, ``--defaults``): what a user gets. On the IU reports (findings + impression),
the whole set and random subsets of ``--subset`` reports (default 400; a new subset per
seed), each model reads the report *texts* and brings its own preprocessing:

- ``defaults``: ``TopicModel(K)`` (radmine's defaults: pooled Gibbs chains, ``n_chains``);
- ``defaults, one chain``: ``TopicModel(K, n_chains=1)`` (what pooling adds);
- ``Shin settings``: ``TopicModel(K, **SHIN_PARAMS)`` (gensim, bigram phrases, every clause);
- ``defaults, normal clauses kept``: ``TopicModel(K, drop_normal=False)``;
- ``normal clauses kept, max_df=1.0, min_df=5``: :data:`COHERENCE_FIRST`, the most coherent
  one-chain setting on the reference tokens at every size, with normal-template topics;
- ``gensim LdaModel(passes=10)`` and ``tomotopy LDA, 1000 sweeps``: plain peers on the
  reference tokens below, no other filter.

Every model's top-10 words are split into single words (``pleural_effusion`` -> ``pleural``,
``effusion``; ``NEG_`` prefixes removed) and scored with gensim's ``c_npmi`` on the same
reference tokens: lower-cased words of >= 3 letters of the findings + impression text minus
a short stop list (:data:`SHORT_STOP`). ``fit_s`` is the sampler alone (peers: ``train`` /
``LdaModel``; radmine: ``fit_seconds_``, every chain and the pooling), ``total_s`` radmine's whole
``fit`` from text (tokenizing, negation scopes, vocabulary). ``boiler`` is the share of normal-template topics:
topics with >= 3 of their first 5 split words in ``boilerplate_words(texts)`` (words with >= half
of their occurrences inside a clause with a normal cue or inside a negated scope,
:func:`radmine.topics.preprocess.boilerplate_words`); ``c_npmi_findings`` the mean c_npmi of the
other topics; ``boiler_docs`` the share of the trained documents whose dominant topic is one of
those normal-template topics.

Part 1 (real reports): on the shared IU reports (findings + impression) and
MedPix case findings, every library fits the *same* token lists (radmine's
preprocessing + Shin's vocabulary filters, learned on a random 80%) at the
same K:

- ``radmine[gensim]``: ``TopicModel(backend="gensim", eta=0.01)`` (gensim LdaModel,
  alpha=eta=0.01, 10 passes, 50 E-step iterations);
- ``radmine[tomotopy]``: ``TopicModel(backend="tomotopy", eta=0.01, n_chains=1)`` (one Gibbs chain,
  alpha starts at 0.1 and is re-estimated, eta=0.01, ``15e6 / n_tokens``
  sweeps clipped to 500..1000);
- ``gensim``: ``LdaModel(num_topics=K)`` defaults (1 pass);
- ``tomotopy``: ``LDAModel(k=K)`` defaults, ``train(1000)``;
- ``sklearn``: ``LatentDirichletAllocation(n_components=K)`` defaults (batch, 10 iterations).

All single-threaded; every model is fitted with seeds 0..N-1 (``--seeds``,
default 3) and the table shows means (c_npmi also its sd across seeds: one
seed's c_npmi varies by about +-0.01, as much as the differences between
tuned samplers). Scores are computed the same way for all: ``c_npmi`` and
``c_v`` (gensim ``CoherenceModel`` over the training token lists, each
model's top-10 words) and held-out per-word perplexity by document
completion on the held-out 20% (``radmine.topics.model.completion_perplexity``:
topic mix inferred from half of each document's words with each model's
topic-word matrix, the other half scored). ``native_ppl`` is each library's
own held-out estimate where it has one (gensim bound, sklearn
``perplexity``, tomotopy ``infer`` log-likelihood); not comparable across
libraries.

Part 2 (scaling): preprocessing and fit time against corpus size on
generated reports (sentences recombined from a small grammar, no real text),
up to 200,000 reports, each size in a fresh process (peak RSS per size):
radmine[tomotopy] at every size, the 1-pass gensim peer at every size,
tomotopy's 1,000-sweep peer up to ``--peer-max`` and radmine[gensim] up to
``--gensim-max``.

Part 2 fits ``TopicModel(backend="tomotopy", n_chains=1, **SHIN_PREPROCESSING)`` (one chain, Shin's preprocessing,
``drop_top=0``) so that its timings stay comparable across versions.

Run::

    python benchmarks/bench_topics.py --defaults --subset 400 800   # Part 0 only: K = 20, 3 seeds, all reports + subsets
    python benchmarks/bench_topics.py            # K = 10, 20, 40, 3 seeds; sizes up to 200,000
    python benchmarks/bench_topics.py --quick    # K = 10, 20, 1 seed; sizes up to 20,000
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
logging.getLogger("gensim").setLevel(logging.ERROR)


# ------------------------------------------------------------------ data
def real_corpora() -> dict[str, list[str]]:
    import radmine
    from radmine import _paths
    from radmine.topics.io import report_texts

    out = {}
    if _paths.openi_tgz() is not None:
        c = radmine.read_openi(_paths.openi_tgz(), progress=False)
        out["IU reports"] = report_texts(c.reports, ("findings", "impression")).tolist()
    if _paths.medpix_dir() is not None:
        m = radmine.read_medpix(_paths.medpix_dir(), progress=False)
        out["MedPix findings"] = report_texts(m.reports, ("findings",)).tolist()
    return out


GRAMMAR = {
    "normal": ["The {lung} are clear.", "Heart size is normal.", "The mediastinal contours are within normal limits.",
               "No pneumothorax or pleural effusion.", "No focal airspace consolidation.", "The osseous structures are intact."],
    "cardio": ["There is {deg} cardiomegaly.", "The cardiac silhouette is enlarged.", "Pulmonary vascular congestion is {chg}.",
               "Cardiomegaly with {deg} interstitial edema."],
    "effusion": ["{size} {side} pleural effusion.", "Blunting of the {side} costophrenic angle.", "{size} bilateral pleural effusions are {chg}."],
    "granuloma": ["Calcified granuloma in the {side} {lobe} lobe.", "Stable calcified hilar lymph nodes.", "Scattered calcified granulomas."],
    "spine": ["{deg} degenerative changes of the thoracic spine.", "Osteophytes along the thoracic vertebral bodies.",
              "Thoracic scoliosis convex to the {side}."],
    "devices": ["{side} chest wall pacemaker with leads in the right atrium and ventricle.", "The {device} tip projects over the cavoatrial junction.",
                "Sternotomy wires and mediastinal clips."],
    "airspace": ["{deg} airspace opacity in the {side} {lobe} lobe.", "Findings may represent pneumonia.", "Patchy consolidation in the {side} base."],
    "atelectasis": ["{deg} bibasilar atelectasis.", "Linear subsegmental atelectasis in the {side} base.", "Low lung volumes with bronchovascular crowding."],
    "copd": ["The lungs are hyperexpanded with flattened diaphragms.", "Emphysematous changes in the upper lobes.", "Chronic interstitial markings."],
    "fracture": ["Healed {side} rib fractures.", "Old fracture deformity of the {side} clavicle.", "Compression deformity of a thoracic vertebral body."],
}
SLOTS = {"lung": ["lungs"], "deg": ["Mild", "Moderate", "Severe", "Minimal"], "chg": ["stable", "increased", "decreased", "unchanged"],
         "size": ["Small", "Moderate", "Large", "Trace"], "side": ["right", "left"], "lobe": ["upper", "middle", "lower"],
         "device": ["PICC", "central venous catheter", "dialysis catheter"]}


def generated_reports(n: int, seed: int = 0) -> list[str]:
    """Reports recombined from grammar sentences: 1-2 finding themes plus normal sentences."""
    rng = np.random.default_rng(seed)
    themes = [t for t in GRAMMAR if t != "normal"]
    out = []
    for _ in range(n):
        picked = list(rng.choice(themes, size=rng.integers(1, 3), replace=False))
        sents = []
        for th in picked + ["normal"] * int(rng.integers(2, 4)):
            tpl = GRAMMAR[th][rng.integers(len(GRAMMAR[th]))]
            sents.append(tpl.format(**{k: v[rng.integers(len(v))] for k, v in SLOTS.items()}))
        rng.shuffle(sents)
        out.append(" ".join(sents))
    return out


# ------------------------------------------------------------------ part 0: defaults
#: The reference tokenizer's stop list: function words only, so every content word of a report counts.
SHORT_STOP = frozenset("""
the and are there with for this that was were has have been not from which these those into onto than then
they them its their also may can could would should will but nor xxxx
""".split())
#: Shin's preprocessing and term smoothing, for the rows that must stay comparable across versions.
SHIN_PREPROCESSING = {"eta": 0.01, "phrases": True, "mark_negation": False, "drop_normal": False, "drop_top": 0,
                      "max_df": 1.0}


def reference_tokens(texts: list[str]) -> list[list[str]]:
    """Lower-cased words of >= 3 letters, minus :data:`SHORT_STOP`: the tokens every model is scored on."""
    import re

    return [[w for w in re.findall(r"[a-z]+", t.lower()) if len(w) >= 3 and w not in SHORT_STOP] for t in texts]


def single_words(top: list[str]) -> list[str]:
    """Top words split into single words, in order, without repeats (``NEG_`` prefixes removed)."""
    out: list[str] = []
    for w in top:
        for part in (w[4:] if w.startswith("NEG_") else w).split("_"):
            if part and part not in out:
                out.append(part)
    return out


#: The one-chain setting that maximised c_npmi on the reference tokens at every corpus size, at the
#: price of normal-template topics (docs/topics.md, Defaults).
COHERENCE_FIRST = {"drop_normal": False, "max_df": 1.0, "min_df": 5}


def topic_coherence_per_topic(topics: list[list[str]], ref: list[list[str]], d) -> np.ndarray:
    """gensim ``c_npmi`` of each topic (words outside ``d`` skipped), one process: deterministic."""
    from gensim.models import CoherenceModel

    topics = [[w for w in t if w in d.token2id] for t in topics]
    ok = [i for i, t in enumerate(topics) if len(t) >= 2]
    out = np.full(len(topics), np.nan)
    if ok:
        cm = CoherenceModel(topics=[topics[i] for i in ok], texts=ref, dictionary=d, coherence="c_npmi",
                            topn=max(len(topics[i]) for i in ok), processes=1)
        out[ok] = cm.get_coherence_per_topic()
    return out


def defaults_rows(texts: list[str], k: int, seed: int) -> list[dict]:
    """One row per model: c_npmi of its split top-10 words on the reference tokens, the share of
    normal-template topics (``boiler``: >= 3 of a topic's first 5 split words are
    :func:`radmine.topics.preprocess.boilerplate_words` of these texts), the share of documents
    whose dominant topic is such a topic (``boiler_docs``), the mean c_npmi of the other topics
    (``c_npmi_findings``), fit seconds."""
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    import tomotopy as tp

    from radmine.topics.model import SHIN_PARAMS, TopicModel
    from radmine.topics.preprocess import boilerplate_share, boilerplate_words

    ref = reference_tokens(texts)
    d = Dictionary(ref)
    boiler = boilerplate_words(texts)
    rows = []

    def add(name, tops, dominant, fit_s, total_s=np.nan):
        split = [single_words(t) for t in tops]
        per_topic = topic_coherence_per_topic(split, ref, d)
        is_boiler = np.array([boilerplate_share([t], boiler) == 1.0 for t in split])
        rows.append({"model": name, "c_npmi": float(np.nanmean(per_topic)), "boiler": float(is_boiler.mean()),
                     "boiler_docs": float(is_boiler[np.asarray(dominant, dtype=int)].mean()),
                     "c_npmi_findings": float(np.nanmean(per_topic[~is_boiler])) if (~is_boiler).any() else np.nan,
                     "fit_s": fit_s, "total_s": total_s})

    for name, params in (("defaults", {}), ("defaults, one chain", {"n_chains": 1}), ("Shin settings", SHIN_PARAMS),
                         ("defaults, normal clauses kept", {"drop_normal": False}),
                         ("normal clauses kept, max_df=1.0, min_df=5", COHERENCE_FIRST)):
        t0 = time.perf_counter()
        tm = TopicModel(k, random_state=seed, **params).fit(texts)
        total = time.perf_counter() - t0
        info = tm.get_document_info()
        add(name, [tm.get_topic(t)["word"].tolist() for t in range(tm.n_topics_)],
            info.loc[info["dominant_topic"] >= 0, "dominant_topic"], tm.fit_seconds_, total)
    bows = [d.doc2bow(t) for t in ref]
    t0 = time.perf_counter()
    lda = LdaModel(bows, id2word=d, num_topics=k, passes=10, random_state=seed)
    fit_s = time.perf_counter() - t0
    dominant = [max(lda.get_document_topics(b, minimum_probability=0.0), key=lambda x: x[1])[0] for b in bows if b]
    add("gensim LdaModel(passes=10)", [[w for w, _ in lda.show_topic(j, 10)] for j in range(k)], dominant, fit_s)
    mdl = tp.LDAModel(k=k, seed=seed)
    for t in ref:
        if t:
            mdl.add_doc(t)
    t0 = time.perf_counter()
    mdl.train(1000, workers=1)
    fit_s = time.perf_counter() - t0
    add("tomotopy LDA, 1000 sweeps", [[w for w, _ in mdl.get_topic_words(j, top_n=10)] for j in range(k)],
        [int(np.argmax(doc.get_topic_dist())) for doc in mdl.docs], fit_s)
    return rows


def defaults_table(texts: list[str], k: int, seeds, subsets) -> pd.DataFrame:
    """Part 0: the whole set (model seeds) and random subsets of each size in ``subsets`` reports
    (a new subset per seed)."""
    out = []
    for size in ("all", *subsets):
        for s in seeds:
            if size == "all":
                sub = texts
            else:
                rng = np.random.default_rng(100 + s)
                sub = [texts[i] for i in rng.choice(len(texts), size, replace=False)]
            out += [dict(r, reports=len(sub), seed=s) for r in defaults_rows(sub, k, s)]
        df = pd.DataFrame([r for r in out if r["reports"] == (len(texts) if size == "all" else size)])
        agg = df.groupby("model", sort=False).agg(c_npmi=("c_npmi", "mean"), c_npmi_sd=("c_npmi", "std"),
                                                 boiler=("boiler", "mean"), boiler_docs=("boiler_docs", "mean"),
                                                 c_npmi_findings=("c_npmi_findings", "mean"),
                                                 fit_s=("fit_s", "mean"), total_s=("total_s", "mean")).reset_index()
        print(f"\n{df['reports'].iloc[0]} reports, K = {k}, seeds {list(seeds)} (c_npmi of the split top-10 words on the "
              "reference tokens)")
        print(agg.to_string(index=False, float_format=lambda x: f"{x:.3f}"), flush=True)
        per_seed = df.pivot_table(index="model", columns="seed", values="c_npmi", sort=False)
        print(per_seed.to_string(float_format=lambda x: f"{x:+.3f}"), flush=True)
    return pd.DataFrame(out)


# ------------------------------------------------------------------ models
def prepare(texts: list[str], seed: int = 0):
    from radmine.topics.preprocess import Preprocessor, Vocabulary

    rng = np.random.default_rng(seed)
    test = rng.random(len(texts)) < 0.2
    train_texts = [t for t, m in zip(texts, test) if not m]
    test_texts = [t for t, m in zip(texts, test) if m]
    pre = Preprocessor()
    tokens = pre.fit_transform(train_texts)
    vocab = Vocabulary().fit(tokens)
    train = [d for d in vocab.filter_docs(tokens) if len(d) >= 5]
    held = [d for d in vocab.filter_docs(pre.transform(test_texts)) if len(d) >= 2]
    return pre, vocab, train, held


def fit_all(k: int, pre, vocab, train, names, seed: int = 0):
    """Fit each model; return name -> (seconds, topic_word (k, V), alpha, native perplexity fn)."""
    import pandas as pd

    from radmine.topics.model import TopicModel

    d = vocab.dictionary_
    bows = [d.doc2bow(t) for t in train]
    out = {}
    docs = pd.DataFrame({"doc_id": range(len(train)), "report_id": range(len(train)), "sentence_id": -1})
    for name in names:
        if name.startswith("radmine"):
            backend = name[len("radmine[") : -1]
            tm = TopicModel(k, random_state=seed, backend=backend, eta=0.01, n_chains=1)
            t0 = time.perf_counter()
            tm.fit_tokens(train, docs, pre, vocabulary=vocab)
            secs = time.perf_counter() - t0
            lda = tm.to_gensim() if backend == "gensim" else None
            native = (lambda hb, lda=lda: 2 ** (-lda.log_perplexity(hb))) if lda is not None else None
            out[name] = (secs, tm.topic_word_, tm.alpha_.astype(float), native)
        elif name == "gensim":
            from gensim.models import LdaModel

            t0 = time.perf_counter()
            lda = LdaModel(bows, id2word=d, num_topics=k, random_state=seed)
            secs = time.perf_counter() - t0
            out[name] = (secs, lda.get_topics(), np.asarray(lda.alpha, float), lambda hb, lda=lda: 2 ** (-lda.log_perplexity(hb)))
        elif name == "tomotopy":
            import tomotopy as tp

            mdl = tp.LDAModel(k=k, seed=seed)
            for t in train:
                mdl.add_doc(t)
            t0 = time.perf_counter()
            mdl.train(1000, workers=1)
            secs = time.perf_counter() - t0
            cols = np.array([d.token2id[w] for w in mdl.used_vocabs])
            phi = np.full((k, len(d)), 1e-12)
            for j in range(k):
                phi[j, cols] = mdl.get_topic_word_dist(j)

            def native(hb, mdl=mdl):
                docs = [mdl.make_doc([d[i] for i, c in b for _ in range(c)]) for b in hb]
                _, ll = mdl.infer(docs, workers=1)
                return float(np.exp(-np.sum(ll) / sum(c for b in hb for _, c in b)))

            out[name] = (secs, phi / phi.sum(1, keepdims=True), np.asarray(mdl.alpha, float), native)
        elif name == "sklearn":
            from gensim.matutils import corpus2csc
            from sklearn.decomposition import LatentDirichletAllocation

            X = corpus2csc(bows, num_terms=len(d)).T.tocsr()
            t0 = time.perf_counter()
            sk = LatentDirichletAllocation(n_components=k, random_state=seed).fit(X)
            secs = time.perf_counter() - t0
            phi = sk.components_ / sk.components_.sum(1, keepdims=True)

            def native(hb, sk=sk):
                return float(sk.perplexity(corpus2csc(hb, num_terms=len(d)).T.tocsr()))

            out[name] = (secs, phi, np.full(k, 1.0 / k), native)
    return out


def score(models, vocab, train, held):
    from radmine.topics.model import _bow_matrix, completion_perplexity, topic_coherence

    d = vocab.dictionary_
    words = vocab.words
    hb = [d.doc2bow(t) for t in held]
    Xh = _bow_matrix(hb, len(d))
    rows = []
    for name, (secs, phi, alpha, native) in models.items():
        tops = [[words[i] for i in np.argsort(-p)[:10]] for p in phi]
        rows.append({
            "model": name, "fit_s": secs,
            "c_npmi": topic_coherence(tops, train, d, "c_npmi"),
            "c_v": topic_coherence(tops, train, d, "c_v"),
            "heldout_ppl": completion_perplexity(phi, Xh, alpha),
            "native_ppl": native(hb) if native is not None else np.nan,
        })
    df = pd.DataFrame(rows)
    df["fit_vs_fastest"] = df["fit_s"] / df["fit_s"].min()
    return df


def scale_one(n: int, k: int, models: list[str]) -> dict:
    """One scaling row, run in a fresh process so that peak RSS belongs to this size alone."""
    import resource

    from radmine.topics.model import TopicModel

    texts = generated_reports(n, seed=n)
    row = {"reports": n}
    # drop_top=0: the grammar's vocabulary is small, Shin's top-10 drop would empty most reports
    tm = TopicModel(k, random_state=0, backend="tomotopy", n_chains=1, **SHIN_PREPROCESSING)
    tm.make_preprocessor().fit_transform(["Warm-up: load spaCy and gensim before timing."])
    t0 = time.perf_counter()
    docs = tm.make_documents(texts)
    pre = tm.make_preprocessor()
    tokens = pre.fit_transform(docs["text"])
    row["preprocess_s"] = time.perf_counter() - t0
    meta = docs.drop(columns="text")
    del texts, docs
    tm.fit_tokens(tokens, meta, pre)
    row["tokens"] = int(tm.documents_["n_terms"].sum())
    vocab = tm.vocabulary_
    train = tm.train_tokens_
    for name in models:
        if name == "radmine[tomotopy]":
            row[name] = tm.fit_seconds_
        elif name == "radmine[gensim]":
            tg = TopicModel(k, random_state=0, backend="gensim", **SHIN_PREPROCESSING).fit_tokens(
                tokens, meta, pre, vocabulary=vocab)
            row[name] = tg.fit_seconds_
        elif name == "gensim":
            from gensim.models import LdaModel

            bows = [vocab.doc2bow(t) for t in train]
            t0 = time.perf_counter()
            LdaModel(bows, id2word=vocab.dictionary_, num_topics=k, random_state=0)
            row[name] = time.perf_counter() - t0
        elif name == "tomotopy":
            import tomotopy as tp

            mdl = tp.LDAModel(k=k, seed=0)
            for t in train:
                mdl.add_doc(t)
            t0 = time.perf_counter()
            mdl.train(1000, workers=1)
            row[name] = time.perf_counter() - t0
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def scaling(sizes, k: int, limits: dict[str, int]):
    """Each size in its own process (``--scale-one``); models above their size limit are skipped."""
    import json
    import subprocess
    import sys

    rows = []
    for n in sizes:
        models = [m for m, lim in limits.items() if n <= lim]
        out = subprocess.run([sys.executable, __file__, "--scale-one", str(n), "--k", str(k), "--models", *models],
                             check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        cols = ["reports", "tokens", "preprocess_s", *limits, "peak_rss_mb"]
        if len(rows) == 1:
            print(" ".join(f"{c:>18}" for c in cols), flush=True)
        cells = [f"{row[c]:>18,}" if c in ("reports", "tokens") else
                 (f"{row[c]:>18.1f}" if c in row else f"{'-':>18}") for c in cols]
        print(" ".join(cells), flush=True)
    return pd.DataFrame(rows)


def real_table(texts, ks, names, seeds):
    """Mean (and c_npmi sd) over seeds of every model at every K."""
    pre, vocab, train, held = prepare(texts)
    print(f"{len(train)} training documents, {len(held)} held-out, {len(vocab)} terms, "
          f"{sum(map(len, train)):,} training tokens", flush=True)
    out = []
    for k in ks:
        runs = [score(fit_all(k, pre, vocab, train, names, seed=s), vocab, train, held).assign(seed=s) for s in seeds]
        df = pd.concat(runs)
        agg = df.groupby("model", sort=False).agg(
            fit_s=("fit_s", "mean"), c_npmi=("c_npmi", "mean"), c_npmi_sd=("c_npmi", "std"), c_v=("c_v", "mean"),
            heldout_ppl=("heldout_ppl", "mean"), native_ppl=("native_ppl", "mean")).reset_index()
        peers = agg[~agg.model.str.startswith("radmine")]
        agg["fit_vs_fastest_peer"] = agg["fit_s"] / peers["fit_s"].min()
        agg.insert(0, "K", k)
        print(f"\nK = {k} (mean over seeds {list(seeds)})")
        print(agg.drop(columns="K").to_string(index=False, float_format=lambda x: f"{x:.3f}"), flush=True)
        for r in agg[agg.model.str.startswith("radmine")].itertuples():
            print(f"  {r.model}: c_npmi {r.c_npmi:.3f} vs best peer {peers.c_npmi.max():.3f} ({peers.c_npmi.idxmax() and peers.loc[peers.c_npmi.idxmax(), 'model']}); "
                  f"c_v {r.c_v:.3f} vs {peers.c_v.max():.3f}; fit {r.fit_vs_fastest_peer:.2f}x the fastest peer "
                  f"({peers.loc[peers.fit_s.idxmin(), 'model']})")
        out.append(agg)
    return pd.concat(out, ignore_index=True)


def main(argv=None):
    import json

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="K = 10, 20, one seed, sizes up to 20,000")
    ap.add_argument("--k", type=int, nargs="*", default=None)
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 per model and K (default 3; --quick 1)")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--scale-k", type=int, default=20, help="K of the scaling part")
    ap.add_argument("--gensim-max", type=int, default=20000, help="largest generated corpus for radmine[gensim]")
    ap.add_argument("--peer-max", type=int, default=None, help="largest generated corpus for the gensim/tomotopy peers")
    ap.add_argument("--defaults", action="store_true", help="only Part 0: radmine's defaults beside the plain peers")
    ap.add_argument("--subset", type=int, nargs="+", default=[400], help="Part 0: reports per random subset (one or more sizes)")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--scale-one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--models", nargs="*", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.scale_one is not None:
        print(json.dumps(scale_one(args.scale_one, args.k[0], args.models or [])))
        return
    ks = args.k or ([10, 20] if args.quick else [10, 20, 40])
    seeds = range(args.seeds or (1 if args.quick else 3))
    sizes = args.sizes or ([1000, 5000, 20000] if args.quick else [1000, 5000, 20000, 50000, 100000, 200000])
    peer_max = args.peer_max or (20000 if args.quick else 50000)
    names = ["radmine[gensim]", "radmine[tomotopy]", "gensim", "tomotopy", "sklearn"]
    pd.set_option("display.width", 200)
    if args.defaults:
        texts = real_corpora().get("IU reports")
        if texts is None:
            print("Open-i reports not found (../shared/corpora/openi-iu or $RADMINE_CORPORA); nothing to do.")
            return
        print("== Part 0: defaults vs plain peers, IU reports (findings + impression) ==", flush=True)
        defaults_table(texts, (args.k or [20])[0], range(args.seeds or 3), args.subset)
        return
    if not args.skip_real:
        for cname, texts in real_corpora().items():
            print(f"\n== {cname} ==", flush=True)
            real_table(texts, ks, names, seeds)
    if not args.skip_scaling:
        limits = {"radmine[tomotopy]": max(sizes), "radmine[gensim]": args.gensim_max, "gensim": max(sizes), "tomotopy": peer_max}
        print(f"\n== fit time (s) vs corpus size (generated reports, K={args.scale_k}, one process per size; "
              f"'-' = not run at that size) ==", flush=True)
        scaling(sizes, args.scale_k, limits)


if __name__ == "__main__":
    main()
