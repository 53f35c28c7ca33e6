"""The command line: ``python -m dfd <command>``. Thin: parse arguments, call one library function, print.

Commands: demo, index, train, ensemble, calibrate, evaluate, predict, runs, robustness, sizes, cross-dataset,
export
(``python -m dfd <command> --help``; installed with pip, the same as ``dfd <command>``). Runs are looked up
in the shipped ``models/`` and the user runs folder; everything a command writes goes to the user runs
folder (``--runs-dir``, default ``$DFD_RUNS_DIR`` or ``runs/``), never to ``models/`` (see :mod:`dfd.runs`).
Bad input (a missing folder, an unknown run, a bad option value) ends with a one-line error on stderr and a
non-zero exit code, never a traceback; an unreadable image given to ``predict`` only gets its own row.
Progress bars (tqdm) go to stderr and only show on a terminal; results go to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pandas as pd

from dfd import __version__
from dfd.quiet import fds_to_devnull

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
_QUIET = {"tensorflow": True}  # main() sets it from --verbose


class CliError(Exception):
    """A bad input: printed as one line, exit code 1."""


def _bar(total: float | None, desc: str, unit: str = "it") -> Any:
    from tqdm import tqdm

    # disable=None: shown on a terminal only, so piped output and logs stay clean.
    return tqdm(total=total, desc=desc, unit=unit, disable=None, file=sys.stderr, dynamic_ncols=True, leave=False)


def _counter(bar: Any) -> Callable[[int, int], None]:
    """A progress(done, total) callback driving a tqdm bar."""

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return progress


def _table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200,
                           "display.max_colwidth", 80):
        return frame.to_string(index=False, float_format=_num)


def _num(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if pd.notna(value) else "-"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return _num(value)
    return "-" if value is None else str(value)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the C++ start-up chatter (oneDNN, CPU features) kept off stderr.

    Those lines are printed before absl logging is initialised, so no environment variable silences them;
    file descriptor 2 is pointed at /dev/null for the import only. Python exceptions still propagate.
    """
    if "tensorflow" in sys.modules or not _QUIET["tensorflow"]:
        return
    with fds_to_devnull(2):
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def _quiet_output():
    """Point file descriptors 1 and 2 (and Python's sys.stdout/stderr) at /dev/null for a chatty library call.

    The TFLite converter prints "Saved artifact at ..." and C++ log lines that would pollute the command's
    output. Does nothing with --verbose. Exceptions still propagate and are reported after the streams return.
    """
    if not _QUIET["tensorflow"]:
        yield
        return
    with fds_to_devnull(1, 2), open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
            contextlib.redirect_stderr(null), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _existing(path: str, what: str = "folder") -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise CliError(f"{what} not found: {p}")
    return p


# ----------------------------------------------------------------------------------------------------------
# demo


def cmd_demo(args: argparse.Namespace) -> int:
    from dfd import demo

    custom = (args.n_per_class, args.size, args.seed) != (demo.DEFAULT_N_PER_CLASS, demo.DEFAULT_SIZE, 0)
    if args.dest is None:
        if custom:
            raise CliError("--n-per-class, --size and --seed need --dest (the cached demo uses the defaults)")
        target = demo.default_demo_path()
        existed = (target / demo.MANIFEST).exists()
        path = demo.demo_dir()
        print(f"demo dataset {'already at' if existed else 'written to'} {path}")
    else:
        dest = Path(args.dest).expanduser()
        if (dest / "real-vs-fake").exists():
            raise CliError(f"{dest / 'real-vs-fake'} already exists; choose an empty --dest")
        bar = _bar(2 * args.n_per_class, "demo", "img")
        try:
            path = demo.make_demo(dest, n_per_class=args.n_per_class, size=args.size, seed=args.seed,
                                  progress=_counter(bar))
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        finally:
            bar.close()
        print(f"demo dataset written to {path}")
    from dfd.data import index_dataset

    print(_table(index_dataset(path).counts().reset_index()))
    return 0


# ----------------------------------------------------------------------------------------------------------
# index


def cmd_index(args: argparse.Namespace) -> int:
    from dfd import data

    index = data.index_dataset(_existing(args.path, "dataset folder"), val_frac=args.val_frac,
                               test_frac=args.test_frac, seed=args.seed)
    fingerprint = index.fingerprint()
    unreadable: list[tuple[str, str]] = []
    if args.check:  # decode every image first: the counts below leave out the files that cannot be read
        paths = index.frame["path"].tolist()
        bar = _bar(len(paths), "decoding", "img")
        try:
            unreadable = data.find_unreadable(_ticking(paths, bar))
        finally:
            bar.close()
        bad = {p for p, _ in unreadable}
        index.frame = index.frame[~index.frame["path"].isin(bad)].reset_index(drop=True)
    print(f"dataset: {index.root}  layout: {index.layout}  images: {len(index.frame)}"
          + (f" readable ({len(unreadable)} unreadable, not counted)" if args.check else "")
          + f"  fingerprint: {fingerprint}")
    print(_table(index.counts().reset_index()))
    if index.frame["dataset"].nunique() > 1:
        per = index.frame.groupby(["dataset", "split"]).size().unstack(fill_value=0)
        per = per.reindex(columns=[s for s in data.SPLITS if s in per.columns])
        print("\nper dataset:")
        print(_table(per.reset_index()))
    _listing("skipped (not image files)" if args.check else "skipped (not image files; add --check to decode "
             "every image)", list(index.skipped), args.show_skipped)
    if args.check:
        _listing("unreadable (not counted above)", unreadable, args.show_skipped)
    return 0


def _listing(title: str, items: list[tuple[str, str]], show: int) -> None:
    print(f"\n{title}: {len(items)}")
    for path, reason in items[:show]:
        print(f"  {path}: {reason}")
    if len(items) > show:
        print(f"  ... and {len(items) - show} more (--show-skipped N)")


def _ticking(items: Sequence[Any], bar: Any):
    for item in items:
        yield item
        bar.update(1)


# ----------------------------------------------------------------------------------------------------------
# train

