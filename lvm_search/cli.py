"""The ``lvm-search`` command line. A user's mistake becomes one line on stderr and exit code 2.

Each command imports what it needs when it runs, so ``lvm-search baselines`` does not pay for Ray.
Results go to stdout (``--json``: JSON alone); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import TrainingDiverged, UserError, shown
from .logs import console

MIN_CONTEXT_HELP = "earlier passages a target needs (default k); older positions are zero-padded"
ROLLOUT_HELP = (
    "predict h passages ahead (default: the horizon it was trained at); a model trained at 1 reads its "
    "own predictions as context to get there"
)
HORIZON_HELP = (
    "predict the passage h steps after the context (default 1: the next; run: the space's data.horizon)"
)
EXTRA_TRAIN_HELP = "another native .npz whose every window joins the train split (repeatable)"


def _path(text: str) -> str:
    # An empty path would silently mean the working folder ('' is '.' to pathlib).
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name a file or folder")
    return text


def _bounded(low: int, high: int):
    """An argparse type: an integer from ``low`` to ``high`` (limits.py), else one error line."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {low} to {high:,}, got {shown(value)}"
            )
        return value

    return parse


def _data_args(p: argparse.ArgumentParser) -> None:
    from .limits import MAX_K, MAX_SEED

    p.add_argument("--data", type=_path, help="an .npz data set (default: the packaged sample)")
    p.add_argument(
        "--k",
        type=_bounded(1, MAX_K),
        default=None,
        help="context length (default 5; run: the space's data.k; windows-format files set their own)",
    )
    p.add_argument("--min-context", type=_bounded(1, MAX_K), help=MIN_CONTEXT_HELP)
    p.add_argument("--horizon", type=_bounded(1, MAX_K), help=HORIZON_HELP)
    p.add_argument(
        "--extra-train", type=_path, action="append", default=[], metavar="NPZ", help=EXTRA_TRAIN_HELP
    )
    p.add_argument("--split-seed", type=_bounded(0, MAX_SEED), default=0, help="seed of the document split")


def _load(args):
    from .data.windows import load_data

    return load_data(
        args.data,
        k=args.k,
        seed=args.split_seed,
        min_context=args.min_context,
        extra_train=args.extra_train,
        horizon=args.horizon or 1,
    )


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# --- baselines --------------------------------------------------------------------------------


def cmd_baselines(args) -> int:
    from .data.windows import check_context_length
    from .scoring.metrics import baselines

    data = _load(args)
    check_context_length(data, data.k, "--k")
    scores = baselines(data)
    out = {
        "data": data.summary(),
        "splits": data.split_sizes(),
        "baselines": {
            name: {
                "val": s["val"]["cosine"],
                "test": s["test"]["cosine"],
                **{key: value for key, value in s.items() if key not in ("val", "test")},
                "metrics": {"val": s["val"], "test": s["test"]},
            }
            for name, s in scores.items()
        },
    }
    if args.json:
        _print_json(out)
        return 0
    d = out["data"]
    horizon = f" horizon={d['horizon']}" if d["horizon"] != 1 else ""
    print(f"data {d['source']}  D={d['D']} k={d['k']}{horizon} fingerprint={d['fingerprint']}")
    for name, s in out["splits"].items():
        print(f"  {name:5s} {s['docs']:5d} docs {s['windows']:7d} windows")
    print(f"{'baseline':10s} {'val cos':>8s} {'test cos':>8s} {'test hit@5':>10s}")
    for name, s in out["baselines"].items():
        print(f"{name:10s} {s['val']:8.4f} {s['test']:8.4f} {s['metrics']['test']['hit5']:10.4f}")
    return 0


# --- train ------------------------------------------------------------------------------------


