"""The two towers of :class:`radmine.ImageTextModel` as one torch module.

Image tower: backbone features (frozen, or from a trained CNN) standardised,
then an MLP projection head. Text tower: text-encoder vectors standardised,
then an MLP head (contrastive), or the vectors themselves (regression: the
image head predicts them). A learnable logit scale serves the InfoNCE loss.

Imports torch at module level; :mod:`radmine.img2text.model` imports this
module only when it builds or loads a model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from radmine.nn.backbones import freeze_batchnorm


def mlp(n_in: int, hidden: int, n_out: int, dropout: float, input_dropout: float = 0.0) -> nn.Sequential:
    """A projection head: ``[Dropout(input_dropout)] -> Linear -> GELU -> Dropout -> Linear``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output sizes.
    hidden : int
        Hidden units (0: one linear layer).
    dropout : float
        Dropout after the hidden layer.
    input_dropout : float, default 0.0
        Dropout on the inputs (no layer when 0).

    Returns
    -------
    torch.nn.Sequential mapping ``(n, n_in)`` to ``(n, n_out)``
    """
    first = [nn.Dropout(input_dropout)] if input_dropout > 0 else []
    if hidden == 0:
        return nn.Sequential(*first, nn.Linear(n_in, n_out))
    return nn.Sequential(*first, nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))


class ImageTextTowers(nn.Module):
    """Image head (+ optional trained backbone) and text head (+ optional trained transformer).

    Parameters
    ----------
    img_dim : int
        Size of the backbone features.
    txt_dim : int
        Size of the text encoder's vectors.
    objective : {"contrastive", "regression"}
        Contrastive: both heads project to ``embed_dim``; regression: the
        image head predicts the ``txt_dim`` text vector and there is no text head.
    embed_dim, hidden_dim : int
    dropout, input_dropout : float
    temperature : float
        Initial InfoNCE temperature (``logit_scale = log(1 / temperature)``;
        frozen for regression).
    backbone : torch.nn.Module, optional
        A CNN trained with the heads (its BatchNorm statistics stay fixed).
    text_module : torch.nn.Module, optional
        A transformer whose last layers are trained with the heads.

    Attributes
    ----------
    img_mean, img_std : buffer of shape (img_dim,)
    txt_mean, txt_std : buffer of shape (txt_dim,)
        Standardisation of the inputs (set from the training rows).
    """

    def __init__(self, img_dim: int, txt_dim: int, *, objective: str, embed_dim: int, hidden_dim: int,
                 dropout: float, temperature: float, backbone=None, text_module=None,
                 input_dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.text_module = text_module
        out = txt_dim if objective == "regression" else embed_dim
        self.register_buffer("img_mean", torch.zeros(img_dim))
        self.register_buffer("img_std", torch.ones(img_dim))
        self.register_buffer("txt_mean", torch.zeros(txt_dim))
        self.register_buffer("txt_std", torch.ones(txt_dim))
        self.image_head = mlp(img_dim, hidden_dim, out, dropout, input_dropout)
        self.text_head = mlp(txt_dim, hidden_dim, embed_dim, dropout, input_dropout) if objective == "contrastive" else None
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        if objective == "regression":
            self.logit_scale.requires_grad_(False)

    def train(self, mode: bool = True):
        """Train mode, except the backbone's BatchNorm layers (small batches keep their statistics)."""
        super().train(mode)
        freeze_batchnorm(self.backbone)
        return self

    def image(self, feats):
        """Image embeddings ``(n, out)`` of backbone features ``(n, img_dim)`` (not normalised)."""
        return self.image_head((feats - self.img_mean) / self.img_std)

    def text(self, feats):
        """Text embeddings of text vectors ``(n, txt_dim)`` (regression: the vectors unchanged)."""
        if self.text_head is None:
            return feats
        return self.text_head((feats - self.txt_mean) / self.txt_std)

    def param_groups(self, lr: float, finetune_lr: float) -> list[dict]:
        """AdamW parameter groups: the heads (and temperature) at ``lr``, trained pretrained layers at ``finetune_lr``.

        The pretrained layers are the trainable parameters of ``backbone`` and
        ``text_module``. Groups without a trainable parameter are left out, so
        a model that trains its heads only has one group, in the order of
        ``parameters()``.
        """
        pretrained, heads = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (pretrained if name.startswith(("backbone.", "text_module.")) else heads).append(p)
        return [{"params": ps, "lr": float(rate)} for ps, rate in ((heads, lr), (pretrained, finetune_lr)) if ps]

    def standardise(self, image_feats=None, text_feats=None) -> None:
        """Set the input standardisation from training rows (arrays ``(n, dim)``; None: unchanged)."""
        for feats, mean, std in ((image_feats, self.img_mean, self.img_std), (text_feats, self.txt_mean, self.txt_std)):
            if feats is not None:
                mean.copy_(torch.from_numpy(feats.mean(0)))
                std.copy_(torch.from_numpy(feats.std(0) + 1e-6))
