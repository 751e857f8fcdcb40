"""Measure this checkout's code beside an earlier commit's, in one run, with one benchmark script.

A change's cost is what it adds beside the code before it, measured on the same machine at the same
time: run-to-run spread on a VM is as large as many changes. This script checks the earlier commit
out into a git worktree (``var/compare/<sha>``), then runs the benchmark from *this* checkout
against each tree in turn (``RATING_CODE_ROOT``, see ``bench/common.py``), alternating, ``--rounds``
times, so both see the same workload and the same machine. It prints each figure's median per tree
and their ratio.

    .venv/bin/python bench/compare.py --base e056f3c --rounds 3 -- bench/sync_drain.py --backlog 100000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worktree(base: str) -> Path:
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", base], capture_output=True, text=True,
                         check=True).stdout.strip()
    folder = ROOT / "var" / "compare" / sha[:12]
    if not (folder / ".git").exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(folder), sha],
                       check=True, capture_output=True)
    return folder


def run(script: list[str], tree: Path) -> dict:
    """One run of the benchmark on ``tree``'s code, from inside that tree (gunicorn, for one, puts
    its working folder first on the import path)."""
    env = {**os.environ, "RATING_CODE_ROOT": str(tree)}
    command = [sys.executable, str((ROOT / script[0]).resolve()), *script[1:]]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(script)} on {tree} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("bench-json ")]
    if not lines:
        raise SystemExit(f"{script[0]} printed no bench-json line")
    sys.stdout.write(done.stdout)
    return json.loads(lines[-1][len("bench-json "):])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- bench/X.py [its options]")
    args = parser.parse_args()
    script = args.script[1:] if args.script[:1] == ["--"] else args.script
    trees = {"base": worktree(args.base), "head": ROOT}
    results: dict[str, list[dict]] = {"base": [], "head": []}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            results[name].append(run(script, tree))
    commits = {name: runs[0]["commit"] for name, runs in results.items()}
    print(f"\n{script[0]}, {args.rounds} rounds alternating; base {commits['base']}, head {commits['head']}\n")
    print(f"| figure | base {commits['base']} (median) | head {commits['head']} (median) | head / base |")
    print("|---|---|---|---|")
    for key, value in results["head"][0].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        base = statistics.median(r[key] for r in results["base"] if isinstance(r.get(key), (int, float)))
        head = statistics.median(r[key] for r in results["head"])
        print(f"| {key} | {base:,.3f} | {head:,.3f} | {head / base:.2f} |" if base else
              f"| {key} | {base} | {head:,.3f} | — |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
