import os
import subprocess
import sys

import numpy as np

from recipes.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _run(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "recipes", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


def test_help_lists_registry_names():
    done = _run("fit-image-classifier", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for name in ("small_cnn", "efficientnetv2_b0", "resnet50", "adamw",
                 "lion", "warmup_cosine"):
        assert name in text


def test_bad_input_exits_non_zero_with_one_line(tmp_path):
    done = _run("fit-image-classifier", str(tmp_path / "no" / "images"))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines()
             if line.startswith("error:")]
    assert len(lines) == 1 and "existing directory" in lines[0]
    assert "Traceback" not in done.stderr


def test_fit_from_npz_prints_summary(tmp_path, capsys, digits_8x8):
    (x, y), (xv, yv) = digits_8x8
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "val.npz", x=xv, y=yv)
    code = main(["fit-image-classifier", str(tmp_path / "train.npz"),
                 "--validation-data", str(tmp_path / "val.npz"),
                 "--epochs", "4", "--seed", "0", "--verbose", "0",
                 "--output-dir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    rows = dict(line.split(None, 1) for line in out.splitlines()
                if line.startswith(("val_accuracy", "backbone")))
    assert float(rows["val_accuracy"]) > 0.8
    assert rows["backbone"].startswith("small_cnn")
    assert os.path.isfile(tmp_path / "run" / "model.keras")


def test_bad_npz_and_bad_option(tmp_path, capsys):
    np.savez(tmp_path / "only_x.npz", x=np.zeros((4, 8, 8)))
    assert main(["fit-image-classifier", str(tmp_path / "only_x.npz")]) == 2
    assert "arrays `x` and `y`" in capsys.readouterr().err
    # One array saved by np.save under a .npz name, and a file that is not
    # an archive at all: one-line errors, no traceback.
    with open(tmp_path / "single.npz", "wb") as f:
        np.save(f, np.zeros((4, 8, 8)))
    assert main(["fit-image-classifier", str(tmp_path / "single.npz")]) == 2
    err = capsys.readouterr().err
    assert "single array" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "text.npz").write_text("not an archive")
    assert main(["fit-image-classifier", str(tmp_path / "text.npz")]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and len(err.strip().splitlines()) == 1
    np.savez(tmp_path / "ok.npz", x=np.zeros((4, 8, 8)), y=np.arange(4) % 2)
    assert main(["fit-image-classifier", str(tmp_path / "ok.npz"),
                 "--optimizer", "nope"]) == 2
    assert "optimizer" in capsys.readouterr().err


def test_option_defaults_are_the_functions_defaults():
    import inspect

    from recipes import fit_image_classifier
    from recipes.cli import build_parser

    args = vars(build_parser().parse_args(["fit-image-classifier", "x.npz"]))
    signature = inspect.signature(fit_image_classifier).parameters
    # Shown per epoch on a terminal; the function defaults to progress bars.
    cli_only = {"verbose", "data"}
    shared = sorted(set(args) & set(signature) - cli_only)
    assert {"augment", "ema_momentum", "dropout", "epochs"} <= set(shared)
    differ = {name: (args[name], signature[name].default) for name in shared
              if args[name] != signature[name].default}
    assert differ == {}
    none = build_parser().parse_args(
        ["fit-image-classifier", "x.npz", "--ema-momentum", "None"])
    assert none.ema_momentum is None
