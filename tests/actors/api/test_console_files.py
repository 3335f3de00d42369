"""The web console's files as the HTTP actor serves them (actors/api/ui.py): open without a
token, under a strict Content-Security-Policy, with no inline script or style a browser
would refuse, every module an import names present, and every file shipped as package data.

The console's behaviour in a browser: tests/integration/test_console.py.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
from html.parser import HTMLParser

from actors.api.ui import CSP, console_files
from scheduled_db.policy.auth import token_digest
from tests.actors.http_harness import Api, api_test
from tests.actors.openapi_spec import ROOT

TOKENS = {"api.tokens": f"r:{token_digest('read-tok')}:read"}
CONSOLE = ROOT / "actors" / "api" / "console"


@api_test(TOKENS)
async def test_the_console_is_served_without_a_token_while_the_api_needs_one(api: Api) -> None:
    page = await api.call("GET", "/ui/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="js/main.js">' in page.text
    assert page.headers["Content-Security-Policy"] == CSP
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    module = await api.call("GET", "/ui/js/main.js")
    assert module.status == 200 and module.headers["Content-Type"].startswith("text/javascript")
    assert (await api.call("GET", "/jobs")).status == 401  # the data still needs the token
    redirect = await api.client.get("/ui", allow_redirects=False)
    assert (redirect.status, redirect.headers["Location"]) == (301, "/ui/")


@api_test()
async def test_only_the_console_s_own_files_are_served(api: Api) -> None:
    for path in ("/ui/nothing.js", "/ui/../openapi.yaml", "/ui/js/../../ui.py", "/ui/%2e%2e/ui.py"):
        reply = await api.call("GET", path)
        assert reply.status == 404 and reply.body["code"] == "not_found", path


def test_the_csp_allows_this_origin_only_and_nothing_inline() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe" not in CSP and "http" not in CSP
    assert directives["frame-ancestors"] == "'none'"


class _Inline(HTMLParser):
    """What a strict CSP would block in an HTML file: inline scripts, handlers, styles."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style>")
        self.found += [f"{tag} {n}=" for n in names if n.startswith("on") or n == "style"]


def test_no_file_holds_what_the_csp_blocks() -> None:
    for name, (body, kind) in console_files().items():
        text = body.decode()
        if kind == "text/html":
            parser = _Inline()
            parser.feed(text)
            assert parser.found == [], (name, parser.found)
        if kind == "text/javascript":
            assert ".innerHTML" not in text and "eval(" not in text, name
            assert "new Function" not in text, name


def test_every_import_names_a_file_of_the_console() -> None:
    files = console_files()
    for name in [n for n in files if n.endswith(".js")]:
        folder = name.rpartition("/")[0]
        for target in re.findall(
            r'from "(\.{1,2}/[^"]+)"|import\("(/ui/[^"]+)"\)', files[name][0].decode()
        ):
            relative = target[0]
            parts = (folder.split("/") if folder else []) + relative.split("/")
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            assert "/".join(resolved) in files, (name, relative)


def test_every_console_file_is_package_data() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["actors.api"].split(",")]
    for path in CONSOLE.rglob("*"):
        if path.is_file():
            relative = path.relative_to(ROOT / "actors" / "api").as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
