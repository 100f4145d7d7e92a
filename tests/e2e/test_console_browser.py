"""The web console in real headless Chromium (Debian's `chromium`, driven by Playwright
from PyPI; no browser is downloaded): `agm serve` against the simulated Google
(`agm-sim --demo`) with a fresh data dir and a commented config file, walked through as
a user would, each step checked by what the page shows:

1. sign in with the link `agm serve` prints;
2. add an account by Google sign-in started from the browser (the sim's consent page
   redirects back to agm's /ui/oauth/callback), and a second one by importing its
   refresh token in the Accounts form;
3. see their quota bars;
4. send requests with the anthropic SDK and watch them appear in the Logs page live;
5. turn safe mode on (`agm safe-mode enable`), see the banner, click "Retry Now"; an
   update notice from `agm update check`, dismissed per version;
6. create a client key (its secret shown once) with limits, use it, see its requests
   counted on the Usage page and download them as CSV, and revoke it;
7. change settings and find them in the config file, its comments kept;
8. every page in the four languages, with no catalogue key left untranslated and CJK
   rendered with real glyphs;
9. a forged cross-site POST (a form on another origin) and a same-origin fetch without
   the CSRF token are refused.

A second test starts the sim refusing agm's Antigravity version and checks the overview
says so, with the setting that fixes it.

A screenshot of each page is saved in tests/e2e/artifacts/console/ (AGM_ARTIFACTS
overrides). Every request the page makes must stay on loopback.
"""

import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import anthropic
import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import free_port

CHROMIUM = "/usr/bin/chromium"
I18N = Path(__file__).resolve().parents[2] / "crates/agm-server/src/console/i18n"
LANGS = ["en", "zh-CN", "zh-TW", "vi"]
PAGES = ["/ui/", "/ui/accounts", "/ui/keys", "/ui/logs", "/ui/usage", "/ui/audit", "/ui/models", "/ui/settings"]
ARTIFACTS = Path(os.environ.get("AGM_ARTIFACTS", Path(__file__).parent / "artifacts")) / "console"
MODEL = "claude-sonnet-5"


def catalogue(tag: str) -> dict:
    return json.loads((I18N / f"{tag}.json").read_text(encoding="utf-8"))


def sim_config(default: str, sim: str) -> str:
    """The commented default config with every Google address at the sim and no update
    check (nothing may reach the internet)."""
    text = re.sub(
        r"code_assist_endpoints = \[.*?\n\]",
        f'code_assist_endpoints = ["{sim}"]',
        default,
        count=1,
        flags=re.S,
    )
    for name, path in [
        ("oauth_auth_url", "/o/oauth2/v2/auth"),
        ("oauth_token_url", "/token"),
        ("userinfo_url", "/oauth2/v2/userinfo"),
        ("gemini_api_base", ""),
        ("code_assist_pool_endpoint", ""),
    ]:
        text, n = re.subn(rf'^{name} = "[^"]*"', f'{name} = "{sim}{path}"', text, count=1, flags=re.M)
        assert n == 1, name
    text, n = re.subn(r"^check = true", "check = false", text, count=1, flags=re.M)
    assert n == 1
    assert "googleapis.com" not in text.split("[storage]")[0].split("[google]")[1]
    return text


