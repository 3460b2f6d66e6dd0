"""Production mode really serves pages and their assets (daphne, PRODUCTION=1, behind a TLS proxy)."""

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.live import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def production_server(tmp_path):
    port = free_port()
    env = dict(
        os.environ,
        PRODUCTION="1",
        SECRET_KEY="p" * 60,
        ALLOWED_HOSTS="127.0.0.1",
        DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "orchestrator_site.asgi:application"],
        cwd=ROOT,
        env=env,
    )
    wait_for_port(port, server)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def _get(url: str) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own local server
        return response.status, response.read(), dict(response.headers)


def test_it_serves_the_login_page_and_its_assets_in_production(production_server):
    """The login page renders (no 500 from static storage), with HSTS, and its CSS and htmx load."""
    status, body, headers = _get(production_server + "/login/")
    assert status == 200
    assert "max-age=31536000" in headers.get("Strict-Transport-Security", "")
    for asset in ("/static/css/app.css", "/static/vendor/htmx-2.0.11.min.js", "/static/js/live.js"):
        assert asset.encode() in body
        asset_status, asset_body, _ = _get(production_server + asset)
        assert asset_status == 200 and len(asset_body) > 100


def test_it_redirects_plain_http_to_https_in_production(production_server):
    request = urllib.request.Request(production_server + "/login/")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.build_opener(NoRedirect).open(request, timeout=10)
    assert error.value.code == 301
    assert error.value.headers["Location"].startswith("https://")
