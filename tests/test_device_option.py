"""`radmine mine --device` reaches the config ([run] device) that the embed, cluster and img2text steps use."""

from __future__ import annotations

import pytest

from radmine import cli
from radmine.pipeline.config import load_config


def test_device_setting_defaults_to_auto():
    assert load_config()["run"]["device"] == "auto"
    assert load_config(overrides={"run.device": "cpu"})["run"]["device"] == "cpu"


def test_cli_passes_device_to_mine(monkeypatch, tmp_path):
    import pandas as pd

    from radmine.pipeline import steps

    seen = {}

    def fake_mine(source, out, **kwargs):
        seen.update(kwargs)
        return pd.DataFrame({"status": ["ran"], "seconds": [0.0]})

    monkeypatch.setattr(steps, "mine", fake_mine)
    assert cli.main(["mine", "--out", str(tmp_path), "--device", "cpu"]) == 0
    assert seen["overrides"]["run.device"] == "cpu"


def test_bad_device_is_a_clear_error(capsys, tmp_path):
    assert cli.main(["mine", "--out", str(tmp_path), "--device", "tpu"]) == 2
    assert "--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'tpu'" in capsys.readouterr().err


def test_cuda_without_a_gpu_says_how_to_install(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert cli.main(["mine", "--out", str(tmp_path), "--device", "cuda"]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err
