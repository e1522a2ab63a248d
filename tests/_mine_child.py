"""Child process of the ``radmine mine`` kill tests: the CLI with a SIGKILL (or a pause) at a chosen point.

Usage::

    python tests/_mine_child.py POINT [radmine mine arguments ...]

POINT is one of

* ``none``: a plain run;
* ``write:NAME``: SIGKILL inside the atomic write of the file called NAME, once
  its bytes are in the temporary file and before the rename;
* ``shard:N``: the embedding cache commits a shard after every batch; SIGKILL
  right after the N-th shard;
* ``epoch:N``: SIGKILL right after image->text training checkpointed epoch N;
* ``hold:STEP:SECONDS:FILE``: at the start of STEP (the output lock held),
  create FILE and sleep SECONDS.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str) -> None:
    kind, _, arg = point.partition(":")
    if kind == "none":
        return
    if kind == "write":
        real = os.replace

        def replace(src, dst, *a, **k):
            if Path(dst).name == arg:
                _die()
            return real(src, dst, *a, **k)

        os.replace = replace
    elif kind == "shard":
        from radmine.images.cache import EmbeddingCache

        EmbeddingCache.save_every_seconds = 0.0
        real_write = EmbeddingCache.write_shard
        count = {"n": 0}

        def write_shard(self, *a, **k):
            stem = real_write(self, *a, **k)
            count["n"] += 1
            if count["n"] >= int(arg):
                _die()
            return stem

        EmbeddingCache.write_shard = write_shard
    elif kind == "epoch":
        from radmine.img2text.training import Trainer

        real_save = Trainer._save

        def _save(self, epoch, improved):
            real_save(self, epoch, improved)
            if epoch >= int(arg):
                _die()

        Trainer._save = _save
    elif kind == "hold":
        name, seconds, marker = arg.split(":", 2)
        from radmine.pipeline import steps

        for step in steps.STEPS:
            if step.name == name:
                real_func = step.func

                def held(ctx, _real=real_func):
                    Path(marker).write_text(str(os.getpid()))
                    time.sleep(float(seconds))
                    return _real(ctx)

                step.func = held
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    install(sys.argv[1])
    from radmine.cli import main

    raise SystemExit(main(["mine", *sys.argv[2:]]))
