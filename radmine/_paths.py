"""Where radmine looks for the real corpora used by tests, examples and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "RADMINE_CORPORA"


def shared_corpora_dir() -> Path | None:
    """The folder holding ``openi-iu/`` and ``medpix-2.0/``, or ``None`` if absent.

    Looks at ``$RADMINE_CORPORA``, then ``../shared/corpora`` next to the
    repository root, then ``../shared/corpora`` from the working directory.
    """
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    repo = Path(__file__).resolve().parents[1]
    candidates += [repo.parent / "shared" / "corpora", Path.cwd().parent / "shared" / "corpora"]
    for c in candidates:
        if (c / "openi-iu").is_dir() or (c / "medpix-2.0").is_dir():
            return c
    return None


def openi_tgz() -> Path | None:
    d = shared_corpora_dir()
    p = d / "openi-iu" / "NLMCXR_reports.tgz" if d else None
    return p if p is not None and p.is_file() else None


def openi_dicom_table() -> Path | None:
    d = shared_corpora_dir()
    p = d / "openi-iu" / "nlmcxr_dicom_metadata.csv.gz" if d else None
    return p if p is not None and p.is_file() else None


def medpix_dir() -> Path | None:
    d = shared_corpora_dir()
    p = d / "medpix-2.0" if d else None
    return p if p is not None and (p / "Case_topic.json").is_file() else None


def embedded_dir() -> Path:
    """The repository's ``corpora/`` folder (the embedded default corpus)."""
    return Path(__file__).resolve().parents[1] / "corpora"
