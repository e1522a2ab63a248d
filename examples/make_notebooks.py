"""Write the example notebooks (run: python examples/make_notebooks.py).

The notebooks are generated from this file so that they stay small, reviewable
and free of stored outputs; the test suite executes each one top to bottom.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

SETUP = """\
import radmine
from radmine import _paths

# The shared real corpora are used when present (../shared/corpora or $RADMINE_CORPORA);
# otherwise the embedded synthetic PACS corpus that ships with radmine.
"""

NOTEBOOKS = {
    "01_corpus_and_topics.ipynb": [
        new_markdown_cell("# A corpus and its topics\n\nLoad reports into a `radmine.Corpus`, split them into "
                          "sections and sentences, and fit an LDA topic model (Shin et al. 2015/2016)."),
        new_code_cell(SETUP + """\
if _paths.openi_tgz() is not None:
    corpus = radmine.read_openi(_paths.openi_tgz(), progress=False)
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
        new_code_cell("from radmine.plotting import topics as topic_plots\nfig = topic_plots.barchart(model)\nfig"),
        new_code_cell("model.get_document_info().head()"),
    ],
    "02_image_clusters.ipynb": [
        new_markdown_cell("# Image clusters named by their reports\n\nEmbed key images with a pretrained CNN and "
                          "group them with the joint clustering loop of Wang et al. (WACV 2017); name each cluster "
                          "by the words of its images' text."),
        new_code_cell(SETUP + """\
if _paths.medpix_dir() is not None:
    corpus = radmine.read_medpix(_paths.medpix_dir(), progress=False)
else:
    corpus = radmine.load_embedded()
# a 120-image sample keeps the notebook quick on a CPU
sample = corpus.images.sample(120, random_state=0)["report_id"].unique()
corpus = corpus.subset(sample)
corpus"""),
        new_code_cell("embedder = radmine.ImageEmbedder(backbone='efficientnet_lite0', image_size=128, progress=False)\n"
                      "X = embedder.transform(corpus)\nX.shape"),
        new_code_cell("clusterer = radmine.JointClusterer(n_clusters=6, finetune=False, n_rounds=1, random_state=0, progress=False)\n"
                      "clusterer.fit(corpus, features=X)\nclusterer"),
        new_code_cell("info = clusterer.cluster_info(corpus)\ninfo[['cluster', 'size', 'name']]"),
        new_code_cell("fig = clusterer.plot_cluster(info['cluster'].iloc[0], corpus, n=9)\nfig"),
        new_code_cell("fig = clusterer.plot_history()\nfig"),
    ],
    "03_weak_labels.ipynb": [
        new_markdown_cell("# Weak labels from a reports file\n\nRead a CSV export of reports, label each finding "
                          "present (1) / absent (0) / uncertain (-1), and see why each label was set."),
        new_code_cell(SETUP + """\
import tempfile
from pathlib import Path

if _paths.openi_tgz() is not None:
    source = radmine.read_openi(_paths.openi_tgz(), progress=False)
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
                      "labels = labeler.transform(reports)\nlabels.head()"),
        new_code_cell("(labels == 1).mean().sort_values(ascending=False).head(10)"),
        new_code_cell("labeler.mentions_[['report_id', 'finding', 'status', 'trigger']].head(10)"),
        new_code_cell("""\
if "mesh_major" in source.reports.columns:
    reference = radmine.mesh_reference(source.reports, vocabulary=vocabulary)
    scores = radmine.evaluate_labels(labels.set_index(source.reports['report_id']) if labels.index.name != 'report_id' else labels, reference)
    display(scores.tail(2))"""),
    ],
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
