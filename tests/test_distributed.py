"""Training across processes: `train --strategy multiworker` with two workers on localhost ports, each with its
own TF_CONFIG, as on two hosts; a worker killed mid-epoch and started again resumes from its backup."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import MODERN, need

from dfd import card, distributed, runs
from dfd.train import TrainConfig, TrainError, preflight, train

REPO = Path(__file__).resolve().parent.parent


def test_worker_from_tf_config():
    two = ["h1:1", "h2:1"]
    first = distributed.worker_from_env({"TF_CONFIG": distributed.tf_config(two, 0)})
    second = distributed.worker_from_env({"TF_CONFIG": distributed.tf_config(two, 1)})
    assert (first.is_chief, first.tasks, first.label) == (True, 2, "worker-0")
    assert (second.is_chief, second.label) == (False, "worker-1")
    with_chief = json.dumps({"cluster": {"chief": ["c:1"], "worker": two}, "task": {"type": "worker", "index": 0}})
    assert not distributed.worker_from_env({"TF_CONFIG": with_chief}).is_chief  # the chief task is the chief
    assert distributed.worker_from_env({"TF_CONFIG": with_chief}).tasks == 3
    with pytest.raises(distributed.DistributedError, match="needs TF_CONFIG"):
        distributed.worker_from_env({})
    with pytest.raises(distributed.DistributedError, match="not a cluster description"):
        distributed.worker_from_env({"TF_CONFIG": "{not json"})
    with pytest.raises(distributed.DistributedError, match="not in its cluster"):
        distributed.worker_from_env({"TF_CONFIG": distributed.tf_config(two, 2)})


def test_backups_stay_out_of_runs_and_models(tmp_path, monkeypatch):
    worker = distributed.Worker("worker", 1, 2, False)
    monkeypatch.delenv(distributed.BACKUP_ENV, raising=False)
    default = distributed.backup_dir("exp", worker)
    assert default.parts[-2:] == ("exp", "worker-1") and REPO not in default.parents
    monkeypatch.setenv(distributed.BACKUP_ENV, str(tmp_path))
    assert distributed.backup_dir("exp", worker) == tmp_path / "exp" / "worker-1"
    assert distributed.backup_dir("exp", worker, tmp_path / "b") == tmp_path / "b" / "exp" / "worker-1"


def test_workers_read_disjoint_shards_of_each_epochs_shuffled_file_list(faces140k):
    """make_dataset's shard, each worker in its own process as in a cluster: with the same seed, two workers take
    every other file of the same shuffle, so each epoch's files are split between them, none read twice, and the
    split changes from epoch to epoch."""
    paths = [str(p) for p in sorted((faces140k / "real-vs-fake" / "test" / "real").glob("*.jpg"))[:24]]
    code = textwrap.dedent("""
        import json, sys
        import pandas as pd
        from dfd.data import make_dataset
        paths, index = json.loads(sys.argv[1]), int(sys.argv[2])
        frame = pd.DataFrame({"path": paths, "label": range(len(paths))})  # a label names a file
        ds = make_dataset(frame, 32, 4, shuffle=True, seed=3, shard=(2, index))
        print(json.dumps([sorted(int(x) for _, y in ds for x in y.numpy()) for _epoch in range(2)]))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = [subprocess.run([sys.executable, "-c", code, json.dumps(paths), str(i)], capture_output=True, text=True,
                          env=env, timeout=120) for i in (0, 1)]
    assert all(o.returncode == 0 for o in out), [o.stderr[-2000:] for o in out]
    first, second = (json.loads(o.stdout.strip().splitlines()[-1]) for o in out)
    for a, b in zip(first, second, strict=True):
        assert len(a) == len(b) == 12 and not set(a) & set(b) and set(a) | set(b) == set(range(24)), (a, b)
    assert first[0] != first[1], "each epoch is shuffled again before it is split"


def test_a_multiworker_runs_settings_train_on_one_machine():
    from dfd.train import settings_of

    settings = settings_of({"strategy": "multiworker", "backup_dir": "/b", "epochs": 3, "workers": 2})
    assert settings == {"epochs": 3}  # a preset made from the run trains here, not in a cluster


def test_multiworker_without_tf_config_fails_before_any_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    cfg = TrainConfig(data=str(need(MODERN)), architecture="tiny", runs_dir=str(tmp_path), strategy="multiworker")
    with pytest.raises(TrainError, match="needs TF_CONFIG"):
        preflight(cfg)
    with pytest.raises(TrainError, match="unknown strategy 'ring'"):
        preflight(TrainConfig(data=str(need(MODERN)), architecture="tiny", strategy="ring"))
    with pytest.raises(TrainError, match="needs TF_CONFIG"):
        train(cfg)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------------------
# Two real worker processes

def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _args(runs_dir: Path, backup: Path, name: str, **kw: object) -> list[str]:
    opts = {"data": str(need(MODERN)), "architecture": "srm_cnn", "image_size": 64, "limit": 600, "epochs": 6,
            "batch_size": 32, "learning_rate": 0.003, "patience": 0, "bn_batches": 0, "seed": 0,
            "runs_dir": str(runs_dir), "backup_dir": str(backup), "name": name, **kw}
    return [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]


