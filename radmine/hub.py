"""The Hugging Face model contract, once: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

:class:`HubMixin` gives every radmine model that can be saved
(:class:`~radmine.TopicModel`, :class:`~radmine.ImageTextModel`,
:class:`~radmine.ImageEmbedder`) the methods Hugging Face users know, on top of
the model's own folder format (JSON + safetensors + parquet, never pickle):

* ``model.save_pretrained(folder)`` writes the model files, a ``config.json``
  naming the radmine class and version, and a model card (``README.md`` with
  YAML metadata: library, tags, metrics; a training-data summary made of
  counts only, never report text; intended use and limits).
* ``Model.from_pretrained(folder_or_hub_id)`` loads a local folder, or
  downloads a Hub repository with :func:`huggingface_hub.snapshot_download`
  (cached; ``local_files_only=True`` for offline use) and loads it.
* ``model.push_to_hub("user/name")`` creates the repository if needed and
  uploads the saved folder with :meth:`huggingface_hub.HfApi.upload_folder`.

``transformers.AutoModel`` cannot load these folders (they are not
transformers architectures); use the radmine class's ``from_pretrained``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
LIBRARY = "radmine"

_INTENDED_USE = (
    "Research on radiology report and key-image mining: exploring, grouping and retrieving images and report "
    "text, and weak supervision for other models. It is not a medical device and was not validated for "
    "diagnosis or patient care; its outputs are statistical summaries of the training reports and inherit "
    "their biases (one institution's language, its patient population, its de-identification)."
)


class HubMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for a radmine model.

    A class using it provides ``save(path)`` and ``load(path, **kwargs)``
    (its own folder format); the mixin adds ``config.json`` and the model
    card, and resolves Hub ids. Subclasses may override
    :meth:`_model_card_info` to describe themselves.
    """

    # -- saving -------------------------------------------------------------
    def _save_folder(self, path: Path) -> None:
        self.save(path)

    @classmethod
    def _load_folder(cls, path: Path, **kwargs: Any):
        return cls.load(path, **kwargs)

    def save_pretrained(self, save_directory: str | Path, *, model_card: bool = True, metrics: dict[str, float] | None = None,
                        license: str | None = None, datasets: list[str] | None = None, push_to_hub: bool = False,
                        repo_id: str | None = None, **push_kwargs: Any) -> Path:
        """Save the model, ``config.json`` and a model card to a folder (the Hugging Face layout).

        Parameters
        ----------
        save_directory : str or Path
        model_card : bool, default True
            Write ``README.md`` (YAML metadata + description). An existing
            ``README.md`` is replaced.
        metrics : dict of str -> float, optional
            Evaluation results to put on the card (e.g. ``model.score(corpus, "test")``).
        license : str, optional
            SPDX-style license id for the card metadata (e.g. ``"cc-by-nc-4.0"``).
        datasets : list of str, optional
            Names or Hub ids of the training datasets, for the card metadata.
        push_to_hub : bool, default False
            Also upload the folder (see :meth:`push_to_hub`).
        repo_id : str, optional
            Hub repository for ``push_to_hub`` (default: the folder name).

        Returns
        -------
        Path
            The folder.
        """
        import radmine
        from radmine._io import atomic_write_json

        path = Path(save_directory)
        path.mkdir(parents=True, exist_ok=True)
        self._save_folder(path)
        atomic_write_json(path / CONFIG_NAME, {"library_name": LIBRARY, "radmine_class": type(self).__name__,
                                               "radmine_version": radmine.__version__})
        if model_card:
            write_model_card(self, path, metrics=metrics, license=license, datasets=datasets)
        if push_to_hub:
            self.push_to_hub(repo_id or path.name, model_card=model_card, metrics=metrics, license=license,
                             datasets=datasets, **push_kwargs)
        return path

    # -- loading ------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, *, revision: str | None = None,
                        cache_dir: str | Path | None = None, force_download: bool = False, token: str | bool | None = None,
                        local_files_only: bool = False, **load_kwargs: Any):
        """Load a model from a local folder or a Hugging Face Hub repository.

        Parameters
        ----------
        pretrained_model_name_or_path : str or Path
            A folder written by :meth:`save_pretrained` (or ``save``), or a Hub
            repo id such as ``"user/radmine-topics"``.
        revision, cache_dir, force_download, token, local_files_only
            Passed to :func:`huggingface_hub.snapshot_download` for a Hub id.
        **load_kwargs
            Passed to the class's ``load`` (e.g. ``device="cpu"``).

        Raises
        ------
        ValueError
            The folder holds another radmine class (its ``config.json`` says which).
        FileNotFoundError
            Not a folder and not a downloadable repository.
        """
        path = Path(pretrained_model_name_or_path)
        if not path.is_dir():
            from huggingface_hub import snapshot_download
            from huggingface_hub.utils import HFValidationError, validate_repo_id

            name = str(pretrained_model_name_or_path)
            try:
                if path.exists() or name.startswith((".", "/", "~")):
                    raise HFValidationError(name)
                validate_repo_id(name)
            except HFValidationError:
                raise FileNotFoundError(f"{cls.__name__}.from_pretrained: {name!r} is neither a folder nor a Hub repo id "
                                        "('user/name').") from None

            path = Path(snapshot_download(name, revision=revision, cache_dir=cache_dir, force_download=force_download,
                                          token=token, local_files_only=local_files_only,
                                          library_name=LIBRARY))
        config = path / CONFIG_NAME
        if config.is_file():
            saved = json.loads(config.read_text(encoding="utf-8")).get("radmine_class")
            if saved is not None and saved != cls.__name__:
                raise ValueError(f"{path} holds a radmine {saved}, not a {cls.__name__}; load it with "
                                 f"radmine.{saved}.from_pretrained.")
        return cls._load_folder(path, **load_kwargs)

    # -- uploading ----------------------------------------------------------
    def push_to_hub(self, repo_id: str, *, commit_message: str = "Upload radmine model", private: bool | None = None,
                    token: str | bool | None = None, revision: str | None = None, create_pr: bool = False,
                    model_card: bool = True, metrics: dict[str, float] | None = None, license: str | None = None,
                    datasets: list[str] | None = None) -> str:
        """Save to a temporary folder and upload it to the Hugging Face Hub.

        Needs network access and a token (``huggingface-cli login`` or ``token=``).
        Check the files first: a model trained on reports may hold report
        phrases (e.g. ``ImageTextModel``'s describe bank); upload only what
        your data agreement allows.

        Returns
        -------
        str
            The URL of the commit.
        """
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, model_card=model_card, metrics=metrics, license=license, datasets=datasets)
            info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message, revision=revision,
                                     create_pr=create_pr, repo_type="model")
        return str(getattr(info, "commit_url", info))

    # -- card ---------------------------------------------------------------
    def _model_card_info(self) -> dict[str, Any]:
        """``summary`` (str), ``tags`` (list), ``pipeline_tag`` (str or None), ``training`` (dict of counts),
        ``metrics`` (dict), ``usage`` (str): what the card says about this model."""
        return {"summary": type(self).__name__, "tags": [], "pipeline_tag": None, "training": {}, "metrics": {},
                "usage": ""}


