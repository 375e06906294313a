import argparse

import keras
import numpy as np
import pytest

from recipes import tuning_cli


@pytest.fixture
def npz(mnist_5k, tmp_path):
    (x, y), (xv, yv) = mnist_5k
    train, val = tmp_path / "train.npz", tmp_path / "val.npz"
    np.savez(train, x=x[:600], y=y[:600])
    np.savez(val, x=xv[:200], y=yv[:200])
    return str(train), str(val)


def test_register_adds_the_tune_command():
    parser = argparse.ArgumentParser()
    tuning_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tune", "data.npz", "--tuner", "grid",
                              "--fix", "optimizer=adamw,lion",
                              "--fix", "dropout=0.3"])
    assert args.tuner == "grid"
    assert dict(args.fix) == {"optimizer": ["adamw", "lion"],
                              "dropout": 0.3}
    help_text = parser._subparsers._group_actions[0].choices[
        "tune"].format_help()
    assert "python -m recipes list" in " ".join(help_text.split())


def test_unknown_knob_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        tuning_cli.main(["tune", "data.npz", "--fix", "momentum=0.9"])
    assert exit_info.value.code == 2
    assert "momentum" in capsys.readouterr().err


@pytest.mark.parametrize("flags, word", [
    (["--max-trials", "0"], "`--max-trials`"),
    (["--objective", "val_auc"], "objective"),
    (["--fix", "optimizer=adamm"], "adamm"),
    (["--fix", "dropout=2"], "dropout=2"),
    (["--fix", "schedule=constant,cosine"], "schedule='cosine'"),
    (["--save-model", "best.h5"], "`--save-model` must be a path ending"),
    (["--save-model", "no/such/dir/best.keras"], "existing directory"),
])
def test_bad_input_exits_2_before_any_trial(npz, tmp_path, capsys, flags,
                                            word):
    train, val = npz
    code = tuning_cli.main(["tune", train, "--validation-data", val,
                            "--directory", str(tmp_path / "runs"), *flags])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and word in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_existing_save_model_file_is_refused_before_any_trial(
        npz, tmp_path, capsys):
    train, val = npz
    precious = tmp_path / "user_model.keras"
    precious.write_text("precious")
    code = tuning_cli.main(["tune", train, "--validation-data", val,
                            "--directory", str(tmp_path / "runs"),
                            "--save-model", str(precious)])
    assert code == 2
    assert "existing file" in capsys.readouterr().err
    assert precious.read_text() == "precious"
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_tune_command_searches_and_saves_the_best_model(npz, tmp_path,
                                                        capsys):
    train, val = npz
    saved = tmp_path / "best.keras"
    code = tuning_cli.main([
        "tune", train, "--validation-data", val, "--tuner", "random",
        "--max-trials", "1", "--max-epochs", "1",
        "--directory", str(tmp_path / "runs"), "--fix", "augment=none",
        "--save-model", str(saved)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "trial 0" in out and "COMPLETED" in out
    assert "best val_accuracy" in out and "best optimizer" in out
    assert "gain" in out
    model = keras.saving.load_model(saved, safe_mode=True)
    assert model.output.shape == (None, 10)
