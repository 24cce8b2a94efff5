"""The one CLI: help for every stage, clear errors with exit status 2 for bad input."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from augmix.cli import build_parser, main

from conftest import REPO, SMOKE_PARAMS

STAGES = ["download", "corrupt", "train", "evaluate", "evaluate-external", "report", "repro", "demo", "workdir",
          "check", "schema", "ui", "bench"]


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
    (["train", "--dataset", "digits", "--arch", "vgg", "--method", "standard"], "--arch: unknown architecture 'vgg'"),
    (["train", "--dataset", "digits", "--arch", "wrn16_1", "--method", "augmax"], "--method: unknown method 'augmax'"),
    (["train", "--dataset", "digits", "--arch", "resnet50", "--method", "standard"], "add archs.resnet50"),
    (["train", "--dataset", "digits", "--arch", "wrn16_1", "--method", "standard"],
     "run `augmix download --dataset digits` first"),
    (["download", "--dataset", "mnist"], "--dataset: no dataset 'mnist' in datasets"),
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
    raw["methods"]["augmix"]["width"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    assert main(["download", "--dataset", "digits"]) == 2
    assert "methods.augmix.width: input should be greater than or equal to 1, got 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]


def test_check_accepts_the_committed_params(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["check"]) == 0
    assert "ok" in capsys.readouterr().out


def test_evaluate_without_a_model_says_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(SMOKE_PARAMS.read_text())
    assert main(["evaluate", "--dataset", "digits", "--arch", "wrn16_1", "--method", "standard"]) == 2
    assert "augmix train --dataset digits --arch wrn16_1 --method standard --seed 1" in capsys.readouterr().err


@pytest.mark.slow  # a fresh augmix process
def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    """Only the project's user errors become one line; anything else is a bug and shows where it is."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(SMOKE_PARAMS.read_text())
    (tmp_path / "data" / "raw" / "digits").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "digits" / "imagenet.json").write_text("{")  # not a user input at all
    result = subprocess.run(["augmix", "corrupt", "--dataset", "digits"], capture_output=True, text=True,
                            env={**__import__("os").environ, "AUGMIX_PROJECT_ROOT": str(tmp_path)})
    assert result.returncode != 0
    assert "augmix: error:" in result.stderr or "Traceback" in result.stderr


def test_schema_command_prints_the_committed_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((REPO / "workflow/schemas/params.schema.json").read_text())
