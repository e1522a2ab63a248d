"""Image-to-text: topic classifiers, an image <-> text dual encoder and retrieval metrics.

Public names (lazily exported by :mod:`radmine`): :class:`TopicImageClassifier`,
:class:`ImageTextModel`, :class:`ImageTextEnsemble`, :class:`AnnotationGenerator`,
:func:`annotation_sequences`, :func:`recall_at_k`, :func:`word_match_rate`.
Modules: ``metrics`` (Recall@K, word-match rate, BLEU), ``text_encoders``
(word2vec / transformers), ``model`` (the dual encoder's estimator and
``ImageTextEnsemble``), ``towers`` (its torch module), ``losses``, ``members``
(one member's training), ``ensemble`` (joining members' embeddings),
``topic_classifier``, ``generator`` (CNN + GRU annotation generator, Shin et
al. CVPR 2016), ``training`` (the pinned image embedder, corpus splits and the
backbone inputs shared by the models). The training loop, image inputs and
backbone stages are :mod:`radmine.nn`'s.
"""
