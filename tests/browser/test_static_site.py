"""Static guarantees of static_site/: vendored files as recorded, no HTML injection sinks, no
persistent storage of secrets, and every file a page references exists."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

SITE = Path(__file__).resolve().parents[2] / "static_site"
OUR_SCRIPTS = sorted((SITE / "js").glob("*.js"))
PAGES = [SITE / "dashboard.html", SITE / "chat.html"]


def test_vendored_files_match_the_checksums_recorded_in_their_readme() -> None:
    readme = (SITE / "vendor" / "README.md").read_text(encoding="utf-8")
    recorded = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M))

    assert set(recorded) == {"aws4fetch.esm.mjs", "uPlot.esm.js", "uPlot.min.css"}
    for name, digest in recorded.items():
        assert hashlib.sha256((SITE / "vendor" / name).read_bytes()).hexdigest() == digest, name
    for licence in ("aws4fetch.LICENSE", "uPlot.LICENSE"):
        assert "Permission is hereby granted, free of charge" in (SITE / "vendor" / licence).read_text(encoding="utf-8")


@pytest.mark.parametrize("script", OUR_SCRIPTS, ids=lambda p: p.name)
def test_page_scripts_never_parse_strings_as_html(script: Path) -> None:
    code = script.read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser", "eval("):
        assert sink not in code, f"{script.name} uses {sink}"


@pytest.mark.parametrize("script", OUR_SCRIPTS, ids=lambda p: p.name)
def test_page_scripts_keep_settings_out_of_local_storage_and_urls(script: Path) -> None:
    code = script.read_text(encoding="utf-8")
    assert not re.search(r"\blocalStorage\s*[.\[]", code)
    assert "history.pushState" not in code and "history.replaceState" not in code
    assert "location.hash" not in code and "location.search" not in code


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_a_page_references_exists(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    refs = re.findall(r'(?:src|href)="([^"#:]+)"', html)
    assert refs, "no local references found"
    for ref in refs:
        assert (SITE / ref).is_file(), f"{page.name} references missing {ref}"


@pytest.mark.parametrize("script", sorted(SITE.glob("js/*.js")), ids=lambda p: p.name)
def test_every_module_import_resolves_to_a_file(script: Path) -> None:
    for ref in re.findall(r'from "(\.[^"]+)"', script.read_text(encoding="utf-8")):
        assert (script.parent / ref).resolve().is_file(), f"{script.name} imports missing {ref}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_forbid_inline_scripts_and_form_submission(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert policy is not None
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["form-action"] == "'none'"
    # No input carries a name, so even a form submitted without scripts sends no secret.
    assert not re.search(r"<input[^>]* name=", html)
