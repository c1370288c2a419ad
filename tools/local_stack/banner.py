"""The lines the stack prints when it is ready, and their parser (tests and benchmarks read them).

Every fact is one `  Label: value` line, so people can copy values and programs can parse them
with `parse_banner` without a second, machine-only output.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

READY_PREFIX = "Local stack ready in "
_LINE = re.compile(r"^  (?P<label>[A-Za-z][A-Za-z0-9 _]*?):\s+(?P<value>\S.*)$")
_READY = re.compile(r"^" + re.escape(READY_PREFIX) + r"(?P<seconds>[0-9.]+) s")


@dataclass(frozen=True)
class StackInfo:
    """What a running stack printed: where it is and how to authenticate."""

    api_url: str
    """Base URL of the API, ending with / (like the deployed ApiUrl output)."""
    dashboard_url: str
    chat_url: str
    client_key: str
    access_key_id: str
    secret_access_key: str
    region: str
    state_dir: str
    ready_s: float

    @property
    def openai_base_url(self) -> str:
        return self.api_url + "v1"


_LABELS = {
    "api_url": "API",
    "dashboard_url": "Dashboard",
    "chat_url": "Chat",
    "client_key": "Client key",
    "access_key_id": "AWS access key id",
    "secret_access_key": "AWS secret access key",
    "region": "AWS region",
    "state_dir": "State directory",
}


def format_banner(info: StackInfo, *, python: str, router: str, log_dir: str, notes: list[str]) -> str:
    """The ready message: every URL and secret on its own labelled line, then a usage example."""
    example = (
        "from openai import OpenAI; "
        f'c = OpenAI(base_url="{info.openai_base_url}", api_key="{info.client_key}"); '
        f'r = c.chat.completions.create(model="{router}", '
        'messages=[{"role": "user", "content": "Write a Python function that reverses a string"}]); '
        "print(r.choices[0].message.content)"
    )
    lines = [
        f"{READY_PREFIX}{info.ready_s:.2f} s",
        f"  API: {info.api_url}",
        f"  OpenAI base_url: {info.openai_base_url}",
        f"  Dashboard: {info.dashboard_url}",
        f"  Chat: {info.chat_url}",
        f"  Client key: {info.client_key}",
        f"  AWS access key id: {info.access_key_id}",
        f"  AWS secret access key: {info.secret_access_key}",
        f"  AWS region: {info.region}",
        f"  State directory: {info.state_dir}",
        f"  Function logs: {log_dir}",
        f"  Try it: {python} -c {shlex.quote(example)}",
    ]
    lines.extend(f"  Note: {note}" for note in notes)
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def parse_banner(text: str) -> StackInfo | None:
    """The StackInfo in printed output `text`, or None when the ready banner is not (yet) complete."""
    ready_s: float | None = None
    values: dict[str, str] = {}
    for line in text.splitlines():
        ready = _READY.match(line)
        if ready:
            ready_s = float(ready.group("seconds"))
            values.clear()
            continue
        found = _LINE.match(line)
        if found and ready_s is not None:
            values.setdefault(found.group("label"), found.group("value").strip())
    if ready_s is None or any(label not in values for label in _LABELS.values()):
        return None
    fields = {name: values[label] for name, label in _LABELS.items()}
    return StackInfo(ready_s=ready_s, **fields)
