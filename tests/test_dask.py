"""radmine.dask: the report steps, sharded I/O, streaming topics and embeddings on a real LocalCluster.

One ``distributed.LocalCluster`` (2 worker processes x 1 thread) is started
for the module; every Dask result is compared with the pandas path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import radmine
import radmine.dask as rd

pytest.importorskip("distributed")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit="1.5GiB")
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def embedded(embedded_corpus):
    return embedded_corpus.copy()


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    order = np.lexsort([df[k].astype(str).to_numpy() for k in reversed(keys)])
    return df.iloc[order].reset_index(drop=True)


def _assert_same(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> None:
    assert len(a) == len(b)
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(_sorted(a, keys), _sorted(b, keys), check_dtype=False)


# --------------------------------------------------------------------------- errors (no cluster)
def test_get_client_rejects_bad_input():
    with pytest.raises(TypeError, match="address_or_local"):
        rd.get_client(3)
    with pytest.raises(ValueError, match="n_workers"):
        rd.get_client("local", n_workers=0)


def test_a_local_client_closes_its_cluster():
    """get_client("local") owns its LocalCluster: closing the client closes both (no patched close)."""
    client = rd.get_client("local", n_workers=1, processes=False)
    cluster = client.cluster
    assert str(cluster.status) == "Status.running"
    client.close()
    assert str(cluster.status) == "Status.closed" and client.status == "closed"


def test_radmine_dask_is_radmine_distributed():
    import radmine.distributed as rdist

    assert rd.label_reports is rdist.label_reports and rd.fit_topics_streaming is rdist.fit_topics_streaming
    assert set(rd.__all__) == set(rdist.__all__)


def test_read_reports_sharded_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        rd.read_reports_sharded(tmp_path / "missing.parquet")
    with pytest.raises(FileNotFoundError, match="no report files"):
        rd.read_reports_sharded(str(tmp_path / "*.parquet"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown file kind"):
        rd.read_reports_sharded(tmp_path / "a.txt")
    (tmp_path / "r.xml").write_text("<x/>")
    pd.DataFrame({"report_id": ["1"], "text": ["FINDINGS: x"]}).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ValueError, match="both table files and XML"):
        rd.read_reports_sharded([tmp_path / "r.xml", tmp_path / "r.csv"])


def test_partition_functions_known_answers():
    reports = pd.DataFrame(
        {"report_id": ["a", "b"],
         "text": ["FINDINGS: Mass on series 3, image 45. No pleural effusion.", "IMPRESSION: Normal chest."]}
    )
    refs = rd.reference_table(reports)
    assert refs[["report_id", "series", "image"]].astype(object).values.tolist() == [["a", 3, 45]]
    negs = rd.negation_table(reports)
    assert (negs["report_id"] == "a").all() and len(negs) >= 1
    text = reports.loc[0, "text"]
    sc = negs.iloc[0]
    assert "effusion" in text[sc["start"] : sc["end"]].lower()
    with pytest.raises(TypeError, match="dask or pandas DataFrame"):
        rd.sentences(["not a frame"])


def test_topic_transform_needs_fitted_model():
    from radmine._validation import NotFittedError

    with pytest.raises(NotFittedError):
        rd.topic_transform(radmine.TopicModel(3), pd.DataFrame({"report_id": ["a"], "text": ["x"]}))


# --------------------------------------------------------------------------- embedded corpus
def test_report_steps_equal_pandas_on_embedded(client, embedded):
    from radmine.linking import link_key_images
    from radmine.text.sentences import sentence_table

    reports = embedded.reports
    ddf = rd.from_pandas(reports, partition_size=40)
    assert ddf.npartitions > 2
    s_dd = rd.sentences(ddf)
    l_dd = rd.links(ddf, embedded.images, name=embedded.name, sentences=s_dd)
    lab_dd, men_dd = rd.label_reports(ddf, vocabulary="ct_mr", return_mentions=True)
    sent, links, labels, mentions, refs, negs = rd.compute(
        s_dd, l_dd, lab_dd, men_dd, rd.references(ddf), rd.negations(ddf), client=client
    )

    exp_sent = sentence_table(reports)
    pd.testing.assert_frame_equal(sent.reset_index(drop=True), exp_sent)
    exp_links = link_key_images(embedded.copy())
    pd.testing.assert_frame_equal(rd.order_links(links, embedded.images), exp_links.reset_index(drop=True))
    exp_labels, exp_mentions = radmine.label_reports(reports, vocabulary="ct_mr", return_mentions=True)
    pd.testing.assert_frame_equal(labels, exp_labels)
    pd.testing.assert_frame_equal(mentions.reset_index(drop=True), exp_mentions)
    pd.testing.assert_frame_equal(refs.reset_index(drop=True), rd.reference_table(reports))
    pd.testing.assert_frame_equal(negs.reset_index(drop=True), rd.negation_table(reports))
    assert len(exp_links) and len(exp_mentions) and len(refs) and len(negs)


def test_embeddings_on_workers_share_the_cache(client, embedded, tmp_path):
    images = embedded.images[["image_id", "path"]].head(24).copy()
    images["path"] = embedded.image_paths().head(24).to_numpy()
    kw = dict(image_size=32, batch_size=8, shard_size=8, num_workers=0, progress=False, random_state=0)
    expected = radmine.ImageEmbedder("random_cnn", **kw).transform(images)

    emb = radmine.ImageEmbedder("random_cnn", cache_dir=str(tmp_path / "cache"), **kw)
    X = rd.embed_images(emb, images, client=client, chunk_size=8)
    np.testing.assert_allclose(X, expected, rtol=1e-4, atol=1e-5)
    assert emb.n_computed_ == 24 and emb.n_cached_ == 0
    cache = emb.cache()
    assert len(cache) == 24 and len(cache.shards()) >= 3  # 3 chunks -> at least one shard each
    assert len(set(cache.shards())) == len(cache.shards())
    # a second run reads everything back from the shards the workers wrote
    emb2 = radmine.ImageEmbedder("random_cnn", cache_dir=str(tmp_path / "cache"), **kw)
    X2 = rd.embed_images(emb2, images, client=client, chunk_size=8)
    np.testing.assert_array_equal(X2, X)
    assert emb2.n_cached_ == 24 and emb2.n_computed_ == 0


def test_mine_with_scheduler_matches_pandas_run(client, tmp_path):
    steps = ["deid", "read", "text", "labels"]
    radmine.mine(None, tmp_path / "pandas", steps=steps, progress=False, echo=lambda s: None)
    radmine.mine(None, tmp_path / "dask", steps=steps, progress=False, echo=lambda s: None, scheduler=client)
    for table in ["text/sentences", "text/links", "labels/labels", "labels/mentions"]:
        a = pd.read_parquet(tmp_path / "pandas" / f"{table}.parquet")
        b = pd.read_parquet(tmp_path / "dask" / f"{table}.parquet")
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert client.status == "running"  # mine() leaves a client it did not create open


# --------------------------------------------------------------------------- sharded I/O
def _xml(rid: str, findings: str, impression: str) -> str:
    return (
        f'<eCitation><uId id="{rid}"/><MedlineCitation><Article><Abstract>'
        f'<AbstractText Label="FINDINGS">{findings}</AbstractText>'
        f'<AbstractText Label="IMPRESSION">{impression}</AbstractText>'
        f"</Abstract></Article></MedlineCitation><articleType>XR</articleType></eCitation>"
    )


def test_sharded_round_trip(client, embedded, tmp_path):
    reports = embedded.reports[["report_id", "patient_id", "study_id", "modality", "text", "findings", "impression"]]
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, start in enumerate(range(0, len(reports), 60)):
        reports.iloc[start : start + 60].to_parquet(shards / f"reports-{i}.parquet", index=False)
    reports.iloc[:10].to_json(tmp_path / "one.jsonl", orient="records", lines=True)

    ddf = rd.read_reports_sharded(str(shards / "*.parquet"))
    assert ddf.npartitions == 3
    got = rd.compute(ddf, client=client).reset_index(drop=True)
    expected = pd.concat([radmine.read_reports(p).reports for p in sorted(shards.glob("*.parquet"))], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected)
    jl = rd.compute(rd.read_reports_sharded(tmp_path / "one.jsonl"), client=client)
    assert jl["report_id"].tolist() == reports["report_id"].head(10).astype(str).tolist()

    labels = rd.label_reports(ddf, vocabulary="ct_mr")
    out = rd.to_parquet(labels, tmp_path / "labels", client=client)
    files = sorted(out.glob("part.*.parquet"))
    assert len(files) == 3
    back = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).set_index("report_id")
    back.columns.name = "finding"
    pd.testing.assert_frame_equal(back, radmine.label_reports(expected, vocabulary="ct_mr"), check_dtype=False)

    xml_dir = tmp_path / "xml"
    xml_dir.mkdir()
    for i in range(5):
        (xml_dir / f"{i}.xml").write_text(_xml(f"R{i}", f"Heart size normal {i}.", "No acute disease."))
    (xml_dir / "bad.xml").write_text("<eCitation><uId")
    rx, q = rd.read_reports_sharded(xml_dir, files_per_partition=2, return_quarantine=True)
    assert rx.npartitions == 3
    rx, q = rd.compute(rx, q, client=client)
    assert sorted(rx["report_id"]) == [f"R{i}" for i in range(5)]
    assert rx["text"].str.startswith("FINDINGS: Heart size normal").all()
    assert q["item"].str.endswith("bad.xml").tolist() == [True] and q["reason"].str.contains("malformed").all()


# --------------------------------------------------------------------------- streaming topics
def test_streaming_topic_fit_from_shards(client, embedded, tmp_path):
    from radmine.topics.io import report_texts
    from radmine.topics.preprocess import Preprocessor, Vocabulary

    reports = embedded.reports
    for i, start in enumerate(range(0, len(reports), 50)):
        reports.iloc[start : start + 50].to_parquet(tmp_path / f"r{i}.parquet", index=False)
    model = rd.fit_topics_streaming(str(tmp_path / "r*.parquet"), 4, phrases=False, chunksize=40, iterations=30,
                                    random_state=0, client=client)
    # the dictionary merged from per-partition counts equals the in-memory one
    texts = report_texts(radmine.read_reports(tmp_path / "r0.parquet").reports, ("findings", "impression"))
    assert len(texts) == 50
    all_texts = pd.concat(
        [report_texts(radmine.read_reports(p).reports, ("findings", "impression")) for p in sorted(tmp_path.glob("r*.parquet"))]
    )
    pre = Preprocessor(phrases=False).fit(all_texts.tolist())
    vocab = Vocabulary(min_df=3, drop_top=10).fit(pre.transform(all_texts.tolist()))
    assert model.vocabulary_.words == vocab.words
    assert model.vocabulary_.dropped_top_ == vocab.dropped_top_

    info = model.get_topic_info()
    assert info["topic"].tolist() == [0, 1, 2, 3] and info["size"].sum() > 0.9 * len(reports)
    theta = model.transform(reports["text"].head(20))
    assert theta.shape == (20, 4)
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=1e-6)
    # topics are not noise: the dominant topic is concentrated (>0.5) for most documents
    assert (model.get_document_info()["probability"] > 0.5).mean() > 0.5
    # save / load round trip, and Dask transform == in-process transform
    loaded = radmine.TopicModel.load(model.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.transform(reports["text"].head(20)), theta, rtol=1e-6)
    got = rd.compute(rd.topic_transform(model, rd.from_pandas(reports, partition_size=40)), client=client)
    np.testing.assert_allclose(got.filter(like="topic_").to_numpy(), model.transform(radmine.Corpus(reports)), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="chunksize"):
        rd.fit_topics_streaming(str(tmp_path / "r*.parquet"), 4, chunksize=0)


def test_streaming_topic_fit_sentence_unit(client, embedded, tmp_path):
    from radmine.text.sentences import sentence_table
    from radmine.topics.io import clean_text

    reports = embedded.reports
    for i, start in enumerate(range(0, len(reports), 50)):
        reports.iloc[start : start + 50].to_parquet(tmp_path / f"s{i}.parquet", index=False)
    model = rd.fit_topics_streaming(str(tmp_path / "s*.parquet"), 4, unit="sentence", phrases=False, chunksize=200,
                                    iterations=30, min_doc_terms=2, random_state=0, client=client)
    assert model.unit == "sentence"
    docs = model.get_document_info()
    # one document per findings/impression sentence, ids "<report_id>:<sentence_id>"
    sents = sentence_table(reports)
    sents = sents[sents["section"].isin(["findings", "impression"])]
    assert len(docs) == len(sents)
    assert set(docs["doc_id"]) == set(sents["report_id"].astype(str) + ":" + sents["sentence_id"].astype(str))
    assert (docs["sentence_id"] >= 0).all()
    row = docs.iloc[0]
    text = sents[(sents["report_id"] == row["report_id"]) & (sents["sentence_id"] == row["sentence_id"])]["text"].iloc[0]
    assert model.transform([clean_text(text)]).argmax() == row["dominant_topic"] or row["dominant_topic"] == -1
    assert model.get_topic_info()["size"].sum() == (docs["dominant_topic"] >= 0).sum()
    with pytest.raises(ValueError, match="unit"):
        rd.fit_topics_streaming(str(tmp_path / "s*.parquet"), 4, unit="paragraph")


# --------------------------------------------------------------------------- real IU reports
@pytest.mark.real
def test_iu_reports_pandas_dask_equal(client, openi_corpus):
    from radmine.text.sentences import sentence_table

    reports = openi_corpus.reports
    ddf = rd.from_pandas(reports, partition_size=800)
    assert ddf.npartitions >= 3
    model = radmine.TopicModel(5, passes=1, iterations=20, random_state=0).fit(radmine.Corpus(reports.iloc[:600]))
    sent, labels, theta = rd.compute(
        rd.sentences(ddf), rd.label_reports(ddf, vocabulary="chest_xray"), rd.topic_transform(model, ddf), client=client
    )
    _assert_same(sent, sentence_table(reports), ["report_id", "sentence_id"])
    pd.testing.assert_frame_equal(labels, radmine.label_reports(reports, vocabulary="chest_xray"))
    assert theta["report_id"].tolist() == reports["report_id"].tolist()
    np.testing.assert_allclose(theta.filter(like="topic_").to_numpy(), model.transform(openi_corpus), rtol=1e-6, atol=1e-9)