def _start(args: list[str], tf_config: str | None, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = tf_config
    extra = ["--strategy", "multiworker"] if tf_config else []
    return subprocess.Popen([sys.executable, "-m", "dfd", "train", *args, *extra], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _cluster(args: list[str], tmp: Path, tag: str) -> list[subprocess.Popen]:
    addresses = [f"localhost:{p}" for p in _ports(2)]
    return [_start(args, distributed.tf_config(addresses, i), tmp / f"{tag}-{i}.log") for i in range(2)]


def _wait(procs: list[subprocess.Popen], tmp: Path, tag: str, timeout: float = 420) -> list[int]:
    codes = []
    for i, p in enumerate(procs):
        try:
            codes.append(p.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"worker {i} did not finish: {(tmp / f'{tag}-{i}.log').read_text()[-3000:]}")
    return codes


def _backed_up(meta: Path) -> int:
    """The epoch a worker's backup holds (0: none yet, or being written this instant)."""
    try:
        return int(json.loads(meta.read_text()).get("epoch", 0))
    except (OSError, ValueError):
        return 0


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.slow
def test_two_workers_write_one_run_that_learned_as_one_worker_does(tmp_path):
    models_before = [(p, p.stat().st_mtime) for p in sorted((REPO / "models").rglob("*"))]
    one_dir, two_dir, backup = tmp_path / "one", tmp_path / "two", tmp_path / "backup"
    procs = _cluster(_args(two_dir, backup, "mw"), tmp_path, "mw")
    # The same data, settings and seed on one process, while the workers run.
    single = _start(_args(one_dir, backup, "single"), None, tmp_path / "single.log")
    codes = _wait([*procs, single], tmp_path, "mw")
    assert codes == [0, 0, 0], [(tmp_path / f).read_text()[-2000:] for f in ("mw-0.log", "mw-1.log", "single.log")]
    assert "the chief writes the run folder" in (tmp_path / "mw-1.log").read_text()

    made = [p for p in two_dir.iterdir()]
    assert [p.name for p in made] == ["mw"], "one run folder, by the chief only (no temporary leftovers)"
    run = runs.get_run(made[0])
    assert run.status == "complete"
    assert (run.config["workers"], run.config["replicas"]) == (2, 2)
    assert run.config["strategy_class"] == "CollectiveAllReduceStrategy"
    assert card.compare([run])["architecture"].iloc[0].endswith("(2 workers)")
    assert run.config["steps_per_epoch"] == 600 // 32  # the global batch is the batch size, as on one machine
    assert len(run.history()) == 6
    val = json.loads((made[0] / "metrics.json").read_text())["val"]
    solo = json.loads((one_dir / "single" / "metrics.json").read_text())["val"]
    assert val["roc_auc"] >= 0.68, f"two workers learned: val ROC AUC {val['roc_auc']:.3f}"
    assert abs(val["roc_auc"] - solo["roc_auc"]) <= 0.08, (val, solo)
    assert abs(val["accuracy"] - solo["accuracy"]) <= 0.08, (val, solo)
    assert _listing(backup) == [], "backups are removed once training completes"
    assert [(p, p.stat().st_mtime) for p in sorted((REPO / "models").rglob("*"))] == models_before


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_resumes_from_its_backup(tmp_path):
    runs_dir, backup = tmp_path / "runs", tmp_path / "backup"
    args = _args(runs_dir, backup, "ft", architecture="tiny", limit=300, epochs=5, learning_rate=0.01)
    procs = _cluster(args, tmp_path, "first")
    meta = backup / "ft" / "worker-1" / "training_metadata.json"
    deadline = time.time() + 300
    while time.time() < deadline and procs[1].poll() is None:
        if _backed_up(meta) >= 2:
            break
        time.sleep(0.2)
    else:
        for p in procs:
            p.kill()
        pytest.fail("worker 1 never backed up two epochs: " + (tmp_path / "first-1.log").read_text()[-3000:])
    time.sleep(0.5)  # into the next epoch
    procs[1].send_signal(signal.SIGKILL)
    chief_code = _wait(procs[:1], tmp_path, "first", timeout=180)[0]
    procs[1].wait()
    backed_up = _backed_up(meta)
    assert chief_code != 0
    assert "start every worker again with the same command" in (tmp_path / "first-0.log").read_text()
    failed = runs.get_run(runs_dir / "ft")
    assert failed.status == "failed" and "resumes from the backup" in failed.config["error"]

    # Both started again with the same command (as a cluster manager would): training goes on from the backup.
    codes = _wait(_cluster(args, tmp_path, "again"), tmp_path, "again")
    assert codes == [0, 0], (tmp_path / "again-0.log").read_text()[-3000:]
    assert "resuming from the backup of epoch" in (tmp_path / "again-0.log").read_text()
    run = runs.get_run(runs_dir / "ft2")
    assert run.status == "complete" and run.config["resumed_from_epoch"] == backed_up >= 2
    history = pd.read_csv(run.path / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5], "epochs before the kill are kept, none twice"
    assert history["lr"].is_monotonic_decreasing, "the learning-rate schedule went on from the backup"
    assert len(pd.read_csv(run.path / "predictions.csv")) > 0
    assert _listing(backup) == []