TRAIN_HELP: dict[str, str] = {
    "data": "dataset folder (any supported layout) or CSV manifest",
    "architecture": "model architecture (see the list above)",
    "image_size": "square input size in pixels (default: the architecture's own size, listed above)",
    "epochs": "maximum number of epochs",
    "batch_size": "images per batch",
    "learning_rate": "peak learning rate (Adam / AdamW)",
    "warmup_epochs": "epochs of linear learning-rate warm-up from 0",
    "lr_schedule": "learning-rate schedule after warm-up: cosine or constant",
    "min_lr_ratio": "cosine decay ends at learning_rate times this",
    "weight_decay": "weight decay; > 0 switches to AdamW",
    "seed": "random seed (weights, shuffling, augmentation); runs of different seeds share their val and test "
            "images",
    "teacher": "distil: learn toward the mean P(fake) of these complete runs (names or folders) on the train "
               "images; they must have been validated and tested on this run's val and test images",
    "distill_weight": "with --teacher: train target = (1 - w) * label + w * the teachers' P(fake)",
    "distill_temperature": "with --teacher: the teachers' P(fake) softened as sigmoid(logit(p) / T) (they are "
                           "sure of the images they trained on)",
    "split_seed": "seed of the split of datasets that have none (real-and-fake-face), kept apart from --seed",
    "augment": "training augmentations as JSON, e.g. '{\"flip\": true, \"jpeg_p\": 0.5, \"blur_p\": 0.2}' "
               "(keys: flip, rotate_deg, zoom, blur_p, blur_sigma, noise_p, noise_sigma, jpeg_p, jpeg_quality, "
               "mixup, erase_p, erase_area, rescale_p, rescale_range, resample_p, resample_px, sharpen_p, "
               "sharpen_amount, webp_p, webp_quality); "
               "'null' for none",
    "class_weight": "weight classes inversely to their frequency",
    "balance_datasets": "oversample smaller datasets so that each dataset is seen as often per epoch",
    "dataset_weights": "after balancing, repeat each named dataset's training images this many times an epoch, "
                       "as JSON, e.g. '{\"faces-140k-mini\": 2.5}' (fractions: a seeded share of them once more)",
    "patience": "epochs without improvement before early stopping (0: never stop early)",
    "monitor": "metric for early stopping and the best checkpoint: val_loss, val_auc or val_accuracy",
    "val_frac": "validation fraction, for datasets without a split",
    "test_frac": "test fraction, for datasets without a split",
    "name": "run folder name (default: the architecture); never overwrites, nor takes a shipped run's name: "
            "name2, name3, ...",
    "runs_dir": "folder the run is written to (default: the user runs folder, $DFD_RUNS_DIR or runs/ in the "
                "repository; the shipped models/ is refused)",
    "limit": "at most this many images per split (stratified): quick runs and tests",
    "datasets": "keep only these datasets (values of the index's dataset column, see `dfd index`)",
    "arch_kwargs": "extra architecture arguments as JSON, e.g. '{\"dropout\": 0.3}'",
    "strategy": "tf.distribute strategy: 'auto' (all GPUs of this host when it has several, else one device; "
                "default), 'mirrored' (all GPUs, else all CPUs of this host) or 'multiworker' (one replica per "
                "process of the cluster in TF_CONFIG: run the same command on every host; the chief writes the "
                "run; see the README)",
    "backup_dir": "with --strategy multiworker: folder each worker backs its state up to at every epoch's end, "
                  "and resumes from when started again (default: $DFD_BACKUP_DIR, else <temp dir>/dfd-backup)",
    "predict_splits": "splits to predict into predictions.csv after training",
    "tta": "test-time averaging: the run's P(fake) is the mean over the image and its mirror image "
           "(every prediction: predictions.csv, evaluate, robustness, predict, the app)",
    "notes": "free text stored in config.json",
    "reals_only": "of these datasets learn only the real photos (more kinds of real photo against false alarms, "
                  "from a dataset whose fakes should not be learned); their test fakes are still scored",
}


def _field_kind(annotation: Any) -> str:
    text = str(annotation)
    for kind in ("bool", "dict", "list", "float", "int"):
        if kind in text:
            return kind
    return "str"


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({exc.msg})") from exc


