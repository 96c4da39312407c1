"""The ablation, through the product: from the default recipe, one change at a time.

The default recipe is the shipped space's trial 0 (``spaces/ARCH.yaml``: its ``data:``, ``fixed:``
and ``reference:`` settings over the trainer's defaults: residual on, base decay 0.75, EMA 0.99).
Each variant changes one lever: residual off; base decay 1.0 (the plain mean); EMA off; k 5, 12,
16; width halved and doubled; 20, 35 and 50 epochs (the range the product was first asked to
search); and bf16 autocast on (``--only default "bf16 autocast"``: does bf16 keep val where float32
has it?). Every run is ``lvm-search train`` in its own process, one at a time, one torch thread, at
``--min-context 5`` for every k, so every variant scores exactly the same val and test windows
(older positions are padding; lvm_search/data/windows.py).

Each checkpoint (the epoch that was best on val, as the trainer keeps it) is then scored on val and
test through the package's API (``checkpoint.load_model``, ``metrics.predict``, ``metrics.cosines``).
A variant is compared with the default seed by seed: seed s of the variant is paired with seed s
of the default, the per-window test differences are averaged over the seeds, and the mean
difference gets a 95% interval by bootstrap over test documents (``lvm_search.scoring.intervals``). Val
decides; test only says whether val's verdict held.

Resumable: a run whose checkpoint and scores exist is skipped, and the result file is rewritten
after every run, so a long run can be stopped and started again.

    python benchmarks/ablation.py --arch amn --data ../shared/data/python-docs-minilm.npz \\
        --corpus python-docs --seeds 0 1 2 --runs /tmp/ablation/python-docs \\
        --out benchmarks/results/cpu/ablation_python.json

``render/_ablation.py`` renders the result files as markdown for ``render/quality_report.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIN_CONTEXT = 5
KS = (5, 8, 12, 16)
LONGER_EPOCHS = (20, 35, 50)
DEFAULT = "default"
EPOCH_LINE = re.compile(r"^epoch\s+(\d+)\s+train_loss\s+(\S+)\s+val_cos\s+(\S+)\s.*?([\d.]+) s\s", re.M)


# --- the variants ---------------------------------------------------------------------------------


def default_recipe(arch: str) -> dict:
    """Trial 0 of the shipped space: k, epochs and the settings ``lvm-search train`` is given."""
    import yaml

    from lvm_search.models import config_fields
    from lvm_search.train import TrainConfig

    space = yaml.safe_load((REPO / "spaces" / f"{arch}.yaml").read_text())
    sets = {**space.get("fixed", {}), **space.get("reference", {})}
    model = config_fields(arch)
    return {
        "k": space["data"]["k"],
        "epochs": sets.pop("epochs"),
        "sets": sets,
        # what the levers are at, for the labels
        "width": sets.get("width", model["width"]),
        "residual": model["residual"],
        "base_decay": model["base_decay"],
        "ema": TrainConfig.ema,
    }


def variants(recipe: dict) -> dict[str, dict]:
    """name: (k, epochs, extra --set settings) of each run, the default first."""
    k, epochs, width = recipe["k"], recipe["epochs"], recipe["width"]
    out = {DEFAULT: {"k": k, "epochs": epochs, "sets": {}}}
    out["residual off"] = {"k": k, "epochs": epochs, "sets": {"residual": False}}
    out["base decay 1.0 (plain mean)"] = {"k": k, "epochs": epochs, "sets": {"base_decay": 1.0}}
    out["EMA off"] = {"k": k, "epochs": epochs, "sets": {"ema": 0.0}}
    for other in KS:
        if other != k:
            out[f"k {other}"] = {"k": other, "epochs": epochs, "sets": {}}
    out[f"width {width // 2} (halved)"] = {"k": k, "epochs": epochs, "sets": {"width": width // 2}}
    out[f"width {width * 2} (doubled)"] = {"k": k, "epochs": epochs, "sets": {"width": width * 2}}
    for more in LONGER_EPOCHS:
        out[f"{more} epochs"] = {"k": k, "epochs": more, "sets": {}}
    # not a lever of quality: a check that bf16 autocast (issue 31.4) leaves val where float32 has it
    out["bf16 autocast"] = {"k": k, "epochs": epochs, "sets": {"bf16": True}}
    return out


def set_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def train_command(arch: str, data: str, recipe: dict, variant: dict, seed: int, out: Path) -> list[str]:
    sets = {**recipe["sets"], **variant["sets"], "threads": 1, "seed": seed}
    command = [
        "nice", "-n", "5", sys.executable, "-m", "lvm_search.cli", "train", "--arch", arch,
        "--data", data, "--k", str(variant["k"]), "--min-context", str(MIN_CONTEXT),
        "--epochs", str(variant["epochs"]),
    ]  # fmt: skip
    for key, value in sets.items():
        command += ["--set", f"{key}={set_value(value)}"]
    return command + ["--out", str(out)]


# --- one run: train, then score -------------------------------------------------------------------


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class Scorer:
    """Per-window cosines of a checkpoint on val and test; the data is loaded once per k."""

    def __init__(self, data: str):
        self.path, self.data = data, {}

    def load(self, k: int):
        from lvm_search.data.windows import load_data

        if k not in self.data:
            self.data[k] = load_data(self.path, k=k, min_context=MIN_CONTEXT)
        return self.data[k]

    def windows(self, k: int) -> dict:
        """The target rows of val and test at ``k``: the same at every k (checked)."""
        data = self.load(k)
        return {split: data.splits[split].targets.numpy() for split in ("val", "test")}

    def groups(self, k: int):
        return self.load(k).splits["test"].groups()

    def score(self, checkpoint: Path) -> dict:
        import torch

        from lvm_search.models.checkpoint import load_model
        from lvm_search.scoring.metrics import cosines, predict

        model, meta = load_model(checkpoint)
        data = self.load(meta["k"])
        if meta["fingerprint"] != data.fingerprint:
            sys.exit(f"{checkpoint}: trained on other windows than {self.path} at k={meta['k']} gives")
        with torch.no_grad():
            return {
                split: cosines(predict(model, data, split), data.targets(split)).numpy()
                for split in ("val", "test")
            } | {"meta": meta}


def run_one(args, recipe: dict, name: str, variant: dict, seed: int, scorer: Scorer) -> dict:
    """Train (unless done) and score one (variant, seed); returns its record."""
    import numpy as np

    folder = Path(args.runs) / slug(name) / f"seed{seed}"
    checkpoint, record_path, cos_path = folder / "checkpoint", folder / "run.json", folder / "cosines.npz"
    if record_path.exists() and cos_path.exists() and (checkpoint / "config.json").exists():
        return json.loads(record_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    command = train_command(args.arch, args.data, recipe, variant, seed, checkpoint)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    wall_s = time.perf_counter() - started
    (folder / "train.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    scored = scorer.score(checkpoint)
    meta = scored.pop("meta")
    np.savez(cos_path, **scored)
    curve = [
        {"epoch": int(e), "train_loss": float(loss), "val_cosine": float(val), "epoch_s": float(s)}
        for e, loss, val, s in EPOCH_LINE.findall(done.stdout)
    ]
    record = {
        "variant": name,
        "seed": seed,
        "command": " ".join(command),
        "wall_s": round(wall_s, 2),
        "train_s": round(sum(c["epoch_s"] for c in curve), 2),
        "epochs": variant["epochs"],
        "best_epoch": meta["epoch"],
        "params": meta["params"],
        "val_cosine": float(scored["val"].mean()),
        "test_cosine": float(scored["test"].mean()),
        "trainer_val_cosine": meta["metrics"]["val_cosine"],
        "curve": curve,
    }
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    return record


# --- the comparison -------------------------------------------------------------------------------


def compare(args, names: list[str], records: list[dict], scorer: Scorer) -> dict:
    """Per variant: val mean and sd over seeds, test mean, and the paired test difference from the
    default (seed-matched, averaged over seeds, bootstrapped over test documents)."""
    import numpy as np

    from lvm_search.scoring.intervals import DocumentBootstrap

    boot = DocumentBootstrap(scorer.groups(args.k_default))
    test = {}  # (variant, seed): per-window test cosines
    for r in records:
        folder = Path(args.runs) / slug(r["variant"]) / f"seed{r['seed']}"
        test[r["variant"], r["seed"]] = np.load(folder / "cosines.npz")["test"].astype(np.float64)
    default_seeds = {s for v, s in test if v == DEFAULT}
    out = {}
    for name in names:
        runs = [r for r in records if r["variant"] == name]
        if not runs:
            continue
        seeds = sorted(r["seed"] for r in runs)
        vals = [r["val_cosine"] for r in runs]
        own = np.mean([test[name, s] for s in seeds], axis=0)
        row = {
            "seeds": seeds,
            "val_mean": statistics.fmean(vals),
            "val_sd": statistics.stdev(vals) if len(vals) > 1 else None,
            "test": boot.mean(own).as_dict(),
            "wall_s_mean": statistics.fmean(r["wall_s"] for r in runs),
            "best_epochs": [r["best_epoch"] for r in sorted(runs, key=lambda r: r["seed"])],
            "params": runs[0]["params"],
        }
        paired = sorted(default_seeds & set(seeds))
        if name != DEFAULT and paired:
            diffs = np.mean([test[name, s] - test[DEFAULT, s] for s in paired], axis=0)
            default_vals = {r["seed"]: r["val_cosine"] for r in records if r["variant"] == DEFAULT}
            val_diffs = [r["val_cosine"] - default_vals[r["seed"]] for r in runs if r["seed"] in default_vals]
            row["paired_seeds"] = paired
            row["val_delta"] = statistics.fmean(val_diffs)
            row["val_delta_by_seed"] = val_diffs
            row["test_delta"] = boot.mean(diffs).as_dict()
        out[name] = row
    return out


def write_result(args, recipe, plan, records, scorer, started) -> dict:
    from lvm_search.store.provenance import collect

    record = {
        "benchmark": "ablation",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": collect().one_line(),
        "commit": git_commit(),
        "note": args.note,
        "corpus": args.corpus,
        "data": args.data,
        "arch": args.arch,
        "seeds": args.seeds,
        "min_context": MIN_CONTEXT,
        "recipe": recipe,
        "plan": plan,
        "windows": {split: len(w) for split, w in scorer.windows(args.k_default).items()},
        "test_documents": int(scorer.groups(args.k_default).max()) + 1,
        "wall_s_total": round(time.time() - started + args.earlier_wall_s, 1),
        "comparison": compare(args, list(plan), records, scorer),
        "runs": records,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return record


def git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="amn")
    p.add_argument("--data", required=True)
    p.add_argument("--corpus", required=True, help="its name in the report, e.g. linux-docs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--runs", required=True, help="a folder for the checkpoints (kept: a rerun resumes)")
    p.add_argument("--only", nargs="+", default=None, help="run only these variants (names as in the table)")
    p.add_argument("--note", default=None, help="what else ran on the machine")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))

    recipe = default_recipe(args.arch)
    args.k_default = recipe["k"]
    plan = variants(recipe)
    chosen = [n for n in plan if args.only is None or n in args.only or n == DEFAULT]
    scorer = Scorer(args.data)
    reference = scorer.windows(args.k_default)
    for k in {v["k"] for v in plan.values()}:
        windows = scorer.windows(k)
        if any((windows[s] != reference[s]).any() for s in reference):
            sys.exit(f"k={k} at min_context {MIN_CONTEXT} scores other windows than k={args.k_default}")
    todo = [(name, seed) for seed in args.seeds for name in chosen]  # seed by seed: partial results pair
    total_epochs = sum(plan[n]["epochs"] for n, _ in todo)
    previous = Path(args.out)
    args.earlier_wall_s = 0.0
    if previous.exists():  # resumed: count the wall time of the earlier invocations too
        args.earlier_wall_s = json.loads(previous.read_text()).get("wall_s_total", 0.0)
    print(f"{args.corpus}: {len(todo)} runs of {args.arch}, {total_epochs} epochs in all", flush=True)
    started, records, trained_epochs, train_s = time.time(), [], 0, 0.0
    for i, (name, seed) in enumerate(todo, 1):
        t0 = time.perf_counter()
        record = run_one(args, recipe, name, plan[name], seed, scorer)
        fresh = time.perf_counter() - t0 > 1
        records.append(record)
        if fresh:
            trained_epochs += record["epochs"]
            train_s += record["wall_s"]
        left = sum(plan[n]["epochs"] for n, _ in todo[i:])
        eta = f", about {left * train_s / trained_epochs / 60:.0f} min left" if trained_epochs else ""
        print(
            f"[{i}/{len(todo)}] {name} seed {seed}: val {record['val_cosine']:.4f} test "
            f"{record['test_cosine']:.4f} best epoch {record['best_epoch']}/{record['epochs']} "
            f"{record['wall_s']:.0f} s{'' if fresh else ' (done before)'}{eta}",
            flush=True,
        )
        write_result(args, recipe, plan, records, scorer, started)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
