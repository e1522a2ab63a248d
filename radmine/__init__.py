"""radmine: mine radiology reports and key images.

Public names are imported lazily so that ``import radmine`` stays fast and a
pipeline's heavy engines (torch, gensim, spaCy, faiss) load only when used.
"""

from __future__ import annotations

from radmine._lazy import lazy_exports
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# public name -> module that defines it
_EXPORTS = {
    # corpus model
    "Corpus": "radmine.corpus",
    "concat": "radmine.corpus",
    # readers
    "read_openi": "radmine.readers.openi",
    "read_medpix": "radmine.readers.medpix",
    "read_dicom": "radmine.readers.dicom",
    "read_reports": "radmine.readers.tables",
    "read_corpus": "radmine.readers",
    "load_pixels": "radmine.pixels",
    "list_windows": "radmine.pixels",
    # embedded corpus
    "make_synthetic_corpus": "radmine.datasets.synthetic",
    "load_embedded": "radmine.datasets",
    # text mining
    "split_sections": "radmine.text.sections",
    "split_sentences": "radmine.text.sentences",
    "sentence_table": "radmine.text.sentences",
    "find_image_references": "radmine.text.references",
    "find_negations": "radmine.text.negation",
    "NegationDetector": "radmine.text.negation",
    "link_key_images": "radmine.linking",
    # weak labels
    "WeakLabeler": "radmine.labels.labeler",
    "label_reports": "radmine.labels.labeler",
    "load_vocabulary": "radmine.labels.vocabulary",
    "list_vocabularies": "radmine.labels.vocabulary",
    "evaluate_labels": "radmine.labels.evaluate",
    "mesh_reference": "radmine.labels.evaluate",
    # topics
    "TopicModel": "radmine.topics.model",
    "HierarchicalTopicModel": "radmine.topics.hierarchy",
    "select_n_topics": "radmine.topics.selection",
    # images
    "ImageEmbedder": "radmine.images.embed",
    "list_backbones": "radmine.images.backbones",
    "ImageIndex": "radmine.images.index",
    # clusters
    "JointClusterer": "radmine.cluster",
    # image to text
    "TopicImageClassifier": "radmine.img2text.topic_classifier",
    "ImageTextModel": "radmine.img2text.model",
    "ImageTextEnsemble": "radmine.img2text.model",
    "AnnotationGenerator": "radmine.img2text.generator",
    "annotation_sequences": "radmine.img2text.generator",
    "recall_at_k": "radmine.img2text.metrics",
    "word_match_rate": "radmine.img2text.metrics",
    # de-identification
    "find_phi": "radmine.deid.text",
    "PHIDetector": "radmine.deid.text",
    "deidentify_reports": "radmine.deid.reports",
    "deidentify_corpus": "radmine.deid.corpus",
    "deidentify_dicom": "radmine.deid.dicom",
    # main job
    "mine": "radmine.pipeline.steps",
    # exports to other tools
    "labels_to_chexpert": "radmine.exports",
    "to_hf_dataset": "radmine.exports",
    "to_label_studio": "radmine.exports",
}

# subpackages reachable as attributes after ``import radmine`` (loaded on first use)
_SUBMODULES = {"plotting": "radmine.plotting", "exports": "radmine.exports"}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES) + ["__version__"]


__getattr__, __dir__ = lazy_exports("radmine", globals(), _EXPORTS, _SUBMODULES)