def _optional(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else kind(text)

    parse.__name__ = kind.__name__
    return parse


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    from dfd.train import TrainConfig

    for f in fields(TrainConfig):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        flag = "--" + f.name.replace("_", "-")
        help_text = TRAIN_HELP.get(f.name, f"TrainConfig.{f.name}")
        shown = "the demo dataset" if f.name == "data" else json.dumps(default) if default is not None else "none"
        if "default" not in help_text:
            help_text += f" (default: {shown})"
        kind = _field_kind(f.type)
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif kind == "dict":
            parser.add_argument(flag, type=_json_arg, metavar="JSON", **kw)
        elif kind == "list":
            parser.add_argument(flag, nargs="+", metavar=f.name.upper().rstrip("S"), **kw)
        else:
            parse = {"int": int, "float": float, "str": str}[kind]
            parser.add_argument(flag, type=_optional(parse) if "None" in str(f.type) else parse,
                                metavar=f.name.upper(), **kw)


def cmd_train(args: argparse.Namespace) -> int:
    from dfd import train

    options = {f.name: getattr(args, f.name) for f in fields(train.TrainConfig) if hasattr(args, f.name)}
    if not options.get("data"):
        from dfd import demo

        options["data"] = str(demo.demo_dir())
        print(f"no --data given: training on the demo dataset at {options['data']}", file=sys.stderr)
    else:
        _existing(options["data"], "dataset folder")
    config = train.TrainConfig.from_dict(options)
    from dfd.models import ARCHITECTURES

    if config.architecture not in ARCHITECTURES:  # checked here too, so bad input fails before TensorFlow loads
        raise CliError(f"unknown architecture {config.architecture!r}; choose one of: {', '.join(sorted(ARCHITECTURES))}")
    _import_tensorflow_quietly()
    bar = _bar(config.epochs, "train", "epoch")
    last_phase: list[str | None] = [None]

    def progress(epoch: float, epochs: int, logs: dict[str, Any]) -> None:
        bar.total = epochs
        bar.n = round(float(epoch), 2)
        if "phase" in logs:  # building, first batch, validation, predicting, calibrating: say which
            count = f" {logs['done']}/{logs['total']}" if "total" in logs else ""
            bar.set_description(f"train: {logs['phase']}{count}", refresh=False)
            bar.refresh()
            if bar.disable and logs["phase"] != last_phase[0] and logs["phase"] != "validation":
                print(f"{logs['phase']}...", file=sys.stderr, flush=True)  # logs and pipes: a line a phase
            last_phase[0] = logs["phase"]
            return
        last_phase[0] = None
        bar.set_description("train", refresh=False)
        shown = {k: f"{v:.3f}" for k, v in logs.items() if isinstance(v, (int, float)) and k != "batch"}
        bar.set_postfix(shown, refresh=False)
        bar.refresh()
        if "batch" not in logs:  # the end of an epoch (mid-epoch calls carry the batch number)
            line = f"epoch {int(epoch)}/{epochs}: " + ", ".join(f"{k} {v}" for k, v in shown.items() if k != "epoch")
            if bar.disable:
                print(line, file=sys.stderr, flush=True)  # logs and pipes get one line an epoch
            else:
                bar.write(line, file=sys.stderr)

    stop = threading.Event()

    def interrupted(signum: int, frame: Any) -> None:
        # Ctrl-C or SIGTERM (kill, a container or CI stopping): kept as interrupted. The first one sets the
        # event, which stops training after the current batch (an exception raised inside TensorFlow's work
        # can be swallowed, or crash it); a second one interrupts at once.
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        path = train.train(config, progress=progress, stop_event=stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        bar.close()
    if path is None:  # a multi-worker run's non-chief worker: the chief writes and reports the run
        print("this worker's share of the training is done; the chief writes the run folder")
        return EXIT_INTERRUPTED if stop.is_set() else 0
    from dfd import runs

    run = runs.get_run(path)
    print(f"run: {run.name}  status: {run.status}  epochs: {_fmt(run.config.get('epochs_run'))}  "
          + _test_line(run))
    bad = run.bad_files()
    if len(bad):
        print(f"unreadable files skipped: {len(bad)} (listed in {run.path / 'bad_files.csv'})")
    print(run.path)
    return 0 if run.status == "complete" else EXIT_INTERRUPTED


def _test_line(run: Any) -> str:
    from dfd import tables

    row = tables.run_row(run)
    return (f"test accuracy: {_fmt(row['test acc'])}  test ROC AUC: {_fmt(row['test AUC'])}  "
            f"(at its threshold {_fmt(row['threshold'])})")


def cmd_ensemble(args: argparse.Namespace) -> int:
    from dfd import runs, train

    _import_tensorflow_quietly()
    bar = _bar(None, f"ensemble {args.name}: predicting val and test", "img")
    try:
        path = train.ensemble(args.members, name=args.name, runs_dir=args.runs_dir, batch_size=args.batch_size,
                              notes=args.notes or "", progress=_counter(bar))
    finally:
        bar.close()
    run = runs.get_run(path)
    print(f"run: {run.name}  status: {run.status}  members: {len(run.config.get('members', []))}  "
          + _test_line(run))
    print(run.path)
    return 0 if run.status == "complete" else EXIT_INTERRUPTED


def cmd_calibrate(args: argparse.Namespace) -> int:
    from dfd import evaluate

    run = _run(args.run, args.runs_dir)
    result = evaluate.calibrate(run, split=args.split, runs_dir=args.runs_dir, name=args.name)
    print(f"temperature {_fmt(result['temperature'])}  threshold {_fmt(result['threshold'])}  "
          f"ECE on {args.split} {_fmt(result['ece_before'])} -> {_fmt(result['ece_after'])}"
          + (f"  test ECE {_fmt(result['test_ece_before'])} -> {_fmt(result['test_ece_after'])}"
             if "test_ece_before" in result else ""))
    if result["band_lo"] < result["band_hi"]:
        print(f"inconclusive band {_fmt(result['band_lo'])} to {_fmt(result['band_hi'])}: "
              f"{_fmt(result['band_decided'])} of {args.split} decided, accuracy on them "
              f"{_fmt(result['band_accuracy_decided'])}"
              + (f"; test {_fmt(result['test_band_decided'])} decided, accuracy "
                 f"{_fmt(result['test_band_accuracy_decided'])}" if "test_band_decided" in result else ""))
    else:
        print(f"no inconclusive band: none raises accuracy on {args.split}")
    if run.shipped:
        print(f"{run.name} is a shipped run and stays as it is: the calibration went into a copy, run "
              f"{Path(result['run_path']).name}", file=sys.stderr)
    print(Path(result["run_path"]) / "calibration.json")
    return 0


# ----------------------------------------------------------------------------------------------------------
# runs, evaluate, robustness


def _run(name: str, runs_dir: str) -> Any:
    from dfd import runs

    return runs.get_run(name, runs_dir)


def cmd_runs(args: argparse.Namespace) -> int:
    from dfd import runs, tables

    for path in runs.recover_stale(args.runs_dir):
        print(f"kept {path.name}: its training process ended without closing it (marked interrupted)",
              file=sys.stderr)
    for path in runs.shadowed_runs(args.runs_dir):
        print(f"{path} is hidden by the shipped run of the same name in {runs.shipped_dir()}: rename it, or "
              "give its folder path instead of its name", file=sys.stderr)
    user = Path(args.runs_dir) if args.runs_dir else runs.user_dir()
    found = runs.list_runs(user)
    if not found:
        print(f"no runs in {user} or {runs.shipped_dir()}")
        return 0
    if args.evals:
        table = tables.evals_table(found)
        note = ("Accuracy at each run's served threshold (the threshold column). Source: 'own test split' is the "
                "run's predictions.csv; 'evaluation TAG' is an evaluation record (python -m dfd evaluate), "
                f"under {user / runs.EVALS_DIR}.")
    else:
        table = tables.runs_table(found)
        note = (f"{tables.THRESHOLD_NOTE} kind: shipped (in {runs.shipped_dir()}, read-only) or user "
                f"(in {user}).")
    if args.csv:
        _write_csv(table, args.csv)
    else:
        print(_table(table))
        print(f"\n{note}")
        if args.evals:
            print("\nEvidence of each run: 'run folder' is the run's own file, anything else an evaluation record:")
            print(_table(tables.evidence_table(found)))
    return 0


def _metrics_line(report: dict[str, Any]) -> str:
    keys = ("n", "accuracy", "precision", "recall", "f1", "roc_auc", "ece")
    return "  ".join(f"{k} {_fmt(report.get(k))}" for k in keys if k in report)


def _generator_lines(report: dict[str, Any]) -> list[str]:
    """Recall per generator and the false-alarm rate on reals, from a metrics report's by_generator rows."""
    return [f"    {row['dataset']} {row['split']}: {row['kind']} on {row['group']} {_fmt(row['rate'])} "
            f"({row['caught']} of {row['n']})" for row in report.get("by_generator", [])]


def cmd_card(args: argparse.Namespace) -> int:
    from dfd import card

    if args.compare:
        table = card.compare([_run(name, args.runs_dir) for name in args.compare])
        _write_csv(table, args.csv or "-")
        return 0
    if not args.run:
        raise CliError("name a RUN (or --compare RUN...)")
    run = _run(args.run, args.runs_dir)
    if args.check:
        problems = card.check(_existing(args.check, "model card").read_text(), run)
        for line in problems:
            print(line)
        print(f"{args.check}: {'differs from' if problems else 'matches'} run {run.name}'s files")
        return EXIT_ERROR if problems else 0
    if args.fill:
        print(card.fill(_existing(args.fill, "model card").read_text(), run), end="")
        return 0
    print(card.render(run), end="")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dfd import evaluate, runs

    run = _run(args.run, args.runs_dir)
    _existing(args.data, "dataset folder")
    _import_tensorflow_quietly()
    bar = _bar(None, f"evaluate {run.name}", "img")
    try:
        folder = evaluate.evaluate_run(run, args.data, split=args.split, tag=args.tag, limit=args.limit,
                                       dataset=args.dataset, batch_size=args.batch_size, progress=_counter(bar))
    finally:
        bar.close()
    report = runs.read_json(folder / "metrics.json", {}) or {}
    print(f"run {run.name} on {Path(args.data).expanduser().resolve()} ({args.split}), "
          f"threshold {_fmt(report.get('threshold', 0.5))}:")
    for key, value in report.items():
        if isinstance(value, dict) and "accuracy" in value:
            print(f"  {key}: " + _metrics_line(value))
    for line in _generator_lines(report):
        print(line)
    calibrated = report.get("calibrated")
    if isinstance(calibrated, dict):
        print(f"calibrated (the run's temperature, threshold {_fmt(calibrated.get('threshold'))}):")
        for key, value in calibrated.items():
            if isinstance(value, dict) and "accuracy" in value:
                print(f"  {key}: " + _metrics_line(value))
        for line in _generator_lines(calibrated):
            print(line)
    errors = runs._read_csv(folder / "errors.csv", ["path", "reason"])
    if len(errors):
        print(f"  unreadable files skipped: {len(errors)} (listed in {folder / 'errors.csv'})")
    print(folder)
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    from dfd import evaluate, runs

    run = _run(args.run, args.runs_dir)
    _existing(args.data, "dataset folder")
    _import_tensorflow_quietly()
    bar = _bar(None, f"robustness {run.name}", "img")
    try:
        folder = evaluate.robustness(run, args.data, split=args.split, limit=args.limit, batch_size=args.batch_size,
                                     tag=args.tag, progress=_counter(bar))
    finally:
        bar.close()
    info = runs.read_json(folder / "robustness.json", {}) or {}
    print(f"run {run.name} at its threshold {_fmt(run.threshold)}, pooled over {', '.join(info.get('datasets', []))}:")
    print(_table(pd.read_csv(folder / "robustness.csv")))
    print("\nper dataset:")
    print(_table(pd.read_csv(folder / "robustness_by_dataset.csv")))
    print(folder)
    return 0


def cmd_sizes(args: argparse.Namespace) -> int:
    from dfd import card, evaluate

    run = _run(args.run, args.runs_dir)
    _existing(args.data, "dataset folder")
    _import_tensorflow_quietly()
    sizes = tuple(args.sizes)
    bar = _bar(None, f"sizes {run.name}", "img")
    try:
        folder = evaluate.size_sweep(run, args.data, split=args.split, limit=args.limit, sizes=sizes,
                                     batch_size=args.batch_size, tag=args.tag, progress=_counter(bar))
    finally:
        bar.close()
    wide = card.sizes_wide(pd.read_csv(folder / "sizes.csv"))
    print(f"run {run.name} at its threshold {_fmt(run.threshold)}; each image brought to each size "
          "(area down, bicubic up, JPEG q90), then judged as served:")
    print(_table(wide))
    print(folder)
    return 0


def cmd_cross_dataset(args: argparse.Namespace) -> int:
    from dfd import evaluate

    chosen = [_run(r, args.runs_dir) for r in args.runs]
    into = _run(args.into, args.runs_dir) if args.into else chosen[0]
    _existing(args.data, "dataset folder")
    _import_tensorflow_quietly()
    bar = _bar(None, "cross-dataset", "dataset")
    try:
        folder = evaluate.cross_dataset(chosen, args.data, split=args.split, limit=args.limit, into=into,
                                        batch_size=args.batch_size, tag=args.tag, progress=_counter(bar))
    finally:
        bar.close()
    print(_table(pd.read_csv(folder / "cross_dataset.csv")))
    print(folder / "cross_dataset.csv")
    return 0


# ----------------------------------------------------------------------------------------------------------
# predict


def _manifest(path: Path) -> list[Path]:
    """The files a CSV manifest lists in its ``path`` column, in its order; relative paths are taken from the
    manifest's folder. A listed file that is missing is kept: it gets its own "cannot read" row."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CliError(f"cannot read CSV manifest {path}: {' '.join(str(exc).split())}") from exc
    column = next((c for c in table.columns if str(c).strip().lower() == "path"), None)
    if column is None:
        raise CliError(f"CSV manifest {path} needs a 'path' column; it has {list(table.columns)}")
    files = [Path(text).expanduser() for text in (v.strip() for v in table[column]) if text]
    if not files:
        raise CliError(f"CSV manifest {path} lists no files")
    return [f if f.is_absolute() else path.parent / f for f in files]


def _expand(paths: Sequence[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(files to judge, files passed over with the reason). Files given by name are judged whatever their
    extension, but a ``.csv`` is a manifest: the files of its ``path`` column (:func:`_manifest`); in a folder
    (searched recursively) the image and video files are judged and every other file is passed over, with its
    reason: hidden, in a hidden folder, no extension, not an image or video extension."""
    from dfd.imaging import IMAGE_EXTENSIONS
    from dfd.video import VIDEO_EXTENSIONS

    out: list[Path] = []
    passed: list[tuple[Path, str]] = []
    for text in paths:
        p = Path(text).expanduser()
        if p.is_dir():
            found = []
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if any(part.startswith(".") for part in rel[:-1]):
                    if f.is_file():
                        passed.append((f, "in a hidden folder"))
                elif not f.is_file():
                    continue
                elif f.name.startswith("."):
                    passed.append((f, "hidden file (name starts with '.')"))
                elif not f.suffix:
                    passed.append((f, "no file extension (give the file itself to judge it)"))
                elif f.suffix.lower() not in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
                    passed.append((f, f"not an image extension nor a video one ({f.suffix}; judged: "
                                      f"{', '.join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)})"))
                else:
                    found.append(f)
            if not found:
                raise CliError(f"no image or video files in folder {p}"
                               + (f" ({len(passed)} other file(s) passed over)" if passed else ""))
            out += found
        elif p.is_file() and p.suffix.lower() == ".csv":
            out += _manifest(p)
        elif p.exists():
            out.append(p)
        else:
            raise CliError(f"file or folder not found: {p}")
    return out, passed


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, which must be above 0."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def cmd_predict(args: argparse.Namespace) -> int:
    files, passed = _expand(args.paths)
    for f, reason in passed:  # every file passed over is named, on stderr (stdout may be the CSV)
        print(f"passed over {f}: {reason}", file=sys.stderr)
    from dfd import video

    clips = [f for f in files if video.is_video_name(f) or video.looks_like_video(f)]
    files = [f for f in files if f not in set(clips)]
    if args.frames_csv and not clips:
        raise CliError("--frames-csv: no video clip among the files given")
    if clips and args.csv == "-" and args.frames_csv == "-":
        raise CliError("--csv and --frames-csv cannot both write to stdout ('-')")
    run = _run(args.run, args.runs_dir)
    sizes = run.sizes()  # the run's size sweep: the note on small faces
    from dfd import detect

    if args.engine == "ray":
        if clips:
            raise CliError(f"--engine ray judges images; video clips ({clips[0]}, ...) need the default --engine local")
        from dfd.evaluate import band_at

        results, run_name, engine = _predict_on_ray(args, run, files)
        threshold = run.threshold if args.threshold is None else args.threshold
        band = band_at(run.band, run.threshold, threshold)
    else:
        if args.address or hasattr(args, "actors"):
            raise CliError("--address and --actors go with --engine ray")
        _import_tensorflow_quietly()
        with _quiet_output():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate" line, when it loads
            detector = detect.Detector(run)
        threshold = detector.threshold if args.threshold is None else args.threshold
        bar = _bar(len(files), "predict", "img")
        results = []
        try:
            for f in files:
                results.append(detector.analyse(f, name=str(f), threshold=threshold, find_faces=not args.whole_image))
                bar.update(1)
        except KeyboardInterrupt:  # Ctrl-C: what was judged is kept, in the CSV when one was asked for
            bar.close()
            if args.csv and args.csv != "-" and results:
                _write_csv(detect.results_table(results, threshold, detector.band_at(threshold), run=detector.name,
                                                engine=detector.engine, sizes=sizes), args.csv)
                print(f"dfd predict: interrupted after {len(results)} of {len(files)} image(s); {args.csv} holds "
                      f"the {len(results)} judged", file=sys.stderr)
                return EXIT_INTERRUPTED
            raise
        finally:
            bar.close()
        band = detector.band_at(threshold)
        if clips:
            return _predict_clips(args, detector, threshold, band, clips, results, passed, sizes)
        run_name, engine = detector.name, detector.engine
    table = detect.results_table(results, threshold, band, run=run_name, engine=engine, sizes=sizes)
    if args.csv:
        _write_csv(table, args.csv)
    if args.csv != "-":  # the table is shown unless the CSV goes to stdout
        print(_table(detect.table_for_display(table)))
        n_bad = sum(not r.ok for r in results)
        n_fake = int((table["verdict"] == "fake").sum())
        n_unsure = int((table["verdict"] == detect.INCONCLUSIVE).sum())
        band_text = (f", inconclusive band {detect.p_text(band[0])}-{detect.p_text(band[1])}"
                     if band is not None else ", no inconclusive band")
        print(f"\n{len(results)} image(s), {len(table) - n_bad} judged region(s): {n_fake} fake, {n_unsure} "
              f"inconclusive at threshold {threshold:.3f} (run {run_name}{band_text}); {n_bad} unreadable"
              + (f"; {len(passed)} file(s) passed over (listed on stderr)" if passed else ""))
    return 0


def _predict_on_ray(args: argparse.Namespace, run: Any, files: Sequence[Path]) -> tuple[list[Any], str, str]:
    """(results in the files' order, run name, engine) of ``predict --engine ray`` (:mod:`dfd.scale`): Ray
    started in this process, or the cluster at --address joined, for this command only."""
    from dfd import scale

    try:
        started = scale.start(args.address, quiet=_QUIET["tensorflow"])
    except scale.ScaleError as exc:
        raise CliError(str(exc)) from exc
    bar = _bar(len(files), "predict (ray)", "img")
    try:
        results, engine = scale.score(files, run, threshold=args.threshold, find_faces=not args.whole_image,
                                      actors=getattr(args, "actors", scale.DEFAULT_ACTORS), progress=_counter(bar))
    finally:
        bar.close()
        if started:
            scale.stop()
    return results, run.name, engine


def _predict_clips(args: argparse.Namespace, detector: Any, threshold: float, band: Any, clips: Sequence[Path],
                   images: Sequence[Any], passed: Sequence[Any], sizes: pd.DataFrame | None = None) -> int:
    """The clips of a ``predict`` batch (dfd.video), each face track a row; images judged beside them are rows
    of one frame in the same table."""
    from dfd import detect, video

    results = []
    for f in clips:
        bar = _bar(None, f"video {f.name}", "frame")

        def progress(p: video.ClipProgress, bar: Any = bar) -> None:
            bar.total = p.frame_count or None
            bar.n = p.frames_read
            bar.refresh()

        try:
            r = video.analyse_clip(detector, f, name=str(f), find_faces=not args.whole_image, rate=args.sample_rate,
                                   max_samples=args.max_frames, max_seconds=args.max_minutes * 60,
                                   progress=progress)
        finally:
            bar.close()
        if r.error is not None:
            print(f"could not judge {f}: {r.error}", file=sys.stderr)
        results.append(r)
    table = video.tracks_table(results, threshold, band, run=detector.name, images=images, sizes=sizes)
    if args.csv:
        _write_csv(table, args.csv)
    if args.frames_csv:
        _write_csv(video.frames_table(results, threshold, band), args.frames_csv)
    if "-" not in (args.csv, args.frames_csv):  # the table is shown unless a CSV goes to stdout
        shown = table.drop(columns=["run", "threshold", "band"] + ([] if images else ["kind"])).astype(object)
        shown["track"] = ["" if pd.isna(v) else str(int(v)) for v in table["track"]]
        print(_table(shown.fillna("")))
        tracks = table[(table["kind"] == "clip") & (table["verdict"] != "error")]
        band_text = (f", inconclusive band {detect.p_text(band[0])}-{detect.p_text(band[1])}"
                     if band is not None else "")
        print(f"\n{len(clips)} clip(s), {len(tracks)} face track(s): {int((tracks['verdict'] == 'fake').sum())} fake, "
              f"{int((tracks['verdict'] == 'real').sum())} real"
              + (f", {int((tracks['verdict'] == detect.INCONCLUSIVE).sum())} inconclusive"
                 if band is not None else "")
              + f" (median P(fake) of each track at threshold {threshold:.3f}, run {detector.name}{band_text}); "
              f"{sum(not r.ok for r in results)} could not be judged"
              + (f"; {len(images)} image(s) in the same table, each face a one-frame row" if images else "")
              + (f"; {len(passed)} file(s) passed over (listed on stderr)" if passed else ""))
    return 0


def _write_csv(table: pd.DataFrame, target: str) -> None:
    if target == "-":
        table.to_csv(sys.stdout, index=False)
    else:
        from dfd import runs

        path = runs.check_writable(Path(target).expanduser())
        if not path.parent.is_dir():
            raise CliError(f"folder not found for --csv: {path.parent}")
        table.to_csv(path, index=False)
        print(f"wrote {len(table)} row(s) to {path}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------------------
# export


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from dfd import export
    except ImportError as exc:
        raise CliError("TFLite export is not available in this version (dfd.export is missing)") from exc
    from dfd import runs

    run = _run(args.run, args.runs_dir)
    kinds = ("float", "int8") if args.kind == "both" else (args.kind,)
    data_root = _existing(args.calibration_data, "calibration dataset folder") if args.calibration_data else None
    if args.out:
        out = runs.check_writable(Path(args.out).expanduser())
    else:  # a new folder of the user runs folder, never the run's own (a shipped run is read-only)
        exports = (Path(args.runs_dir) if args.runs_dir else runs.user_dir()) / runs.EXPORTS_DIR
        out = exports / runs.unique_name(exports, run.name, run=False)
    _import_tensorflow_quietly()
    print(f"exporting {run.name} ({', '.join(kinds)}) to {out} ...", file=sys.stderr, flush=True)
    with _quiet_output():
        written = export.export(run, out, data_root=data_root, kinds=kinds,
                                n_representative=args.n_representative)
    for key, path in written.items():
        size = f"  ({Path(path).stat().st_size / 1024:.0f} KB)" if key != "info" and Path(path).exists() else ""
        print(f"{key}: {path}{size}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# the parser


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _runs_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", default=None, metavar="DIR",
                   help="the user runs folder: runs are looked up here and in the shipped models/, and new runs "
                        "and evaluation records are written here (default: $DFD_RUNS_DIR, else runs/ in the "
                        "repository)")


def _scoring_options(p: argparse.ArgumentParser, per: str = "") -> None:
    """The options of the commands that score runs on a dataset split (evaluate, robustness, cross-dataset)."""
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"], help="which split to score")
    p.add_argument("--limit", type=int, help=f"at most this many images{per} (stratified)")
    p.add_argument("--batch-size", type=int, default=64, help="images per model call")
    p.add_argument("--tag", help="name of the evaluation record (default: <datasets>-<split>, e.g. "
                                 "lfw-faceswap-test; never reused: tag2, tag3, ...)")
    _runs_dir(p)


def _run_and_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run name (in --runs-dir) or run folder path")
    p.add_argument("data", metavar="DATA", help="dataset folder (any supported layout) or CSV manifest")
    _scoring_options(p)


def build_parser() -> argparse.ArgumentParser:
    from dfd import demo

    # "dfd" when run as the installed console command, "python -m dfd" otherwise
    prog = "dfd" if Path(sys.argv[0]).name == "dfd" else "python -m dfd"
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=_Formatter,
        description="Deepfake image detection: datasets, training, evaluation and detection from the shell.",
        epilog="Each command has its own --help. Labels: fake = 1, real = 0; models output P(fake).")
    parser.add_argument("--version", action="version", version=f"dfd {__version__}")
    parser.add_argument("--verbose", action="store_true",
                        help="keep TensorFlow's start-up log lines, and show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", formatter_class=_Formatter, help="make the built-in (synthetic) demo dataset",
                       description="Generate the demo dataset: procedurally drawn faces as 'real', the same kind of "
                                   "faces with a GAN-like checkerboard upsampling fingerprint as 'fake', in the 140k "
                                   "layout (real-vs-fake/{train,valid,test}/{real,fake}). Deterministic for a seed. "
                                   "Without --dest it goes to the cache the app uses ($DFD_DEMO_DIR or "
                                   "~/.cache/dfd/demo-v1) with the default parameters.")
    p.add_argument("--dest", metavar="DIR", help="write here instead of the cache (must not hold a demo yet)")
    p.add_argument("--n-per-class", type=int, default=demo.DEFAULT_N_PER_CLASS, metavar="N",
                   help="images per class in total, split 70/15/15 into train/valid/test")
    p.add_argument("--size", type=int, default=demo.DEFAULT_SIZE, metavar="PX", help="image side in pixels")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("index", formatter_class=_Formatter, help="count images per split and class; list skipped files",
                       description="Find the dataset layout(s) at PATH (or below it) and print the images per split "
                                   "and class, and the files skipped (not images; with --check also unreadable).")
    p.add_argument("path", metavar="PATH", help="dataset folder, a parent of several, or a CSV manifest")
    p.add_argument("--val-frac", type=float, default=0.15, help="validation fraction for data without a split")
    p.add_argument("--test-frac", type=float, default=0.15, help="test fraction for data without a split")
    p.add_argument("--seed", type=int, default=0, help="seed of the stable split for data without one")
    p.add_argument("--check", action="store_true", help="decode every image to find truncated or corrupt files")
    p.add_argument("--show-skipped", type=int, default=20, metavar="N", help="list at most N skipped files")
    p.set_defaults(func=cmd_index)

    from dfd.models import ARCHITECTURES, DEFAULT_SIZES

    archs = "\n".join(f"  {name:<20} {DEFAULT_SIZES.get(name, '?')} px  {text}" for name, text in ARCHITECTURES.items())
    p = sub.add_parser("train", formatter_class=_Formatter, help="train a model; prints the run folder",
                       description="Train a CNN on a dataset and write a run folder (config.json, history.csv, "
                                   "model.keras, predictions.csv, metrics.json, status.json). Ctrl-C stops after "
                                   "the current batch and keeps the run as 'interrupted'.\n\narchitectures:\n"
                                   + archs)
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("ensemble", formatter_class=_Formatter, help="average runs into one run (a deep ensemble)",
                       description="Make a run whose P(fake) is the mean of the members' (e.g. the same recipe "
                                   "trained with different --seed). The members must share image size, --tta and "
                                   "their val/test images; the ensemble predicts them again, is calibrated on val "
                                   "and can be used like any run (predict, evaluate, robustness, export, the app).")
    p.add_argument("members", nargs="+", metavar="RUN", help="complete runs: names (in --runs-dir) or folder paths")
    p.add_argument("--name", default="ensemble", help="name of the new run (never overwrites: name2, name3, ...)")
    p.add_argument("--batch-size", type=int, default=64, help="images per model call")
    p.add_argument("--notes", help="free text kept in config.json")
    _runs_dir(p)
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("calibrate", formatter_class=_Formatter, help="fit a run's temperature and threshold",
                       description="Fit temperature scaling and the decision threshold on a run's val predictions "
                                   "and write calibration.json (training does this itself when it ends). A shipped "
                                   "run is never changed: its calibrated copy becomes a new run in the user runs "
                                   "folder.")
    p.add_argument("run", metavar="RUN", help="run name (in --runs-dir) or run folder path")
    p.add_argument("--split", default="val", help="the split of predictions.csv to fit on")
    p.add_argument("--name", help="name of the calibrated copy made of a shipped run (default: <run>-calibrated)")
    _runs_dir(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("evaluate", formatter_class=_Formatter, help="score a run on a dataset folder",
                       description="Predict a split of a dataset with a run's model and write a new evaluation "
                                   "record <runs dir>/_evals/<run>/evaluate/<tag>/{predictions.csv,metrics.json,"
                                   "errors.csv,record.json}; the run's own folder is not touched.")
    _run_and_data(p)
    p.add_argument("--dataset", help="only this dataset (the index's dataset column) when DATA holds several")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", formatter_class=_Formatter, help="P(fake) and a verdict per face",
                       description="Judge images: each face found (BlazeFace) is cropped as in training and gets "
                                   "P(fake) and a verdict at the run's threshold: fake, real, or inconclusive "
                                   "inside the run's band around the threshold or when a light re-save (JPEG q85, "
                                   "0.75x) flips it; with no face the whole image is judged. Unreadable files get "
                                   "a row with the error. The CSV names the run, threshold, band, engine and dfd "
                                   "version. Same code as the app's Detect page (dfd.detect.Detector); --engine ray runs it on Ray Data "
                                   "(dfd.scale) for many images, on this machine or a cluster, with the same table.")
    p.add_argument("paths", nargs="+", metavar="IMAGE_OR_FOLDER",
                   help="image files, video clips, folders (searched recursively), or CSV manifests (.csv with a "
                        "'path' column; relative paths from the manifest's folder)")
    p.add_argument("--run", default="default", help="run name (in --runs-dir) or run folder path")
    p.add_argument("--threshold", type=float, help="decision threshold on P(fake) (default: the run's calibrated one)")
    p.add_argument("--whole-image", action="store_true", help="judge whole images; do not look for faces")
    p.add_argument("--csv", metavar="FILE",
                   help="also write the table as CSV to FILE ('-': write only the CSV, to stdout)")
    p.add_argument("--frames-csv", metavar="FILE",
                   help="video clips: also write one row per sampled frame and face (time, P(fake)) to FILE")
    p.add_argument("--sample-rate", type=_positive(float), default=2.0, metavar="PER_S",
                   help="video clips: frames judged a second of clip (fewer for long clips: --max-frames)")
    p.add_argument("--max-frames", type=_positive(int), default=120, metavar="N",
                   help="video clips: at most N frames judged a clip, spread evenly over it")
    p.add_argument("--max-minutes", type=_positive(float), default=10.0, metavar="MIN",
                   help="video clips: longer clips are refused")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process; ray: Ray Data, images decoded and faces found in CPU tasks, the model "
                        "in --actors actors, a dead worker retried (needs pip install \".[scale]\"); same table")
    p.add_argument("--address", metavar="HOST:PORT",
                   help="with --engine ray: join this Ray cluster (default: start Ray on this machine's cores)")
    p.add_argument("--actors", type=_positive(int), metavar="N", default=argparse.SUPPRESS,
                   help="with --engine ray: model actors, each holding the run once (default: 2)")
    p.epilog = textwrap.fill("Video clips (MP4, MOV, WebM, MKV, AVI: dfd.video): frames are sampled evenly (--sample-rate, "
                "--max-frames), faces are followed across frames as tracks, and each track gets its median P(fake), "
                "the share of its frames over the threshold and a verdict; the table and --csv then hold one row "
                "per track (an image in the same batch is a row of one frame), --frames-csv one per frame and face.",
                             width=100, break_on_hyphens=False)
    _runs_dir(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("runs", formatter_class=_Formatter, help="list runs with their key metrics",
                       description="List the user runs (--runs-dir), newest first, then the shipped runs "
                                   "(models/), with val and test metrics at each run's served threshold; with "
                                   "--evals, each run's accuracy on each dataset it was evaluated on.")
    p.add_argument("--evals", action="store_true",
                   help="list the evaluations instead: own test split and evaluation records, per dataset")
    p.add_argument("--csv", metavar="FILE", help="write the table as CSV to FILE ('-' for stdout)")
    _runs_dir(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("card", formatter_class=_Formatter, help="a run's model-card tables, made from its files",
                       description="Print the model-card tables of RUN (between <!-- dfd-card:NAME --> markers), "
                                   "made from its files; --fill CARD prints that card with its tables remade (redirect it to a "
                                   "new file, then review and move it into place); --check CARD compares a card "
                                   "with them cell by cell; "
                                   "--compare RUN... writes the runs-compared table (runs_compared.csv) as CSV.")
    p.add_argument("run", metavar="RUN", nargs="?", help="run name (in --runs-dir) or run folder path")
    p.add_argument("--check", metavar="CARD", help="compare this card (e.g. models/README.md) with the run's files")
    p.add_argument("--fill", metavar="CARD", help="print this card with every marked table remade from the run's files")
    p.add_argument("--compare", metavar="RUN", nargs="+", help="runs to compare, one row each")
    p.add_argument("--csv", metavar="FILE", help="with --compare: write here (default: standard output)")
    _runs_dir(p)
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("robustness", formatter_class=_Formatter, help="accuracy under JPEG, blur and noise",
                       description="Score a run on a split under JPEG re-compression, Gaussian blur and noise, "
                                   "at its served threshold; writes a new evaluation record "
                                   "<runs dir>/_evals/<run>/robustness/<tag>/ with robustness_by_dataset.csv (each "
                                   "dataset in DATA), robustness.csv (pooled over the datasets the run was trained "
                                   "on) and robustness.json. --limit is per dataset.")
    _run_and_data(p)
    p.set_defaults(func=cmd_robustness)

    from dfd import imaging

    p = sub.add_parser("sizes", formatter_class=_Formatter, help="accuracy when faces arrive at other sizes",
                       description="Score a run on a split with each image as it is and brought to each of --sizes "
                                   "px (area down, bicubic up, one JPEG q90), then judged through the served path; "
                                   "writes a new evaluation record <runs dir>/_evals/<run>/sizes/<tag>/ with "
                                   "sizes.csv: per size and dataset, accuracy, recall and false alarms, recall per "
                                   "generator and false alarms per real source. --limit is per dataset.")
    _run_and_data(p)
    p.add_argument("--sizes", type=int, nargs="+", default=list(imaging.SIZE_SWEEP), metavar="PX",
                   help="source sizes to try (besides native)")
    p.set_defaults(func=cmd_sizes)

    p = sub.add_parser("cross-dataset", formatter_class=_Formatter, help="score runs on every dataset, in and out of domain",
                       description="Score each run on each dataset's split under DATA (e.g. models trained on some "
                                   "datasets, tested on the others) and write the table as cross_dataset.csv in a "
                                   "new evaluation record of the run --into (default: the first run), "
                                   "<runs dir>/_evals/<run>/cross-dataset/<tag>/, where the Evaluation page shows it.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run names (in --runs-dir) or run folder paths")
    p.add_argument("--data", required=True, metavar="DATA", help="folder holding the datasets (any supported layout)")
    p.add_argument("--into", metavar="RUN", help="run the table is recorded for (default: the first)")
    _scoring_options(p, per=" per dataset")
    p.set_defaults(func=cmd_cross_dataset)

    p = sub.add_parser("export", formatter_class=_Formatter, help="export a run to TensorFlow Lite (float, int8)",
                       description="Convert a run's model to TensorFlow Lite: float32 and int8 (post-training "
                                   "quantisation calibrated on images of the run's dataset; the high-frequency energy layers and "
                                   "the EfficientNet-Lite0 stem, where a model has them, stay float32).")
    p.add_argument("run", metavar="RUN", help="run name (in --runs-dir) or run folder path")
    p.add_argument("--kind", default="both", choices=["float", "int8", "both"], help="which model(s) to write")
    p.add_argument("--out", metavar="DIR", help="output folder (default: a new folder <runs dir>/_exports/<run>)")
    p.add_argument("--calibration-data", metavar="DIR",
                   help="images for int8 calibration (default: the run's training data)")
    p.add_argument("--n-representative", type=int, default=200, metavar="N",
                   help="number of training images used to calibrate the int8 quantisation")
    _runs_dir(p)
    p.set_defaults(func=cmd_export)
    for command in sub.choices.values():
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="keep TensorFlow's start-up log lines, and show tracebacks of unexpected errors")
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    """The library's 'bad input' exceptions (imported lazily: their modules are cheap and TF-free)."""
    from dfd.data import DatasetError
    from dfd.imaging import ImageError
    from dfd.runs import RunError

    errors: list[type[BaseException]] = [CliError, DatasetError, ImageError, RunError]
    for module, name in (("dfd.train", "TrainError"), ("dfd.evaluate", "EvaluationError"),
                         ("dfd.export", "ExportError")):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(__import__(module, fromlist=[name]), name))
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m dfd``; returns the exit code."""
    # Keras' advice to library authors (e.g. "shuffle=True ... will be ignored") is noise on a command line.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"keras(\.|$)")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _QUIET["tensorflow"] = not args.verbose
    # Without --verbose TensorFlow's C++ log lines are kept off stderr, its errors too (e.g. "failed call to
    # cuInit" on a machine without a GPU): what fails reaches the user as a Python error and its message.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if args.verbose else "3")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"dfd {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _known_errors() as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"dfd {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - anything else (a disk full, a library bug): still one line
        if args.verbose:
            raise
        message = " ".join(str(exc).split())[:500] or "(no message)"
        print(f"dfd {args.command}: error: {type(exc).__name__}: {message} (--verbose shows the traceback)",
              file=sys.stderr)
        return EXIT_ERROR
