"""What the pinned Kaggle client's own credential search does, case by case, beside ``find_kaggle_credentials``.

The measurement behind the "Kaggle credentials" row of docs/library-or-ours.md. Each case runs the client in a
fresh Python process with an empty temporary HOME and the network blocked (sockets refuse to resolve or connect),
and runs ours in another fresh process on the same HOME. No real credentials are used or needed.

    python -m tools.probe_kaggle_client
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.paths import REPO_ROOT

_PRELUDE = """
import io, json, os, socket, sys, types, contextlib
def refuse(*args, **kwargs):
    raise socket.gaierror(-3, "network blocked by the probe")
socket.getaddrinfo = refuse
socket.socket.connect = refuse
case = json.loads(sys.argv[1])
if case.get("colab"):  # a fake Colab whose secrets hold a username and key
    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = lambda name: {"KAGGLE_USERNAME": "colabuser", "KAGGLE_KEY": "0" * 32}[name]
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    try:
        import google  # the real namespace package (the client needs google.protobuf)
    except ImportError:
        google = sys.modules["google"] = types.ModuleType("google")
    google.colab = colab
    sys.modules.update({"google.colab": colab, "google.colab.userdata": userdata})
printed = io.StringIO()
result = {}
"""

_CLIENT = _PRELUDE + """
with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
    from kaggle.api.kaggle_api_extended import KaggleApi  # kaggle/__init__.py authenticates on import
    result["lines printed on import"] = len(printed.getvalue().splitlines())
    for name, value in case.get("env_after_import", {}).items():
        os.environ[name] = value
    try:
        api = KaggleApi()
        api.authenticate()
        result["found"] = api.config_values.get("username", "?")
    except SystemExit as exc:
        result["found"] = f"nothing: SystemExit({exc.code})"
if "file" in case:
    result["names the broken file"] = case["file"] in printed.getvalue()
result["lines printed in all"] = len(printed.getvalue().splitlines())
print(json.dumps(result))
"""

_OURS = _PRELUDE + """
for name, value in case.get("env_after_import", {}).items():
    os.environ[name] = value
with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
    from seedlings_utils.kaggle_download import find_kaggle_credentials
    try:
        creds = find_kaggle_credentials()
        result["found"] = creds.username if creds else "nothing (one message lists every way)"
    except Exception as exc:
        result["found"] = f"{type(exc).__name__}"
        if "file" in case:
            result["names the broken file"] = case["file"] in str(exc)
result["lines printed in all"] = len(printed.getvalue().splitlines())
print(json.dumps(result))
"""


def _run(code: str, case: dict, home: Path) -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code, json.dumps(case)], env=env, capture_output=True, text=True,
                            timeout=120)
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if result.returncode == 0 and lines else {"error": result.stderr.strip()[-300:]}


def main() -> int:
    cases = {
        "control: a good ~/.kaggle/kaggle.json": lambda home: _write(
            home / ".kaggle" / "kaggle.json", json.dumps({"username": "jsonuser", "key": "0" * 32})) and {},
        "no credentials anywhere": lambda home: {},
        "~/.kaggle/kaggle.json not JSON": lambda home: {"file": str(_write(home / ".kaggle" / "kaggle.json", "{x"))},
        "Colab secrets KAGGLE_USERNAME/KAGGLE_KEY": lambda home: {"colab": True},
        "KAGGLE_CONFIG_DIR set after the import": lambda home: {"env_after_import": {"KAGGLE_CONFIG_DIR": str(
            _write(home / "elsewhere" / "kaggle.json", json.dumps({"username": "diruser", "key": "0" * 32})).parent)}},
    }
    for name, prepare in cases.items():
        with tempfile.TemporaryDirectory() as folder:
            home = Path(folder)
            case = prepare(home)
            client = _run(_CLIENT, case, home)
            created = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_dir())
            ours = _run(_OURS, case, home)
        print(f"{name}:\n  kaggle client: {client} (folders in HOME afterwards: {created})\n  ours:          {ours}")
    return 0


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


if __name__ == "__main__":
    sys.exit(main())