def serve_console(sim_args=(), before_serve=None):
    """`agm serve` (with the commented config, every Google address at a fresh
    `agm-sim --demo SIM_ARGS`) and its printed sign-in link; `before_serve(env, config)`
    runs CLI commands first."""
    binary = os.environ.get("AGM_BIN", "target/debug/agm")
    sim_binary = os.environ.get("AGM_SIM_BIN", str(Path(binary).with_name("agm-sim")))
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does)")
    if not Path(sim_binary).exists():
        pytest.fail(f"{sim_binary} is missing: cargo build -p agm-sim --bin agm-sim")
    home = tempfile.mkdtemp(prefix="agm-console-")
    env = {
        **os.environ,
        "HOME": home,
        "XDG_CONFIG_HOME": os.path.join(home, "config"),
        "XDG_DATA_HOME": os.path.join(home, "data"),
        "RUST_LOG": "warn",
    }
    for var in list(env):
        if var.startswith("AGM_") and var not in ("AGM_BIN", "AGM_SIM_BIN", "AGM_ARTIFACTS"):
            env.pop(var)
    sim = subprocess.Popen(
        [sim_binary, "--demo", "--port", "0", *sim_args], env=env, stdout=subprocess.PIPE, text=True
    )
    sim_url = sim.stdout.readline().strip()
    assert sim_url.startswith("http://127.0.0.1:"), sim_url
    config = Path(home) / "config.toml"
    subprocess.run([binary, "config", "init", "--config", str(config)], env=env, check=True, capture_output=True)
    config.write_text(sim_config(config.read_text(), sim_url))
    if before_serve:
        before_serve(env, config)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "--config", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    link = None
    deadline = time.monotonic() + 30
    while link is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"agm serve exited early: {proc.stderr.read()}")
        m = re.search(r"web console: (http://\S+token=\S+)", line)
        link = m and m.group(1)
    assert link, "agm serve printed no sign-in link"
    try:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "link": link,
            "config": config,
            "env": env,
            "binary": binary,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        sim.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
        sim.wait(timeout=15)
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        sim.stdout.close()
        shutil.rmtree(home, ignore_errors=True)
        assert code == 0, f"agm serve exited {code}: {err}"
        assert "demo-refresh" not in err, "a refresh token was logged"


@pytest.fixture(scope="module")
def console():
    yield from serve_console()


