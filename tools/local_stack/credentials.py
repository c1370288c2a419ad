"""The local stack's own secrets, kept in the state directory so they survive restarts.

* AWS credentials: the only access key the local IAM authorizer accepts (for `GET /v1/state`);
  generated on first start, shaped like an IAM user's long-term key.
* The client key printed at start: the table stores only its hash, so the plaintext is kept
  here (local development only) to print it again after a restart.

Files are written atomically with mode 0600.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import tempfile
from pathlib import Path
from typing import Any

from tools.local_stack.sigv4 import Credential

CREDENTIALS_FILE = "aws-credentials.json"
CLIENT_KEY_FILE = "client-key.json"
LOCAL_USER = "local-dashboard"

_UPPER_DIGITS = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
"""AWS secret access keys are 40 characters of this alphabet (never a leading "-", which a
command line would read as an option)."""


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to `path` atomically (temp file + rename), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{path}: unreadable ({exc}); delete it to start afresh") from exc
    return data if isinstance(data, dict) else None


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def load_or_create_credential(state_dir: Path, account_id: str) -> Credential:
    """The local IAM user's access key: read from `state_dir`, or generated and saved there."""
    path = state_dir / CREDENTIALS_FILE
    data = _read_json(path)
    if data is None:
        user_id = "AIDA" + _random(_UPPER_DIGITS, 17)
        data = {
            "access_key_id": "AKIA" + _random(_UPPER_DIGITS, 16),
            "secret_access_key": _random(_SECRET_ALPHABET, 40),
            "account_id": account_id,
            "user_arn": f"arn:aws:iam::{account_id}:user/{LOCAL_USER}",
            "user_id": user_id,
        }
        write_private(path, data)
    try:
        return Credential(
            access_key_id=str(data["access_key_id"]),
            secret_access_key=str(data["secret_access_key"]),
            account_id=str(data["account_id"]),
            user_arn=str(data["user_arn"]),
            user_id=str(data["user_id"]),
        )
    except KeyError as exc:
        raise RuntimeError(f"{path}: missing {exc}; delete it to generate new credentials") from exc


def saved_client_key(state_dir: Path) -> str | None:
    """The plaintext client key saved by a previous start, if any."""
    data = _read_json(state_dir / CLIENT_KEY_FILE)
    key = data.get("key") if data else None
    return key if isinstance(key, str) and key else None


def save_client_key(state_dir: Path, key: str, name: str) -> None:
    """Keep the plaintext client key so the next start can print it again."""
    write_private(state_dir / CLIENT_KEY_FILE, {"key": key, "name": name})