def parse_sets(pairs: list[str]) -> dict:
    """``["width=256", "residual=true"]`` -> ``{"width": 256, "residual": True}`` (YAML scalars)."""
    from .store.yaml_files import parse_yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        value = parse_yaml(value, f"--set {key.strip()}")
        if isinstance(value, str):  # PyYAML reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (dict, list)):
            raise UserError(f"--set {key.strip()}: expected a single value, got {type(value).__name__}")
        if key.strip() in out:  # the command line would say two things; neither silently wins
            raise UserError(
                f"--set {key.strip()}: given twice ({out[key.strip()]!r} and {value!r}); give it once"
            )
        out[key.strip()] = value
    return out


def cmd_train(args) -> int:
    from .data.windows import check_context_length
    from .devices import resolve_device
    from .ensemble.distill import check_outside_teacher, load_teacher
    from .models.checkpoint import check_checkpoint_path, save_checkpoint
    from .scoring.metrics import reference_mean, score
    from .search.spaces import trial_settings
    from .train import check_fits, train
    from .warm_start import load_init, settings_from_init

    settings = parse_sets(args.set or [])
    init = load_init(args.init, args.arch) if args.init else None
    # the init's model under the --set values: heads=3 is fine on its width 96, if not on the default
    base = dict(init.model_config) if init and init.arch == args.arch else {}
    trial_settings(args.arch, base, settings, where="--set")  # the --set values alone, named as such
    for flag, key, value in (("--epochs", "epochs", args.epochs), ("--device", "device", args.device)):
        if value is None:
            continue
        if key in settings:  # two values for one setting: neither silently wins
            raise UserError(
                f"{flag} {value}: {key} is also given by --set {key}={settings[key]}; give it once"
            )
        trial_settings(args.arch, base, {**settings, key: value}, where=flag)
        settings[key] = value
    cfg, k = trial_settings(args.arch, base, settings, where="--set")
    if args.device:
        resolve_device(args.device, where="--device")
    if k is not None:
        raise UserError("--set k: use --k for the context length")
    out = Path(args.out or f"runs/train/{args.arch}")
    check_checkpoint_path(out)
    if "distill" in settings and not args.teacher:
        raise UserError("--set distill: weighs a teacher's predictions; give the teacher with --teacher")
    if args.teacher:
        check_outside_teacher(out, args.teacher, "--out")
    data = _load(args)
    if init:
        if out.resolve() == Path(init.checkpoint) or out.resolve() in Path(init.checkpoint).parents:
            raise UserError(
                f"{out}: --out would overwrite the --init checkpoint {init.checkpoint}; use another"
            )
        given = {**settings, **({"k": args.k} if args.k is not None else {})}
        pinned = settings_from_init(init, args.arch, data.dim, given, {}, "--set/--k")
        data = data.with_k(pinned.pop("k")) if "k" in pinned else data
        cfg, _ = trial_settings(args.arch, {}, {**settings, **pinned}, where="--set")
    check_context_length(data, data.k, "--k")
    check_fits(cfg, data.k, data.dim, "--set/--k")

    def report(epoch, m, save):
        print(
            f"epoch {epoch:3d}  train_loss {m['train_loss']:.5f}  val_cos {m['val_cosine']:.4f}  "
            f"lr {m['lr']:.2e}  {m['epoch_s']:.2f} s  {m['train_samples_per_s']:.0f} samples/s",
            flush=True,
        )

    teacher = load_teacher(args.teacher, data) if args.teacher else None
    result = train(cfg, data, report, teacher=teacher, init=init)
    save_checkpoint(out, result.model, result.meta)
    baseline = score(reference_mean(data, "val"), data, "val")["cosine"]
    best = result.best
    print(
        f"best epoch {best['epoch']}: val cosine {best['val_cosine']:.4f} "
        f"(mean-of-context baseline, last {data.min_context} passages, {baseline:.4f}, "
        f"{100 * (best['val_cosine'] / baseline - 1):+.2f}%); {result.meta['params']:,} parameters; "
        f"checkpoint {out}"
    )
    return 0


