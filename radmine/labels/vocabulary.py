"""Finding vocabularies for weak labelling: data (JSON/YAML), not code.

A vocabulary file is a mapping::

    name: chest_xray                # required, str
    description: "..."              # optional
    version: 1                      # optional, int
    findings:                       # required, list of entries
      - name: cardiomegaly          # required, unique, the label column
        label: Cardiomegaly         # optional display name
        terms: [cardiomegaly, enlarged heart]   # phrases (case-insensitive)
        synonyms: [...]             # more phrases (same as terms)
        abbreviations: [CM]         # case-sensitive whole-word tokens
        patterns: ["heart (?:size )?is enlarged"]  # raw regular expressions
        exclusions: ["heart size is normal"]        # phrases/regexes ("re:...")
                                                    # whose matches are not this finding
        mesh: [Cardiomegaly, "Cardiac Shadow/enlarged"]  # MeSH heads (head[/qualifier])
        kind: finding               # "finding" (default) or "normal"
        blocks_normal: true         # a positive mention rules out "normal" (default true)
        description: "..."

Phrase matching: words are separated by any whitespace (or a hyphen), whole
words only, and the last word also matches its plural (``s``/``es``).
Exclusion entries starting with ``"re:"`` are regular expressions.

``kind: normal`` marks the single "no finding" entry; its terms are statements
of normality ("no acute cardiopulmonary disease") matched without negation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Finding", "Vocabulary", "load_vocabulary", "list_vocabularies", "VOCABULARY_DIR"]

VOCABULARY_DIR = Path(__file__).resolve().parent / "vocabularies"

_TOP_KEYS = {"name": str, "description": str, "version": int, "findings": list}
_LIST_KEYS = ("terms", "synonyms", "abbreviations", "patterns", "exclusions", "mesh")
_ENTRY_KEYS = {"name", "label", "description", "kind", "blocks_normal", *_LIST_KEYS}
_KINDS = ("finding", "normal")


@dataclass
class Finding:
    """One vocabulary entry (see the module docstring for the fields)."""

    name: str
    label: str = ""
    terms: list[str] = field(default_factory=list)
    synonyms: list[str] = field(default_factory=list)
    abbreviations: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    exclusions: list[str] = field(default_factory=list)
    mesh: list[str] = field(default_factory=list)
    kind: str = "finding"
    blocks_normal: bool = True
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.label:
            out["label"] = self.label
        for key in _LIST_KEYS:
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.kind != "finding":
            out["kind"] = self.kind
        if not self.blocks_normal:
            out["blocks_normal"] = False
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class Vocabulary:
    """A validated vocabulary: ``name`` and a list of :class:`Finding`."""

    name: str
    findings: list[Finding]
    description: str = ""
    version: int = 1
    source: str = "<dict>"

    @property
    def names(self) -> list[str]:
        """Finding names in file order (the label columns)."""
        return [f.name for f in self.findings]

    @property
    def normal(self) -> Finding | None:
        """The ``kind: normal`` entry, if any."""
        return next((f for f in self.findings if f.kind == "normal"), None)

    def __getitem__(self, name: str) -> Finding:
        for f in self.findings:
            if f.name == name:
                return f
        raise KeyError(f"Vocabulary {self.name!r} has no finding {name!r}; it has {self.names}.")

    def __len__(self) -> int:
        return len(self.findings)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (what a JSON/YAML file holds); ``load_vocabulary`` round-trips it."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["version"] = self.version
        out["findings"] = [f.to_dict() for f in self.findings]
        return out

    def to_frame(self):
        """One row per finding: ``name, label, kind, n_terms, mesh``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "name": [f.name for f in self.findings],
                "label": [f.label or f.name for f in self.findings],
                "kind": [f.kind for f in self.findings],
                "n_terms": [len(f.terms) + len(f.synonyms) + len(f.abbreviations) + len(f.patterns) for f in self.findings],
                "mesh": [list(f.mesh) for f in self.findings],
            }
        )

    def save(self, path: str | Path) -> Path:
        """Write the vocabulary as JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
        from radmine._io import atomic_write_text

        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))
        elif path.suffix.lower() == ".json":
            atomic_write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")
        else:
            raise ValueError(f"Vocabulary.save: path must end in .json, .yaml or .yml; got {str(path)!r}.")
        return path

    def __repr__(self) -> str:
        return f"Vocabulary(name={self.name!r}, n_findings={len(self.findings)}, source={self.source!r})"


def list_vocabularies() -> list[str]:
    """Names of the built-in vocabularies (``load_vocabulary(name)`` loads one)."""
    return sorted(p.stem for p in VOCABULARY_DIR.glob("*.json"))


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"Vocabulary file {str(path)!r} does not exist.")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        if suffix == ".json":
            return json.loads(text)
    except Exception as exc:  # parse errors of either format
        raise ValueError(f"Vocabulary file {str(path)!r} could not be parsed: {exc}") from None
    raise ValueError(f"Vocabulary file {str(path)!r} must end in .json, .yaml or .yml.")


def _check_regex(value: str, where: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{where}: {value!r} is not a valid regular expression ({exc}).") from None


def _validate(data: Any, source: str) -> Vocabulary:
    if not isinstance(data, Mapping):
        raise ValueError(f"Vocabulary {source}: expected a mapping with 'name' and 'findings', got {type(data).__name__}.")
    unknown = set(data) - set(_TOP_KEYS)
    if unknown:
        raise ValueError(
            f"Vocabulary {source}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}."
        )
    for key in ("name", "findings"):
        if key not in data:
            raise ValueError(f"Vocabulary {source}: missing required key {key!r}.")
    for key, typ in _TOP_KEYS.items():
        if key in data and (not isinstance(data[key], typ) or isinstance(data[key], bool)):
            raise ValueError(
                f"Vocabulary {source}: key {key!r} must be {typ.__name__}, got {type(data[key]).__name__}."
            )
    findings: list[Finding] = []
    seen: set[str] = set()
    for i, entry in enumerate(data["findings"]):
        where = f"Vocabulary {source}, findings[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: each entry must be a mapping, got {type(entry).__name__}.")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: 'name' must be a non-empty string, got {name!r}.")
        where = f"Vocabulary {source}, entry {name!r}"
        unknown = set(entry) - _ENTRY_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}.")
        if name in seen:
            raise ValueError(f"{where}: duplicate finding name.")
        seen.add(name)
        kw: dict[str, Any] = {"name": name}
        for key in _LIST_KEYS:
            if key in entry:
                val = entry[key]
                if isinstance(val, str) or not isinstance(val, list) or not all(isinstance(v, str) and v.strip() for v in val):
                    raise ValueError(f"{where}: {key!r} must be a list of non-empty strings, got {val!r}.")
                kw[key] = list(val)
        for key in ("label", "description"):
            if key in entry:
                if not isinstance(entry[key], str):
                    raise ValueError(f"{where}: {key!r} must be a string, got {type(entry[key]).__name__}.")
                kw[key] = entry[key]
        if "kind" in entry:
            if entry["kind"] not in _KINDS:
                raise ValueError(f"{where}: 'kind' must be one of {list(_KINDS)}, got {entry['kind']!r}.")
            kw["kind"] = entry["kind"]
        if "blocks_normal" in entry:
            if not isinstance(entry["blocks_normal"], bool):
                raise ValueError(f"{where}: 'blocks_normal' must be true or false, got {entry['blocks_normal']!r}.")
            kw["blocks_normal"] = entry["blocks_normal"]
        for pat in kw.get("patterns", []):
            _check_regex(pat, f"{where}, patterns")
        for pat in kw.get("exclusions", []):
            if pat.startswith("re:"):
                _check_regex(pat[3:], f"{where}, exclusions")
        f = Finding(**kw)
        if f.kind == "finding" and not (f.terms or f.synonyms or f.abbreviations or f.patterns):
            raise ValueError(f"{where}: needs at least one of 'terms', 'synonyms', 'abbreviations', 'patterns'.")
        findings.append(f)
    if not findings:
        raise ValueError(f"Vocabulary {source}: 'findings' is empty.")
    if sum(f.kind == "normal" for f in findings) > 1:
        raise ValueError(f"Vocabulary {source}: at most one entry may have kind 'normal'.")
    return Vocabulary(
        name=data["name"],
        findings=findings,
        description=data.get("description", ""),
        version=data.get("version", 1),
        source=source,
    )


#: Modalities that ``vocabulary="auto"`` reads as projection radiographs (DICOM codes).
XR_MODALITIES = frozenset({"CR", "DX", "XR"})


def auto_vocabulary(reports: Any = None) -> str:
    """The built-in vocabulary that ``vocabulary="auto"`` picks for ``reports``.

    One rule for :class:`~radmine.labels.labeler.WeakLabeler`,
    :func:`~radmine.labels.labeler.label_reports`, ``radmine label`` and
    ``radmine mine``: ``"chest_xray"`` when at least half of the reports with a
    known ``modality`` are radiographs (:data:`XR_MODALITIES`), ``"ct_mr"`` when
    most are other modalities, and ``"chest_xray"`` when no modality is known
    (plain texts, tables without a ``modality`` column).

    Parameters
    ----------
    reports : Corpus, DataFrame or anything else, optional
        A Corpus or a reports table with a ``modality`` column.

    Returns
    -------
    str
        ``"chest_xray"`` or ``"ct_mr"``.
    """
    import pandas as pd

    table = getattr(reports, "reports", reports)
    if not isinstance(table, pd.DataFrame) or "modality" not in table.columns:
        return "chest_xray"
    mods = table["modality"].dropna().astype(str).str.strip().str.upper()
    mods = mods[mods != ""]
    if not len(mods):
        return "chest_xray"
    return "chest_xray" if mods.isin(XR_MODALITIES).mean() >= 0.5 else "ct_mr"


def load_vocabulary(vocabulary: str | Path | Mapping[str, Any] | Vocabulary = "chest_xray") -> Vocabulary:
    """Load and validate a vocabulary.

    Parameters
    ----------
    vocabulary : str, Path, dict or Vocabulary, default "chest_xray"
        A built-in name (see :func:`list_vocabularies`), a path to a
        ``.json``/``.yaml``/``.yml`` file, a dict in the file format, or an
        already loaded :class:`Vocabulary` (returned as is).

    Returns
    -------
    Vocabulary

    Raises
    ------
    ValueError
        Unknown key or bad type, naming the file and the entry.
    FileNotFoundError
        A path that does not exist.
    KeyError
        An unknown built-in name.

    Examples
    --------
    >>> vocab = load_vocabulary({"name": "mini", "findings": [
    ...     {"name": "effusion", "terms": ["pleural effusion", "effusion"]}]})
    >>> vocab.names
    ['effusion']
    """
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    if isinstance(vocabulary, Mapping):
        return _validate(vocabulary, "<dict>")
    if isinstance(vocabulary, (str, Path)):
        s = str(vocabulary)
        if isinstance(vocabulary, str) and re.fullmatch(r"[A-Za-z0-9_\-]+", s) and not Path(s).exists():
            path = VOCABULARY_DIR / f"{s}.json"
            if not path.is_file():
                raise KeyError(f"No built-in vocabulary {s!r}; built-in ones: {list_vocabularies()} (or pass a file path).")
            return _validate(_read_file(path), f"{s!r} ({path})")
        path = Path(s)
        return _validate(_read_file(path), repr(str(path)))
    raise TypeError(
        f"vocabulary must be a built-in name, a path, a dict or a Vocabulary; got {type(vocabulary).__name__}."
    )
