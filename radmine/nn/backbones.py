"""CNN backbones split into stages, for partial fine-tuning.

A backbone ``b`` of :func:`radmine.images.backbones.build_backbone` computes
``pool(head(blocks(stem(x))))``. :func:`backbone_stages` returns those three
parts; :func:`set_trainable_blocks` freezes all but the last ``n`` blocks and
the head; :func:`backbone_prefix` runs the frozen part (once per image, its
maps can be cached) and :func:`backbone_tail` the trainable rest.
:func:`freeze_batchnorm` keeps BatchNorm statistics fixed while fine-tuning on
small batches.

Supported: ``"efficientnet_lite0"`` (stem + 16 MBConv blocks + 1x1 conv head)
and ``"random_cnn"`` (4 conv + ReLU layers).
"""

from __future__ import annotations

from collections.abc import Callable


def freeze_batchnorm(module) -> None:
    """Put every BatchNorm layer of ``module`` in eval mode (None: nothing to do).

    Call it after ``module.train()``: fine-tuning on small batches then keeps
    the pretrained running statistics.
    """
    import torch.nn as nn

    if module is None:
        return
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)):
            m.eval()


def backbone_stages(backbone) -> tuple[Callable, list, Callable]:
    """``(stem, blocks, head)`` of a CNN backbone: ``backbone(x) == head(blocks(stem(x)))``.

    Parameters
    ----------
    backbone : torch.nn.Module
        A backbone of :func:`radmine.images.backbones.build_backbone` with
        separable blocks (``"efficientnet_lite0"`` or ``"random_cnn"``).

    Returns
    -------
    stem : callable
        Pixels ``(n, 3, S, S)`` to the first block's input.
    blocks : list of torch.nn.Module
    head : callable
        Last block's maps to pooled features ``(n, dim)`` (the head includes
        the backbone's global pooling).
    """
    import torch.nn as nn

    from radmine.images.backbones import pool_feature_map

    pooling = getattr(backbone, "pooling", "avg")
    if hasattr(backbone, "stages"):
        stem, blocks, head_map = backbone.stages()

        def head(x):
            return pool_feature_map(head_map(x), pooling)

        return stem, blocks, head
    feats = getattr(backbone, "features", None)
    if isinstance(feats, nn.Sequential):
        layers = list(feats)
        blocks = [nn.Sequential(layers[i], layers[i + 1]) if i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU)
                  else layers[i] for i in range(0, len(layers), 2)]
        return (lambda x: x), blocks, (lambda x: pool_feature_map(x, pooling))
    raise ValueError(
        f"train_backbone_blocks needs a CNN backbone with separable blocks ('efficientnet_lite0' or 'random_cnn'); "
        f"{getattr(backbone, 'name', type(backbone).__name__)!r} has none (use finetune_backbone=True instead)."
    )


def set_trainable_blocks(backbone, n_blocks: int) -> None:
    """Freeze ``backbone`` except its last ``n_blocks`` blocks and its head (``n_blocks=0``: head only).

    Parameters
    ----------
    backbone : torch.nn.Module
        See :func:`backbone_stages`.
    n_blocks : int
        Between 0 and the number of blocks.
    """
    _, blocks, _ = backbone_stages(backbone)
    if not 0 <= n_blocks <= len(blocks):
        raise ValueError(f"train_backbone_blocks must be between 0 and {len(blocks)} for this backbone; got {n_blocks}.")
    for p in backbone.parameters():
        p.requires_grad_(False)
    tail = blocks[len(blocks) - n_blocks :]
    head_params = backbone.head_parameters() if hasattr(backbone, "head_parameters") else []
    for m in tail:
        for p in m.parameters():
            p.requires_grad_(True)
    for p in head_params:
        p.requires_grad_(True)


def backbone_prefix(backbone, n_blocks: int, x):
    """Feature maps of a pixel batch ``(n, 3, S, S)`` before the last ``n_blocks`` blocks: ``(n, C, h, w)``."""
    stem, blocks, _ = backbone_stages(backbone)
    x = stem(x)
    for b in blocks[: len(blocks) - n_blocks]:
        x = b(x)
    return x


def backbone_tail(backbone, n_blocks: int, maps):
    """Pooled features ``(n, dim)`` from prefix maps ``(n, C, h, w)``: the last ``n_blocks`` blocks, then the head."""
    _, blocks, head = backbone_stages(backbone)
    x = maps
    for b in blocks[len(blocks) - n_blocks :]:
        x = b(x)
    return head(x)
