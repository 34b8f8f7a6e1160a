"""Screenshots of what an operator sees in the Prefect UI after the demo (not run in CI).

    .venv/bin/python scripts/screenshots.py [--out docs/images] [--keep]

1. Starts a real ``prefect server`` on a free local port (its own PREFECT_HOME in a temp folder).
2. Runs ``python -m rahcp_prefect.demo`` against it (upload + download on the embedded emulator),
   then the other nights an operator meets: the same job again with one new file (a second
   version under each artifact key), an upload rolled back by 250 refused files, a dry run and a
   ``cleanup-staging``.
3. Opens the UI pages in headless Chromium (Debian's ``chromium``, driven by ``playwright-core``
   from npm, installed into a temp folder) and writes PNGs under ``docs/images/``.

Needs: ``apt-get install -y chromium`` and ``npm`` (the script runs ``npm install
playwright-core`` itself). Takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

SHOOT_JS = r"""
const { chromium } = require('playwright-core');
const shots = JSON.parse(process.argv[2]);
(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1 });
  for (const shot of shots) {
    // The UI scrolls inside its own pane: a tall viewport shows a whole summary.
    await page.setViewportSize({ width: 1440, height: shot.height || 1000 });
    await page.goto(shot.url, { waitUntil: 'networkidle', timeout: 60000 });
    if (shot.text) {
      try {
        await page.getByText(shot.text, { exact: false }).first().waitFor({ timeout: 45000 });
      } catch (err) {
        console.error('warning: ' + shot.path + ': "' + shot.text + '" not seen: ' + err.message.split('\n')[0]);
      }
    }
    if (shot.click) {
      await page.getByText(shot.click, { exact: true }).first().click();
      await page.waitForLoadState('networkidle');
    }
    await page.waitForTimeout(1500);
    await page.screenshot({ path: shot.path });
    console.log('wrote ' + shot.path);
  }
  await browser.close();
})().catch((err) => { console.error(err); process.exit(1); });
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    api = f"http://127.0.0.1:{port}/api"  # what the UI in the browser calls (default :4200)
    env = {
        **os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": api, "PREFECT_SERVER_UI_API_URL": api,
    }
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    wait_for(f"http://127.0.0.1:{port}/api/health")
    return server


