"""Image-to-text: topic classifiers, an image <-> text dual encoder and retrieval metrics.

Public names (lazily exported by :mod:`radmine`): :class:`TopicImageClassifier`,
:class:`ImageTextModel`, :class:`AnnotationGenerator`, :func:`annotation_sequences`,
:func:`recall_at_k`, :func:`word_match_rate`.
Modules: ``metrics`` (Recall@K, word-match rate, BLEU), ``text_encoders``
(word2vec / transformers), ``model`` (the dual encoder), ``topic_classifier``,
``generator`` (CNN + GRU annotation generator, Shin et al. CVPR 2016),
``training`` (the shared loop: seeds, group batches, early stopping,
checkpoints, resume).
"""