# --- run --------------------------------------------------------------------------------------


def cmd_run(args) -> int:
    from .presets import names_folder, resolve_all
    from .search.spaces import load_space

    spaces = [
        load_space(path, check_data=False, check_trials=not args.init).with_overrides(
            samples=args.samples,
            budget_epochs=args.budget_epochs,
            seed=args.seed,
            max_concurrent=args.max_concurrent,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            max_epochs=args.max_epochs,
            k=args.k,
            min_context=args.min_context,
            horizon=args.horizon,
            device=args.device,
            teacher=args.teacher,
            loggers=tuple(args.log),
        )
        for path in resolve_all("space", args.space)
    ]
    from .search.tuner import SearchOptions, run_searches
    from .store.runs import to_json

    opts = SearchOptions(
        data=args.data,
        extra_train=tuple(args.extra_train),
        split_seed=args.split_seed,
        storage=args.storage,
        name=args.name,
        address=args.address,
        fresh=args.fresh,
        init=args.init,
        verbose=args.verbose,
    )
    # With --json, stdout carries the summary alone; progress and anything Ray prints go to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        summaries = run_searches(spaces, opts)
    interrupted = 0 if all(s.complete for s in summaries) else 130
    if args.json:
        records = [to_json(s) for s in summaries]
        # one file named: its summary, as ever; several, or a folder: a list, however many it held
        one_file = len(args.space) == 1 and not names_folder("space", args.space[0])
        _print_json(records[0] if one_file else records)
        return interrupted
    finished = [_print_run(summary, Path(args.storage)) for summary in summaries]
    if interrupted:
        print("interrupted: run the same command again to resume")
    return interrupted or (0 if all(finished) else 1)


def _print_run(summary, storage: Path) -> bool:
    """A run's result in a few lines; False where no trial finished."""
    counts, best = summary.counts, summary.best
    print(
        f"{summary.name}: {counts.trials} trials ({counts.stopped_early} stopped early, "
        f"{counts.diverged} diverged, {counts.errored} errored) in {summary.wall_s:.0f} s"
    )
    folder = storage / summary.name
    if best is None:
        print(f"{summary.name}: no trial finished; see the errors in {folder / 'summary.json'}")
        return False
    baseline = summary.baseline_val["mean"]["cosine"]
    print(
        f"best trial {best.trial_id}: val cosine {best.val_cosine:.4f} vs mean-of-context "
        f"{baseline:.4f} on the same windows ({best.gain_over_mean_pct:+.2f}%)"
    )
    print(f"config: {json.dumps(best.config)}")
    if summary.teacher:
        print(f"teacher: {summary.teacher['source']}")
    print(f"checkpoint: {folder / best.checkpoint}")
    print(f"summary: {folder / 'summary.json'}")
    return True


# --- ensemble ---------------------------------------------------------------------------------


def cmd_ensemble(args) -> int:
    from .ensemble.build import build_ensemble, load_recipe
    from .presets import resolve

    record = build_ensemble(
        load_recipe(resolve("recipe", args.recipe or "ensembles/default.yaml")), args.storage, args.data
    )
    if args.json:
        _print_json(record)
        return 0
    print(f"ensemble {record['name']} ({record['method']}), written to {record['path']}")
    print(f"{'candidate':40s} {'weight':>6s} {'val cos':>8s} {'test cos':>8s}")
    weights = {m["name"]: m["weight"] for m in record["members"]}
    for c in record["candidates"]:
        m = c["metrics"]
        print(
            f"{c['name']:40s} {weights.get(c['name'], 0.0):6.3f} "
            f"{m['val']['cosine']:8.4f} {m['test']['cosine']:8.4f}"
        )
    rows = [("ensemble", record["metrics"]), ("mean of context", record["baseline"]["mean"])]
    print(f"{'':40s} {'':6s} {'val cos':>8s} {'test cos':>8s} {'hit@1':>6s} {'hit@5':>6s} {'mrr':>6s}")
    for label, m in rows:
        t = m["test"]
        print(
            f"{label:40s} {'':6s} {m['val']['cosine']:8.4f} {t['cosine']:8.4f} "
            f"{t['hit1']:6.3f} {t['hit5']:6.3f} {t['mrr']:6.3f}"
        )
    i = record["intervals"]
    print(
        f"test cosine {_ci(i['test_cosine'], '.4f')}; "
        f"gain over the mean of context {_ci(i['gain_over_mean_pct'], '+.2f', '%')}, "
        f"over the best single candidate (chosen on val) {_ci(i['gain_over_best_single_pct'], '+.2f', '%')} "
        f"(95% intervals, {i['resamples']} resamples of test documents)"
    )
    return 0


