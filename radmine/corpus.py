"""The corpus model: a few pandas tables with stable columns and keys.

A :class:`Corpus` holds what radmine knows about a collection of radiology
reports and their images. Every reader returns one, every pipeline reads its
tables and returns (or adds) tables; nothing else is shared between pipelines.

Tables and keys
---------------
``reports`` (key ``report_id``)
    ``report_id, patient_id, study_id, modality, text`` plus the section
    columns the source has (``findings, impression, indication, comparison,
    history, technique, ...``) and optional ``split`` / ``title`` / ``date``.
``images`` (key ``image_id``; ``report_id`` refers to ``reports``)
    ``image_id, report_id, patient_id, study_id, path, modality, view, plane,
    series_number, instance_number, caption`` plus source-specific columns.
``sentences`` (key ``report_id, sentence_id``)
    ``report_id, section, sentence_id, start, end, text`` (filled by
    :func:`radmine.sentence_table`).
``links`` (key ``image_id, report_id, sentence_id``)
    key image <-> sentence links (filled by :func:`radmine.link_key_images`).
``annotations`` (long form, one row per annotation)
    ``report_id, image_id, kind, value, term, qualifiers`` -- e.g. Open-i MeSH
    ``kind="mesh_major"``, MedPix ``kind="diagnosis"|"acr_code"|"location"``.
``quarantine``
    ``source, item, reason``: every input item a reader skipped, with why. An
    optional ``kept`` column marks rows that were loaded anyway but carry a
    defect (``kept=True``); items in == rows out + quarantined rows with
    ``kept=False``.

Extra tables (ground truth, topic labels, ...) live in ``corpus.tables``
under any other name and are saved and loaded with the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radmine._io import atomic_write_json, atomic_write_parquet, read_saved_meta
from radmine._repr import summary_html, summary_text

logger = logging.getLogger(__name__)

REPORT_COLUMNS = ["report_id", "patient_id", "study_id", "modality", "text"]
SECTION_COLUMNS = [
    "indication",
    "history",
    "comparison",
    "technique",
    "findings",
    "impression",
]
IMAGE_COLUMNS = [
    "image_id",
    "report_id",
    "patient_id",
    "study_id",
    "path",
    "modality",
    "view",
    "plane",
    "series_number",
    "instance_number",
    "caption",
]
SENTENCE_COLUMNS = ["report_id", "section", "sentence_id", "start", "end", "text"]
LINK_COLUMNS = [
    "image_id",
    "report_id",
    "sentence_id",
    "sentence",
    "prev_sentence",
    "next_sentence",
    "series",
    "instance",
    "resolved",
    "reason",
    "method",
]
ANNOTATION_COLUMNS = ["report_id", "image_id", "kind", "value", "term", "qualifiers"]
QUARANTINE_COLUMNS = ["source", "item", "reason"]

#: Required columns per core table; other columns are allowed.
SCHEMA: dict[str, list[str]] = {
    "reports": REPORT_COLUMNS,
    "images": ["image_id", "report_id"],
    "sentences": SENTENCE_COLUMNS,
    "links": ["image_id", "report_id", "sentence_id"],
    "annotations": ["report_id", "kind", "value"],
    "quarantine": QUARANTINE_COLUMNS,
}
CORE_TABLES = list(SCHEMA)
#: Columns holding ids, by table, that ``concat`` prefixes and ``split`` follows.
ID_COLUMNS = {
    "reports": ["report_id", "patient_id", "study_id"],
    "images": ["image_id", "report_id", "patient_id", "study_id"],
    "sentences": ["report_id"],
    "links": ["image_id", "report_id"],
    "annotations": ["report_id", "image_id"],
}
MANIFEST = "corpus.json"
FORMAT_VERSION = 1


def empty_table(name: str) -> pd.DataFrame:
    """An empty DataFrame with the documented columns of core table ``name``."""
    cols = {
        "reports": REPORT_COLUMNS,
        "images": IMAGE_COLUMNS,
        "sentences": SENTENCE_COLUMNS,
        "links": LINK_COLUMNS,
        "annotations": ANNOTATION_COLUMNS,
        "quarantine": QUARANTINE_COLUMNS,
    }[name]
    return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})


class Corpus:
    """Reports, images and everything mined from them, as pandas tables.

    Parameters
    ----------
    reports : DataFrame
        One row per report; must have ``report_id, patient_id, study_id,
        modality, text`` (``report_id`` unique).
    images : DataFrame, optional
        One row per image; must have ``image_id`` (unique) and ``report_id``.
    sentences, links, annotations, quarantine : DataFrame, optional
        See the module docstring for their columns.
    name : str, optional
        A short name shown in summaries (e.g. ``"openi-iu"``).
    root : str or Path, optional
        Folder that relative image ``path`` values are resolved against.
    **tables : DataFrame
        Extra named tables (ground truth, topic labels, ...).

    Examples
    --------
    >>> import pandas as pd, radmine
    >>> reports = pd.DataFrame({"report_id": ["r1"], "patient_id": ["p1"],
    ...     "study_id": ["s1"], "modality": ["CT"], "text": ["No mass."]})
    >>> radmine.Corpus(reports).n_reports
    1
    """

    def __init__(
        self,
        reports: pd.DataFrame,
        images: pd.DataFrame | None = None,
        *,
        sentences: pd.DataFrame | None = None,
        links: pd.DataFrame | None = None,
        annotations: pd.DataFrame | None = None,
        quarantine: pd.DataFrame | None = None,
        name: str | None = None,
        root: str | Path | None = None,
        **tables: pd.DataFrame,
    ) -> None:
        self.name = name or "corpus"
        self.root = None if root is None else str(root)
        self.tables: dict[str, pd.DataFrame] = {}
        given = {
            "reports": reports,
            "images": images,
            "sentences": sentences,
            "links": links,
            "annotations": annotations,
            "quarantine": quarantine,
        }
        for key, df in given.items():
            self.tables[key] = empty_table(key) if df is None else df
        for key, df in tables.items():
            if not isinstance(df, pd.DataFrame):
                raise TypeError(f"Extra table {key!r} must be a pandas DataFrame, got {type(df).__name__}.")
            self.tables[key] = df
        self.validate()

    # -- table access -------------------------------------------------
    @property
    def reports(self) -> pd.DataFrame:
        return self.tables["reports"]

    @reports.setter
    def reports(self, df: pd.DataFrame) -> None:
        self._set("reports", df)

    @property
    def images(self) -> pd.DataFrame:
        return self.tables["images"]

    @images.setter
    def images(self, df: pd.DataFrame) -> None:
        self._set("images", df)

    @property
    def sentences(self) -> pd.DataFrame:
        return self.tables["sentences"]

    @sentences.setter
    def sentences(self, df: pd.DataFrame) -> None:
        self._set("sentences", df)

    @property
    def links(self) -> pd.DataFrame:
        return self.tables["links"]

    @links.setter
    def links(self, df: pd.DataFrame) -> None:
        self._set("links", df)

    @property
    def annotations(self) -> pd.DataFrame:
        return self.tables["annotations"]

    @annotations.setter
    def annotations(self, df: pd.DataFrame) -> None:
        self._set("annotations", df)

    @property
    def quarantine(self) -> pd.DataFrame:
        return self.tables["quarantine"]

    @quarantine.setter
    def quarantine(self, df: pd.DataFrame) -> None:
        self._set("quarantine", df)

    def _set(self, key: str, df: pd.DataFrame) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"Corpus.{key} must be a pandas DataFrame, got {type(df).__name__}.")
        _check_table(key, df)
        self.tables[key] = df

    def __getitem__(self, key: str) -> pd.DataFrame:
        try:
            return self.tables[key]
        except KeyError:
            raise KeyError(f"Corpus has no table {key!r}; it has {sorted(self.tables)}.") from None

    def __setitem__(self, key: str, df: pd.DataFrame) -> None:
        self._set(key, df)

    @property
    def n_reports(self) -> int:
        return len(self.reports)

    @property
    def n_images(self) -> int:
        return len(self.images)

    def image_paths(self) -> pd.Series:
        """Absolute image paths (``path`` resolved against ``root``), indexed like ``images``."""
        paths = self.images.get("path", pd.Series(index=self.images.index, dtype=object))
        if self.root is None:
            return paths
        root = Path(self.root)
        return paths.map(lambda p: p if p is None or pd.isna(p) or Path(p).is_absolute() else str(root / p))

    def to_hf_dataset(self, labels: pd.DataFrame | None = None, **kwargs: Any):
        """This corpus as a Hugging Face ``datasets.Dataset`` (images, reports, links, labels);
        see :func:`radmine.exports.to_hf_dataset`."""
        from radmine.exports import to_hf_dataset

        return to_hf_dataset(self, labels, **kwargs)

    def copy(self) -> Corpus:
        """A deep copy (tables copied)."""
        out = Corpus.__new__(Corpus)
        out.name, out.root = self.name, self.root
        out.tables = {k: v.copy() for k, v in self.tables.items()}
        return out

    # -- checks -------------------------------------------------------
    def validate(self) -> Corpus:
        """Check columns and keys of every core table; raise ``ValueError`` naming the problem."""
        for key in CORE_TABLES:
            _check_table(key, self.tables[key])
        reports, images = self.reports, self.images
        if reports["report_id"].duplicated().any():
            dup = reports.loc[reports["report_id"].duplicated(), "report_id"].head(5).tolist()
            raise ValueError(f"Corpus.reports: report_id must be unique; duplicated: {dup}.")
        if len(images):
            if images["image_id"].duplicated().any():
                dup = images.loc[images["image_id"].duplicated(), "image_id"].head(5).tolist()
                raise ValueError(f"Corpus.images: image_id must be unique; duplicated: {dup}.")
            known = set(reports["report_id"])
            orphan = images.loc[images["report_id"].notna() & ~images["report_id"].isin(known), "image_id"]
            if len(orphan):
                raise ValueError(
                    f"Corpus.images: {len(orphan)} image(s) refer to a report_id not in reports, "
                    f"e.g. {orphan.head(5).tolist()}."
                )
        return self

    # -- summaries ----------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Counts, modalities and sections, as a plain dict."""
        rep, img = self.reports, self.images
        known = SECTION_COLUMNS + ["exam", "differential", "diagnosis", "conclusion"]
        sections = [c for c in rep.columns if c in known]
        filled = {s: int(rep[s].fillna("").astype(str).str.strip().ne("").sum()) for s in sections}
        out: dict[str, Any] = {
            "name": self.name,
            "reports": len(rep),
            "patients": int(rep["patient_id"].nunique()),
            "images": len(img),
            "modalities": _counts(rep["modality"]),
            "sections (non-empty)": filled,
        }
        if len(img):
            out["image modalities"] = _counts(img["modality"]) if "modality" in img else {}
        for key in ("sentences", "links", "annotations", "quarantine"):
            if len(self.tables[key]):
                out[key] = len(self.tables[key])
        extra = sorted(set(self.tables) - set(CORE_TABLES))
        if extra:
            out["extra tables"] = extra
        if "source" in rep.columns:
            out["sources"] = _counts(rep["source"])
        return out

    def __repr__(self) -> str:
        s = self.summary()
        return f"<Corpus {s['name']!r}: {s['reports']} reports, {s['patients']} patients, {s['images']} images>"

    def __str__(self) -> str:
        return summary_text(f"Corpus {self.name!r}", self.summary())

    def _repr_html_(self) -> str:
        return summary_html(f"Corpus {self.name!r}", self.summary())

    # -- persistence --------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save every table as parquet plus a JSON manifest ``corpus.json``.

        Each file is written atomically; the manifest is written last, so a
        folder with a manifest always holds a complete corpus.

        Parameters
        ----------
        path : str or Path
            Output folder (created if missing).

        Returns
        -------
        Path
            The folder.
        """
        import radmine

        path = Path(path)
        for key in self.tables:  # check every name before writing anything
            if not key.isidentifier():
                raise ValueError(f"Table name {key!r} cannot be saved: use letters, digits and '_'.")
        path.mkdir(parents=True, exist_ok=True)
        tables = {}
        for key, df in self.tables.items():
            df = df.copy()
            index_names = [n for n in df.index.names if n is not None]
            if index_names:
                df = df.reset_index()
            else:
                df = df.reset_index(drop=True)
            df.columns = [str(c) for c in df.columns]
            atomic_write_parquet(df, path / f"{key}.parquet")
            tables[key] = {"file": f"{key}.parquet", "rows": len(df), "index": index_names}
        manifest = {
            "format": "radmine-corpus",
            "format_version": FORMAT_VERSION,
            "radmine_version": radmine.__version__,
            "name": self.name,
            "root": self.root,
            "tables": tables,
        }
        atomic_write_json(path / MANIFEST, manifest)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Corpus:
        """Load a corpus written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If ``path`` has no ``corpus.json`` manifest.
        ValueError
            If the manifest is not a radmine corpus manifest, or a table is missing.
        """
        path = Path(path)
        manifest = read_saved_meta(path, MANIFEST, "radmine-corpus", "radmine corpus")
        tables = {}
        for key, info in manifest["tables"].items():
            f = path / info["file"]
            if not f.is_file():
                raise ValueError(f"{path}: table file {info['file']!r} listed in {MANIFEST} is missing.")
            df = _lists_back(pd.read_parquet(f))
            if info.get("index"):
                df = df.set_index(info["index"])
            tables[key] = df
        core = {k: tables.pop(k, None) for k in CORE_TABLES}
        reports = core.pop("reports")
        if reports is None:
            raise ValueError(f"{path}: manifest has no 'reports' table.")
        return cls(reports, core.pop("images"), name=manifest.get("name"), root=manifest.get("root"), **core, **tables)

    # -- splits -------------------------------------------------------
    def subset(self, report_ids: Iterable[Any], name: str | None = None) -> Corpus:
        """The corpus restricted to ``report_ids`` (every table follows)."""
        keep = set(report_ids)
        out = Corpus.__new__(Corpus)
        out.name = name or self.name
        out.root = self.root
        out.tables = {}
        for key, df in self.tables.items():
            if "report_id" in df.columns and key != "quarantine":
                out.tables[key] = df[df["report_id"].isin(keep)].copy()
            else:
                out.tables[key] = df.copy()
        return out

    def split(
        self,
        by: str = "patient_id",
        sizes: Sequence[float] | Mapping[str, float] = (0.8, 0.1, 0.1),
        *,
        column: str | None = None,
        random_state: int | None = 0,
    ) -> dict[str, Corpus]:
        """Leak-free train/dev/test splits: all reports of one ``by`` group land in one split.

        Parameters
        ----------
        by : str, default "patient_id"
            Reports column whose groups are never split (patient, case, study).
        sizes : sequence of float or mapping, default (0.8, 0.1, 0.1)
            Fractions of groups for ``train``, ``dev``, ``test`` (or a mapping
            ``{split_name: fraction}``); normalised to sum to 1.
        column : str, optional
            Use an existing reports column (e.g. MedPix's published ``split``)
            instead of a random split; ``by`` groups must still be pure.
        random_state : int, optional
            Seed for the group shuffle.

        Returns
        -------
        dict of str -> Corpus
        """
        rep = self.reports
        if by not in rep.columns:
            raise ValueError(f"Corpus.split: 'by' must be a reports column; {by!r} not in {list(rep.columns)}.")
        if column is not None:
            if column not in rep.columns:
                raise ValueError(f"Corpus.split: column {column!r} not in reports columns {list(rep.columns)}.")
            impure = rep.groupby(by)[column].nunique()
            impure = impure[impure > 1]
            if len(impure):
                raise ValueError(
                    f"Corpus.split: column {column!r} puts {len(impure)} {by} group(s) in more than one split, "
                    f"e.g. {impure.index[:5].tolist()}."
                )
            return {
                str(name): self.subset(grp["report_id"], name=f"{self.name}[{name}]")
                for name, grp in rep.groupby(column, sort=True)
            }
        if isinstance(sizes, Mapping):
            names, fracs = list(sizes), np.asarray(list(sizes.values()), dtype=float)
        else:
            fracs = np.asarray(list(sizes), dtype=float)
            names = ["train", "dev", "test"][: len(fracs)] if len(fracs) <= 3 else [f"split{i}" for i in range(len(fracs))]
        if (fracs < 0).any() or fracs.sum() <= 0:
            raise ValueError(f"Corpus.split: sizes must be non-negative and not all zero; got {list(fracs)}.")
        fracs = fracs / fracs.sum()
        groups = pd.Series(rep[by].astype(str).unique())
        rng = np.random.default_rng(random_state)
        order = groups.iloc[rng.permutation(len(groups))].tolist()
        bounds = np.round(np.cumsum(fracs) * len(order)).astype(int)
        assign, start = {}, 0
        for name, stop in zip(names, bounds):
            for g in order[start:stop]:
                assign[g] = name
            start = stop
        split_of = rep[by].astype(str).map(assign)
        return {
            name: self.subset(rep.loc[split_of == name, "report_id"], name=f"{self.name}[{name}]") for name in names
        }


def concat(
    corpora: Sequence[Corpus] | Mapping[str, Corpus],
    *,
    sources: Sequence[str] | None = None,
    prefix_ids: bool = False,
    name: str | None = None,
) -> Corpus:
    """Merge corpora from several institutions or archives into one.

    Every table gets a ``source`` column. Ids must stay unique: if two
    corpora share a ``report_id``/``image_id`` (or a patient id, which would
    silently merge two people) a ``ValueError`` lists the collisions, unless
    ``prefix_ids=True``, which rewrites every id as ``"<source>:<id>"``.

    Parameters
    ----------
    corpora : sequence of Corpus or mapping of source name -> Corpus
    sources : sequence of str, optional
        Source names; default: the corpora's ``name`` (made unique).
    prefix_ids : bool, default False
        Prefix all ids with their source.
    name : str, optional
        Name of the merged corpus.

    Returns
    -------
    Corpus
    """
    if isinstance(corpora, Mapping):
        sources = list(corpora)
        corpora = list(corpora.values())
    corpora = list(corpora)
    if not corpora:
        raise ValueError("concat: need at least one Corpus, got none.")
    for i, c in enumerate(corpora):
        if not isinstance(c, Corpus):
            raise TypeError(f"concat: item {i} is a {type(c).__name__}, expected a radmine.Corpus.")
    if sources is None:
        sources, seen = [], {}
        for c in corpora:
            base = c.name
            seen[base] = seen.get(base, 0) + 1
            sources.append(base if seen[base] == 1 else f"{base}{seen[base]}")
    sources = [str(s) for s in sources]
    if len(sources) != len(corpora) or len(set(sources)) != len(sources):
        raise ValueError(f"concat: need one unique source name per corpus; got {sources}.")

    parts: dict[str, list[pd.DataFrame]] = {}
    for src, c in zip(sources, corpora):
        for key, df in c.tables.items():
            df = df.copy()
            if prefix_ids:
                for col in ID_COLUMNS.get(key, []):
                    if col in df.columns:
                        df[col] = df[col].map(lambda v, s=src: v if v is None or (isinstance(v, float) and np.isnan(v)) else f"{s}:{v}")
            if "source" in df.columns and key != "quarantine":
                df["source"] = df["source"].fillna(src)
            elif key == "quarantine" and "source" in df.columns:
                df["source"] = src + ":" + df["source"].astype(str)
            else:
                df["source"] = src
            if c.root is not None and key == "images" and "path" in df.columns:
                root = Path(c.root)
                df["path"] = df["path"].map(lambda p: p if p is None or pd.isna(p) or Path(p).is_absolute() else str(root / p))
            parts.setdefault(key, []).append(df)

    if not prefix_ids:
        for key, col in (("reports", "report_id"), ("images", "image_id"), ("reports", "patient_id")):
            frames = parts.get(key, [])
            owners: dict[Any, str] = {}
            clashes = []
            for src, df in zip(sources, frames):
                for v in pd.unique(df[col].dropna()) if col in df.columns else []:
                    if v in owners and owners[v] != src:
                        clashes.append((v, owners[v], src))
                    owners.setdefault(v, src)
            if clashes:
                shown = ", ".join(f"{v!r} ({a} and {b})" for v, a, b in clashes[:5])
                raise ValueError(
                    f"concat: {len(clashes)} {col} value(s) occur in more than one source: {shown}. "
                    f"Pass prefix_ids=True to rewrite ids as '<source>:<id>'."
                )
    merged = {key: pd.concat(frames, ignore_index=True, sort=False) for key, frames in parts.items()}
    core = {k: merged.pop(k, None) for k in CORE_TABLES}
    reports = core.pop("reports")
    images = core.pop("images")
    return Corpus(reports, images, name=name or "+".join(sources), **core, **merged)


def _lists_back(df: pd.DataFrame) -> pd.DataFrame:
    """Parquet returns list cells as numpy arrays; turn them back into lists (exact round trip)."""
    for col in df.columns:
        s = df[col]
        if s.dtype == object and s.map(lambda v: isinstance(v, np.ndarray)).any():
            df[col] = s.map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
    return df


def _check_table(key: str, df: pd.DataFrame) -> None:
    required = SCHEMA.get(key)
    if required is None:
        return
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"Corpus.{key} is missing required column(s) {missing}; it has {list(df.columns)}.")


def _counts(s: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in s.fillna("unknown").value_counts().items()}