# ------------------------------------------------------------------ model card
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def model_card_text(model: Any, *, metrics: dict[str, float] | None = None, license: str | None = None,
                    datasets: list[str] | None = None) -> str:
    """The model card (``README.md``) of a radmine model: YAML metadata, then Markdown.

    The training-data section lists counts and settings only (documents,
    images, vocabulary size, ...), never report text.
    """
    from huggingface_hub import ModelCardData

    import radmine

    info = model._model_card_info()
    all_metrics = {**info.get("metrics", {}), **(metrics or {})}
    data = ModelCardData(library_name=LIBRARY, license=license, datasets=datasets,
                         tags=["radmine", "radiology", *info.get("tags", [])], pipeline_tag=info.get("pipeline_tag"))
    name = type(model).__name__
    lines = [f"---\n{data.to_yaml()}\n---", f"# radmine {name}", "", info["summary"], "",
             "## How to use", "", "```python", "import radmine", "",
             f'model = radmine.{name}.from_pretrained("<this repo id or folder>")', info.get("usage", "").strip(), "```",
             "", "## Training data", "",
             "Counts and settings only; no report text is stored on this card.", "",
             "| | |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in info.get("training", {}).items()]
    lines += ["", "## Metrics", ""]
    if all_metrics:
        lines += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in all_metrics.items()]
    else:
        lines.append("No evaluation was recorded; pass `metrics=` to `save_pretrained` to add them.")
    lines += ["", "## Intended use and limits", "", _INTENDED_USE, "",
              f"Saved with radmine {radmine.__version__}. Files: JSON parameters, safetensors arrays and parquet "
              "tables (no pickle).", ""]
    return "\n".join(lines)