def _ci(interval: dict, spec: str, suffix: str = "") -> str:
    return f"{interval['value']:{spec}}{suffix} [{interval['low']:{spec}}, {interval['high']:{spec}}]"


# --- presets ----------------------------------------------------------------------------------


def cmd_presets(args) -> int:
    from . import presets

    if args.copy:
        for path in presets.copy_to(args.copy):
            print(path)
        return 0
    for kind, folder in presets.KINDS.items():
        print(f"{folder:10s} {' '.join(presets.names(kind)):40s} {presets.folder(kind)}")
    print("use one by name (lvm-search run lstm, lvm-search ensemble wide) or copy them: --copy DIR")
    return 0


# --- report -----------------------------------------------------------------------------------


def cmd_report(args) -> int:
    from .report.leaderboard import build_report

    result = build_report(args.storage, args.out, args.data)
    if args.json:
        _print_json(result)
        return 0
    print(f"wrote {result['path']} ({len(result['rows'])} rows) and {len(result['figures'])} plots")
    return 0


# --- eval and predict ---------------------------------------------------------------------------


def cmd_eval(args) -> int:
    from .report.evaluate import evaluate

    result = evaluate(args.path, args.data, args.split, args.horizon)
    if args.json:
        _print_json(result)
        return 0
    e = result["evaluated_on"]
    print(
        f"{result['predictor']['kind']} {result['predictor']['path']} on {e['source']}: {result['relation']}"
    )
    if result["horizon"] != 1:
        how = ", the model rolled forward on its own predictions" if result["rolled_forward"] else ""
        print(f"predicting the passage {result['horizon']} steps after each context{how}")
    print(f"{e['windows']:,} windows in {e['documents']:,} documents; {result['baselines_note']}")
    print(f"{'':16s} {'cosine [95% CI]':>26s} {'hit@1':>6s} {'hit@5':>6s} {'mrr':>6s}")
    for name, s in result["scores"].items():
        print(
            f"{name:16s} {_ci(s['cosine_interval'], '.4f'):>26s} "
            f"{s['hit1']:6.3f} {s['hit5']:6.3f} {s['mrr']:6.3f}"
        )
    print(f"{result['verdict']}: {_ci(result['gain_over_best_baseline_pct'], '+.2f', '%')}")
    return 0


def cmd_predict(args) -> int:
    from .report.evaluate import write_predictions

    result = write_predictions(args.path, args.data, args.out, args.last, args.horizon)
    if args.json:
        _print_json(result)
        return 0
    print(
        f"wrote {result['windows']:,} predictions"
        + (f" and {result['document_ends']:,} after document ends" if args.last else "")
        + f" (D={result['D']}) to {result['out']}; {result['relation']}"
    )
    return 0


# --- embed ------------------------------------------------------------------------------------


def cmd_embed(args) -> int:
    from .embed import embed_command

    return embed_command(args)


# --- main -------------------------------------------------------------------------------------


def _concurrency(text: str):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a number, got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse's mistakes read like every other user mistake: one line, exit code 2."""

    def error(self, message):
        self.exit(2, f"lvm-search: error: {message} (see `{self.prog} --help`)\n")


