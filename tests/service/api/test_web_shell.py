"""GET / and /web/...: the page's files load without the key (they hold no data), come
from this server only (no CDN), and the API behind them still wants the key."""

import re

from service.web import STATIC


def test_the_page_and_its_files_load_without_the_key_and_the_data_does_not(make_client) -> None:
    client = make_client(api_key="k" * 20)

    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/web/[^"]+)"', page.text)
    assert assets == ["/web/app.css", "/web/js/main.js"]
    for path in STATIC.rglob("*.js"):
        url = "/web/" + path.relative_to(STATIC).as_posix()
        assert client.get(url).status_code == 200, url
    assert client.get("/model").status_code == 401
    assert client.get("/map").status_code == 401


def test_the_page_fetches_nothing_from_elsewhere() -> None:
    for path in [*STATIC.rglob("*.html"), *STATIC.rglob("*.css"), *STATIC.rglob("*.js")]:
        text = path.read_text()
        assert not re.search(r"https?://", text), path  # no CDN, no fonts, no trackers
        imports = re.findall(r'from "([^"]+)"', text)
        assert all(i.startswith("./") for i in imports), (path, imports)


def test_a_missing_asset_is_a_404_in_the_error_shape(client) -> None:
    response = client.get("/web/nothing.js")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
