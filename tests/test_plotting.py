"""radmine.plotting: figures render themselves (PNG/SVG), reachable after ``import radmine``, with names."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import radmine
from radmine.plotting import Figure

BLOCKS = [
    "cardiomegaly enlarged ventricle atrium cardiac silhouette pericardial aortic valve mitral septal".split(),
    "fracture clavicle humerus vertebra scoliosis osteophyte kyphosis sternum scapula cortical".split(),
    "catheter pacemaker wire port picc drain stent tracheostomy electrode generator".split(),
]


def _reports(n_per=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for b, words in enumerate(BLOCKS):
        for i in range(n_per):
            rid = f"r{b}_{i}"
            rows.append({"report_id": rid, "patient_id": rid, "study_id": rid, "modality": "CR",
                         "text": "FINDINGS: " + " ".join(rng.choice(words, size=20)) + ".",
                         "date": f"{2010 + (i % 3)}-0{1 + b}-15"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def topic_model():
    reports = _reports()
    tm = radmine.TopicModel(3, random_state=0, min_df=2, drop_top=0, min_doc_terms=3, phrases=False)
    return tm.fit(radmine.Corpus(reports)), reports


def _is_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n"


def test_plotting_reachable_after_import_radmine():
    code = "import radmine; f = radmine.plotting.topics.barchart; print(radmine.plotting.Figure.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Figure"


def test_figure_renders_inline_and_saves(tmp_path):
    from radmine.plotting._figure import new_figure

    fig = new_figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    assert _is_png(fig._repr_png_()) and fig._repr_svg_() is None
    fig.repr_format = "svg"
    assert fig._repr_png_() is None and fig._repr_svg_().lstrip().startswith("<?xml")
    fig.savefig(tmp_path / "a.png")
    fig.savefig(tmp_path / "a.svg")
    assert _is_png((tmp_path / "a.png").read_bytes()) and b"<svg" in (tmp_path / "a.svg").read_bytes()
    # IPython's display machinery picks the image, not the text repr
    IPython = pytest.importorskip("IPython")
    fmt = IPython.core.formatters.DisplayFormatter()
    data, _ = fmt.format(new_figure(figsize=(1, 1)))
    assert "image/png" in data


def test_topic_barchart_titled_with_names(topic_model):
    tm, _ = topic_model
    fig = tm.plot_topics(n_words=5)
    assert isinstance(fig, Figure)
    names = tm.get_topic_info()["name"].tolist()
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert [t.split("\n")[0] for t in titles] == names
    assert all("documents)" in t for t in titles)
    with pytest.raises(KeyError, match="Unknown topic"):
        tm.plot_topics(topics=[7])


def test_selection_curve_marks_chosen_k():
    df = pd.DataFrame({"n_topics": [5, 10, 20], "c_npmi": [0.01, 0.06, 0.03], "perplexity": [900.0, 850.0, 870.0]})
    fig = radmine.plotting.topics.selection_curve(df, chosen=10)
    assert len(fig.axes) == 2 and _is_png(fig._repr_png_())
    with pytest.raises(ValueError, match="n_topics"):
        radmine.plotting.topics.selection_curve(df.drop(columns="n_topics"))


def test_topics_over_time(topic_model):
    tm, reports = topic_model
    table = radmine.plotting.topics.share_over_time(
        tm.get_document_info().set_index("report_id")["dominant_topic"], radmine.plotting.topics.report_dates(reports))
    assert list(table.index.year) == [2010, 2011, 2012]
    assert np.allclose(table.sum(axis=1), 1.0)
    fig = tm.plot_over_time(reports)
    assert isinstance(fig, Figure) and _is_png(fig._repr_png_())
    with pytest.raises(ValueError, match="no date column"):
        tm.plot_over_time(reports.drop(columns="date"))


def test_label_prevalence_with_wilson_interval():
    labels = pd.DataFrame({"effusion": [1, 1, 0, -1, np.nan, 0, 0, 0, 0, 0], "edema": [0] * 10})
    table = radmine.plotting.labels.prevalence_table(labels)
    row = table.set_index("finding").loc["effusion"]
    assert (row["positive"], row["uncertain"], row["negative"], row["blank"]) == (2, 1, 6, 1)
    assert row["prevalence"] == pytest.approx(0.2) and row["prevalence_with_uncertain"] == pytest.approx(0.3)
    # Wilson 95% interval of 2/10, known value
    assert (row["low"], row["high"]) == pytest.approx((0.0567, 0.5098), abs=1e-3)
    fig = radmine.plotting.labels.prevalence(labels)
    assert _is_png(fig._repr_png_())
    with pytest.raises(ValueError, match="other than 1, 0, -1"):
        radmine.plotting.labels.prevalence_table(pd.DataFrame({"a": [2, 0]}))
    with pytest.raises(TypeError, match="must be a DataFrame"):
        radmine.plotting.labels.prevalence_table([1, 0])


def test_recall_curve_equals_recall_at_k():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(30, 8)).astype("float32")
    txt = img + rng.normal(scale=1.0, size=img.shape).astype("float32")
    table = radmine.plotting.img2text.recall_table(img, txt, max_k=30)
    ref = radmine.recall_at_k(img, txt, ks=(1, 5, 30))
    assert table.set_index("k").loc[5, "image_to_text"] == ref["image_to_text_R@5"]
    assert table.set_index("k").loc[30, "text_to_image"] == 1.0
    assert (np.diff(table["image_to_text"]) >= 0).all()
    fig = radmine.plotting.img2text.recall_curve({"model": table, "chance": table.assign(
        image_to_text=table["k"] / 30, text_to_image=table["k"] / 30)})
    assert [ax.get_title() for ax in fig.axes] == ["image -> text", "text -> image"]
    with pytest.raises(ValueError, match="lacks columns"):
        radmine.plotting.img2text.recall_curve(table.drop(columns="text_to_image"))


def test_cluster_history_without_finetuning_has_no_empty_panel():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    X = np.eye(3)[y] * 10 + rng.normal(0, 0.1, (30, 3))
    jc = radmine.JointClusterer(n_clusters=3, finetune=False, n_rounds=1, pca_dim=None, merge=False,
                                min_cluster_size=1, progress=False, random_state=0).fit(None, image_features=X)
    fig = jc.plot_history()
    assert [ax.get_title() for ax in fig.axes] == ["clusters"]
    assert all(ax.has_data() for ax in fig.axes)
    assert _is_png(fig._repr_png_())


def test_cluster_montages_sizes_and_over_time(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4)
    rows = []
    for i, c in enumerate(y):
        Image.fromarray((rng.random((40, 40)) * 80 * (c + 1)).astype(np.uint8)).save(tmp_path / f"im{i}.png")
        rows.append({"image_id": f"i{i}", "report_id": f"r{i}", "path": f"im{i}.png",
                     "caption": ["heart enlarged", "rib fracture", "catheter tip"][c]})
    reports = pd.DataFrame({"report_id": [f"r{i}" for i in range(len(y))], "patient_id": "p", "study_id": "s",
                            "modality": "CR", "text": "x", "date": [f"201{i % 2}-06-01" for i in range(len(y))]})
    corpus = radmine.Corpus(reports, pd.DataFrame(rows), root=tmp_path)
    X = np.eye(3)[y] * 10 + rng.normal(0, 0.1, (len(y), 3))
    jc = radmine.JointClusterer(n_clusters=3, finetune=False, n_rounds=1, pca_dim=None, merge=False,
                                min_cluster_size=1, progress=False, random_state=0).fit(corpus, image_features=X)
    fig = jc.plot_clusters(n=3)
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert sorted(lbl.split("\n")[0].split(" ")[1] for lbl in labels) == ["(4)"] * 3
    assert any("fracture" in lbl for lbl in labels)
    assert _is_png(fig._repr_png_())
    fig = jc.plot_sizes()
    assert len(fig.axes[0].patches) == 3
    fig = jc.plot_over_time()
    assert _is_png(fig._repr_png_())


def test_interactive_versions(topic_model):
    pytest.importorskip("plotly")
    tm, _ = topic_model
    fig = radmine.plotting.interactive.topic_barchart(tm, n_words=4)
    assert [a.text for a in fig.layout.annotations] == tm.get_topic_info()["name"].tolist()
    labels = pd.DataFrame({"effusion": [1, 0, -1, 0], "edema": [0, 0, 0, 1]})
    fig = radmine.plotting.interactive.prevalence(labels)
    assert list(fig.data[1].y) == ["effusion", "edema"]  # most prevalent (counting -1) first
    e = np.eye(5, dtype="float32")
    fig = radmine.plotting.interactive.recall_curve(radmine.plotting.img2text.recall_table(e, e))
    assert len(fig.data) == 2 and list(fig.data[0].y) == [1.0] * 5


def test_hierarchical_topic_plots():
    reports = _reports(n_per=12)
    htm = radmine.HierarchicalTopicModel(3, 2, min_df=2, drop_top=0, min_doc_terms=3, phrases=False,
                                         random_state=0).fit(radmine.Corpus(reports))
    fig = htm.plot_topics(level=2, n_words=4)
    names = htm.get_topic_info(level=2)["name"].tolist()
    assert [ax.get_title().split("\n")[0] for ax in fig.axes if ax.get_visible()] == names
    assert _is_png(htm.plot_over_time(reports)._repr_png_())


def test_label_scores_bars():
    table = pd.DataFrame({"precision": [1.0, 0.5], "recall": [0.5, np.nan], "f1": [0.667, np.nan]},
                         index=pd.Index(["edema", "effusion"], name="finding"))
    fig = radmine.plotting.labels.scores(table, metric="f1")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["edema"]  # no value -> no bar
    assert ax.patches[0].get_width() == pytest.approx(0.667)
    with pytest.raises(ValueError, match="metric 'auc' is not a column"):
        radmine.plotting.labels.scores(table, metric="auc")
