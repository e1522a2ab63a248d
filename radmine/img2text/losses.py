"""The training losses of :class:`radmine.ImageTextModel`.

* :func:`clip_loss` -- symmetric InfoNCE over a batch (CLIP; Radford et al. 2021);
* :func:`regression_loss` -- ``1 - cos`` or MSE to the text vector (Shin et al., CVPR 2015);
* :func:`towers_loss` -- the one an :class:`~radmine.img2text.towers.ImageTextTowers` trains with.
"""

from __future__ import annotations

#: Largest logit scale of the contrastive loss (temperature >= 0.01).
MAX_LOGIT_SCALE = 100.0


def clip_loss(image_emb, text_emb, logit_scale):
    """Symmetric InfoNCE: row ``i`` of ``image_emb`` matches row ``i`` of ``text_emb``.

    Parameters
    ----------
    image_emb, text_emb : torch.Tensor of shape (n, d)
        Not necessarily normalised (they are L2-normalised here).
    logit_scale : torch.Tensor
        Log of the inverse temperature (its exp is capped at :data:`MAX_LOGIT_SCALE`).

    Returns
    -------
    torch.Tensor
        Scalar: mean of the image->text and text->image cross-entropies.
    """
    import torch
    import torch.nn.functional as F

    zi, zt = F.normalize(image_emb, dim=1), F.normalize(text_emb, dim=1)
    logits = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE) * zi @ zt.T
    labels = torch.arange(len(zi), device=zi.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def regression_loss(pred, target, kind: str = "cosine"):
    """Shin's regression loss of predicted text vectors ``(n, d)`` against the targets ``(n, d)``.

    Parameters
    ----------
    pred, target : torch.Tensor of shape (n, d)
    kind : {"cosine", "mse"}, default "cosine"
        ``mean(1 - cos)`` or the mean squared error.
    """
    import torch.nn.functional as F

    if kind == "mse":
        return F.mse_loss(pred, target)
    return (1 - F.cosine_similarity(pred, target, dim=1)).mean()


def towers_loss(module, image_emb, text_inputs, *, objective: str, kind: str = "cosine"):
    """The loss of one batch of image embeddings and raw text inputs.

    Parameters
    ----------
    module : ImageTextTowers
    image_emb : torch.Tensor of shape (n, out)
        ``module.image(features)``.
    text_inputs : torch.Tensor of shape (n, txt_dim)
        Text-encoder vectors (the regression targets, or the text head's inputs).
    objective : {"contrastive", "regression"}
    kind : {"cosine", "mse"}
        Regression loss.
    """
    if objective == "regression":
        return regression_loss(image_emb, text_inputs, kind)
    return clip_loss(image_emb, module.text(text_inputs), module.logit_scale)
