"""One member of an :class:`radmine.ImageTextModel`: its data, its weights and its training.

* :class:`PairData` -- the training pairs as row indices into the image
  inputs (an :class:`radmine.nn.ImageSource`) and the unique texts;
* :func:`build_member` -- a seeded :class:`~radmine.img2text.towers.ImageTextTowers`
  standardised on the training rows;
* :func:`train_member` -- its training with :class:`radmine.nn.Trainer`
  (group batches, the towers' loss, early stopping on dev Recall@K);
* :func:`encode_image_rows` / :func:`encode_text_rows` -- embeddings of input
  rows by one member or a seed ensemble (joined with
  :func:`radmine.img2text.ensemble.join_embeddings`).

A seed ensemble is ``n`` members built and trained by these functions with
seeds derived from the model's ``random_state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from radmine.base import derived_seed
from radmine.img2text.ensemble import join_embeddings
from radmine.img2text.metrics import recall_at_k
from radmine.nn.batches import group_batches
from radmine.nn.inputs import ImageSource
from radmine.nn.runtime import cpu_threads, local_torch_seed
from radmine.nn.trainer import Trainer


@dataclass
class PairData:
    """Image <-> text pairs as rows of the model's inputs.

    Attributes
    ----------
    source : ImageSource
        Backbone features of the images (row ``r`` = image ``r``).
    texts : list of str
        The unique texts.
    text_feats : torch.Tensor of shape (n_texts, txt_dim) or None
        Frozen text vectors on the device; None when transformer layers are
        trained (the texts are then tokenised per batch).
    text_encoder : fitted text encoder
    pair_image, pair_text : int ndarray of shape (n_pairs,)
        Image row and text row of each pair.
    train_rows, dev_rows : int ndarray
        Pairs used for training and for early stopping.
    groups : ndarray of shape (n_pairs,)
        Case of each pair (a batch never holds a case twice).
    device : torch.device
    """

    source: ImageSource
    texts: list
    text_feats: Any
    text_encoder: Any
    pair_image: np.ndarray
    pair_text: np.ndarray
    train_rows: np.ndarray
    dev_rows: np.ndarray
    groups: np.ndarray
    device: Any

    def text_inputs(self, rows):
        """Text-encoder vectors ``(len(rows), txt_dim)`` of text rows (differentiable when layers train)."""
        import torch

        if self.text_feats is not None:
            return self.text_feats[torch.as_tensor(rows, device=self.device)]
        enc = self.text_encoder
        return enc.forward_tokens(enc.tokenize_batch([self.texts[r] for r in rows]))

    def train_image_rows(self) -> list:
        """Image rows of the training pairs, sorted."""
        return sorted(set(self.pair_image[self.train_rows].tolist()))

    def train_text_rows(self) -> list:
        """Text rows of the training pairs, sorted."""
        return sorted(set(self.pair_text[self.train_rows].tolist()))


def member_seeds(random_state, member: int) -> tuple[int, Any]:
    """``(init seed, trainer random_state)`` of seed-ensemble member ``member``.

    Member 0 keeps the seeds of a single model; the others derive theirs
    from ``random_state``.
    """
    if member == 0:
        return derived_seed(random_state, 2), random_state
    return derived_seed(random_state, 1000 + member), derived_seed(random_state, 2000 + member)


def build_member(data: PairData, img_dim: int, txt_dim: int, *, seed: int, objective: str, embed_dim: int,
                 hidden_dim: int, dropout: float, input_dropout: float, temperature: float, backbone=None,
                 text_module=None):
    """A new member: towers initialised under ``seed``, inputs standardised on the training rows.

    Returns
    -------
    ImageTextTowers on ``data.device``
    """
    from radmine.img2text.towers import ImageTextTowers

    with local_torch_seed(seed):
        module = ImageTextTowers(img_dim, txt_dim, objective=objective, embed_dim=embed_dim, hidden_dim=hidden_dim,
                                 dropout=dropout, input_dropout=input_dropout, temperature=temperature,
                                 backbone=backbone, text_module=text_module)
    image_feats = text_feats = None
    if data.source.mode == "features":
        image_feats = data.source.feats.cpu().numpy()[data.train_image_rows()]
    if data.text_feats is not None and objective == "contrastive":
        text_feats = data.text_feats.cpu().numpy()[data.train_text_rows()]
    module.standardise(image_feats, text_feats)
    return module.to(data.device)


def encode_image_rows(members: list, data: PairData, rows, *, n_threads: int | None = None,
                      batch: int = 1024) -> np.ndarray:
    """Joined unit embeddings ``(len(rows), sum of member sizes)`` of image rows, float32."""
    import torch

    out = []
    with torch.inference_mode(), cpu_threads(n_threads):
        for s in range(0, len(rows), batch):
            x = data.source(members[0].backbone, rows[s : s + batch])
            out.append(join_members(members, lambda m, x=x: m.image(x)))
    return np.concatenate(out) if out else np.zeros((0, _size(members)), np.float32)


def encode_text_rows(members: list, data: PairData, rows, *, n_threads: int | None = None,
                     batch: int = 1024) -> np.ndarray:
    """Joined unit embeddings ``(len(rows), sum of member sizes)`` of text rows, float32."""
    import torch

    out = []
    with torch.inference_mode(), cpu_threads(n_threads):
        for s in range(0, len(rows), batch):
            raw = data.text_inputs(rows[s : s + batch])
            out.append(join_members(members, lambda m, raw=raw: m.text(raw)))
    return np.concatenate(out) if out else np.zeros((0, _size(members)), np.float32)


def join_members(members: list, encode) -> np.ndarray:
    """``join_embeddings([unit(encode(m)) for m in members])``: one member's or a seed ensemble's embeddings.

    Parameters
    ----------
    members : list of ImageTextTowers
    encode : callable(member) -> torch.Tensor of shape (n, d)

    Returns
    -------
    ndarray of shape (n, d * len(members)), float32, unit rows
    """
    import torch.nn.functional as F

    parts = []
    for m in members:
        m.eval()
        parts.append(F.normalize(encode(m), dim=1).cpu().numpy().astype(np.float32))
    return join_embeddings(parts)


def _size(members) -> int:
    return int(sum(m.image_head[-1].out_features for m in members))


def dev_recall(member, data: PairData, ks, *, n_threads: int | None = None) -> dict:
    """Recall@K of ``member`` on the dev pairs, both directions.

    Returns
    -------
    dict
        ``dev_R@k`` (mean of both directions), ``dev_image_to_text_R@k``,
        ``dev_text_to_image_R@k`` per k, and ``dev_R_mean`` (mean of the
        ``dev_R@k``).
    """
    dev = data.dev_rows
    d_img = sorted(set(data.pair_image[dev].tolist()))
    pos = {r: i for i, r in enumerate(d_img)}
    ie = encode_image_rows([member], data, np.asarray(d_img), n_threads=n_threads)
    te = encode_text_rows([member], data, data.pair_text[dev], n_threads=n_threads)
    res = recall_at_k(ie, te, ks, text_to_image=np.array([pos[r] for r in data.pair_image[dev]]))
    out = {f"dev_R@{k}": (res[f"image_to_text_R@{k}"] + res[f"text_to_image_R@{k}"]) / 2 for k in ks}
    out.update({f"dev_{key}": v for key, v in res.items() if "R@" in key})
    out["dev_R_mean"] = float(np.mean([out[f"dev_R@{k}"] for k in ks]))
    return out


def train_member(member, data: PairData, *, objective: str, regression_loss: str, batch_size: int, lr: float,
                 weight_decay: float, epochs: int, patience: int | None, lr_schedule: str, ks, checkpoint_dir,
                 fingerprint: str, config: dict, random_state, progress: bool, desc: str,
                 n_threads: int | None, finetune_lr: float | None = None) -> Trainer:
    """Train one member in place with :class:`radmine.nn.Trainer`.

    Batches never hold a case twice (:func:`radmine.nn.group_batches`); the
    loss is :func:`radmine.img2text.losses.towers_loss`; with dev pairs the
    run stops early on ``dev_R_mean`` (:func:`dev_recall`) with ``patience``
    and keeps the best epoch, else it runs ``epochs`` and keeps the last.
    Gradients are clipped to norm 5. AdamW trains the heads at ``lr`` and the
    member's trained CNN or transformer layers at ``finetune_lr`` (None:
    ``lr``), both on the same schedule.

    Returns
    -------
    Trainer
        After :meth:`~radmine.nn.Trainer.run` (history, best epoch, resume state).
    """
    import torch

    from radmine.img2text.losses import towers_loss

    ks = [int(k) for k in ks]
    use_dev = len(data.dev_rows) > 0
    train_rows, groups = data.train_rows, data.groups
    min_size = 2 if objective == "contrastive" else 1

    def make_batches(rng):
        return [train_rows[b] for b in group_batches(groups[train_rows], batch_size, rng, min_size=min_size)]

    def step(rows):
        zi = member.image(data.source(member.backbone, data.pair_image[rows], train=True))
        return towers_loss(member, zi, data.text_inputs(data.pair_text[rows]), objective=objective,
                           kind=regression_loss)

    def evaluate():
        return dev_recall(member, data, ks, n_threads=n_threads)

    param_groups = member.param_groups(lr, lr if finetune_lr is None else finetune_lr)
    optimizer = torch.optim.AdamW(param_groups, lr=float(lr), weight_decay=float(weight_decay)) if param_groups else None
    trainer = Trainer(
        member, optimizer=optimizer, lr=lr, weight_decay=weight_decay, epochs=epochs, patience=patience if use_dev else None,
        checkpoint_dir=checkpoint_dir, fingerprint=fingerprint, config=config, monitor="dev_R_mean",
        max_grad_norm=5.0, random_state=random_state, device=data.device, progress=progress, desc=desc,
        n_threads=n_threads, lr_schedule=lr_schedule,
    )
    return trainer.run(make_batches, step, evaluate if use_dev else None, restore_best=use_dev)
