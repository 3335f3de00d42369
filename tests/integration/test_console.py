"""The web console (/ui/) in a real headless chromium, against a real three-node cluster
with API tokens and a real webhook receiver.

The browser is opened on a follower (so it keeps working when the leader is stopped) and
does what an operator does: gives its token, creates a job through the form, finds it in
the list, pauses, resumes and triggers it and sees the attempt, sees a failure in the
Failures view, and sees the leader change on the Overview after the leader stops.  Each
page is photographed: into docs/ui/ (which docs/ui.md shows) when the environment
variable SCHEDULED_DB_UI_SHOTS names that folder, else into a scratch folder, so that a
test run leaves the checkout as it was.  Every request the page made
(read from chromium's network log) must be an operation docs/openapi.yaml describes,
answered with a status it documents, and a body that matches it.

Needs Debian's chromium and chromium-driver (.ci/run installs them) and selenium.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from multidict import CIMultiDict

from scheduled_db.policy.auth import token_digest
from scheduled_db.testing.harness import NodeProcess, join, running, wait_leader
from tests.actors.openapi_spec import check_reply, described_operations, load_spec
from tests.actors.webhook_receiver import Receiver
from tests.integration.cluster import SECRET

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("CI") == "true":
        raise RuntimeError("chromium and chromium-driver are needed (apt-get install them)")
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

pytestmark = pytest.mark.timeout(180)
ADMIN, READER = "console-admin-token-0123456789", "console-reader-token-0123456789"
TOKENS = f"admin:{token_digest(ADMIN)}:admin,reader:{token_digest(READER)}:read"
SHOTS = Path(
    os.environ.get("SCHEDULED_DB_UI_SHOTS") or Path(tempfile.gettempdir()) / "scheduled-db-ui"
)
WAIT_S = 20.0
SPEC = load_spec()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    root = tmp_path_factory.mktemp("console")
    nodes = [
        NodeProcess(root / f"n{i}" / "data", f"node-{i}", CLUSTER_SECRET=SECRET, API_TOKENS=TOKENS)
        for i in (1, 2, 3)
    ]
    join(nodes)
    with running(nodes) as started:
        yield started


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1360,900", "--hide-scrollbars", "--no-first-run"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.execute_cdp_cmd("Network.enable", {"maxTotalBufferSize": 50_000_000})
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    """The page as a user sees it: waits on what is shown, never on time."""

    def __init__(self, driver: WebDriver, base: str) -> None:
        self.driver = driver
        self.base = base
        self.seen: list[dict[str, Any]] = []  # chromium's network events, kept as they come

    def open(self, fragment: str) -> None:
        self.driver.get(f"{self.base}/ui/#{fragment}")

    def fresh(self, fragment: str) -> None:
        """Open the page with nothing kept from earlier visits (no token)."""
        self.open(fragment)
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.refresh()

    def go(self, fragment: str) -> None:
        self.driver.execute_script("location.hash = arguments[0]", fragment)

    def until(self, cond: Any, what: str, timeout: float = WAIT_S) -> Any:
        wait = WebDriverWait(
            self.driver, timeout, poll_frequency=0.1,
            ignored_exceptions=(StaleElementReferenceException,),
        )  # fmt: skip
        return wait.until(lambda d: cond(), message=f"waiting for {what}")

    def find(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        found = self.find(css)
        return found[0].text if found else ""

    def shown(self, css: str, contains: str = "") -> WebElement:
        def found() -> WebElement | None:
            for element in self.find(css):
                if element.is_displayed() and contains in element.text:
                    return element
            return None

        element: WebElement = self.until(found, f"{css} showing {contains!r}")
        return element

    def click(self, css: str) -> None:
        def clicked() -> bool:
            self.shown(css).click()
            return True

        self.until(clicked, f"a click on {css}")

    def type(self, css: str, text: str) -> None:
        element = self.shown(css)
        element.clear()
        element.send_keys(text)

    def shot(self, name: str) -> None:
        """The whole page (not only the window) as <SHOTS>/<name>.png."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        width, height = self.driver.execute_script(
            "return [document.documentElement.clientWidth, document.documentElement.scrollHeight]"
        )
        clip = {"x": 0, "y": 0, "width": width, "height": max(height, 600), "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        (SHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))

    def drain_network(self) -> None:
        self.seen.extend(
            json.loads(entry["message"])["message"] for entry in self.driver.get_log("performance")
        )


def _create(node: NodeProcess, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = node.call("POST", "/jobs", body, headers={"Authorization": f"Bearer {ADMIN}"})
    assert status == 200, answer
    return dict(answer)


def _get(node: NodeProcess, path: str) -> Any:
    status, answer = node.call("GET", path, headers={"Authorization": f"Bearer {ADMIN}"})
    assert status == 200, answer
    return answer


DESCRIBED = [
    ("*/5 * * * *", "UTC", "every 5 minutes"),
    ("0 9 * * 1-5", "Europe/Madrid", "at 09:00 Europe/Madrid on weekdays"),
    ("@hourly", "UTC", "every hour"),
    ("@daily", "UTC", "at 00:00 UTC every day"),
    ("@yearly", "UTC", "at 00:00 UTC on 1 January"),
    ("0 0 L * *", "UTC", "at 00:00 UTC on the last day of the month"),
    ("30 0 0 1 * *", "UTC", "at 00:00:30 UTC on day 1 of the month"),
    ("*/15 9-17 * * MON-FRI", "America/New_York",
     "every 15 minutes from 09:00 to 17:59 America/New_York on weekdays"),
    ("0 9,17 * * 0,6", "UTC", "at 09:00 and 17:00 UTC on weekends"),
    ("0 0 1 * 1", "UTC", "at 00:00 UTC on day 1 of the month or on Mondays"),
    ("1,2 3-4 5 6 7", "UTC", "cron 1,2 3-4 5 6 7 (UTC)"),  # no short words: the expression
]  # fmt: skip


def test_the_schedule_describer_and_its_preview_in_the_browser(
    cluster: list[NodeProcess], browser: WebDriver
) -> None:
    console = Console(browser, cluster[0].base)
    console.open("/overview")
    script = """
      const [cases, done] = [arguments[0], arguments[arguments.length - 1]];
      import("/ui/js/cron.js").then((cron) => {
        const words = cases.map(([e, z]) => cron.describeCron(e, z));
        // Madrid springs forward on 2027-03-28 (02:00 -> 03:00): 02:30 that day fires at 03:00.
        const from = Date.UTC(2027, 2, 27);
        const runs = cron.nextRuns("30 2 * * *", "Europe/Madrid", 3, from)
          .map((r) => cron.isoIn(r.ms, "Europe/Madrid") + (r.gap ? " gap" : ""));
        let refused = null;
        try { cron.parseCron("61 * * * *"); } catch (e) { refused = e.message; }
        done({ words, runs, refused });
      }, (e) => done({ error: String(e) }));
    """
    answer = browser.execute_async_script(script, [[e, z] for e, z, _ in DESCRIBED])
    assert "error" not in answer, answer
    assert answer["words"] == [words for _, _, words in DESCRIBED]
    assert answer["runs"] == [
        "2027-03-27T02:30:00+01:00", "2027-03-28T03:00:00+02:00 gap", "2027-03-29T02:30:00+02:00",
    ]  # fmt: skip
    assert answer["refused"] == "minute: 61 is outside 0-59"


def test_an_operator_runs_the_cluster_from_the_console(
    cluster: list[NodeProcess], browser: WebDriver, receiver: Receiver
) -> None:
    started = time.monotonic()
    leader = wait_leader(cluster)
    follower = next(n for n in cluster if n is not leader)
    console = Console(browser, follower.base)
    console.fresh("/overview")
    # Tokens are on: the page asks for one before it shows anything.
    console.type("#token-input", ADMIN)
    console.click("#token-save")
    console.until(lambda: console.text("#whoami") == "token: admin", "the admin role")
    console.shown("#leader", leader.node_id)
    console.shown("#members tr[data-node]")
    console.shot("overview")

    # Create a job through the form: the schedule is described and previewed as typed.
    console.go("/new")
    console.type("#job-id", "console-demo")
    console.type("#job-cron-expression", "0 9 * * 1-5")
    console.type("#job-timezone", "Europe/Madrid")
    console.shown("#cron-words", "at 09:00 Europe/Madrid on weekdays")
    console.until(lambda: len(console.find("#cron-preview li")) == 5, "five previewed runs")
    console.type("#job-webhook-url", receiver.url("/ok"))
    console.type("#job-labels", "team=console")
    console.type("#job-payload", '{"from": "the console"}')
    console.shot("form")
    console.click("#job-save")
    console.shown("#job-title", "console-demo")
    stored = _get(leader, "/jobs/console-demo")
    assert (stored["cron_expression"], stored["timezone"]) == ("0 9 * * 1-5", "Europe/Madrid")
    assert (stored["labels"], stored["payload"]) == ({"team": "console"}, {"from": "the console"})
    upcoming = _get(follower, "/jobs/console-demo/upcoming?n=10")
    console.shown("#upcoming li", upcoming["runs"][0]["iso"])

    # Listed, by its label, with its schedule in words.
    console.go("/jobs?label=team%3Dconsole")
    row = console.shown('#jobs-table tr[data-job="console-demo"]')
    assert "at 09:00 Europe/Madrid on weekdays" in row.text
    console.go("/jobs?id=console-d")  # the start of an id (the server's id_prefix)
    console.shown('#jobs-table tr[data-job="console-demo"]')
    console.shot("jobs")

    # Bulk actions on the selected rows.
    console.click('#jobs-table tr[data-job="console-demo"] input.select')
    console.click("#bulk-pause")
    console.shown('#jobs-table tr[data-job="console-demo"] td.state', "paused")
    console.click('#jobs-table tr[data-job="console-demo"] input.select')
    console.click("#bulk-resume")
    console.until(
        lambda: "paused" not in console.text('#jobs-table tr[data-job="console-demo"] td.state'),
        "the job resumed in the list",
    )
    assert _get(leader, "/jobs/console-demo")["version"] == 3

    # Pause and resume from its page; the cluster has each change.
    console.go("/job/console-demo")
    console.click("#action-pause")
    console.shown("#job-state", "paused")
    assert _get(leader, "/jobs/console-demo")["paused"] is True
    console.click("#action-resume")
    console.shown("#action-pause")
    assert _get(leader, "/jobs/console-demo")["paused"] is False

    # Edit: a merge patch of what changed, against the version shown.
    console.click("#action-edit")
    console.type("#job-cron-expression", "0 10 * * 1-5")
    console.shown("#cron-words", "at 10:00 Europe/Madrid on weekdays")
    console.click("#job-save")
    console.shown("#job-title", "console-demo")
    edited = _get(leader, "/jobs/console-demo")
    assert (edited["cron_expression"], edited["version"]) == ("0 10 * * 1-5", 6)
    assert edited["labels"] == {"team": "console"} and edited["payload"] == {"from": "the console"}
    curl = console.find("#curl")[0].get_attribute("value") or ""
    assert curl.startswith("curl -X POST") and '"cron_expression":"0 10 * * 1-5"' in curl
    console.shot("job")

    # Trigger it: the receiver gets the delivery and the attempt appears, marked.
    console.click("#action-trigger")
    receiver.wait_until(lambda r: len(r.received("/ok")) == 1, timeout=WAIT_S)
    # The row shows up in progress, and completed once the outcome is recorded (a poll).
    attempt = console.shown("#attempts tr.attempt", "completed")
    assert "trigger" in attempt.text and "200" in attempt.text
    console.shot("job")

    # A job whose webhook refuses it (400: not retried) shows in Failures.
    _create(leader, {"id": "console-failing", "type": "unico", "max_attempts": 1,
                     "timestamp": round(time.time() + 1.5, 3),
                     "webhook_url": receiver.url("/status/400")})  # fmt: skip
    console.go("/failures")
    failure = console.shown('#failures-table tr.failure[data-job="console-failing"]')
    assert "400" in failure.text and "http_error" in failure.text
    console.go("/cluster")
    console.shown("#cluster-members tr", leader.node_id)
    console.shown("#join-form")
    console.go("/failures")
    console.shown('#failures-table tr.failure[data-job="console-failing"]')
    console.shot("failures")
    console.go("/cluster")
    console.shown("#cluster-members tr", leader.node_id)
    console.shot("cluster")

    # The leader stops: the Overview shows its successor and the change.
    console.go("/overview")
    console.shown("#leader", leader.node_id)
    leader.stop()
    console.until(
        lambda: console.text("#leader") not in ("", leader.node_id, "none (election)"),
        "a new leader on the Overview",
    )
    successor = console.text("#leader")
    assert successor in {n.node_id for n in cluster if n is not leader}
    console.shown("#leader-changes li", f"{successor} term")
    console.shot("overview-failover")
    console.drain_network()
    elapsed = time.monotonic() - started
    print(f"console walk-through: {elapsed:.1f}s")
    check_requests(console)


def test_a_read_token_sees_no_write_actions(cluster: list[NodeProcess], browser: WebDriver) -> None:
    node = next(n for n in cluster if n.alive())
    console = Console(browser, node.base)
    console.fresh("/jobs")
    console.type("#token-input", READER)
    console.click("#token-save")
    console.until(lambda: console.text("#whoami") == "token: read", "the read role")
    console.shown('#jobs-table tr[data-job="console-demo"]')
    assert console.find("#bulk-pause") == []
    assert not console.find('nav a[data-view="new"]')[0].is_displayed()
    console.go("/job/console-demo")
    console.shown("#job-title", "console-demo")
    assert console.find("#action-pause") == [] and console.find("#action-trigger") == []


def _template(path: str) -> str | None:
    """The described path template ``path`` is an instance of."""
    parts = path.split("/")
    for template in SPEC["paths"]:
        pattern = template.split("/")
        if len(pattern) == len(parts) and all(
            a == b or (a.startswith("{") and b) for a, b in zip(pattern, parts, strict=True)
        ):
            return str(template)
    return None


def check_requests(console: Console) -> None:
    """Every API request the page made is a described operation with a documented
    status, and each body chromium still holds matches the description."""
    sent = {
        e["params"]["requestId"]: e["params"]["request"]
        for e in console.seen
        if e["method"] == "Network.requestWillBeSent"
    }
    checked: set[tuple[str, str, int]] = set()
    for event in console.seen:
        if event["method"] != "Network.responseReceived":
            continue
        response = event["params"]["response"]
        request = sent.get(event["params"]["requestId"])
        url = urlsplit(response["url"])
        if request is None or url.path.startswith("/ui") or not url.scheme.startswith("http"):
            continue
        method = request["method"]
        template = _template(unquote(url.path))
        assert template is not None, f"the console called an undescribed path: {url.path}"
        assert (method, template) in described_operations(SPEC), (method, template)
        status = response["status"]
        media = response.get("mimeType", "")
        body: Any = None
        try:
            raw = console.driver.execute_cdp_cmd(
                "Network.getResponseBody", {"requestId": event["params"]["requestId"]}
            )["body"]
            body = json.loads(raw) if media == "application/json" and raw else raw or None
        except Exception:  # evicted from chromium's buffer: the status is still checked
            body = ...
        if body is ...:
            responses = SPEC["paths"][template][method.lower()]["responses"]
            assert str(status) in responses, f"{method} {template} -> {status} undocumented"
        else:
            headers = CIMultiDict(response["headers"])
            check_reply(SPEC, method, template, status, media, headers, body)
        checked.add((method, template, status))
    operations = {(m, t) for m, t, _ in checked}
    print(f"console requests checked against the description: {sorted(checked)}")
    # The walk-through's operations, all seen (so the check above checked something).
    assert {("GET", "/debug/cluster"), ("POST", "/jobs"), ("POST", "/jobs/{id}/pause"),
            ("POST", "/jobs/{id}/resume"), ("POST", "/jobs/{id}/trigger"),
            ("GET", "/executions"), ("GET", "/jobs/{id}/upcoming"),
            ("PATCH", "/jobs/{id}")} <= operations  # fmt: skip
