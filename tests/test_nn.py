"""radmine.nn: the Trainer (torch.optim, early stopping, checkpoints, resume) and the image inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from radmine.nn import (  # noqa: E402
    ImageSource,
    Trainer,
    backbone_stages,
    cpu_threads,
    group_batches,
    image_table,
    local_torch_seed,
    lr_factor,
    resolve_device,
    split_by_group,
)

X = torch.linspace(-1, 1, 16)[:, None]
Y = 3 * X + 1


def _line(seed=0):
    with local_torch_seed(seed):
        return torch.nn.Linear(1, 1)


def _step(net):
    return lambda rows: torch.nn.functional.mse_loss(net(X[rows]), Y[rows])


def _batches(rng):
    return [b.tolist() for b in np.array_split(rng.permutation(16), 4)]


def test_trainer_fits_a_line_with_adamw():
    net = _line()
    tr = Trainer(net, lr=0.05, weight_decay=0.0, epochs=60, progress=False, random_state=0).run(_batches, _step(net))
    assert isinstance(tr.optimizer, torch.optim.AdamW)
    assert net.weight.item() == pytest.approx(3.0, abs=0.05) and net.bias.item() == pytest.approx(1.0, abs=0.05)
    h = tr.history_frame()
    assert list(h.columns) == ["epoch", "train_loss", "seconds"] and len(h) == 60
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]


def test_resume_equals_a_straight_run_and_a_foreign_fingerprint_is_refused(tmp_path):
    kw = {"lr": 0.05, "progress": False, "random_state": 1, "max_grad_norm": 1.0}
    straight = _line()
    Trainer(straight, epochs=6, **kw).run(_batches, _step(straight), restore_best=False)
    first = _line()
    Trainer(first, epochs=3, checkpoint_dir=tmp_path, fingerprint="g", **kw).run(
        _batches, _step(first), restore_best=False)
    meta = json.loads((tmp_path / "trainer.json").read_text())
    assert meta["epoch"] == 3 and meta["optimizer_step"] == 12
    resumed = _line(seed=5)  # other initial weights: everything comes from the checkpoint
    t2 = Trainer(resumed, epochs=6, checkpoint_dir=tmp_path, fingerprint="g", **kw)
    t2.run(_batches, _step(resumed), restore_best=False)
    assert t2.resumed_from == 3 and len(t2.history) == 6
    torch.testing.assert_close(resumed.state_dict(), straight.state_dict())
    with pytest.raises(ValueError, match="other settings or data"):
        Trainer(_line(), epochs=8, progress=False, checkpoint_dir=tmp_path, fingerprint="other").run(
            _batches, _step(_line()))


def test_a_checkpoint_without_step_tensors_resumes(tmp_path):
    from safetensors.torch import load_file, save_file

    net = _line()
    Trainer(net, lr=0.05, epochs=2, progress=False, random_state=0, checkpoint_dir=tmp_path, fingerprint="f").run(
        _batches, _step(net), restore_best=False)
    last = load_file(str(tmp_path / "last.safetensors"))
    save_file({k: v for k, v in last.items() if not k.endswith(".step")}, str(tmp_path / "last.safetensors"))
    again = Trainer(_line(), lr=0.05, epochs=2, progress=False, checkpoint_dir=tmp_path, fingerprint="f")
    again.run(_batches, _step(again.module))
    assert again.optimizer_step() == 8 and again.resumed_from == 2


def test_early_stopping_on_a_loss_to_minimise_restores_the_best_weights():
    net = _line()
    losses = iter([3.0, 1.0, 2.0, 2.5, 0.5])
    seen = []

    def evaluate():
        seen.append(net.weight.item())
        return next(losses)

    tr = Trainer(net, lr=0.05, epochs=5, patience=2, monitor="val_loss", mode="min", progress=False,
                 random_state=0).run(_batches, _step(net), evaluate)
    assert tr.stopped_early and tr.best_epoch == 2 and len(tr.history) == 4
    assert net.weight.item() == pytest.approx(seen[1])
    assert list(tr.history_frame().columns) == ["epoch", "train_loss", "val_loss", "seconds"]


def test_checks_inside_an_epoch_and_parameter_groups():
    net = _line()
    opt = torch.optim.Adam([{"params": [net.weight], "lr": 0.01}, {"params": [net.bias], "lr": 0.1}])
    scores = iter([0.1, 0.5, 0.2, 0.3, 0.1])
    tr = Trainer(net, optimizer=opt, epochs=3, patience=2, checks_per_epoch=2, progress=False, random_state=0,
                 lr_schedule="cosine")
    tr.run(_batches, _step(net), lambda: {"score": next(scores)})
    h = tr.history_frame()
    assert h[["epoch", "check"]].values.tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]  # stopped mid-run
    assert tr.stopped_early and tr.best_epoch == 1
    assert [g["lr"] for g in opt.param_groups][1] / [g["lr"] for g in opt.param_groups][0] == pytest.approx(10)


def test_trainer_rejects_bad_settings():
    with pytest.raises(ValueError, match="no trainable parameter"):
        Trainer(torch.nn.Linear(1, 1).requires_grad_(False))
    with pytest.raises(ValueError, match="'mode' parameter of Trainer"):
        Trainer(_line(), mode="up")
    with pytest.raises(ValueError, match="'lr_schedule' parameter of Trainer"):
        Trainer(_line(), lr_schedule="step")
    with pytest.raises(ValueError, match="'checks_per_epoch' parameter of Trainer"):
        Trainer(_line(), checks_per_epoch=0)
    assert lr_factor("cosine", 0.0) == 1.0 and lr_factor("cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor(lambda t: 1 - t, 0.25) == 0.75 and lr_factor("constant", 0.9) == 1.0


def test_runtime_helpers():
    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="'device' parameter"):
        resolve_device("gpu:x")
    before = torch.random.get_rng_state()
    with local_torch_seed(3):
        a = torch.rand(3)
    with local_torch_seed(3):
        b = torch.rand(3)
    assert torch.equal(a, b) and torch.equal(before, torch.random.get_rng_state())
    n = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n


def test_group_batches_and_split_keep_a_case_together():
    groups = np.array(list("aaabbcd"))
    batches = group_batches(groups, 3, np.random.default_rng(0), min_size=1)
    assert sorted(np.concatenate(batches).tolist()) == list(range(7))
    assert all(len(set(groups[b])) == len(b) for b in batches)
    held = split_by_group(groups, 0.5, np.random.default_rng(0))
    assert all(len(set(held[groups == g])) == 1 for g in "abcd") and 0 < held.sum() < 7
    assert not split_by_group(groups, 0.0, np.random.default_rng(0)).any()


def test_image_table_and_image_source():
    items, ids = image_table(pd.DataFrame({"image_id": ["x", "y"], "path": ["a.png", None]}), "t")
    assert items == ["a.png", None] and ids == ["x", "y"]
    assert image_table("a.png", "t") == (["a.png"], [None])
    assert len(image_table(np.zeros((3, 4, 4)), "t")[0]) == 3
    with pytest.raises(ValueError, match="needs a 'path' column"):
        image_table(pd.DataFrame({"image_id": ["x"]}), "t")
    with pytest.raises(ValueError, match="must be 2-D"):
        image_table(np.zeros(4), "t")
    with pytest.raises(TypeError, match="images must be a Corpus"):
        image_table(3, "t")
    src = ImageSource(feats=torch.arange(6.0).reshape(3, 2))
    assert src.mode == "features" and src(None, [2]).tolist() == [[4.0, 5.0]]
    assert src.subset([2, 0])(None, [0]).tolist() == [[4.0, 5.0]]
    assert ImageSource(items=[], spec={}).mode == "pixels"
    with pytest.raises(ValueError, match="separable blocks"):
        backbone_stages(object())


def test_the_toolkit_imports_no_model_package():
    import ast
    from pathlib import Path

    import radmine.nn

    for path in Path(radmine.nn.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.startswith(("radmine.img2text", "radmine.cluster", "radmine.pipeline"))], path
