"""dfd.jobs: a training run on a background thread, as the Training page polls it (progress of every phase,
a user's mistake as one line with no traceback, one job at a time)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dfd import jobs, train


def test_job_describes_each_phase_as_the_page_shows_it():
    """Epochs counted once, from 1, the way a person counts them: epoch 1 of 3 is its training and then its
    validation; the phases after the last epoch say the training is done; counts name their unit."""
    job = jobs.TrainingJob(config=train.TrainConfig(epochs=3))
    job.progress(0, 3, {"phase": "indexing the dataset", "stage": train.PREPARING})
    assert job.describe() == "indexing the dataset" and job.fraction == 0.0
    job.progress(0, 3, {"phase": "first batch (building the training graph)", "stage": train.IN_EPOCH})
    assert job.describe() == "epoch 1 of 3 · first batch (building the training graph)"
    job.progress(0.5, 3, {"loss": 0.7, "accuracy": 0.5, "batch": 4})
    assert job.describe() == "epoch 1 of 3 · training 50% · loss 0.700, accuracy 0.500"
    assert job.fraction == pytest.approx(1 / 6)
    job.progress(0.999, 3, {"phase": "validation", "stage": train.IN_EPOCH, "done": 3, "total": 10,
                            "unit": "batches"})
    assert job.describe() == "epoch 1 of 3 · validation · 3 of 10 batches"
    assert job.fraction == pytest.approx(0.999 / 3), "the bar does not go back for validation"
    job.progress(1, 3, {"epoch": 1, "loss": 0.6, "val_loss": 0.65})
    assert job.history == [{"epoch": 1, "loss": 0.6, "val_loss": 0.65}], "only the epoch's end is a history row"
    assert job.describe() == "epoch 1 of 3 done · loss 0.600, val_loss 0.650"
    job.progress(1.25, 3, {"loss": 0.5, "batch": 2})
    assert job.describe().startswith("epoch 2 of 3 · training 25%")
    job.progress(3, 3, {"phase": "batch-norm statistics of the final model", "stage": train.FINISHING,
                        "done": 12, "total": 50, "unit": "batches"})
    assert job.describe() == ("training done (3 of 3 epochs) · batch-norm statistics of the final model · "
                              "12 of 50 batches") and job.fraction == pytest.approx(12 / 50)
    job.progress(3, 3, {"phase": "predicting the test split", "stage": train.FINISHING, "done": 128,
                        "total": 300, "unit": "images"})
    assert job.describe() == "training done (3 of 3 epochs) · predicting the test split · 128 of 300 images"
    job.progress(3, 3, {"phase": "calibrating on the val predictions", "stage": train.FINISHING})
    assert job.describe().endswith("calibrating on the val predictions") and job.fraction == 1.0
    assert len(job.history) == 1


def _epoch_numbers(lines: list[str]) -> list[int]:
    import re

    return [int(m.group(1)) for line in lines for m in [re.match(r"epoch (\d+) of \d+", line)] if m]


def test_a_real_training_reports_every_phase_in_order_with_its_count(tmp_path, faces140k):
    """What the Training page shows of a real (tiny) training: epoch numbers from 1 that never go back, each
    validation inside its epoch, and the final batch-norm pass counted batch by batch like every other phase."""
    job = jobs.TrainingJob(config=None)
    seen: list[tuple[str, float, str]] = []

    def progress(epoch, epochs, logs=None):
        job.progress(epoch, epochs, logs)
        seen.append((job.describe(), job.fraction, job.stage))

    train.train(train.TrainConfig(data=str(faces140k), architecture="tiny", image_size=48, epochs=2, limit=48,
                                  batch_size=8, bn_batches=4, patience=0, runs_dir=str(tmp_path), name="count"),
                progress=progress)
    lines = [d for d, _, _ in seen]
    assert lines[0] == "indexing the dataset", lines[:3]
    numbers = _epoch_numbers(lines)
    assert numbers and numbers[0] == 1 and numbers == sorted(numbers) and set(numbers) == {1, 2}, lines
    assert not [d for d in lines if "epoch 0" in d or "after epoch" in d], lines
    validation = [d for d in lines if "validation ·" in d]
    assert validation and all(re.match(r"epoch [12] of 2 · validation · \d+ of \d+ batches$", d)
                              for d in validation), validation
    in_epochs = [f for _, f, stage in seen if stage == train.IN_EPOCH]
    assert in_epochs == sorted(in_epochs), "the bar never goes back during the epochs"
    final_bn = [d for d in lines if "batch-norm statistics of the final model" in d]
    assert len(final_bn) >= 3, final_bn  # announced with 0 done, then after each batch
    assert final_bn[0].startswith("training done (2 of 2 epochs)") and final_bn[0].endswith("0 of 4 batches")
    assert final_bn[-1].endswith("4 of 4 batches"), final_bn
    assert lines.index(final_bn[-1]) < next(i for i, d in enumerate(lines) if "predicting" in d)


def test_a_stopped_job_is_interrupted_like_its_run(tmp_path, faces140k):
    """One word for one state: the job's status is the run's own status (the picker's "(interrupted)")."""
    from dfd import runs

    job = jobs.start(train.TrainConfig(data=str(faces140k), architecture="tiny", image_size=48, epochs=5,
                                       limit=48, batch_size=8, runs_dir=str(tmp_path), name="halted"),
                     owner="me")
    job.stop_event.set()  # stops after the first batch
    job.thread.join(timeout=300)
    assert job.owner == "me" and job.run_path
    assert job.status == runs.Run(job.run_path).status == runs.INTERRUPTED


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


def test_a_job_trains_in_its_own_process_so_the_app_stays_responsive(tmp_path, faces140k):
    """TensorFlow's import and graph building hold the interpreter lock for seconds at a time: run in the app's
    own process they froze every page of every session (the Training page's elapsed counter stood still). A job
    trains in a process of its own, so the caller's interpreter never even imports TensorFlow."""
    code = (
        "import sys\n"
        "from dfd import jobs, train\n"
        f"job = jobs.start(train.TrainConfig(data={str(faces140k)!r}, architecture='tiny', image_size=48, epochs=1,"
        f" limit=32, batch_size=8, runs_dir={str(tmp_path)!r}, name='apart'))\n"
        "job.thread.join(timeout=600)\n"
        "print(job.status, len(job.history), 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-3:] == ["complete", "1", "False"], out.stdout + out.stderr[-2000:]
