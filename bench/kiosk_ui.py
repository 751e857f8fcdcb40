"""The kiosk's responsiveness and weight, beside a bare Kivy app measured in the same run.

1. Press -> thank-you drawn: N touches injected through Kivy's input pipeline on a private Xvfb,
   each timed from the touch to the first frame on which the thank-you screen is current (the
   rating committed with fsync before that). Floor: a bare Kivy app switching screens on a touch.
2. Start to first frame and resident memory then: the kiosk (demo content, logged in) against a
   bare Kivy app with one label, the median of ``--starts`` runs each (taken in turn: bare, kiosk,
   bare, …; a start is noisy to ±10 ms here, so nine by default), from process start, our
   modules compiled to bytecode first as an install does (Kivy's already are). Both
   windows have the kiosk's configured size (checked): a software renderer's memory and frame
   time grow with the framebuffer.

    .venv/bin/python bench/kiosk_ui.py [--presses 200] [--starts 9]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from common import commit, machine, percentiles, report  # noqa: E402
from terminal import config as config_module  # noqa: E402
from xvfb import start_xvfb  # noqa: E402

PROBE = ROOT / "bench" / "kiosk_probe.py"


def kiosk_config(work: Path) -> Path:
    content = work / "content"
    shutil.copytree(ROOT / "assets" / "demo", content)
    data = json.loads((content / "content.json").read_text(encoding="utf-8"))
    data["settings"].update(thanks_seconds=0.2, invite_timeout_s=60)
    (content / "content.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    path = work / "terminal.toml"
    path.write_text(f'[terminal]\ndemo = true\ndata_dir = "{work / "data"}"\ncontent_dir = "{content}"\n'
                    f'[kiosk]\nstaff_no = "SZ0101"\nvolume = 0.0\n', encoding="utf-8")
    return path


def probe(mode: str, work: Path, env: dict, config: Path, n: int = 0) -> dict:
    out = work / f"{mode}-{time.monotonic_ns()}.json"
    started = time.time()
    args = [sys.executable, str(PROBE), mode, str(out), str(config), str(n)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"{mode} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    result = json.loads(out.read_text())
    result["start_ms"] = (result["first_frame_wall"] - started) * 1000
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--starts", type=int, default=9, help="starts of each, taken in turn (the median is shown)")
    args = parser.parse_args()
    # Our modules as an installed kiosk has them: pip compiles them to bytecode when it installs the
    # kiosk (hardware/install-pi.sh), as it did Kivy's, so no start compiles source. Without this, a
    # checkout run with PYTHONDONTWRITEBYTECODE compiled ours at every start: 30 ms of the kiosk's
    # figure that no terminal pays, and none of the floor's.
    for package in ("terminal", "hardware", "sync"):
        compileall.compile_dir(str(ROOT / package), quiet=1)
    xvfb, display = start_xvfb()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-kiosk-") as tmp:
            work = Path(tmp)
            env = {**os.environ, "DISPLAY": display, "KIVY_HOME": str(work / "kivy-home"),
                   "KCFG_KIVY_LOG_LEVEL": "warning", "SDL_AUDIODRIVER": "dummy"}
            config = kiosk_config(work)
            # both windows of the kiosk's configured size (Kivy reads KCFG_ settings at import;
            # the kiosk lets them win): a software renderer's memory and frame time grow with
            # the framebuffer, and Kivy's default 800x600 window was 21 MiB lighter than 1280x800
            size = config_module.load(config).kiosk
            env.update(KCFG_GRAPHICS_WIDTH=str(size.width), KCFG_GRAPHICS_HEIGHT=str(size.height))
            # in turn, bare then kiosk: a machine whose speed drifts during the run moves both alike
            starts: dict[str, list] = {"bare": [], "kiosk": []}
            for _ in range(args.starts):
                for kind in starts:
                    starts[kind].append(probe(f"{kind}-start", work, env, config))
            presses = {kind: probe(f"{kind}-press", work, env, config, args.presses) for kind in ("bare", "kiosk")}
    finally:
        xvfb.terminate()
        xvfb.wait(10)

    sizes = {kind: {tuple(r["window_size"]) for r in [*v, presses[kind]]} for kind, v in starts.items()}
    if len(sizes["bare"] | sizes["kiosk"]) != 1:  # the floor must draw what the kiosk draws into
        raise SystemExit(f"workload drifted: window sizes differ, {sizes}")
    start_ms = {k: statistics.median(r["start_ms"] for r in v) for k, v in starts.items()}
    rss = {k: statistics.median(r["rss_mib"] for r in v) for k, v in starts.items()}
    press = {k: percentiles(v["samples_ms"]) for k, v in presses.items()}
    print(f"kiosk UI benchmark — {time.strftime('%Y-%m-%d')}, commit {commit()}\nmachine: {machine()}; "
          f"Xvfb with Mesa software rendering\n")
    print("| measure | kiosk | bare Kivy app (floor) | ratio |\n|---|---|---|---|")
    print(f"| press → thanks drawn, p50 ({args.presses} touches) | {press['kiosk']['p50']:.1f} ms | "
          f"{press['bare']['p50']:.1f} ms | {press['kiosk']['p50'] / press['bare']['p50']:.2f}× |")
    print(f"| press → thanks drawn, p99 | {press['kiosk']['p99']:.1f} ms | {press['bare']['p99']:.1f} ms | "
          f"{press['kiosk']['p99'] / press['bare']['p99']:.2f}× |")
    print(f"| start → first frame (median of {args.starts}) | {start_ms['kiosk']:.0f} ms | {start_ms['bare']:.0f} ms | "
          f"{start_ms['kiosk'] / start_ms['bare']:.2f}× |")
    print(f"| resident memory at first frame | {rss['kiosk']:.1f} MiB | {rss['bare']:.1f} MiB | "
          f"{rss['kiosk'] / rss['bare']:.2f}× |")
    print(f"| resident memory after {args.presses} ratings | {presses['kiosk']['rss_after_mib']:.1f} MiB | "
          f"{presses['bare']['rss_after_mib']:.1f} MiB | |")
    print(f"\nRSS every 50 presses (MiB): kiosk {presses['kiosk'].get('rss_every_50_mib')}, "
          f"bare {presses['bare'].get('rss_every_50_mib')}")
    goals = [("press p99 < 100 ms", press["kiosk"]["p99"] < 100),
             ("start within 1.2×", start_ms["kiosk"] <= 1.2 * start_ms["bare"]),
             ("memory within 1.2×", rss["kiosk"] <= 1.2 * rss["bare"])]
    print("\ngoals: " + ", ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in goals))
    report("kiosk_ui", {"presses": args.presses, "starts": args.starts,
                        "press_p50_ms": press["kiosk"]["p50"], "press_p99_ms": press["kiosk"]["p99"],
                        "bare_press_p50_ms": press["bare"]["p50"], "bare_press_p99_ms": press["bare"]["p99"],
                        "start_ms": start_ms["kiosk"], "bare_start_ms": start_ms["bare"],
                        "rss_mib": rss["kiosk"], "bare_rss_mib": rss["bare"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
