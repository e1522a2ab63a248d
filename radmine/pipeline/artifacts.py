"""What ``radmine mine`` writes: one declaration per file or folder of the output folder.

Every path inside the output folder ``DIR`` is declared here, once, as an
:class:`Artifact`: the step that writes it, its path relative to ``DIR``, its
kind, what it holds and, for tables, the columns it has. The steps write
through these declarations, the loaders and the HTML report read through
them, the runner derives from them the folders a step owns, the files it must
find before it counts a step as up to date, the paths a re-run keeps (caches)
and where resume state goes (checkpoints). The list of outputs in
``docs/cli.md`` is :func:`listing` (``python -m radmine.pipeline.artifacts``
prints it; ``tests/test_artifacts.py`` checks that the two agree).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: what each kind of artifact is, and how :meth:`Artifact.read` reads it
KINDS = {
    "parquet": "a table (pandas.read_parquet)",
    "csv": "a CSV table (pandas.read_csv)",
    "npy": "an array (numpy.load)",
    "json": "a JSON document",
    "png": "a figure",
    "html": "a self-contained HTML page",
    "lock": "a lock file",
    "corpus": "a saved radmine.Corpus (Corpus.load)",
    "model": "a saved model folder (safetensors + JSON; the class's load)",
    "images": "a folder of image files",
    "figures": "a folder of PNG figures",
    "cache": "a cache folder that a re-run of its step keeps",
    "checkpoints": "resume state, one folder per step fingerprint",
}
#: kinds that are folders
FOLDER_KINDS = frozenset({"corpus", "model", "images", "figures", "cache", "checkpoints"})
#: kinds that are resume state: never required, never part of a step's recorded outputs
RESUME_KINDS = frozenset({"cache", "checkpoints"})
#: the ``step`` of the files the runner itself writes
RUN = "run"


@dataclass(frozen=True)
class Artifact:
    """One file or folder of the output folder of ``radmine mine``.

    Parameters
    ----------
    step : str
        The step that writes it (``"run"``: the runner, for the whole run).
    path : str
        Relative to the output folder, POSIX separators, no trailing slash.
    kind : str
        One of :data:`KINDS`.
    description : str
        What it holds (one line of the documented list).
    when : str, default=""
        The condition under which its step writes it; ``""``: every run of the
        step that is not skipped.
    columns : tuple of str, default=()
        Tables: columns it has whenever it has rows (others may follow).
    item : str, default=""
        Folders: the name of their entries, ``<placeholders>`` for the
        variable parts (``"cluster_<id>.png"``); see :meth:`member`.
    """

    step: str
    path: str
    kind: str
    description: str
    when: str = ""
    columns: tuple[str, ...] = ()
    item: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Artifact {self.path!r}: kind must be one of {sorted(KINDS)}; found {self.kind!r}.")
        if not self.path or self.path.startswith("/") or self.path.endswith("/"):
            raise ValueError(f"Artifact path must be relative, without a trailing '/'; found {self.path!r}.")
        if self.item and self.kind not in FOLDER_KINDS:
            raise ValueError(f"Artifact {self.path!r}: only folders have an item pattern; kind is {self.kind!r}.")

    @property
    def is_folder(self) -> bool:
        return self.kind in FOLDER_KINDS

    @property
    def top(self) -> str:
        """The entry of the output folder it lives in (its path's first component)."""
        return self.path.split("/", 1)[0]

    @property
    def required(self) -> bool:
        """Every run of its step that is not skipped leaves it (resume state excluded)."""
        return not self.when and self.kind not in RESUME_KINDS and self.step != RUN

    @property
    def shown(self) -> str:
        """The path as :func:`listing` shows it (folders end in ``/``, then their item pattern)."""
        if not self.is_folder:
            return self.path
        return f"{self.path}/{self.item}" if self.item else self.path + "/"

    def at(self, out: str | Path) -> Path:
        """Its path inside the output folder ``out``."""
        return Path(out).joinpath(*self.path.split("/"))

    def member(self, out: str | Path, **names: Any) -> Path:
        """The path of one entry of a folder: :attr:`item` with its ``<placeholders>`` filled from ``names``.

        Raises
        ------
        ValueError
            The artifact has no item pattern, or ``names`` does not fill every placeholder.
        """
        if not self.item:
            raise ValueError(f"Artifact {self.path!r} has no item pattern; member() needs one.")
        name = self.item.rstrip("/")
        for key, value in names.items():
            name = name.replace(f"<{key}>", str(value))
        if "<" in name:
            raise ValueError(f"Artifact {self.path!r}: {self.item!r} needs {sorted(set(_placeholders(name)))}; "
                             f"found {sorted(names)}.")
        return self.at(out).joinpath(*name.split("/"))

    def members(self, out: str | Path) -> list[Path]:
        """The entries of a folder in ``out`` whose names fit :attr:`item` (sorted; none when absent)."""
        if not self.item:
            raise ValueError(f"Artifact {self.path!r} has no item pattern; members() needs one.")
        pattern = self.item.rstrip("/")
        for key in _placeholders(pattern):
            pattern = pattern.replace(f"<{key}>", "*")
        folder = self.at(out)
        return sorted(folder.glob(pattern)) if folder.is_dir() else []

    def exists(self, out: str | Path) -> bool:
        """It is in ``out``: a file, a folder, a saved corpus (its manifest file present)."""
        p = self.at(out)
        if self.kind == "corpus":
            from radmine.corpus import MANIFEST

            return (p / MANIFEST).is_file()
        return p.is_dir() if self.is_folder else p.is_file()

    def read(self, out: str | Path) -> Any:
        """Read it from ``out``: a DataFrame (parquet, csv), an array (npy), a JSON value or a Corpus.

        Raises
        ------
        FileNotFoundError
            It is not in ``out``.
        ValueError
            A kind this method does not read (models, folders of files).
        """
        p = self.at(out)
        if not self.exists(out):
            raise FileNotFoundError(f"{p} not found: the {self.step} step has not written it.")
        if self.kind == "parquet":
            import pandas as pd

            return pd.read_parquet(p)
        if self.kind == "csv":
            import pandas as pd

            return pd.read_csv(p)
        if self.kind == "npy":
            import numpy as np

            return np.load(p, allow_pickle=False)
        if self.kind == "json":
            return json.loads(p.read_text(encoding="utf-8"))
        if self.kind == "corpus":
            from radmine.corpus import Corpus

            return Corpus.load(p)
        raise ValueError(f"Artifact {self.path!r} is {KINDS[self.kind]}; read() reads tables, arrays, JSON and corpora.")


def _placeholders(text: str) -> list[str]:
    return [part.split(">", 1)[0] for part in text.split("<")[1:]]


# -- the runner ------------------------------------------------------------
MANIFEST = Artifact(RUN, "manifest.json", "json",
                    "finished steps: fingerprint, status, seconds, summary, info, "
                    "outputs (size + SHA-256 of each file), finished_at")
LOCK = Artifact(RUN, ".radmine.lock", "lock", "the lock a run holds on DIR (empty when no run is active)")
CONFIG = Artifact(RUN, "config.json", "json", "the settings of the last run (defaults + config file + --set)")
QUARANTINE = Artifact(RUN, "quarantine.csv", "csv", "every item a step skipped", columns=("step", "source", "item", "reason"))

# -- deid ------------------------------------------------------------------
DEID_CORPUS = Artifact("deid", "deid/corpus", "corpus", "the de-identified corpus of user data (a saved radmine.Corpus)")
DEID_IMAGES = Artifact("deid", "deid/images", "images", "de-identified image files (DICOM by the PS3.15 basic profile)",
                       when="with image files")
PHI_SPANS = Artifact("deid", "deid/phi_spans.parquet", "parquet", "each PHI span replaced (no text)",
                     columns=("report_id", "column", "start", "end", "label", "source"))

# -- read ------------------------------------------------------------------
CORPUS = Artifact("read", "corpus", "corpus", "the corpus as read (a saved radmine.Corpus; image paths made absolute)")

# -- text ------------------------------------------------------------------
SENTENCES = Artifact("text", "text/sentences.parquet", "parquet", "one row per sentence",
                     columns=("report_id", "section", "sentence_id", "start", "end", "text"))
LINKS = Artifact("text", "text/links.parquet", "parquet", "key image <-> sentence links (see text.md)",
                 columns=("image_id", "report_id", "sentence_id", "sentence", "resolved", "method"))

# -- labels ----------------------------------------------------------------
LABELS = Artifact("labels", "labels/labels.parquet", "parquet", "one column per finding (1 / 0 / -1 / NaN)",
                  columns=("report_id",))
MENTIONS = Artifact("labels", "labels/mentions.parquet", "parquet", "every mention",
                    columns=("report_id", "section", "start", "end", "finding", "status", "trigger"))
PREVALENCE = Artifact("labels", "labels/prevalence.csv", "csv", "share of reports with each finding present",
                      columns=("finding", "prevalence"))
MESH_EVALUATION = Artifact("labels", "labels/evaluation_vs_mesh.csv", "csv",
                           "scores against the MeSH major annotation", when="Open-i only")

# -- topics ----------------------------------------------------------------
TOPIC_SELECTION = Artifact("topics", "topics/selection.parquet", "parquet", "the candidates of K (c_v NaN)",
                           when="when K was chosen", columns=("n_topics", "perplexity", "c_v", "c_npmi", "fit_seconds"))
TOPIC_INFO = Artifact("topics", "topics/topic_info.parquet", "parquet", "level-1 topics",
                      columns=("topic", "size", "name", "top_words", "weights"))
TOPIC_INFO_LEVEL2 = Artifact("topics", "topics/topic_info_level2.parquet", "parquet", 'the sub-topics ("t.s")',
                             when="with n_subtopics > 0", columns=("topic", "parent", "size", "name", "top_words", "weights"))
DOCUMENT_INFO = Artifact("topics", "topics/document_info.parquet", "parquet",
                         "dominant topic (and sub-topic) of each report",
                         columns=("doc_id", "report_id", "dominant_topic", "probability"))
IMAGE_TOPICS = Artifact("topics", "topics/image_topics.parquet", "parquet", "a topic label per image",
                        columns=("image_id", "report_id", "topic", "probability", "source"))
TOPIC_MODEL = Artifact("topics", "topics/model", "model", "the fitted model (TopicModel/HierarchicalTopicModel.load)")

# -- embed -----------------------------------------------------------------
EMBEDDINGS = Artifact("embed", "embed/embeddings.npy", "npy", "float32 (n_images, dim), rows in the order of image_ids")
IMAGE_IDS = Artifact("embed", "embed/image_ids.parquet", "parquet", "the image of each row of embeddings.npy",
                     columns=("image_id",))
EMBED_CACHE = Artifact("embed", "embed/cache", "cache", "the resumable embedding cache (shards)")

# -- img2text --------------------------------------------------------------
METRICS = Artifact("img2text", "img2text/metrics.json", "json",
                   "Recall@K both ways, median/mean rank, n_images, n_texts, eval_split ({} when skipped)")
IMG2TEXT_HISTORY = Artifact("img2text", "img2text/history.parquet", "parquet", "one row per epoch (and ensemble member)",
                            columns=("epoch",))
IMG2TEXT_MODEL = Artifact("img2text", "img2text/model", "model",
                          'the fitted model, ImageTextModel.load("DIR/img2text/model")')
DESCRIBE = Artifact("img2text", "img2text/describe.parquet", "parquet",
                    "keywords and nearest sentences of a few test images (path relative to DIR)",
                    columns=("image_id", "path", "words", "nearest sentence"))
IMG2TEXT_FEATURES = Artifact("img2text", "img2text/features", "cache",
                             "the model's own image features (last + middle stage), cached",
                             when='with image_features = "last+mid"')
JOINT_EMBEDDINGS = Artifact("img2text", "img2text/image_embeddings.npy", "npy",
                            "float32 (n_images, dim): each image in the model's joint image-text space (what cluster "
                            "groups by default), rows in the order of embed/image_ids; (0, 0) when the step is skipped")
IMG2TEXT_CHECKPOINTS = Artifact("img2text", "img2text/checkpoints", "checkpoints", "the last epoch's checkpoint (resume)",
                                item="<fingerprint>/")

# -- cluster ---------------------------------------------------------------
ASSIGNMENTS = Artifact("cluster", "cluster/assignments.parquet", "parquet", "the cluster of each image",
                       columns=("image_id", "cluster"))
CLUSTER_INFO = Artifact("cluster", "cluster/cluster_info.parquet", "parquet", "one row per cluster (lists as JSON)",
                        columns=("cluster", "size", "name", "top_words", "distinctive_words"))
CLUSTER_HISTORY = Artifact("cluster", "cluster/history.parquet", "parquet", "one row per round of the loop",
                           columns=("round", "n_clusters"))
CLUSTER_HISTORY_PLOT = Artifact("cluster", "cluster/history.png", "png", "the loop round by round")
MONTAGES = Artifact("cluster", "cluster/montages", "figures", "the largest clusters' images, named", item="cluster_<id>.png")
CLUSTER_MODEL = Artifact("cluster", "cluster/model", "model", "the fitted JointClusterer (JointClusterer.load)")
CLUSTER_CHECKPOINTS = Artifact("cluster", "cluster/checkpoints", "checkpoints",
                               "one folder round_XX/ per finished round (resume)", item="<fingerprint>/")

# -- report ----------------------------------------------------------------
REPORT = Artifact("report", "report.html", "html", "the HTML report (self-contained: images inlined as base64 PNG)")

#: every output of ``radmine mine``, in the order of the steps
ARTIFACTS: tuple[Artifact, ...] = (
    MANIFEST, LOCK, CONFIG, QUARANTINE, REPORT,
    DEID_CORPUS, DEID_IMAGES, PHI_SPANS,
    CORPUS,
    SENTENCES, LINKS,
    LABELS, MENTIONS, PREVALENCE, MESH_EVALUATION,
    TOPIC_SELECTION, TOPIC_INFO, TOPIC_INFO_LEVEL2, DOCUMENT_INFO, IMAGE_TOPICS, TOPIC_MODEL,
    EMBEDDINGS, IMAGE_IDS, EMBED_CACHE,
    METRICS, IMG2TEXT_HISTORY, IMG2TEXT_MODEL, DESCRIBE, JOINT_EMBEDDINGS, IMG2TEXT_FEATURES, IMG2TEXT_CHECKPOINTS,
    ASSIGNMENTS, CLUSTER_INFO, CLUSTER_HISTORY, CLUSTER_HISTORY_PLOT, MONTAGES, CLUSTER_MODEL, CLUSTER_CHECKPOINTS,
)


def of_step(step: str) -> tuple[Artifact, ...]:
    """The artifacts ``step`` writes (``"run"``: the runner's own files), in table order.

    Raises
    ------
    ValueError
        No artifact belongs to ``step``.
    """
    found = tuple(a for a in ARTIFACTS if a.step == step)
    if not found:
        known = list(dict.fromkeys(a.step for a in ARTIFACTS))
        raise ValueError(f"No artifact is written by step {step!r}; steps with artifacts: {known}.")
    return found


def listing() -> str:
    """The output folder as ``docs/cli.md`` lists it: one line per artifact."""
    width = max(len(a.shown) for a in ARTIFACTS) + 2
    lines = ["DIR/"]
    for a in ARTIFACTS:
        who = "" if a.step == RUN else a.step + (f", {a.when}" if a.when else "") + ": "
        cols = f"; {', '.join(a.columns)}" if a.columns else ""
        lines.append(f"  {a.shown:<{width}}{who}{a.description}{cols}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(listing(), end="")
