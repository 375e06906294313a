"""The recipes' run directory (`recipes._training.OutputDir`)."""

import json

import pytest

from recipes._training import OutputDir

HEADER = "epoch,accuracy,loss,val_accuracy,val_loss\n"


def _rows(*epochs):
    return "".join(f"{e},0.{e}5,1.{e},0.{e}4,1.{e}5\n" for e in epochs)


def test_remember_and_recall_only_while_running(tmp_path):
    out = OutputDir(tmp_path / "run")
    out.open()
    assert out.recall() == {}
    out.remember(learning_rate=0.0123)
    out.remember(other=1)
    assert out.recall() == {"learning_rate": 0.0123, "other": 1}
    # A new process sees the same values (what a resumed run reads).
    assert OutputDir(tmp_path / "run").recall()["learning_rate"] == 0.0123
    assert not out.finished()
    (tmp_path / "run" / "run.json").write_text(json.dumps(
        {"status": "finished", "resolved": {"learning_rate": 1.0}}))
    assert OutputDir(tmp_path / "run", overwrite=True).recall() == {}


def test_history_rows_are_read_by_epoch_range(tmp_path):
    out = OutputDir(tmp_path)
    (tmp_path / "history.csv").write_text(HEADER + _rows(0, 1, 2, 3))
    history = out.read_history(1, 3)
    assert history["loss"] == [1.1, 1.2]
    assert history["val_accuracy"] == [0.14, 0.24]
    assert len(out.read_history(2, None)["accuracy"]) == 2


def test_history_truncated_to_the_resume_epoch(tmp_path):
    out = OutputDir(tmp_path)
    (tmp_path / "history.csv").write_text(HEADER + _rows(0, 1, 2))
    out._truncate_history(2)
    assert (tmp_path / "history.csv").read_text() == HEADER + _rows(0, 1)


def test_finished_run_needs_overwrite(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"status": "finished"}))
    with pytest.raises(ValueError, match="overwrite=True"):
        OutputDir(tmp_path)
