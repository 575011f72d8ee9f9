"""``python -m sandbox``: run the sandbox peers and load scenarios into them.

    serve              all peers in the foreground until SIGTERM/SIGINT
    start / stop       the same in the background (``sandbox.pid``, log in ``sandbox.log``)
    status             which peers answer, on which ports
    generate ...       write a scenario (delegates to ``sandbox.generator``)
    install DIR        load a generated scenario into the running peers and folders
    fault PEER ...     arm a 429/503 fault on the billing or ERP peer

State lives in ``SANDBOX_DIR`` (default ``data/sandbox``); ports come from
``SANDBOX_{SFTP,BILLING,ERP,SMTP,EHR_FHIR}_PORT`` or the contract defaults (docs/CONTRACTS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sandbox import ERP_TOKEN, HOST, port_for, sandbox_dir

PEERS = ("sftp", "billing", "erp", "smtp", "ehr_fhir")
START_TIMEOUT = 30.0


# --------------------------------------------------------------------------- helpers


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_sandbox(pid: int) -> bool:
    """Whether ``pid`` is a sandbox server (guards against a recycled pid in a stale pid file)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True  # no /proc (macOS): trust the pid file
    return b"sandbox" in cmdline


def _read_pid(base: Path) -> int | None:
    try:
        return int((base / "sandbox.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _remove_if_ours(path: Path, pid: int) -> None:
    with contextlib.suppress(OSError, ValueError):  # already gone, or not a file we can read
        if path.name == "sandbox.pid":
            owner = int(path.read_text().strip())
        else:
            owner = json.loads(path.read_text()).get("pid")
        if owner == pid:
            path.unlink()


def _running(base: Path) -> tuple[int | None, dict[str, Any] | None, dict[str, bool]]:
    """(pid if a sandbox process owns the pid file, its ready.json, which ports answer)."""
    from sandbox.runner import port_answers, read_ready

    pid = _read_pid(base)
    if pid is not None and not _is_sandbox(pid):
        pid = None
    ready = read_ready(base)
    answers = {}
    if ready:
        answers = {peer: port_answers(int(ready[f"{peer}_port"]), ready.get("host", HOST)) for peer in PEERS}
    return pid, ready, answers


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None, help="state folder (default: $SANDBOX_DIR or data/sandbox)")


def _add_ports(parser: argparse.ArgumentParser) -> None:
    for peer in PEERS:
        parser.add_argument(f"--{peer}-port", type=int, default=None, help=f"default: {peer} port from env/contract")


def _base(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else sandbox_dir()


def _ports(args: argparse.Namespace) -> dict[str, int]:
    return {peer: getattr(args, f"{peer}_port", None) or port_for(peer) for peer in PEERS}


def _say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- serve / start / stop / status


def cmd_serve(args: argparse.Namespace) -> int:
    """Run every peer in this process until SIGTERM or SIGINT."""
    import logging

    from sandbox.runner import SandboxServers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd narrates every connection
    base = _base(args)
    base.mkdir(parents=True, exist_ok=True)
    other = _read_pid(base)
    if other is not None and other != os.getpid() and _is_sandbox(other):
        _say(f"sandbox already running (pid {other}); `python -m sandbox stop` first")
        return 1
    ports = _ports(args)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    (base / "sandbox.pid").write_text(f"{os.getpid()}\n")
    servers = SandboxServers(base, ports["sftp"], ports["billing"], ports["erp"], ports["smtp"],
                             ehr_fhir_port=ports["ehr_fhir"])
    try:
        servers.start()
        _say(
            f"sandbox serving from {base}: sftp {servers.sftp_port}, billing {servers.billing_url}, "
            f"erp {servers.erp_url}, smtp {servers.smtp_port}, ehr fhir {servers.ehr_fhir_url} (pid {os.getpid()})"
        )
        while not stop.wait(0.5):  # wake twice a second so signals are handled promptly
            continue
        _say("sandbox stopping")
    finally:
        servers.stop()
        _remove_if_ours(base / "sandbox.pid", os.getpid())
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """Spawn ``serve`` detached and wait until every port answers."""
    base = _base(args)
    base.mkdir(parents=True, exist_ok=True)
    pid, ready, answers = _running(base)
    if pid is not None:
        if ready and ready.get("pid") == pid and answers and all(answers.values()):
            _say(f"sandbox already running (pid {pid}): {_describe(ready)}")
            return 0
        _say(f"sandbox process {pid} exists but not every peer answers; `python -m sandbox stop` first")
        return 1
    (base / "sandbox.pid").unlink(missing_ok=True)
    (base / "ready.json").unlink(missing_ok=True)
    ports = _ports(args)
    command = [sys.executable, "-m", "sandbox", "serve", "--dir", str(base)]
    for peer, port in ports.items():
        command += [f"--{peer}-port", str(port)]
    log_path = base / "sandbox.log"
    with open(log_path, "ab") as log_file, open(os.devnull, "rb") as devnull:
        child = subprocess.Popen(
            command, stdin=devnull, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True
        )
    (base / "sandbox.pid").write_text(f"{child.pid}\n")
    deadline = time.monotonic() + args.timeout
    from sandbox.runner import port_answers, read_ready

    while time.monotonic() < deadline:
        if child.poll() is not None:
            _say(f"sandbox failed to start (exit {child.returncode}); last lines of {log_path}:")
            _say(_tail(log_path))
            _remove_if_ours(base / "sandbox.pid", child.pid)
            return 1
        ready = read_ready(base)
        if ready and ready.get("pid") == child.pid and all(
            port_answers(int(ready[f"{peer}_port"])) for peer in PEERS
        ):
            _say(f"sandbox started (pid {child.pid}): {_describe(ready)}")
            return 0
        time.sleep(0.1)
    child.terminate()
    try:
        child.wait(5)
    except subprocess.TimeoutExpired:
        child.kill()
    _remove_if_ours(base / "sandbox.pid", child.pid)
    _say(f"sandbox did not answer on ports {ports} within {args.timeout:.0f} s; see {log_path}:")
    _say(_tail(log_path))
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    """SIGTERM the background sandbox and wait for it (SIGKILL after the timeout)."""
    base = _base(args)
    pid = _read_pid(base)
    if pid is None or not _is_sandbox(pid):
        (base / "sandbox.pid").unlink(missing_ok=True)
        _say("sandbox not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)
    if _pid_alive(pid) and not _reap(pid):
        os.kill(pid, signal.SIGKILL)
        _say(f"sandbox (pid {pid}) did not stop in {args.timeout:.0f} s; killed")
    else:
        _say(f"sandbox stopped (pid {pid})")
    _remove_if_ours(base / "sandbox.pid", pid)
    _remove_if_ours(base / "ready.json", pid)
    return 0


def _reap(pid: int) -> bool:
    """Collect our own child if it has exited (a zombie still answers kill(pid, 0))."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return False


def cmd_status(args: argparse.Namespace) -> int:
    base = _base(args)
    pid, ready, answers = _running(base)
    if pid is None or not ready:
        _say(f"sandbox not running (state in {base})")
        return 1
    for peer in PEERS:
        _say(f"  {peer:8} port {ready[f'{peer}_port']:<6} {'up' if answers.get(peer) else 'DOWN'}")
    ok = all(answers.values())
    _say(f"sandbox {'running' if ok else 'degraded'} (pid {pid}), state in {base}")
    return 0 if ok else 1


def _describe(ready: dict[str, Any]) -> str:
    return (
        f"sftp {ready['sftp_port']}, billing {ready['billing_url']}, erp {ready['erp_url']}, "
        f"smtp {ready['smtp_port']}, ehr fhir {ready.get('ehr_fhir_url')}"
    )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- install / fault


def _urls(args: argparse.Namespace) -> dict[str, str]:
    """Peer URLs: flags, else the running sandbox's ready.json, else env/contract ports."""
    from sandbox.runner import read_ready

    ready = read_ready(_base(args)) or {}
    return {
        "billing": getattr(args, "billing_url", None) or ready.get("billing_url")
        or f"http://{HOST}:{port_for('billing')}",
        "erp": getattr(args, "erp_url", None) or ready.get("erp_url") or f"http://{HOST}:{port_for('erp')}",
        "ehr_fhir": getattr(args, "fhir_url", None) or ready.get("ehr_fhir_url")
        or f"http://{HOST}:{port_for('ehr_fhir')}/fhir",
    }


def _post_json(url: str, body: bytes) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"POST {url} failed: {exc.code} {exc.read().decode(errors='replace')}") from exc
    except urllib.error.URLError as exc:
        raise SystemExit(f"POST {url} failed: {exc.reason} (is the sandbox running? `python -m sandbox start`)") from exc


def _post_opening_ar(scenario: Path, erp_url: str) -> None:
    """The chart's extra accounts and the go-live AR conversion journal (``sandbox.opening_balances``)."""
    from sandbox.opening_balances import EXTRA_ACCOUNTS, conversion_journal

    truth_path, master_path = scenario / "ground_truth.json", scenario / "erp_master.json"
    if not truth_path.exists() or not master_path.exists():
        return
    truth, master = json.loads(truth_path.read_text()), json.loads(master_path.read_text())
    extra = {a["account"] for a in EXTRA_ACCOUNTS}
    accounts = [a for a in master.get("gl_accounts", []) if a["account"] not in extra]
    _post_json(f"{erp_url}/_sandbox/load", json.dumps({"gl_accounts": [*accounts, *EXTRA_ACCOUNTS]}).encode())
    journal = conversion_journal(truth, truth.get("company") or "CF01")
    if journal is None:
        return
    request = urllib.request.Request(f"{erp_url}/api/v1/journal-batches", data=json.dumps(journal).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {ERP_TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            _say(f"erp: opening AR posted ({json.loads(response.read()).get('document_id')}, {journal['journal_date']})")
    except urllib.error.HTTPError as exc:  # a closed period: the roll-forward opens at zero instead
        _say(f"erp: opening AR not posted: {exc.code} {exc.read().decode(errors='replace')[:200]}")


def cmd_install(args: argparse.Namespace) -> int:
    """Load a generated scenario into the running peers and the drop/landing folders."""
    scenario = Path(args.scenario)
    if not scenario.is_dir():
        _say(f"no scenario folder at {scenario}")
        return 2
    urls = _urls(args)
    base = _base(args)
    peers = () if args.sftp_only else (("erp", "erp_master.json"), ("billing", "billing_seed.json"))
    for peer, name in peers:
        path = scenario / name
        if path.exists():
            result = _post_json(f"{urls[peer]}/_sandbox/load", path.read_bytes())
            _say(f"{peer}: loaded {result.get('loaded')} from {name}")
        else:
            _say(f"{peer}: no {name} in scenario, skipped")
    if peers:
        _post_opening_ar(scenario, urls["erp"])
    sftp_root = Path(args.sftp_root) if args.sftp_root else base / "sftp_root"
    copied = 0
    for payer_dir in sorted(p for p in (scenario / "sftp").glob("*") if p.is_dir()):
        inbound = sftp_root / "inbound" / payer_dir.name
        inbound.mkdir(parents=True, exist_ok=True)
        (sftp_root / "archive" / payer_dir.name).mkdir(parents=True, exist_ok=True)
        for file in sorted(payer_dir.glob("*.835")):
            _copy_atomic(file, inbound / file.name)
            copied += 1
    _say(f"sftp: {copied} 835 file(s) into {sftp_root / 'inbound'}")
    statements = _deliver_bank(scenario, sftp_root)
    if statements:
        _say(f"sftp: {statements} bank statement(s) into {sftp_root / 'inbound' / 'bank'}")
    if args.sftp_only:
        return 0
    if args.landing_dir:
        landing = Path(args.landing_dir)
        landing.mkdir(parents=True, exist_ok=True)
    else:
        from carefabric.config import landing_dir

        landing = landing_dir()
    landed = 0
    for file in sorted(p for p in (scenario / "ehr").glob("*") if p.is_file()):
        if args.fhir_bulk and file.suffix == ".ndjson":
            continue
        _copy_atomic(file, landing / file.name)
        landed += 1
    _say(f"ehr: {landed} file(s) into {landing}")
    if args.fhir_bulk:
        load_fhir(scenario, urls["ehr_fhir"])
    return 0


def load_fhir(scenario: Path, fhir_url: str) -> None:
    """The day's FHIR resources into the EHR's FHIR server, for the Bulk Data pull to fetch.

    Each file's resources were last updated on its day (``fhir_YYYYMMDD``) at 18:00 UTC: the
    instant ``_since``/``_until`` of the export select on.
    """
    files = []
    for file in sorted((scenario / "ehr").glob("fhir_*.ndjson")):
        day = file.stem.rsplit("_", 1)[-1]
        files.append({"ndjson": file.read_text(), "last_updated": f"{day[:4]}-{day[4:6]}-{day[6:8]}T18:00:00Z"})
    admin = fhir_url.rsplit("/fhir", 1)[0]
    result = _post_json(f"{admin}/_sandbox/load", json.dumps({"files": files}).encode())
    _say(f"ehr fhir: {result.get('loaded')} resource(s) from {len(files)} file(s) into {fhir_url}")


def _deliver_bank(scenario: Path, sftp_root: Path) -> int:
    """The bank's BAI2 statements into ``/inbound/bank/`` (archive folder ``/archive/bank/``)."""
    files = sorted((scenario / "bank").glob("*.bai"))
    if not files:
        return 0
    inbound = sftp_root / "inbound" / "bank"
    inbound.mkdir(parents=True, exist_ok=True)
    (sftp_root / "archive" / "bank").mkdir(parents=True, exist_ok=True)
    for file in files:
        _copy_atomic(file, inbound / file.name)
    return len(files)


def _copy_atomic(source: Path, target: Path) -> None:
    """Copy under a hidden name, then rename, so a poller never picks up half a file."""
    tmp = target.with_name(f".{target.name}.part")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def cmd_fault(args: argparse.Namespace) -> int:
    url = args.url or _urls(args)[args.peer]
    spec = {
        "path_prefix": args.path_prefix,
        "method": args.method,
        "status": args.status,
        "count": args.count,
        "retry_after": args.retry_after,
    }
    result = _post_json(f"{url}/_sandbox/faults", json.dumps(spec).encode())
    _say(f"{args.peer}: armed {result.get('armed')}")
    return 0


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run all peers in the foreground")
    _add_dir(p)
    _add_ports(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("start", help="run all peers in the background and wait until they answer")
    _add_dir(p)
    _add_ports(p)
    p.add_argument("--timeout", type=float, default=START_TIMEOUT)
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("stop", help="stop the background sandbox")
    _add_dir(p)
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("status", help="show which peers answer")
    _add_dir(p)
    p.set_defaults(func=cmd_status)

    sub.add_parser("generate", help="write a scenario (see `python -m sandbox generate --help`)")

    p = sub.add_parser("install", help="load a generated scenario into the running peers")
    p.add_argument("scenario", type=Path, help="folder written by `generate`")
    _add_dir(p)
    p.add_argument("--erp-url")
    p.add_argument("--billing-url")
    p.add_argument("--sftp-root", type=Path, help="default: <sandbox dir>/sftp_root")
    p.add_argument("--landing-dir", type=Path, help="default: carefabric.config.landing_dir()")
    p.add_argument("--fhir-url", help="the EHR FHIR server's base URL (default: the running sandbox's)")
    p.add_argument("--fhir-bulk", action="store_true",
                   help="FHIR resources go to the EHR FHIR server (pulled by ehr_bulk_export), not the landing folder")
    p.add_argument("--sftp-only", action="store_true", help="only (re-)deliver the 835 files and bank statements, as a payer or the bank re-sending")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("fault", help="arm a fault on an HTTP peer")
    p.add_argument("peer", choices=("billing", "erp"))
    p.add_argument("--path-prefix", default="/api/v1/")
    p.add_argument("--method", default=None, help="HTTP method (default: any)")
    p.add_argument("--status", type=int, default=503, choices=(429, 500, 502, 503, 504))
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--url", help="peer base URL (default: ready.json, then env/contract port)")
    _add_dir(p)
    p.set_defaults(func=cmd_fault)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "generate":
        try:
            # Lazily: serving never needs the generator (nor its imports).
            generator = importlib.import_module("sandbox.generator")
        except ModuleNotFoundError as exc:
            if exc.name != "sandbox.generator":
                raise
            print("sandbox.generator is not installed in this checkout", file=sys.stderr)
            return 2
        return int(generator.main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
