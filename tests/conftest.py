"""Shared fixtures: paths to the real corpora (skipped when absent) and loaded corpora."""

from __future__ import annotations

import pytest

from radmine import _paths


def _need(path, what):
    if path is None:
        pytest.skip(f"{what} not found: real corpora live in ../shared/corpora (or set $RADMINE_CORPORA)")
    return path


@pytest.fixture(scope="session")
def openi_tgz():
    return _need(_paths.openi_tgz(), "Open-i IU NLMCXR_reports.tgz")


@pytest.fixture(scope="session")
def openi_dicom_table():
    return _need(_paths.openi_dicom_table(), "Open-i IU nlmcxr_dicom_metadata.csv.gz")


@pytest.fixture(scope="session")
def medpix_dir():
    return _need(_paths.medpix_dir(), "MedPix 2.0 folder")


@pytest.fixture(scope="session")
def openi_corpus(openi_tgz, openi_dicom_table):
    """The real Open-i corpus, loaded once per session. Copy before changing it."""
    import radmine

    return radmine.read_openi(openi_tgz, dicom_table=openi_dicom_table, progress=False)


@pytest.fixture(scope="session")
def medpix_corpus(medpix_dir):
    """The real MedPix 2.0 corpus, loaded once per session. Copy before changing it."""
    import radmine

    return radmine.read_medpix(medpix_dir, progress=False)


@pytest.fixture(scope="session")
def embedded_corpus():
    """The embedded synthetic corpus (corpora/), loaded once. Copy before changing it."""
    import radmine

    return radmine.load_embedded()


#: Small settings so the whole main job runs in about a minute on 2 CPU cores.
FAST_MINE = {
    "embed.backbone": "random_cnn",
    "embed.image_size": 64,
    "cluster.n_rounds": 2,
    "cluster.finetune_epochs": 1,
    "img2text.epochs": 3,
    "img2text.n_ensemble": 1,  # the default MiniLM + last+mid path, one member instead of three
    "topics.n_topics": 5,
    "topics.n_subtopics": 2,
    "topics.passes": 3,
}


@pytest.fixture(scope="session")
def mined_run(tmp_path_factory):
    """``radmine mine`` on the embedded corpus with FAST_MINE settings: (out_dir, result table).

    Shared by the main-job and browser tests; copy the folder before changing it.
    """
    import radmine

    out = tmp_path_factory.mktemp("mine") / "run"
    result = radmine.mine(None, out, overrides=FAST_MINE, progress=False, echo=lambda s: None)
    return out, result
