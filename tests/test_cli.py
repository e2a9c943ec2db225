"""The st-runtime command line on a tiny bundle."""

import re

import pytest

from st_runtime.cli import main


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "export" in capsys.readouterr().out


def test_export_info_validate_encode(tmp_path, model_path, capsys):
    out = tmp_path / "bundle"
    assert main(["export", str(model_path("bert-mean")), str(out)]) == 0
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "sentence-transformer" in info and "pooling=mean" in info
    assert main(["validate", str(out)]) == 0
    assert "parity OK" in capsys.readouterr().out
    assert main(["encode", str(out), "first text", "second text"]) == 0
    shown = capsys.readouterr().out
    assert "torch imported" in shown and "similarity" in shown


def test_cross_encoder_detected(tmp_path, model_path, capsys):
    out = tmp_path / "ce"
    assert main(["export", str(model_path("ce-bert")), str(out)]) == 0
    assert main(["info", str(out)]) == 0
    assert "cross-encoder: num_labels=1 activation=sigmoid" in capsys.readouterr().out


def test_missing_bundle_is_exit_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_progress_shows_elapsed_time(capsys):
    from st_runtime.cli import _printer

    show = _printer("export")
    show("tracing")
    assert re.fullmatch(r"\[export +\d+\.\d s\] tracing\n", capsys.readouterr().out)