class EvilSite(http.server.BaseHTTPRequestHandler):
    """Another origin: a page whose form posts to the console as soon as it loads."""

    target = ""

    def do_GET(self):
        page = f"""<!doctype html><body>
<form id="f" method="post" action="{self.target}/api/keys" enctype="text/plain">
<input type="hidden" name='{{"name":"evil","x":"' value='"}}'></form>
<script>document.getElementById("f").submit()</script></body>"""
        body = page.encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ReleaseFeed(http.server.BaseHTTPRequestHandler):
    """A release feed in GitHub's shape (`tag_name`, `html_url`) on loopback."""

    tag = "v0.0.1"

    def do_GET(self):
        body = json.dumps(
            {"tag_name": self.tag, "html_url": f"http://127.0.0.1/releases/{self.tag}"}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def shoot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def visible_text(page) -> str:
    return page.locator("body").inner_text()


def renders_cjk(page, a: str, b: str) -> bool:
    """Two different CJK characters drawn in the page's font give different pixels:
    with no CJK font both are the same 'tofu' box."""
    return page.evaluate(
        """([a, b]) => {
            const font = getComputedStyle(document.body).font;
            const draw = (ch) => {
                const c = document.createElement("canvas");
                c.width = 40; c.height = 40;
                const g = c.getContext("2d");
                g.font = font.replace(/\\d+px/, "32px");
                g.fillText(ch, 2, 34);
                return Array.from(g.getImageData(0, 0, 40, 40).data).join(",");
            };
            const one = draw(a), two = draw(b);
            return one !== two && /[^0,]/.test(one);
        }""",
        [a, b],
    )


def api(console, path: str, page) -> dict:
    """A GET on the admin API with the page's session cookie."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    req = urllib.request.Request(console["url"] + path, headers={"cookie": cookie})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def test_console_walk_through(console):
    url = console["url"]
    en = catalogue("en")
    off_loopback = []
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})

        def only_loopback(route):
            host = urlparse(route.request.url).hostname
            if host in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                off_loopback.append(route.request.url)
                route.abort()

        context.route("**/*", only_loopback)
        page = context.new_page()
        page.on("dialog", lambda d: d.accept())
        page.set_default_timeout(15_000)

        # 1. Sign in with the printed link: the overview, signed in.
        page.goto(console["link"])
        expect(page).to_have_url(f"{url}/ui/")
        expect(page.locator("h1")).to_have_text(en["nav_overview"])
        expect(page.locator("#h-status")).to_have_text(en["status_not_ready"])  # no account yet
        session = [c for c in context.cookies() if c["name"] == "agm_session"]
        assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
        # The link signs in once.
        anonymous = browser.new_context()
        anonymous.route("**/*", only_loopback)
        other = anonymous.new_page()
        other.goto(console["link"])
        expect(other.locator("#login-error")).to_be_visible()
        anonymous.close()

        # 2. Add an account with Google sign-in from the browser: the sim's consent page
        # redirects back to agm, which exchanges the code and saves the account.
        page.goto(f"{url}/ui/accounts")
        expect(page.locator("#account-rows")).to_contain_text(en["empty"])
        page.click("#sign-in-google")
        page.wait_for_url(re.compile(r".*/ui/oauth/callback\?.*"))
        expect(page.locator("#oauth-title")).to_have_text(en["oauth_ok_title"])
        expect(page.locator("#oauth-result")).to_contain_text(
            "added alice@demo.agm (project demo-project-alice, tier g1-pro-tier)"
        )
        assert "code=" not in page.locator("body").inner_text()
        shoot(page, "oauth-callback")
        page.click("#oauth-back")
        expect(page).to_have_url(f"{url}/ui/accounts")
        # The callback cannot be replayed: its state was used.
        replay = context.new_page()
        replay.goto(page.url.replace("/ui/accounts", "/ui/oauth/callback?state=x&code=y"))
        expect(replay.locator("#oauth-title")).to_have_text(en["oauth_failed_title"])
        replay.close()
        # And one by importing its refresh token in the form.
        page.fill("#import-refresh-token", "demo-refresh-bob")
        page.click("#import-token button[type=submit]")
        expect(page.locator("#flash")).to_contain_text("imported bob@demo.agm")
        expect(page.locator("#import-refresh-token")).to_have_value("")

        # 3. Their quota bars, per model, with reset countdowns.
        rows = page.locator("#account-rows tr")
        expect(rows).to_have_count(2)
        alice = rows.filter(has_text="alice@demo.agm")
        expect(alice.locator(".quota .bar").first).to_be_visible()
        assert alice.locator(".quota .q").count() >= 2
        expect(alice.locator(".quota")).to_contain_text("%")
        expect(alice).to_contain_text(en["state_active"])
        expect(alice).to_contain_text("g1-pro-tier")
        shoot(page, "accounts")
        page.goto(f"{url}/ui/")
        expect(page.locator("#h-status")).to_have_text(en["status_ready"])
        expect(page.locator("#h-upstream")).to_have_text("antigravity")

        # 4. Requests appear in the Logs page while it is open (it polls every 2 s).
        page.goto(f"{url}/ui/logs")
        expect(page.locator("#log-rows")).to_contain_text(en["empty"])
        client = anthropic.Anthropic(base_url=url, api_key="any", max_retries=0)
        for i in range(3):
            msg = client.messages.create(
                model=MODEL,
                max_tokens=64,
                messages=[{"role": "user", "content": f"console request {i}"}],
            )
            assert msg.content[0].text.startswith("Simulated claude-sonnet-4-5 reply to:")
        log_rows = page.locator("#log-rows tr")
        expect(log_rows).to_have_count(3, timeout=15_000)
        expect(log_rows.first).to_contain_text("/v1/messages")
        expect(log_rows.first).to_contain_text(f"{MODEL} → claude-sonnet-4-5")
        expect(log_rows.first.locator(".ok")).to_have_text("200")
        shoot(page, "logs")
        # Filters narrow the table (and stay in the address); a click opens one request.
        page.select_option("#log-filter select[name=status]", "error")
        expect(page.locator("#log-rows")).to_contain_text(en["empty"])
        assert "status=error" in page.url
        page.select_option("#log-filter select[name=status]", "ok")
        expect(log_rows).to_have_count(3)
        page.fill("#log-filter input[name=q]", "chat/completions")
        expect(page.locator("#log-rows")).to_contain_text(en["empty"])
        page.fill("#log-filter input[name=q]", "MESSAGES")
        expect(log_rows).to_have_count(3)
        page.select_option("#log-filter select[name=api]", "gemini")
        expect(page.locator("#log-rows")).to_contain_text(en["empty"])
        page.click("#log-filter-clear")
        expect(log_rows).to_have_count(3)
        log_rows.first.click()
        detail = page.locator("#log-detail")
        expect(detail).to_be_visible()
        expect(page.locator("#detail-facts")).to_contain_text(f"{MODEL} → claude-sonnet-4-5")
        expect(page.locator("#detail-facts")).to_contain_text(en["detail_not_scaled"])
        expect(page.locator("#detail-calls tr")).to_have_count(1)
        expect(page.locator("#detail-calls")).to_contain_text(en["detail_answered"])
        expect(page.locator("#detail-calls")).to_contain_text("@demo.agm")
        expect(page.locator("#detail-facts")).to_contain_text(en["col_tokens_out"])
        assert "console request" not in detail.inner_text(), "no prompt in the detail"
        shoot(page, "log-detail")
        page.click("#detail-close")
        expect(detail).to_be_hidden()

        # One account's page: its facts, quota bars, requests and audit entries; its
        # quota re-checked at once.
        page.goto(f"{url}/ui/accounts")
        page.locator("#account-rows a", has_text="alice@demo.agm").click()
        expect(page).to_have_url(re.compile(r".*/ui/accounts/[0-9a-f]{8}$"))
        expect(page.locator("#account-email")).to_have_text("alice@demo.agm")
        alice_page = urlparse(page.url).path
        expect(page.locator("#account-facts")).to_contain_text("g1-pro-tier")
        expect(page.locator("#account-facts")).to_contain_text("demo-project-alice")
        expect(page.locator("#account-quota .quota .bar").first).to_be_visible()
        expect(page.locator("#account-audit")).to_contain_text("added with the console")
        page.get_by_role("button", name=en["btn_recheck_quota"]).click()
        expect(page.locator("#flash")).to_have_text(en["done"])
        expect(page.locator("#account-audit")).to_contain_text("quota re-checked with the console")
        shoot(page, "account")

        # The overview's last hour counts them, with a bar per minute.
        page.goto(f"{url}/ui/")
        expect(page.locator("#traffic-summary")).to_contain_text(re.compile(r"^3 requests, 100% successful"))
        expect(page.locator("#traffic-requests rect.req").first).to_be_visible()
        expect(page.locator("#h-sticky")).to_have_text(re.compile(r"^\d+$"))
        shoot(page, "overview-traffic")

        # 5. Safe mode turned on from the CLI shows the banner; "Retry Now" turns it off.
        page.goto(f"{url}/ui/")
        expect(page.locator("#safe-mode-banner")).to_be_hidden()
        subprocess.run(
            [console["binary"], "safe-mode", "enable", "--config", str(console["config"])],
            env=console["env"],
            check=True,
            capture_output=True,
        )
        banner = page.locator("#safe-mode-banner")
        expect(banner).to_be_visible(timeout=15_000)
        expect(banner).to_contain_text(en["banner_safe_title"])
        expect(page.locator("#safe-mode-no-keys")).to_be_visible()
        expect(banner.get_by_role("link", name=en["btn_configure_key"])).to_have_attribute("href", "/ui/settings#gemini-keys")
        shoot(page, "overview-safe-mode")
        banner.get_by_role("button", name=en["btn_retry"]).click()
        expect(banner).to_be_hidden()
        expect(page.locator("#flash")).to_have_text(en["done"])
        assert api(console, "/api/safe-mode", page)["status"]["active"] is False

        # 5b. An update notice: a newer release (a release feed on loopback, read by
        # `agm update check`) shows the banner; dismissed, it stays hidden for that
        # version, and a newer release shows again.
        feed = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ReleaseFeed)
        threading.Thread(target=feed.serve_forever, daemon=True).start()
        feed_env = {**console["env"], "AGM_UPDATES__URL": f"http://127.0.0.1:{feed.server_address[1]}/latest"}

        def check_updates(tag: str) -> None:
            ReleaseFeed.tag = tag
            subprocess.run(
                [console["binary"], "update", "check", "--config", str(console["config"])],
                env=feed_env,
                check=True,
                capture_output=True,
            )

        try:
            update = page.locator("#update-banner")
            expect(update).to_be_hidden()
            check_updates("v99.0.0")
            expect(update).to_be_visible(timeout=15_000)
            expect(update).to_contain_text("agm 99.0.0 is out")
            shoot(page, "overview-update")
            update.get_by_role("button", name=en["btn_dismiss"]).click()
            expect(update).to_be_hidden()
            page.reload()
            page.wait_for_load_state("networkidle")
            expect(update).to_be_hidden()
            assert api(console, "/api/updates", page)["dismissed"] == "99.0.0"
            check_updates("v99.1.0")
            expect(update).to_be_visible(timeout=15_000)
            expect(update).to_contain_text("agm 99.1.0 is out")
            update.get_by_role("button", name=en["btn_dismiss"]).click()
            expect(update).to_be_hidden()
        finally:
            feed.shutdown()

        # 6. A client key: its secret shown once, then revoked.
        page.goto(f"{url}/ui/keys")
        page.fill("#key-name", "browser test")
        page.fill("#limit-rpm", "30")
        page.fill("#limit-models", "claude-*")
        page.click("#create-key button[type=submit]")
        expect(page.locator("#new-secret")).to_be_visible()
        secret = page.locator("#new-secret-value").inner_text()
        assert len(secret) > 20
        key_row = page.locator("#key-rows tr", has_text="browser test")
        expect(key_row).to_have_count(1)
        assert secret not in page.locator("#key-rows").inner_text()
        expect(key_row).to_contain_text("claude-*; 30/min")
        ok = anthropic.Anthropic(base_url=url, api_key=secret, max_retries=0)
        ok.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "keyed"}])
        shoot(page, "keys")
        # Its limits changed from its row: only the ones filled in.
        page.fill("#limit-concurrency", "2")
        key_row.get_by_role("button", name=en["btn_set_limits"]).click()
        expect(key_row).to_contain_text("claude-*; 30/min; 2 at once")
        # The Usage page counts the key's request by its name, and downloads as CSV
        # (once the request log has the row: it is written in batches).
        deadline = time.monotonic() + 10
        while not any(r["name"] == "browser test" for r in api(console, "/api/usage?group=key", page)["rows"]):
            assert time.monotonic() < deadline, "the keyed request was never logged"
            time.sleep(0.1)
        page.goto(f"{url}/ui/usage")
        page.select_option("#usage-group", "key")
        usage_row = page.locator("#usage-rows tr", has_text="browser test")
        expect(usage_row).to_have_count(1, timeout=15_000)
        expect(usage_row.locator("td").nth(2)).to_have_text("1")
        expect(usage_row.locator("td").nth(3)).to_have_text("100%")
        expect(page.locator("#usage-chart rect.req").first).to_be_visible()
        expect(page.locator("#usage-total")).to_have_text(re.compile(r"^4 "))
        shoot(page, "usage")
        with page.expect_download() as download:
            page.click("#usage-csv")
        csv_text = Path(download.value.path()).read_text()
        assert csv_text.startswith("start,group,name,requests,successes,errors,"), csv_text
        assert re.search(r",browser test,1,1,0,", csv_text), csv_text
        page.goto(f"{url}/ui/keys")
        key_row.get_by_role("button", name=en["btn_revoke"]).click()
        expect(page.locator("#flash")).to_contain_text("last active client key")
        expect(key_row.get_by_role("button", name=en["btn_revoke"])).to_have_count(0)
        page.reload()
        expect(page.locator("#new-secret")).to_be_hidden()
        assert secret not in visible_text(page)
        time.sleep(2.5)  # a verified key is trusted for 2 s
        with pytest.raises(anthropic.AuthenticationError):
            ok.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "revoked"}])

        # 7. Settings: written to the config file with its comments, applied at once.
        before = console["config"].read_text()
        page.goto(f"{url}/ui/settings")
        page.select_option("select[name='routing.scheduling']", "balance")
        page.fill("input[name='logging.request_log_retention']", "3d")
        page.click("#settings-form button[type=submit]")
        expect(page.locator("#flash")).to_contain_text(
            "logging.request_log_retention, routing.scheduling"
        )
        expect(page.locator("#settings")).to_contain_text('"scheduling": "balance"')
        after = console["config"].read_text()
        assert re.search(r'^scheduling = "balance"\s+# cache-first \| balance \|', after, re.M), after
        assert re.search(r'^request_log_retention = "3d"\s+# request-log entries older', after, re.M)
        changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
        assert len(changed) == 2 and len(before.splitlines()) == len(after.splitlines()), changed
        shoot(page, "settings")
        # A bad value is refused and the file is left alone.
        page.fill("input[name='logging.request_log_retention']", "forever")
        page.click("#settings-form button[type=submit]")
        expect(page.locator("#flash.bad")).to_contain_text("request_log_retention")
        assert console["config"].read_text() == after
        page.fill("input[name='logging.request_log_retention']", "3d")
        # Beyond those: the model map, a Gemini API key (masked) and context scaling,
        # applied at once, and the Claude substitute model (after a restart).
        page.fill("#model-map-from", "team-fast")
        page.fill("#model-map-to", "gemini-2.5-flash")
        page.click("#model-map-add button[type=submit]")
        expect(page.locator("#model-map-rows")).to_contain_text("team-fast")
        assert re.search(r'^"?team-fast"? = "gemini-2\.5-flash"', console["config"].read_text(), re.M)
        page.fill("#gemini-key-value", "AIzaSyBROWSER-test-key-7781")
        page.click("#gemini-key-add button[type=submit]")
        expect(page.locator("#gemini-key-rows")).to_contain_text("AIza…7781")
        expect(page.locator("#settings")).to_contain_text('"AIza…7781"')
        assert "AIzaSyBROWSER-test-key-7781" not in visible_text(page)
        assert 'gemini_api_keys = ["AIzaSyBROWSER-test-key-7781"]' in console["config"].read_text()
        page.select_option("select[name='context.scaling']", "aggressive")
        page.fill("input[name='safe_mode.claude_large_model']", "gemini-3-pro")
        page.click("#settings-form button[type=submit]")
        expect(page.locator("#flash")).to_contain_text("context.scaling, safe_mode.claude_large_model")
        expect(page.locator("#flash")).to_contain_text("next starts: safe_mode.claude_large_model")
        expect(page.locator("#settings-pending")).to_be_visible()
        expect(page.locator("#settings-pending-keys")).to_have_text("safe_mode.claude_large_model")
        expect(page.locator("#settings-pending-keys")).not_to_contain_text("context.scaling")
        expect(page.locator("#settings")).to_contain_text('"scaling": "aggressive"')
        assert re.search(r'^scaling = "aggressive"\s+# off \| standard', console["config"].read_text(), re.M)
        assert re.search(r'^claude_large_model = "gemini-3-pro"\s+# answers Claude', console["config"].read_text(), re.M)
        shoot(page, "settings-more")
        page.get_by_role("row", name=re.compile("AIza…7781")).get_by_role("button", name=en["btn_remove"]).click()
        expect(page.locator("#gemini-key-rows")).not_to_contain_text("AIza…7781")
        assert "AIzaSyBROWSER" not in console["config"].read_text()
        page.goto(f"{url}/ui/")
        expect(page.locator("#h-scheduling")).to_have_text("balance")
        page.goto(f"{url}/ui/audit")
        expect(page.locator("#audit-rows")).to_contain_text("routing.scheduling = \"balance\"")
        expect(page.locator("#audit-rows")).to_contain_text("added with the console")
        shoot(page, "audit")

        # 8. Every page in every language: no catalogue key shown untranslated, and CJK
        # drawn with real glyphs.
        keys = set(en)
        timings = {}
        for tag in LANGS:
            strings = catalogue(tag)
            assert set(strings) == keys, tag
            for path in PAGES + [alice_page]:
                page.goto(f"{url}{path}?lang={tag}")
                expect(page.locator("html")).to_have_attribute("lang", tag)
                # How soon the page is usable on loopback (the issue asks for 200 ms):
                # recorded for docs/BENCHMARKS.md, checked only against a bound far
                # above it that catches a page waiting on something it must not (a
                # fetch off loopback, a blocking script).
                nav = page.evaluate(
                    """() => { const n = performance.getEntriesByType("navigation")[0];
                               return {dom_ready_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd}; }"""
                )
                timings[f"{tag} {path}"] = nav
                assert nav["dom_ready_ms"] < 2000, f"{tag} {path}: {nav}"
                page.wait_for_load_state("networkidle")
                expect(page.locator("#flash.bad")).to_have_count(0)
                text = visible_text(page)
                words = set(re.findall(r"[a-z]+(?:_[a-z]+)+", text))
                assert not words & keys, f"{tag} {path}: untranslated {words & keys}"
                expect(page.locator("nav")).to_contain_text(strings["nav_accounts"])
                shoot(page, f"{tag}-{path.strip('/').replace('/', '-') or 'ui'}")
            if tag.startswith("zh"):
                assert re.search(r"[\u4e00-\u9fff]", visible_text(page))
                assert renders_cjk(page, "帳", "號"), f"{tag}: CJK drawn as boxes (no CJK font?)"
        (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1))
        page.goto(f"{url}/ui/?lang=en")

        # 9. A forged cross-site POST: a form on another origin (same site: the
        # SameSite=Strict cookie goes along) is refused by the Origin check, and a
        # same-origin fetch without the CSRF token by the token check.
        keys_before = api(console, "/api/keys", page)["keys"]
        EvilSite.target = url
        evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EvilSite)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            forged = context.new_page()
            with forged.expect_navigation(url=f"{url}/api/keys"):
                forged.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
            expect(forged.locator("body")).to_contain_text("refused: a change to agm must come from the console's own page")
            forged.close()
        finally:
            evil.shutdown()
        answer = page.evaluate(
            """() => fetch("/api/keys", {method: "POST", headers: {"content-type": "application/json"},
                    body: JSON.stringify({name: "no token"})}).then(r => r.json().then(j => [r.status, j]))"""
        )
        assert answer[0] == 403 and "CSRF" in answer[1]["error"]["message"], answer
        assert api(console, "/api/keys", page)["keys"] == keys_before
        browser.close()
    assert not off_loopback, f"the console fetched from off loopback: {off_loopback}"


def test_the_overview_says_when_google_refuses_the_client_version():
    """Google refusing the client version agm reports (the sim gates Antigravity at
    99.0.0) shows on the overview, with the setting that fixes it."""

    def import_alice(env, config):
        subprocess.run(
            [os.environ.get("AGM_BIN", "target/debug/agm"), "accounts", "import",
             "--refresh-token", "-", "--config", str(config)],
            env=env, input="demo-refresh-alice\n", text=True, check=True, capture_output=True,
        )

    serving = serve_console(["--require-client-version", "antigravity=99.0.0"], import_alice)
    gated = next(serving)
    try:
        url = gated["url"]
        en = catalogue("en")
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
            page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": 800})
            page.goto(gated["link"])
            expect(page).to_have_url(f"{url}/ui/")
            drift = page.locator("#drift-banner")
            expect(drift).to_be_hidden()
            client = anthropic.Anthropic(base_url=url, api_key="any", max_retries=0)
            with pytest.raises(anthropic.APIStatusError):
                client.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}])
            expect(drift).to_be_visible(timeout=15_000)
            expect(drift).to_contain_text(en["banner_drift_title"])
            expect(drift).to_contain_text("antigravity_version")
            shoot(page, "overview-client-version")
            browser.close()
    finally:
        serving.close()
