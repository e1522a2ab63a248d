"""Write the example notebooks (run: python examples/make_notebooks.py).

The notebooks are generated from this file so that they stay small and
reviewable, then executed in a fresh kernel and committed with their outputs
(``python examples/make_notebooks.py --execute``, on the synthetic corpus so
that no real report text or image is committed); the test suite executes
each one again and checks that every cell tagged ``figure`` shows an image.
Only public radmine names are used.
"""

import argparse
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

SETUP = """\
import os
from pathlib import Path

import radmine

# The real corpora are used when $RADMINE_CORPORA (or ../shared/corpora beside the radmine
# checkout) holds openi-iu/ and medpix-2.0/; otherwise the embedded synthetic PACS corpus.
CORPORA = Path(os.environ.get("RADMINE_CORPORA") or Path(radmine.__file__).resolve().parents[2] / "shared" / "corpora")
OPENI = CORPORA / "openi-iu" / "NLMCXR_reports.tgz"
MEDPIX = CORPORA / "medpix-2.0"
"""


def figure_cell(source: str):
    """A code cell whose output must be an image (checked by tests/test_notebooks.py)."""
    return new_code_cell(source, metadata={"tags": ["figure"]})

NOTEBOOKS = {
    "01_corpus_and_topics.ipynb": [
        new_markdown_cell("# A corpus and its topics\n\nLoad reports into a `radmine.Corpus`, split them into "
                          "sections and sentences, and fit an LDA topic model (Shin et al. 2015/2016)."),
        new_code_cell(SETUP + """\
if OPENI.is_file():
    corpus = radmine.read_openi(OPENI, progress=False)
    corpus = corpus.subset(corpus.reports["report_id"].iloc[:800], name="openi-iu (800 reports)")
else:
    corpus = radmine.load_embedded()
corpus"""),
        new_code_cell("corpus.reports[['report_id', 'modality']].head()"),
        new_code_cell("corpus.sentences = radmine.sentence_table(corpus.reports)\n"
                      "corpus.sentences[['report_id', 'section', 'sentence_id', 'start', 'end']].head(8)"),
        new_code_cell("model = radmine.TopicModel(n_topics=8, random_state=0).fit(corpus)\nmodel"),
        new_code_cell("info = model.get_topic_info()\nassert len(info) == 8\ninfo[['topic', 'size', 'name']]"),
        new_code_cell("model.get_topic(info['topic'].iloc[0]).head(10)"),
        figure_cell("model.plot_topics(n_words=6)"),
        new_code_cell("model.get_document_info().head()"),
        new_markdown_cell("Choosing the number of topics: held-out coherence and perplexity for a few K."),
        figure_cell("scores = radmine.select_n_topics(corpus, n_topics=(4, 8, 12), measures=('perplexity', 'c_npmi'))\n"
                    "radmine.plotting.topics.selection_curve(scores, chosen=8)"),
        new_markdown_cell("Topics over time need report dates; the embedded corpus has a `date` column."),
        figure_cell("dated = radmine.load_embedded()\n"
                    "dated_model = radmine.TopicModel(n_topics=6, random_state=0).fit(dated)\n"
                    "dated_model.plot_over_time(dated, freq='YS')"),
        new_markdown_cell("Every figure is a matplotlib Figure: `fig.savefig('topics.svg')` writes a file."),
    ],
    "02_image_clusters.ipynb": [
        new_markdown_cell("# Image clusters named by their reports\n\nEmbed key images with a pretrained CNN and "
                          "group them with `JointClusterer` (k-means on the nearest-neighbour graph of the features; "
                          "Wang et al.'s (WACV 2017) fine-tuning loop is `finetune=True`); name each cluster "
                          "by the words of its images' text."),
        new_code_cell(SETUP + """\
if (MEDPIX / "Case_topic.json").is_file():
    corpus = radmine.read_medpix(MEDPIX, progress=False)
else:
    corpus = radmine.load_embedded()
# a 120-image sample keeps the notebook quick on a CPU
sample = corpus.images.sample(120, random_state=0)
corpus = corpus.subset(sample["report_id"].unique())
corpus.images = corpus.images[corpus.images["image_id"].isin(sample["image_id"])]
corpus"""),
        new_code_cell("embedder = radmine.ImageEmbedder(backbone='efficientnet_lite0', image_size=128, progress=False)\n"
                      "X = embedder.transform(corpus)\nX.shape"),
        new_code_cell("clusterer = radmine.JointClusterer(n_clusters=6, finetune=False, n_rounds=1, random_state=0, progress=False)\n"
                      "clusterer.fit(corpus, image_features=X)\nclusterer"),
        new_code_cell("info = clusterer.get_cluster_info(corpus)\ninfo[['cluster', 'size', 'name']]"),
        figure_cell("clusterer.plot_clusters(corpus, n=6)"),
        figure_cell("clusterer.plot_cluster(info['cluster'].iloc[0], corpus, n=9)"),
        figure_cell("clusterer.plot_sizes(corpus)"),
        figure_cell("clusterer.plot_history()"),
    ],
    "03_weak_labels.ipynb": [
        new_markdown_cell("# Weak labels from a reports file\n\nRead a CSV export of reports, label each finding "
                          "present (1) / absent (0) / uncertain (-1), and see why each label was set."),
        new_code_cell(SETUP + """\
import tempfile
from pathlib import Path

if OPENI.is_file():
    source = radmine.read_openi(OPENI, progress=False)
    vocabulary = "chest_xray"
else:
    source = radmine.load_embedded()
    vocabulary = "ct_mr"
# A reports file as a PACS export would give it (written to a temporary folder, never to the repo).
csv = Path(tempfile.mkdtemp()) / "reports.csv"
source.reports[["report_id", "patient_id", "text"]].to_csv(csv, index=False)
reports = radmine.read_reports(csv).reports
len(reports)"""),
        new_code_cell("labeler = radmine.WeakLabeler(vocabulary=vocabulary).fit(reports)\n"
                      "labels = labeler.transform(reports)\nlabels.shape"),
        new_markdown_cell("One row per finding instead of a wide table: counts of 1 / -1 / 0 / blank and the "
                          "positive rate with a 95% Wilson interval."),
        new_code_cell("radmine.plotting.labels.prevalence_table(labels).head(10)"),
        figure_cell("radmine.plotting.labels.prevalence(labels, top=20)"),
        new_code_cell("radmine.labels_to_chexpert(labels).head() if vocabulary == 'chest_xray' else labels.iloc[:5, :6]"),
        new_code_cell("labeler.mentions_[['report_id', 'finding', 'status', 'trigger']].head(10)"),
        new_code_cell("""\
if "mesh_major" in source.reports.columns:
    reference = radmine.mesh_reference(source.reports, vocabulary=vocabulary)
    scores = radmine.evaluate_labels(labels.set_index(source.reports['report_id']) if labels.index.name != 'report_id' else labels, reference)
    display(scores.tail(2))"""),
    ],
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run each notebook in a fresh kernel and keep the outputs")
    parser.add_argument("--real", action="store_true",
                        help="let the kernels use the real corpora when present (default for --execute: the synthetic "
                             "corpus only, so the committed outputs hold no real report text or images)")
    parser.add_argument("names", nargs="*", help="notebooks to write (default: all)")
    args = parser.parse_args(argv)
    if args.execute and not args.real:
        import os

        os.environ["RADMINE_CORPORA"] = str(HERE / "no-real-corpora")  # a folder that does not exist
    for name, cells in NOTEBOOKS.items():
        if args.names and name not in args.names:
            continue
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        if args.execute:
            import nbclient

            nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
