"""Weak labels from report text, vocabularies as data, and scoring against references.

Modules: :mod:`radmine.labels.labeler` (:class:`WeakLabeler`, :func:`label_reports`),
:mod:`radmine.labels.vocabulary` (:func:`load_vocabulary`, :func:`list_vocabularies`),
:mod:`radmine.labels.evaluate` (:func:`evaluate_labels`, :func:`mesh_reference`).
Names load lazily.
"""

from __future__ import annotations

from radmine._lazy import lazy_exports

_EXPORTS = {
    "WeakLabeler": "radmine.labels.labeler",
    "label_reports": "radmine.labels.labeler",
    "Vocabulary": "radmine.labels.vocabulary",
    "Finding": "radmine.labels.vocabulary",
    "load_vocabulary": "radmine.labels.vocabulary",
    "list_vocabularies": "radmine.labels.vocabulary",
    "evaluate_labels": "radmine.labels.evaluate",
    "mesh_reference": "radmine.labels.evaluate",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("radmine.labels", globals(), _EXPORTS)