def run_demo(env: dict[str, str], work: Path) -> list[str]:
    """``make demo`` against the server; returns the flow run ids it printed links to."""
    out = subprocess.run(
        [sys.executable, "-m", "rahcp_prefect.demo", "--work-dir", str(work / "demo")],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    print(out)
    return re.findall(r"/runs/flow-run/([0-9a-f-]{36})", out)[:2]


async def nights(work: Path) -> dict[str, Any]:
    """The runs beyond the demo; returns their flow run ids by name."""
    from pydantic import SecretStr

    from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
    from rahcp_prefect.demo import make_sample_data
    from rahcp_prefect.flows import bulk_upload, cleanup_staging
    from rahcp_prefect.testing import HCPEmulator
    from rahcp_prefect.tracker import create_tracker

    runs: dict[str, Any] = {}
    source = work / "nightly"
    make_sample_data(source, 3000, 0)
    with HCPEmulator() as emulator:
        emulator.create_bucket("archive")
        await HCPCredentials(endpoint=emulator.base_url, username="ops", password=SecretStr("ops-password")).save(
            "hcp-shots", overwrite=True
        )
        await HCPTransferSettings(workers=16, progress_interval=1.0).save("hcp-shots-settings", overwrite=True)
        await HCPTracker(sqlite_path=str(work / "tracker.db")).save("hcp-shots-tracker", overwrite=True)
        blocks = {"credentials_block": "hcp-shots", "settings_block": "hcp-shots-settings", "tracker_block": "hcp-shots-tracker"}
        params = dict(source_dir=str(source), bucket="archive", prefix="nightly/2026/01/", job="nightly-scans", **blocks)

        first = await bulk_upload(**params, return_state=True)
        (source / "scans" / "late-arrival.txt").write_text("a late page\n")
        second = await bulk_upload(**params, return_state=True)
        runs["nightly-1"], runs["nightly-2"] = first.state_details.flow_run_id, second.state_details.flow_run_id

        refused = work / "refused"
        make_sample_data(refused, 1000, 0)
        emulator.faults.add("data", method="PUT", path=r"/scans/box-0[12]/", status=403, count=None)
        failed = await bulk_upload(
            source_dir=str(refused), bucket="archive", prefix="weekly/2026/02/", job="weekly-scans",
            return_state=True, **blocks,
        )
        emulator.faults.clear()
        runs["rolled-back"] = failed.state_details.flow_run_id

        dry = await bulk_upload(
            source_dir=str(refused), bucket="archive", prefix="weekly/2026/02/", job="weekly-scans",
            dry_run=True, return_state=True, **blocks,
        )
        runs["dry-run"] = dry.state_details.flow_run_id

        tracker = create_tracker(work / "tracker.db", job="crashed-run")
        tracker.open_job(bucket="archive", staging_prefix=".rahcp-staging/killed-run/", final_prefix="monthly/")
        tracker.close()
        for index in range(3):
            emulator.s3.put_object(Bucket="archive", Key=f".rahcp-staging/killed-run/f{index}.txt", Body=b"left over")
        cleaned = await cleanup_staging(
            credentials_block="hcp-shots", tracker_block="hcp-shots-tracker", older_than_hours=0, return_state=True
        )
        runs["cleanup"] = cleaned.state_details.flow_run_id
    return runs


async def artifact_ids(flow_run_id: Any) -> dict[str, str]:
    """``{artifact key: artifact id}`` of one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: str(a.id) for a in found if a.key}


def install_playwright(folder: Path) -> None:
    if not (folder / "node_modules" / "playwright-core").exists():
        subprocess.run(["npm", "install", "--silent", "--prefix", str(folder), "playwright-core"], check=True)
    (folder / "shoot.js").write_text(SHOOT_JS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--keep", action="store_true", help="keep the server running (prints its URL)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    temp = Path(tempfile.mkdtemp(prefix="rahcp-shots-"))
    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    server = start_server(temp, port)
    try:
        env = {**os.environ, "PREFECT_API_URL": f"{ui}/api", "PREFECT_HOME": str(temp)}
        demo_runs = run_demo(env, temp)
        os.environ.update(PREFECT_API_URL=env["PREFECT_API_URL"], PREFECT_HOME=str(temp))
        runs = asyncio.run(nights(temp))
        runs["demo-upload"], runs["demo-download"] = demo_runs
        keys = {name: asyncio.run(artifact_ids(run)) for name, run in runs.items()}
        print(json.dumps({"runs": {k: str(v) for k, v in runs.items()}, "artifacts": keys}, indent=2))

        args.out.mkdir(parents=True, exist_ok=True)
        out = args.out.resolve()
        shots = [
            {"url": f"{ui}/runs", "path": str(out / "runs-list.png"), "text": "upload "},
            {"url": f"{ui}/runs/flow-run/{runs['nightly-2']}", "path": str(out / "run-page.png"), "text": "Completed"},
            {"url": f"{ui}/artifacts/artifact/{keys['nightly-1']['summary-nightly-scans']}",
             "path": str(out / "summary-committed.png"), "text": "Committed", "height": 1500},
            {"url": f"{ui}/artifacts/artifact/{keys['rolled-back']['summary-weekly-scans']}",
             "path": str(out / "summary-rolled-back.png"), "text": "Rolled back", "height": 2300},
            {"url": f"{ui}/artifacts/key/summary-nightly-scans", "path": str(out / "summary-history.png"), "text": "summary-nightly-scans"},
            {"url": f"{ui}/artifacts/artifact/{keys['demo-download']['summary-bulk-download-' + _bucket_key(keys['demo-download'])]}",
             "path": str(out / "summary-download.png"), "text": "Downloaded", "height": 1400},
            {"url": f"{ui}/artifacts/artifact/{keys['dry-run']['dry-run-weekly-scans']}", "path": str(out / "dry-run.png"), "text": "Dry run"},
            {"url": f"{ui}/artifacts", "path": str(out / "artifacts-page.png"), "text": "summary-nightly-scans"},
        ]
        node = temp / "node"
        node.mkdir()
        install_playwright(node)
        subprocess.run(["node", str(node / "shoot.js"), json.dumps(shots)], cwd=node, env={**os.environ, "CHROMIUM": CHROMIUM}, check=True)
        if args.keep:
            print(f"Prefect UI at {ui} (PREFECT_HOME={temp}); Ctrl-C to stop")
            server.wait()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if not args.keep:
            shutil.rmtree(temp, ignore_errors=True)
    return 0


def _bucket_key(keys: dict[str, str]) -> str:
    """The demo's download job key part (its bucket is random): ``demo-xxxx-archive``."""
    for key in keys:
        if key.startswith("summary-bulk-download-"):
            return key[len("summary-bulk-download-") :]
    raise KeyError("no download summary among " + ", ".join(keys))


if __name__ == "__main__":
    sys.exit(main())