def write_model_card(model: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`model_card_text` to ``path/README.md``."""
    from radmine._io import atomic_write_text

    out = Path(path) / CARD_NAME
    atomic_write_text(out, model_card_text(model, **kwargs))
    return out


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            continue
        out[k] = v.item() if isinstance(v, np.generic) else v
    return out


# ------------------------------------------------------------------ per-class cards
class TopicModelHubMixin(HubMixin):
    """:class:`HubMixin` with the model card of a topic model."""

    def _model_card_info(self) -> dict[str, Any]:
        from radmine._validation import check_is_fitted

        check_is_fitted(self, "components_")
        sizes = self.get_topic_info()["size"]
        return {
            "summary": (f"An LDA topic model ({self.n_topics_} topics over {self.n_features_} terms, "
                        f"{self.backend} backend, unit={self.unit!r}) fitted with radmine on radiology reports. "
                        "`transform` gives each new report's topic mixture; `get_topic_info()` names the topics."),
            "tags": ["topic-modeling", "lda"],
            "pipeline_tag": None,
            "training": _clean({"documents": len(self.documents_), "terms in vocabulary": self.n_features_,
                                "topics": self.n_topics_, "unit": self.unit, "backend": self.backend,
                                "largest topic (documents)": int(sizes.max()) if len(sizes) else None,
                                "smallest topic (documents)": int(sizes.min()) if len(sizes) else None,
                                "fit seconds": getattr(self, "fit_seconds_", None)}),
            "metrics": {},
            "usage": "theta = model.transform(corpus)          # (n_reports, n_topics)\nmodel.get_topic_info()",
        }


class ImageTextModelHubMixin(HubMixin):
    """:class:`HubMixin` with the model card of an image-text dual encoder."""

    def _model_card_info(self) -> dict[str, Any]:
        from radmine._validation import check_is_fitted

        check_is_fitted(self, "module_")
        h = self.history_
        metrics: dict[str, float] = {}
        if len(h) and "epoch" in h:
            best = h[h["epoch"] == self.best_epoch_]
            row = best.iloc[0] if len(best) else h.iloc[-1]
            metrics = {f"{k} (epoch {int(row['epoch'])})": float(row[k]) for k in h.columns
                       if k.startswith("dev_") and np.isfinite(row[k])}
        enc = self.text_encoder if isinstance(self.text_encoder, str) else type(self.text_encoder).__name__
        return {
            "summary": (f"A dual encoder that maps key images and report sentences into one "
                        f"{self.dim_}-dimensional space ({self.objective} objective, image backbone "
                        f"{self.backbone!r}, text encoder {enc!r}), trained with radmine. Use it for image -> "
                        "text and text -> image retrieval."),
            "tags": ["image-text-retrieval", "dual-encoder", "medical-imaging"],
            "pipeline_tag": "feature-extraction",
            "training": _clean({"image-text pairs": len(self.pairs_), "images": len(self.image_ids_),
                                "text source": self.text_source, "text encoder": enc, "backbone": self.backbone,
                                "epochs run": int(h["epoch"].max()) if len(h) else None,
                                "best epoch": int(self.best_epoch_)}),
            "metrics": _clean(metrics),
            "usage": "z_img = model.encode_images(paths)\nz_txt = model.encode_texts([\"small left pleural effusion\"])",
        }


class ImageEmbedderHubMixin(HubMixin):
    """:class:`HubMixin` for :class:`~radmine.ImageEmbedder`: settings as JSON, backbone weights as safetensors."""

    def _save_folder(self, path: Path) -> None:
        import inspect

        from safetensors.torch import save as st_save

        import radmine
        from radmine._io import atomic_write_bytes, atomic_write_json

        self._ensure_fitted()
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        params = {n: getattr(self, n) for n in names}
        params["cache_dir"] = None  # a local path; the loader chooses its own
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in self.backbone_.state_dict().items()}
        atomic_write_bytes(path / "backbone.safetensors", st_save(tensors))
        atomic_write_json(path / "image_embedder.json", {"format": "radmine-image-embedder",
                                                         "radmine_version": radmine.__version__,
                                                         "params": params, "settings": self.settings_})

    @classmethod
    def _load_folder(cls, path: Path, **kwargs: Any):
        from safetensors.torch import load_file

        from radmine._io import read_saved_meta

        meta = read_saved_meta(path, "image_embedder.json", "radmine-image-embedder", "radmine ImageEmbedder")
        params = dict(meta["params"])
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(f"ImageEmbedder.from_pretrained got unknown parameter(s) {unknown}; "
                            f"valid: {sorted(params)}.")
        params.update(kwargs)
        emb = cls(**params)
        pretrained = emb.pretrained
        emb.pretrained = False  # the saved weights replace any init; no weights package needed
        try:
            emb.fit()
        finally:
            emb.pretrained = pretrained
        state = load_file(str(path / "backbone.safetensors"), device="cpu")
        emb.backbone_.load_state_dict(state, strict=True)
        emb.backbone_.to(emb.device_).eval()
        emb.settings_ = dict(meta["settings"])  # same cache keys as the saved embedder
        return emb

    def _model_card_info(self) -> dict[str, Any]:
        self._ensure_fitted()
        s = self.settings_
        return {
            "summary": (f"An image feature extractor for radiology images: backbone {s['backbone']!r} "
                        f"(weights {s.get('weights_id')!r}), {s['dim']}-dimensional features "
                        f"({s['features']}, {s['pooling']} pooling) from {s['image_size']}-pixel inputs with radmine's "
                        f"preprocessing (channels {s['channels']!r}, crop {s['crop']!r}, intensity {s['intensity']!r}, "
                        f"resize {s['resize']!r})."),
            "tags": ["image-feature-extraction", "medical-imaging"],
            "pipeline_tag": "image-feature-extraction",
            "training": _clean({"training": "none in radmine: the backbone's own pretraining (or a seeded random init)",
                                **{k: s[k] for k in ("backbone", "weights_id", "dim", "image_size", "features", "pooling",
                                                     "channels", "resize", "intensity", "crop", "tta") if k in s}}),
            "metrics": {},
            "usage": "X = model.transform(corpus)             # (n_images, dim)",
        }
