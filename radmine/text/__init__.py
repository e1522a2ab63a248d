"""Report text mining: sections, sentences, key-image references and negation.

Modules: :mod:`radmine.text.sections`, :mod:`radmine.text.sentences`,
:mod:`radmine.text.references`, :mod:`radmine.text.negation`. Names are
loaded lazily so that importing one module does not import the others.
"""

from __future__ import annotations

from radmine._lazy import lazy_exports

_EXPORTS = {
    "Section": "radmine.text.sections",
    "split_sections": "radmine.text.sections",
    "list_sections": "radmine.text.sections",
    "Sentence": "radmine.text.sentences",
    "split_sentences": "radmine.text.sentences",
    "sentence_table": "radmine.text.sentences",
    "ImageReference": "radmine.text.references",
    "find_image_references": "radmine.text.references",
    "references_by_sentence": "radmine.text.references",
    "NegationDetector": "radmine.text.negation",
    "find_negations": "radmine.text.negation",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports("radmine.text", globals(), _EXPORTS)