QUIET_HELP = "only warnings and errors on stderr, no progress lines"
INIT_HELP = (
    "a checkpoint or run folder (its best trial), or a folder of one per architecture named after it, "
    "whose weights training starts from; the settings that size the weights take its values"
)
TEACHER_HELP = (
    "an ensemble folder built on this data's split, to distil: the training targets move towards "
    "its predictions by distill (default 0.8)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lvm-search", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"lvm-search {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    # -q after the command too; SUPPRESS keeps a -q given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    # in the order --help lists them
    _add_training_commands(sub, common)
    _add_ensemble_and_report_commands(sub, common)
    _add_corpus_commands(sub, common)
    return parser


def _add_training_commands(sub, common: argparse.ArgumentParser) -> None:
    """baselines, train and run: the commands that read a data set and train on it."""
    p = sub.add_parser(
        "baselines", parents=[common], help="split sizes and the classical baselines on val and test"
    )
    _data_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_baselines)

    p = sub.add_parser(
        "train", parents=[common], help="train one configuration and write its best checkpoint"
    )
    p.add_argument("--arch", required=True)
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="a model or training setting (repeatable)"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--teacher", type=_path, help=TEACHER_HELP)
    p.add_argument("--init", type=_path, help=INIT_HELP)
    p.add_argument(
        "--out", type=_path, help="checkpoint folder (default runs/train/ARCH); replaces only a checkpoint"
    )
    _data_args(p)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser(
        "run", parents=[common], help="search a space file with Ray Tune + Optuna (TPE or GP, ASHA)"
    )
    p.add_argument(
        "space",
        type=_path,
        nargs="+",
        help="space files (spaces/lstm.yaml), packaged spaces' names (lstm) or folders of them (spaces/); "
        "several are searched at once, in one Ray session, each into its own run folder",
    )
    _data_args(p)
    p.add_argument(
        "--storage", type=_path, default="runs", help="folder for results and checkpoints (default ./runs)"
    )
    p.add_argument("--name", help="run name (default: the space file's name); the same name resumes")
    p.add_argument("--fresh", action="store_true", help="start over (the previous run is moved aside)")
    p.add_argument("--samples", type=int, help="number of trials")
    p.add_argument(
        "--budget-epochs", type=int, help="stop once the trials have trained this many epochs in all"
    )
    p.add_argument("--max-epochs", type=int, help="cap the epochs of every trial (smoke runs)")
    p.add_argument("--seed", type=int, help="the sampler's seed")
    p.add_argument("--max-concurrent", type=_concurrency, help="trials running at once, or auto")
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument("--gpus-per-trial", type=float, help="fractions share a GPU, e.g. 0.25")
    p.add_argument(
        "--device",
        help="auto, cuda, cuda:N (this machine's GPU N), mps or cpu (overrides the space's resources.device)",
    )
    p.add_argument("--teacher", type=_path, help=TEACHER_HELP + " (overrides the space's data.teacher)")
    p.add_argument("--init", type=_path, help=INIT_HELP + "; every trial starts from it")
    p.add_argument("--address", help="an existing Ray cluster: auto or HOST:PORT")
    p.add_argument(
        "--log",
        action="append",
        default=[],
        choices=["tensorboard", "mlflow", "wandb"],
        help="also log to Ray Tune's tracker (repeatable; adds to the space's loggers:)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON (progress stays on stderr)")
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="also show Ray Tune's tables (-vv: more)"
    )
    p.set_defaults(fn=cmd_run)


