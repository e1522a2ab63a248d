"""The command line: help, config printing, registries, info, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from radmine.cli import main


def test_help_explains_itself(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "radmine mine" in out and "SOURCE" in out


def test_module_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "radmine", "--version"], capture_output=True, text=True, check=True)
    import radmine

    assert res.stdout.strip() == radmine.__version__


def test_print_config_shows_every_section(capsys):
    assert main(["mine", "--print-config"]) == 0
    out = capsys.readouterr().out
    for section in ("[run]", "[read]", "[text]", "[labels]", "[topics]", "[embed]", "[cluster]", "[img2text]", "[report]"):
        assert section in out


def test_list_steps(capsys):
    assert main(["list", "steps"]) == 0
    assert "img2text" in capsys.readouterr().out


def test_info_on_the_embedded_corpus(capsys):
    from radmine._paths import embedded_dir

    folder = next(embedded_dir().glob("*/corpus.json")).parent
    assert main(["info", str(folder)]) == 0
    assert "reports" in capsys.readouterr().out


def test_bad_override_is_reported(capsys, tmp_path):
    assert main(["mine", "--out", str(tmp_path), "--set", "topics.n_topic=3"]) == 2
    assert "unknown setting topics.n_topic" in capsys.readouterr().err


def test_label_command(tmp_path, capsys):
    import pandas as pd

    src = tmp_path / "reports.csv"
    pd.DataFrame({"report_id": ["a", "b"], "text": ["FINDINGS: Small left pleural effusion.", "FINDINGS: No pleural effusion."]}).to_csv(src, index=False)
    out = tmp_path / "labels.csv"
    assert main(["label", str(src), "--out", str(out)]) == 0
    labels = pd.read_csv(out, index_col=0)
    col = [c for c in labels.columns if "effusion" in c.lower()][0]
    assert labels.loc["a", col] == 1 and labels.loc["b", col] == 0
