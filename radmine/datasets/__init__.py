"""Embedded datasets: the deterministic synthetic PACS corpus shipped in ``corpora/``.

>>> import radmine
>>> corpus = radmine.load_embedded()          # doctest: +SKIP
>>> corpus.tables["truth_links"].head()       # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["load_embedded", "make_synthetic_corpus", "list_embedded", "embedded_path"]

EMBEDDED_NAME = "synthetic-pacs"  # same as radmine.datasets.synthetic.EMBEDDED_NAME


def __getattr__(name):
    # imported lazily so that ``python -m radmine.datasets.synthetic`` runs cleanly
    if name == "make_synthetic_corpus":
        from radmine.datasets.synthetic import make_synthetic_corpus

        return make_synthetic_corpus
    raise AttributeError(f"module 'radmine.datasets' has no attribute {name!r}")

_EMBEDDED = {EMBEDDED_NAME: dict(n_patients=120, random_state=0, image_size=128)}


def list_embedded() -> list[str]:
    """Names accepted by :func:`load_embedded`."""
    return sorted(_EMBEDDED)


def embedded_path(name: str = EMBEDDED_NAME) -> Path:
    """The folder of embedded corpus ``name`` in the repository (may not exist in an installed copy)."""
    from radmine import _paths

    _check_name(name)
    return _paths.embedded_dir() / name


def _check_name(name: str) -> None:
    if name not in _EMBEDDED:
        raise KeyError(f"No embedded corpus named {name!r}; available: {list_embedded()}.")


def load_embedded(name: str = EMBEDDED_NAME):
    """Load an embedded corpus (default: the synthetic PACS with its ground truth).

    Loads ``corpora/<name>/`` from the repository with ``root`` set so that
    ``corpus.image_paths()`` gives real files. When that folder is missing
    (radmine installed without the repository) the corpus is regenerated,
    deterministically and identically, into ``$RADMINE_CACHE`` or
    ``~/.cache/radmine`` (a few seconds) and loaded from there.

    Parameters
    ----------
    name : str, default "synthetic-pacs"
        One of :func:`list_embedded`.

    Returns
    -------
    Corpus
        Core tables plus ``truth_links``, ``truth_labels``, ``truth_mentions``,
        ``truth_sentences``, ``truth_images``, ``truth_topics``, ``dicom_files``.

    Raises
    ------
    KeyError
        If ``name`` is not an embedded corpus.
    """
    from radmine.corpus import Corpus

    path = embedded_path(name)
    if (path / "corpus.json").is_file():
        corpus = Corpus.load(path)
        corpus.root = str(path)
        return corpus
    from radmine.datasets.synthetic import make_synthetic_corpus

    logger.info("Embedded corpus folder %s not found; generating %s into the cache.", path, name)
    return make_synthetic_corpus(**_EMBEDDED[name])
