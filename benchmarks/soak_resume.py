"""Soak test of resume: SIGKILL `unlearn grpo --preset smoke` at random moments, resume each
time, and compare the finished run with an uninterrupted one byte for byte.

    python benchmarks/soak_resume.py [--kills 10] [--steps 12] [--seed 0]

1. A clean run in store A (its base model is pretrained first, so kills land in GRPO).
2. Store B gets a copy of A's base model; the same command is started there and killed with
   SIGKILL at a random moment after it starts writing the run folder (so kills land in
   training, not in Python's start-up), then started again, `--kills` times; then it runs to the end.
   Each kill is reported with what it interrupted, read from the run folder at that moment:
   a CSV line without its newline, a checkpoint being written (state.pt.tmp, or a checkpoint
   folder without weights), a validation pass (the step's train_log row is written but not
   yet its validation rows), or a step (generation / update).
   A kill lands inside a CSV append or a checkpoint save only by luck (they take milliseconds),
   so after kills 3, 6 and 9 the script also leaves in the folder what such a kill leaves: half
   a CSV line, a half-written state.pt.tmp, a checkpoint folder with cut-off weights. These
   are reported as "torn write (emulated)".
3. prompt_rewards.csv, validation.csv, replay.csv, train_log.csv without its `seconds` column,
   and every file of every checkpoint must equal the clean run's, byte for byte.

Exit status 0 when everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

COMPARED = ["prompt_rewards.csv", "validation.csv", "replay.csv"]


def unlearn_cmd(steps: int) -> list[str]:
    exe = Path(sys.executable).with_name("unlearn")
    return [str(exe), "grpo", "--preset", "smoke", "--set", f"grpo.steps={steps}", "--set", "grpo.checkpoint_every=2",
            "--set", "grpo.valid_every=2"]


def run_folder(store: Path) -> Path:
    found = [p for p in (store / "grpo").iterdir() if p.is_dir()] if (store / "grpo").exists() else []
    return found[0] if found else store / "grpo" / "(not yet created)"


def what_was_interrupted(run: Path) -> str:
    """A best reading, from the files, of what the process was doing when it died."""
    if not run.exists():
        return "start-up (no run folder yet)"
    for f in sorted(run.glob("*.csv")):
        data = f.read_bytes()
        if data and not data.endswith(b"\n"):
            return f"a CSV append ({f.name} ends mid-line)"
    if (run / "state.pt.tmp").exists():
        return "a checkpoint save (state.pt.tmp written, not yet renamed)"
    ckpts = sorted((run / "checkpoints").glob("step_*")) if (run / "checkpoints").exists() else []
    if ckpts and not (ckpts[-1] / "model.safetensors").exists():
        return f"a checkpoint save ({ckpts[-1].name} without weights)"
    log = run / "train_log.csv"
    steps = len(log.read_text().splitlines()) - 1 if log.exists() else 0
    valid = run / "validation.csv"
    if steps and steps % 2 == 0 and valid.exists():
        logged = set(pd.read_csv(valid)["step"]) if valid.stat().st_size else set()
        if steps not in logged:
            return f"a validation pass (after step {steps})"
    return f"step {steps + 1} (generation or update)" if steps else "start-up or step 1"


def tear(run: Path, kind: str) -> str:
    """Leave in `run` what a kill in the middle of a write leaves (see the module docstring)."""
    if kind == "csv":
        with (run / "prompt_rewards.csv").open("ab") as f:
            f.write(b"99,train-00")  # half a row, no newline
        return "torn write (emulated): half a line at the end of prompt_rewards.csv"
    if kind == "state":
        (run / "state.pt.tmp").write_bytes(b"PK\x03\x04 half a zip")
        return "torn write (emulated): a half-written state.pt.tmp"
    done = sorted((run / "checkpoints").glob("step_*"))
    step = int(done[-1].name.split("_")[1]) + 2 if done else 2
    ck = run / "checkpoints" / f"step_{step:04d}"
    ck.mkdir(parents=True, exist_ok=True)
    (ck / "model.safetensors").write_bytes(b"\x00" * 64)
    return f"torn write (emulated): checkpoint {ck.name} with cut-off weights"


TEARS = {3: "csv", 6: "state", 9: "checkpoint"}


def wait_for_first_write(run_parent: Path, since: float, proc: subprocess.Popen) -> bool:
    """Block until some file under the run store's grpo/ folder is written after `since`;
    False if the process ended first."""
    while proc.poll() is None:
        if run_parent.exists() and any(p.stat().st_mtime > since for p in run_parent.rglob("*")
                                       if p.is_file() and p.name != ".lock"):
            return True
        time.sleep(0.05)
    return False


def digest_files(run: Path) -> dict[str, str]:
    out = {}
    for name in COMPARED:
        p = run / name
        out[name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "(absent)"
    log = pd.read_csv(run / "train_log.csv").drop(columns=["seconds"])
    buf = io.StringIO()
    log.to_csv(buf, index=False)
    out["train_log.csv (without seconds)"] = hashlib.sha256(buf.getvalue().encode()).hexdigest()
    for p in sorted((run / "checkpoints").rglob("*")):
        if p.is_file():
            out[str(p.relative_to(run))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--steps", type=int, default=12, help="GRPO steps of the smoke run (default 12)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    ap.add_argument("--keep", action="store_true", help="keep the two run stores (printed)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    store_a, store_b = tmp / "clean", tmp / "killed"
    env = {**os.environ, "UNLEARN_HOME": str(store_a)}
    cmd = unlearn_cmd(args.steps)

    print("clean run (pretraining the smoke base model first) ...", flush=True)
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(run_folder(store_a))  # the base model stays; time the GRPO run alone
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_first_write(store_a / "grpo", t0, proc)
    t1 = time.time()
    if proc.wait() != 0:
        raise SystemExit("the clean run failed")
    clean_s = time.time() - t1
    print(f"clean GRPO run: {t1 - t0:.1f} s of start-up, then {clean_s:.1f} s for {args.steps} steps")

    shutil.copytree(store_a / "base", store_b / "base")
    env_b = {**os.environ, "UNLEARN_HOME": str(store_b)}
    kills = []
    while len(kills) < args.kills:
        delay = rng.uniform(0.0, 0.3) * clean_s
        t0 = time.time()
        proc = subprocess.Popen(cmd, env=env_b, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            if not wait_for_first_write(store_b / "grpo", t0, proc):
                raise subprocess.TimeoutExpired(cmd, 0) if proc.poll() is None else RuntimeError("ended")
            proc.wait(timeout=delay)
            print(f"  run finished before the kill at {delay:.1f} s; starting over in a fresh store")
            shutil.rmtree(run_folder(store_b))
            continue
        except RuntimeError:
            print(f"  run finished before its first write: the store is complete; starting over")
            shutil.rmtree(run_folder(store_b))
            continue
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        what = what_was_interrupted(run_folder(store_b))
        if len(kills) + 1 in TEARS and run_folder(store_b).exists():
            what += "; then " + tear(run_folder(store_b), TEARS[len(kills) + 1])
        kills.append(what)
        print(f"  kill {len(kills):2d}, {delay:4.1f} s after its first write: {what}", flush=True)
    subprocess.run(cmd, env=env_b, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    a, b = digest_files(run_folder(store_a)), digest_files(run_folder(store_b))
    bad = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    print(f"compared {len(a)} files: {len(a) - len(bad)} identical, {len(bad)} different")
    for k in bad:
        print(f"  DIFFERENT: {k}")
    kinds = pd.Series([k.split(" (")[0] for k in kills] + [k.split("then ")[1].split(":")[0]
                                                            for k in kills if "then " in k]).value_counts()
    print("kills by what they interrupted:", ", ".join(f"{n} x {k}" for k, n in kinds.items()))
    if args.keep:
        print(f"stores kept in {tmp}")
    else:
        shutil.rmtree(tmp)
    print("PASS" if not bad else "FAIL")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
