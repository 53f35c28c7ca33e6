"""dfd.jobs: a training run on a background thread, as the Training page polls it (progress of every phase,
a user's mistake as one line with no traceback, one job at a time)."""

from __future__ import annotations

import logging

import pytest

from dfd import jobs, train


def test_job_describes_each_phase_as_the_page_shows_it():
    job = jobs.TrainingJob(config=train.TrainConfig(epochs=3))
    job.progress(0, 3, {"phase": "first batch (building the training graph)"})
    assert job.describe().startswith("first batch") and job.fraction == 0.0
    job.progress(0.5, 3, {"loss": 0.7, "accuracy": 0.5, "batch": 4})
    assert job.describe() == "epoch 0.50 of 3 · loss 0.700, accuracy 0.500" and job.fraction == pytest.approx(1 / 6)
    job.progress(0.999, 3, {"phase": "validation", "done": 3, "total": 10})
    assert job.describe() == "validation · 3 of 10 · after epoch 0 of 3" and job.fraction == pytest.approx(0.3)
    job.progress(1, 3, {"epoch": 1, "loss": 0.6, "val_loss": 0.65})
    assert job.history == [{"epoch": 1, "loss": 0.6, "val_loss": 0.65}], "only the epoch's end is a history row"
    job.progress(3, 3, {"phase": "predicting the test split", "done": 128, "total": 300})
    assert job.describe() == "predicting the test split · 128 of 300 · after epoch 3 of 3"
    job.progress(3, 3, {"phase": "calibrating on the val predictions"})
    assert job.describe().startswith("calibrating") and job.fraction == 1.0
    assert len(job.history) == 1


def test_a_bad_folder_fails_the_job_in_one_line_without_a_traceback(tmp_path, caplog, capfd):
    with caplog.at_level(logging.DEBUG):
        job = jobs.start(train.TrainConfig(data=str(tmp_path / "nowhere"), architecture="tiny",
                                           runs_dir=str(tmp_path / "runs")))
        job.thread.join(timeout=120)
    assert job.status == "failed" and "not found" in job.error and "\n" not in job.error
    assert jobs.current() is job
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err + caplog.text
    assert not (tmp_path / "runs").exists()