def _add_ensemble_and_report_commands(sub, common: argparse.ArgumentParser) -> None:
    """ensemble and report, which read a storage folder's runs, and presets (listed between them),
    which lists or copies the packaged space files and ensemble recipes."""
    p = sub.add_parser(
        "ensemble", parents=[common], help="weighted average of the best checkpoints, weights fitted on val"
    )
    p.add_argument(
        "recipe",
        type=_path,
        nargs="?",
        help="an ensemble recipe file or a packaged recipe's name (default: the packaged default)",
    )
    p.add_argument(
        "--storage", type=_path, default="runs", help="the folder holding the runs (default ./runs)"
    )
    p.add_argument("--data", type=_path, help="an .npz data set (default: the data the runs were trained on)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_ensemble)

    p = sub.add_parser(
        "presets", parents=[common], help="list the packaged space files and ensemble recipes, or copy them"
    )
    p.add_argument("--copy", type=_path, metavar="DIR", help="copy them to DIR/spaces and DIR/ensembles")
    p.set_defaults(fn=cmd_presets)

    p = sub.add_parser(
        "report", parents=[common], help="markdown leaderboard with plots, from a storage folder"
    )
    p.add_argument(
        "--storage", type=_path, default="runs", help="the folder holding the runs (default ./runs)"
    )
    p.add_argument("--out", type=_path, default="reports/leaderboard.md")
    p.add_argument("--data", type=_path, help="an .npz data set (default: the data the runs were trained on)")
    p.add_argument("--json", action="store_true", help="print every row with its intervals as JSON")
    p.set_defaults(fn=cmd_report)


def _add_corpus_commands(sub, common: argparse.ArgumentParser) -> None:
    """eval, predict and embed: the commands that read a corpus, whatever the runs were trained on."""
    from .limits import MAX_K

    p = sub.add_parser(
        "eval",
        parents=[common],
        help="score a checkpoint, run or ensemble on any corpus, against its baselines",
    )
    _model_and_corpus_args(p)
    p.add_argument(
        "--split", default="test", choices=["test", "all"], help="the windows scored (default test)"
    )
    p.add_argument("--horizon", type=_bounded(1, MAX_K), help=ROLLOUT_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser(
        "predict", parents=[common], help="write the predicted next vector of every window of a corpus"
    )
    _model_and_corpus_args(p)
    p.add_argument(
        "--out", type=_path, required=True, help="the .npz to write (replaces only a predictions file)"
    )
    p.add_argument("--last", action="store_true", help="also predict the passage after each document's end")
    p.add_argument("--horizon", type=_bounded(1, MAX_K), help=ROLLOUT_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_predict)

    p = sub.add_parser(
        "embed", parents=[common], help="turn a folder of documents (or a JSONL file) into a training set"
    )
    p.add_argument(
        "source", type=_path, help="a folder of .txt/.md/.rst files, or a .jsonl file of {id, text}"
    )
    p.add_argument("--out", type=_path, required=True, help="the .npz to write")
    p.add_argument("--model", help="sentence-transformers model name or local path")
    p.add_argument("--min-chars", type=int, default=150)
    p.add_argument("--max-chars", type=int, default=400)
    p.add_argument("--k", type=int, default=5, help="documents with fewer than k+1 passages are dropped")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.set_defaults(fn=cmd_embed)


def _model_and_corpus_args(p: argparse.ArgumentParser) -> None:
    """What eval and predict read: a trained model (of any kind) and the corpus it runs on."""
    p.add_argument(
        "path", type=_path, help="a checkpoint folder, a run folder (its best trial) or an ensemble folder"
    )
    p.add_argument("--data", type=_path, help="an .npz data set (default: the packaged sample)")


# devices.mps_environment() for this process, set before any command imports torch (which reads it)
MPS_FALLBACK = ("PYTORCH_ENABLE_MPS_FALLBACK", "1")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if sys.platform == "darwin":
        os.environ.setdefault(*MPS_FALLBACK)
    with console(quiet=args.quiet):
        try:
            return args.fn(args)
        except UserError as e:
            print(f"lvm-search: error: {e}", file=sys.stderr)
            return 2
        except TrainingDiverged as e:
            print(f"lvm-search: error: {e}; try a lower lr", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("lvm-search: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
