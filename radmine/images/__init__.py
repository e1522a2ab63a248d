"""CNN image embeddings: backbones, medical-image preprocessing, a resumable cache and a faiss index.

Public entry points: :class:`radmine.ImageEmbedder`, :func:`radmine.list_backbones`,
:class:`radmine.ImageIndex`, :func:`radmine.images.backbones.build_backbone` and
:func:`radmine.images.preprocess.preprocess`.
"""
