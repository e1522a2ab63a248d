"""radmine's torch toolkit: the pieces every trained model is built from.

* :mod:`radmine.nn.trainer` -- :class:`Trainer` (torch.optim, early stopping,
  safetensors checkpoints and resume, a history table);
* :mod:`radmine.nn.batches` -- :func:`group_batches`, :func:`split_by_group`
  (batches and hold-outs that keep a case together);
* :mod:`radmine.nn.inputs` -- "Corpus / DataFrame / paths / arrays -> images":
  :func:`image_frame`, :func:`image_table`, :func:`pixel_tensor`, :func:`pixel_features`,
  :func:`prefix_maps`, :class:`ImageSource`;
* :mod:`radmine.nn.backbones` -- CNN backbone stages for partial fine-tuning:
  :func:`backbone_stages`, :func:`set_trainable_blocks`,
  :func:`backbone_prefix`, :func:`backbone_tail`, :func:`freeze_batchnorm`;
* :mod:`radmine.nn.runtime` -- :func:`resolve_device`, :func:`local_torch_seed`,
  :func:`cpu_threads`.

torch is imported inside the functions, so importing this package is cheap.
It builds on ``images/`` and ``corpus.py`` and is used by ``img2text/`` and
``cluster/``; it imports neither.
"""

from radmine.nn.backbones import backbone_prefix, backbone_stages, backbone_tail, freeze_batchnorm, set_trainable_blocks
from radmine.nn.batches import group_batches, split_by_group
from radmine.nn.inputs import (
    PREPROCESSINGS,
    ImageSource,
    image_frame,
    image_table,
    pixel_features,
    pixel_tensor,
    prefix_maps,
)
from radmine.nn.runtime import cpu_threads, local_torch_seed, resolve_device
from radmine.nn.trainer import LR_SCHEDULES, Trainer, lr_factor, state_tensors

__all__ = [
    "LR_SCHEDULES",
    "PREPROCESSINGS",
    "ImageSource",
    "Trainer",
    "backbone_prefix",
    "backbone_stages",
    "backbone_tail",
    "cpu_threads",
    "freeze_batchnorm",
    "group_batches",
    "image_frame",
    "image_table",
    "local_torch_seed",
    "lr_factor",
    "pixel_features",
    "pixel_tensor",
    "prefix_maps",
    "resolve_device",
    "set_trainable_blocks",
    "split_by_group",
    "state_tensors",
]
