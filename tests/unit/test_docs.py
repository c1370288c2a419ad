"""The docs name only commands, flags, files and headers that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.aws_env import stack_template

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
MAKE_ARGS_MODULE = {
    "run": "tools.local_stack",
    "bench-live": "benchmarks.live",
    "bench-streaming": "benchmarks.streaming",
}
"""Where `make <target> ARGS=...` passes its arguments (see the Makefile)."""


def text(path: Path) -> str:
    # Shell line continuations join the lines of one command.
    return re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.M))


def named_targets(doc: str) -> set[str]:
    # In inline code or at the start of a line of a code block (not prose such as "make sense").
    named = set(re.findall(r"(?:`|^\s*)make ([a-z][a-z0-9-]*)", doc, flags=re.M))
    # The README's command table lists siblings after a slash: `make bench-learning` / `bench-overhead`.
    named |= set(re.findall(r"/ `(bench-[a-z-]+)`", doc))
    return named


def command_flags(doc: str) -> set[tuple[str, str]]:
    """(module, flag) for every flag on a `python -m module ...` command or a `make X ARGS=...`."""
    found: set[tuple[str, str]] = set()
    for line in doc.splitlines():
        for m in re.finditer(r"python -m ([\w.]+)([^`\n]*)", line):
            found |= {(m.group(1), flag) for flag in FLAG.findall(m.group(2).split("#", 1)[0])}
        for m in re.finditer(r"make ([a-z-]+)\s+ARGS=(\"[^\"]*\"|\S+)", line):
            module = MAKE_ARGS_MODULE[m.group(1)]
            found |= {(module, flag) for flag in FLAG.findall(m.group(2))}
        for m in re.finditer(r"`ARGS=(\"[^\"]*\"|[^`]+)`", line):  # `make run ARGS=...` said in prose
            found |= {("tools.local_stack", flag) for flag in FLAG.findall(m.group(1))}
    return found


@cache
def help_text(module: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "router_core")])}
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (module, done.stderr[-2000:])
    return done.stdout


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_make_target_named_exists(doc: Path) -> None:
    missing = named_targets(text(doc)) - make_targets()
    assert not missing, f"{doc.name} names make targets the Makefile does not have: {sorted(missing)}"


def test_the_readme_names_make_targets_and_flags() -> None:
    readme = text(ROOT / "README.md")
    assert {"run", "test", "bench-cost", "validate", "checkov"} <= named_targets(readme)
    flags = command_flags(readme)
    assert ("tools.traffic", "--interval") in flags
    assert ("tools.local_stack", "--no-traffic") in flags
    assert ("tools.local_stack", "--api-port") in flags


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_flag_named_exists_on_its_command(doc: Path) -> None:
    missing = [(module, flag) for module, flag in sorted(command_flags(text(doc))) if flag not in help_text(module)]
    assert not missing, f"{doc.name} names flags their commands do not take: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_points_at_a_file(doc: Path) -> None:
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8"))
    missing = [link for link in links if not (doc.parent / link).exists()]
    assert not missing, f"{doc.name} links to missing files: {missing}"


def test_every_response_header_documented_is_exposed_through_cors_and_sent() -> None:
    api = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    section = api.split("Response headers", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.M))
    api_resource = next(iter(stack_template().of_type("AWS::ApiGatewayV2::Api")))
    cors = stack_template().properties(api_resource)["Body"]["x-amazon-apigateway-cors"]
    exposed = set(cors["exposeHeaders"])
    source = (ROOT / "layers" / "router_core" / "router_core" / "openai_format.py").read_text(encoding="utf-8")
    sent = set(re.findall(r'"((?:x-router-[a-z-]+)|server-timing)"', source))
    assert documented == sent, (documented, sent)
    assert sent <= exposed, sent - exposed
