"""``predict --engine ray`` (dfd.scale): the same table as one process, on a few hundred real images of every
shared dataset plus a corrupt and a non-image file; a model actor killed mid-run; CSV manifests; clear errors
for a missing cluster and a missing Ray. The shipped default run, no mocks. Ray starts once for the module."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dfd import cli, detect, imaging, runs
from dfd.evaluate import band_at

REPO = Path(__file__).resolve().parent.parent
PER_DATASET = 40


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def ray_local():
    """Ray started in this process (as ``predict --engine ray`` starts it), shut down after the module."""
    pytest.importorskip("ray", reason='Ray Data is the "scale" extra: pip install ".[scale]"')
    from dfd import scale

    assert scale.start() is True
    yield scale
    scale.stop()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory, faces140k, lfw, modern, rff, web) -> Path:
    """A CSV manifest of 200 real images (40 spread over each shared dataset; absolute paths) with a
    truncated JPEG and a text file among them (relative paths, next to the manifest)."""
    folder = tmp_path_factory.mktemp("scale")
    files: list[str] = []
    for root in (faces140k, lfw, modern, rff, web):
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in imaging.IMAGE_EXTENSIONS)
        files += [str(found[i]) for i in np.linspace(0, len(found) - 1, PER_DATASET).astype(int)]
    (folder / "truncated.jpg").write_bytes(Path(files[0]).read_bytes()[:600])
    (folder / "notes.txt").write_text("not an image\n")
    files.insert(57, "truncated.jpg")
    files.insert(131, "notes.txt")
    path = folder / "images.csv"
    pd.DataFrame({"path": files}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def local_csv(manifest: Path) -> Path:
    """``predict MANIFEST --csv``: the single-process table every Ray result must equal."""
    out = manifest.parent / "local.csv"
    assert cli.main(["predict", str(manifest), "--csv", str(out)]) == 0
    return out


def _rows(table: pd.DataFrame | Path) -> pd.DataFrame:
    """A table as its CSV reads back (so a table in memory and a written one compare alike)."""
    text = table.read_text() if isinstance(table, Path) else table.to_csv(index=False)
    return pd.read_csv(io.StringIO(text))


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same columns, rows and order; P(fake) within 1e-5, every other cell equal."""
    assert list(got.columns) == list(want.columns) == detect.TABLE_COLUMNS
    assert len(got) == len(want)
    others = [c for c in got.columns if c != "p_fake"]
    pd.testing.assert_frame_equal(got[others], want[others])
    np.testing.assert_allclose(got["p_fake"].to_numpy(float), want["p_fake"].to_numpy(float), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_ray_gives_the_single_process_table_row_for_row(ray_local, manifest, local_csv, tmp_path):
    local = _rows(local_csv)
    assert len(local) >= 202 and local["engine"].eq("tflite").all()
    bad = local[local["verdict"] == "error"]
    assert list(bad["file"]) == [str(manifest.parent / "truncated.jpg"), str(manifest.parent / "notes.txt")]
    assert bad["note"].str.contains("corrupt or truncated").iloc[0] and bad["note"].str.contains("not an image").iloc[1]
    assert {"fake", "real"} <= set(local["verdict"])
    out = tmp_path / "ray.csv"
    assert cli.main(["predict", str(manifest), "--engine", "ray", "--actors", "2", "--csv", str(out)]) == 0
    assert_same_rows(_rows(out), local)


@pytest.mark.slow
def test_a_model_actor_killed_mid_run_still_gives_every_row_once(ray_local, manifest, local_csv):
    import ray

    files, _ = cli._expand([str(manifest)])
    killed: dict[str, object] = {}

    def model_actors() -> dict[str, dict]:
        return {k: a for k, a in ray._private.state.actors().items()
                if "_ModelStage" in a["ActorClassName"] and a["State"] == "ALIVE"}

    def kill_one(done: int, total: int) -> None:
        if not killed and done >= 24:
            actor_id, actor = next(iter(model_actors().items()))
            os.kill(actor["Pid"], signal.SIGKILL)
            killed.update(actor=actor_id, pid=actor["Pid"], done=done, total=total)

    results, engine = ray_local.score(files, "default", actors=2, progress=kill_one)
    assert killed and killed["done"] < killed["total"] / 2, killed  # killed while most images were still to come
    after = ray._private.state.actors()[killed["actor"]]
    assert after["NumRestarts"] >= 1 and after["Pid"] != killed["pid"], after  # Ray restarted it
    local = _rows(local_csv)
    threshold = float(local["threshold"].iloc[0])
    run = runs.get_run("default")  # the table as predict makes it: the run's band moved to the threshold
    table = detect.results_table(results, threshold, band_at(run.band, run.threshold, threshold), run=run.name,
                                 engine=engine, sizes=run.sizes())
    assert [r.name for r in results] == [str(f) for f in files]
    assert_same_rows(_rows(table), local)


def test_a_manifest_lists_files_in_its_order_relative_to_its_folder(tmp_path, faces140k):
    face = next(faces140k.rglob("*.jpg"))
    (tmp_path / "sub").mkdir()
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"label,path\nfake,{face}\nreal,sub/b.png\n,a.jpg\n")
    files, passed = cli._expand([str(manifest)])
    assert files == [face, tmp_path / "sub" / "b.png", tmp_path / "a.jpg"] and passed == []
    (tmp_path / "bad.csv").write_text("file\nx.jpg\n")
    with pytest.raises(cli.CliError, match="needs a 'path' column"):
        cli._expand([str(tmp_path / "bad.csv")])


def test_a_cluster_that_is_not_there_is_a_one_line_error(tmp_path, faces140k):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    face = next(faces140k.rglob("*.jpg"))
    proc = subprocess.run([sys.executable, "-m", "dfd", "predict", str(face), "--engine", "ray", "--address",
                           f"127.0.0.1:{port}"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"dfd predict: error: no Ray cluster at 127.0.0.1:{port}")
    assert "Traceback" not in proc.stderr


def test_without_ray_the_error_says_what_to_install_and_the_core_never_imports_it(tmp_path, faces140k):
    face = next(faces140k.rglob("*.jpg"))
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed: `import ray` fails
            "import dfd.cli, dfd.detect\n"
            "assert 'ray' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
            f"sys.exit(dfd.cli.main(['predict', {str(face)!r}, '--engine', 'ray']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == ('dfd predict: error: --engine ray needs Ray Data, which is not '
                                                    'installed: pip install ".[scale]"')
