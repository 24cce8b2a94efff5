"""The one CLI: help for every stage, clear errors with exit status 2 for bad input."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from augmix.cli import build_parser, main

from conftest import REPO, SMOKE_PARAMS

STAGES = ["download", "corrupt", "train", "evaluate", "report", "repro", "demo", "check", "bench"]


def test_console_script_help_lists_every_stage():
    out = subprocess.run(["augmix", "--help"], capture_output=True, text=True, check=True).stdout
    for stage in STAGES:
        assert stage in out


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_has_help(stage, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([stage, "--help"])
    assert exit_.value.code == 0
    assert "usage: augmix " + stage in capsys.readouterr().out


def test_cell_flags_are_required(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["train", "--dataset", "digits"])
    assert exit_.value.code == 2
    assert "--arch" in capsys.readouterr().err


@pytest.mark.parametrize("argv,needle", [
    (["train", "--dataset", "digits", "--arch", "vgg", "--method", "standard"], "--arch: unknown name 'vgg'"),
    (["train", "--dataset", "digits", "--arch", "wrn16_1", "--method", "augmax"], "--method: unknown name 'augmax'"),
    (["download", "--dataset", "mnist"], "--dataset: unknown name 'mnist'"),
    (["check", "--params", "nope.yaml"], "params file nope.yaml not found"),
])
def test_bad_arguments_exit_2_with_one_clear_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(SMOKE_PARAMS.read_text())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("augmix: error: ") and needle in err and "Traceback" not in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_bad_params_stop_before_any_work(tmp_path, monkeypatch, capsys):
    raw = yaml.safe_load(SMOKE_PARAMS.read_text())
    raw["augmix"]["width"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    assert main(["download", "--dataset", "digits"]) == 2
    assert "augmix.width: 0 is below the minimum 1" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]


def test_check_accepts_the_committed_params(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["check"]) == 0
    assert "ok" in capsys.readouterr().out


def test_evaluate_without_a_model_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(SMOKE_PARAMS.read_text())
    assert main(["evaluate", "--dataset", "digits", "--arch", "wrn16_1", "--method", "standard"]) == 2
    assert "augmix train --dataset digits --arch wrn16_1 --method standard" in capsys.readouterr().err
