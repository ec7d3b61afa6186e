"""The page at / in a real browser against a real server holding real Fashion-MNIST items:
classify an uploaded test image, open neighbours, delete, imprint and remove a class, draw
the map, read the model card; keyboard and labels, a phone-width screen, the API key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import FASHION_DIR
from tests.service.conftest import tensor_input
from tests.service.web.conftest import needs_chromium, opened_page

pytestmark = [
    pytest.mark.slow,  # a browser and a server: about 30 s in all
    needs_chromium,
    pytest.mark.skipif(not Path(FASHION_DIR).is_dir(), reason="needs dataset-fashion-mnist"),
]

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip
STORED = 300  # test images 0..299, ids fm-0..fm-299
KEY = "a-long-enough-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Controls whose accessible name Chromium must compute as non-empty
CONTROLS = {"button", "textbox", "combobox", "slider", "checkbox", "spinbutton", "tab", "searchbox"}


@pytest.fixture(scope="module")
def server(start_module_server, fashion_test):
    """The server, with an API key: every test goes through the page's key handling."""
    images, labels = fashion_test
    server = start_module_server(env={"COREL_API_KEY": KEY})
    items = [
        {"id": f"fm-{n}", "input": tensor_input(images[n]), "label": NAMES[labels[n]],
         "metadata": {"index": n, "split": "test"}}
        for n in range(STORED)
    ]  # fmt: skip
    with server.client(headers=AUTH) as client:
        assert client.post("/items", json={"items": items}).status_code == 201
    return server


@pytest.fixture
def page(browser_context, server):
    """A new tab that already holds the key, as if the user had typed it in this tab."""
    key = f"sessionStorage.setItem('corel-api-key', {KEY!r})"
    with opened_page(browser_context, server.url, init_script=key) as page:
        yield page


def open_view(page, name: str) -> None:
    page.click(f"#tab-{name}")
    page.wait_for_selector(f"#view-{name}:not([hidden])")


def images_loaded(page, selector: str) -> int:
    """How many <img> under `selector` have decoded pixels (served with the key, if any)."""
    page.wait_for_function(
        "s => [...document.querySelectorAll(s + ' img')].every(i => i.complete && i.naturalWidth)",
        arg=selector,
    )
    return page.eval_on_selector_all(f"{selector} img", "imgs => imgs.length")


def test_an_uploaded_test_image_is_classified_and_its_neighbours_shown(
    page, server, fashion_test, tmp_path, artifacts
) -> None:
    images, labels = fashion_test
    n = 1  # a pullover, also stored as fm-1
    png = tmp_path / "test-1.png"
    Image.fromarray(images[n].squeeze().astype(np.uint8)).save(png)

    page.set_input_files("#try-file", str(png))

    page.wait_for_selector("#try-label")
    assert page.inner_text("#try-label") == NAMES[labels[n]] == "Pullover"
    assert page.inner_text("#try-flag") == "known"
    assert "threshold" in page.inner_text("#try-reason")
    assert images_loaded(page, "#try-neighbours") == 12
    ids = page.eval_on_selector_all("#try-neighbours .tile", "ts => ts.map(t => t.dataset.id)")
    assert ids[0] == "fm-1"  # the same picture is stored: its own nearest neighbour
    captions = page.eval_on_selector_all(
        "#try-neighbours .caption", "cs => cs.map(c => c.textContent.split(' · ')[0])"
    )
    assert np.mean([c == "Pullover" for c in captions]) >= 0.75
    # the browser sent what the file holds: the page shows the API's own answer
    with server.client(headers=AUTH) as client:
        answer = client.post("/classify", json={"inputs": [tensor_input(images[n])]}).json()
    margin = page.inner_text("#try-answer p").split("margin ")[1]
    assert margin == f"{answer['results'][0]['margin']:.3f}"
    page.screenshot(path=artifacts / "web-try.png", full_page=True)


def test_a_drawing_is_sent_at_the_models_size_and_classified(page) -> None:
    box = page.locator("#draw-canvas").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 60)
    page.mouse.down()
    for x, y in [(220, 60), (220, 220), (60, 220), (60, 60)]:  # a square, by mouse
        page.mouse.move(box["x"] + x, box["y"] + y, steps=12)
    page.mouse.up()

    with page.expect_request("**/classify") as request:
        page.click("#try-run")

    pixels = np.array(request.value.post_data_json["inputs"][0]["data"])
    assert pixels.shape == (28, 28)
    assert pixels[6, 6:22].min() > 128 and pixels[14, 10:18].max() == 0  # the outline, hollow
    page.wait_for_selector("#try-label")
    assert page.inner_text("#try-label") in NAMES


def test_a_picture_that_is_no_garment_is_flagged_unknown_with_the_reason(page, tmp_path) -> None:
    ring = np.zeros((28, 28), np.uint8)  # the hollow square of docs/api.md: no garment
    ring[5:23, 5:23] = 255
    ring[8:20, 8:20] = 0
    png = tmp_path / "ring.png"
    Image.fromarray(ring).save(png)

    page.set_input_files("#try-file", str(png))

    page.wait_for_selector("#try-label")
    assert page.inner_text("#try-flag") == "unknown"
    label = page.inner_text("#try-label")
    reason = page.inner_text("#try-reason")
    assert reason.split(" (")[0] in {
        "the input is unlike the images the model was trained on",
        "the input is far from the training images of every class",
        "the input lies between classes",
    }
    assert reason.endswith(f"of {label}")


def test_browse_filters_opens_neighbours_and_deletes(page, artifacts) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    open_view(page, "browse")
    page.wait_for_selector("#browse-gallery .tile")
    assert images_loaded(page, "#browse-gallery") == 24
    assert page.inner_text("#browse-status") == f"{STORED} items"

    page.click('#browse-gallery .tile[data-id="fm-0"]')  # an ankle boot
    page.wait_for_selector("#detail-neighbours .tile")
    neighbours = page.eval_on_selector_all(
        "#detail-neighbours .caption", "cs => cs.map(c => c.textContent.split(' · ')[0])"
    )
    assert len(neighbours) == 8 and neighbours.count("Ankle boot") >= 6
    page.screenshot(path=artifacts / "web-browse.png", full_page=True)

    page.fill("#browse-label", "Bag")
    page.fill("#browse-meta", "index=18")
    page.click("#browse-filter button")
    page.wait_for_function("document.querySelectorAll('#browse-gallery .tile').length === 1")
    assert page.get_attribute("#browse-gallery .tile", "data-id") == "fm-18"
    assert page.inner_text("#browse-status") == "1 item labelled Bag with index=18"
    assert page.is_disabled("#browse-next")

    page.fill("#browse-meta", "index=[18]")  # the server refuses it, in its own words
    page.click("#browse-filter button")
    page.wait_for_function(
        "document.getElementById('browse-status').textContent.includes('metadata')"
    )
    assert "query.metadata.index" in page.inner_text("#browse-status")

    page.fill("#browse-meta", "")
    page.fill("#browse-label", "Trouser")
    page.click("#browse-filter button")
    page.wait_for_selector('#browse-gallery .tile[data-id="fm-2"]')
    page.click('#browse-gallery .tile[data-id="fm-2"]')
    page.click("#detail-delete")
    page.locator('#browse-gallery .tile[data-id="fm-2"]').wait_for(state="detached")
    assert page.locator("#browse-detail").is_hidden()
    response = page.request.get(page.url.split("#")[0] + "items/fm-2", headers=AUTH)
    assert response.status == 404


def test_items_are_added_by_upload_with_a_label(page, server, fashion_test, tmp_path) -> None:
    images, _ = fashion_test
    files = []
    for n in (2000, 2001):
        files.append(tmp_path / f"test-{n}.png")
        Image.fromarray(images[n].squeeze().astype(np.uint8)).save(files[-1])
    open_view(page, "browse")

    page.set_input_files("#add-files", [str(f) for f in files])
    page.fill("#add-label", "Uploaded")
    page.click("#browse-add button[type=submit]")

    page.wait_for_function("document.getElementById('browse-status').textContent.includes('Added')")
    assert page.inner_text("#browse-status") == "Added 2 item(s)"
    with server.client(headers=AUTH) as client:
        added = client.get("/items", params={"label": "Uploaded"}).json()["items"]
    assert sorted(item["metadata"]["file"] for item in added) == ["test-2000.png", "test-2001.png"]


def test_a_class_is_imprinted_from_selected_items_then_removed(page, artifacts) -> None:
    open_view(page, "browse")
    page.fill("#browse-label", "Sandal")
    page.click("#browse-filter button")
    # the gallery of the filter, not the one it replaces
    page.wait_for_function(
        "document.getElementById('browse-status').textContent.includes('labelled Sandal')"
    )
    page.wait_for_selector("#browse-gallery .tile")
    for id_ in page.eval_on_selector_all(
        "#browse-gallery .tile", "ts => ts.map(t => t.dataset.id)"
    )[:3]:
        page.click(f'#browse-gallery .tile[data-id="{id_}"]')
        page.check("#detail-select")

    open_view(page, "classes")
    assert "3 item(s) selected" in page.inner_text("#imprint-selected")
    page.fill("#imprint-name", "Flip-flop")
    page.click("#imprint-form button[type=submit]")

    row = page.locator('#classes-table tr[data-class="Flip-flop"]')
    row.wait_for()
    assert row.locator("td").nth(0).inner_text() == "imprinted"
    assert row.locator("td").nth(2).inner_text() == "3"
    page.screenshot(path=artifacts / "web-classes.png", full_page=True)

    row.get_by_role("button", name="Remove class Flip-flop").click()
    row.wait_for(state="detached")
    assert "Removed Flip-flop" in page.inner_text("#classes-status")


def test_a_class_of_the_model_is_removed_and_restored(page) -> None:
    page.on("dialog", lambda dialog: dialog.accept())  # "it comes with the model"
    open_view(page, "classes")
    page.get_by_role("button", name="Remove class Coat").click()
    page.locator('#classes-table tr[data-class="Coat"]').wait_for(state="detached")
    page.click("#classes-restore")
    page.locator('#classes-table tr[data-class="Coat"]').wait_for()
    assert "Restored Coat" in page.inner_text("#classes-status")


def test_the_map_draws_the_stored_items_and_shows_one_on_hover(page, artifacts) -> None:
    open_view(page, "map")
    page.wait_for_selector("#map-canvas[data-points]")
    points = int(page.get_attribute("#map-canvas", "data-points"))
    assert STORED - 1 <= points <= STORED + 2  # the browse tests delete one, add two
    assert page.locator("#map-legend li").count() >= 10
    # the canvas shows points in many colours; find one that is an item, not a diamond
    spot = page.evaluate(
        """() => {
          const c = document.getElementById('map-canvas');
          const ratio = c.width / c.clientWidth;
          const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          const colours = new Set();
          let found = null;
          for (let i = 0; i < px.length; i += 4) {
            if (px[i + 3] < 255 || px[i] + px[i + 1] + px[i + 2] < 60) continue;
            colours.add(`${px[i]},${px[i + 1]},${px[i + 2]}`);
            found = found || [((i / 4) % c.width) / ratio, Math.floor(i / 4 / c.width) / ratio];
          }
          return {colours: colours.size, found};
        }"""
    )
    assert spot["colours"] >= 10
    box = page.locator("#map-canvas").bounding_box()
    page.mouse.move(box["x"] + spot["found"][0] + 1, box["y"] + spot["found"][1] + 1)
    page.wait_for_selector("#map-tip:not([hidden]) img[src]")
    assert "fm-" in page.inner_text("#map-tip")
    page.screenshot(path=artifacts / "web-map.png", full_page=True)

    before = page.locator("#map-canvas").screenshot()
    page.focus("#map-canvas")
    page.keyboard.press("+")  # zoom by keyboard
    page.wait_for_timeout(100)
    assert page.locator("#map-canvas").screenshot() != before

    page.select_option("#map-method", "tsne")
    page.fill("#map-limit", "200")
    page.click("#map-form button[type=submit]")
    page.wait_for_function("document.getElementById('map-status').textContent.includes('TSNE')")
    assert page.get_attribute("#map-canvas", "data-points") == "200"
    page.screenshot(path=artifacts / "web-map-tsne.png", full_page=True)


def test_model_and_health_show_the_card_figures_report_and_live_figures(page, artifacts) -> None:
    open_view(page, "health")
    page.wait_for_selector("#model-card dl")
    assert "fashion-mnist-cosine" in page.inner_text("#model-card")
    assert images_loaded(page, "#model-figures") == 2
    page.wait_for_selector("#report table")
    assert page.locator("#report table tbody tr").count() >= 10  # and labels with no class
    page.wait_for_function(
        "document.getElementById('live').textContent.includes('Requests/s')", timeout=10_000
    )
    page.screenshot(path=artifacts / "web-health.png", full_page=True)


def accessible_controls(page) -> list[dict]:
    """Chromium's own accessibility tree: every control shown, with its computed name."""
    session = page.context.new_cdp_session(page)
    nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    session.detach()
    return [
        {"role": n["role"]["value"], "name": n.get("name", {}).get("value", "")}
        for n in nodes
        if not n.get("ignored") and n.get("role", {}).get("value") in CONTROLS
    ]


def test_every_control_has_an_accessible_name_in_every_view(page) -> None:
    for view in ("try", "browse", "map", "classes", "health"):
        open_view(page, view)
        page.wait_for_timeout(300)
        controls = accessible_controls(page)
        assert len(controls) >= 6, view
        assert [c for c in controls if not c["name"].strip()] == [], view


def test_the_views_and_controls_are_reachable_by_keyboard(page) -> None:
    page.focus("#tab-try")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-browse"
    assert page.is_visible("#view-browse")
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.id") == "tab-health"
    page.keyboard.press("Home")
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.id"))
    assert {"draw-canvas", "try-file", "try-run"} <= set(reached)


def test_the_page_fits_a_phone_screen(browser_context, server, artifacts) -> None:
    page = browser_context.new_page()
    page.add_init_script(f"sessionStorage.setItem('corel-api-key', {KEY!r})")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone held upright
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    for view in ("try", "browse", "map", "classes", "health"):
        open_view(page, view)
        page.wait_for_timeout(200)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (view, width)  # nothing wider than the screen
    open_view(page, "try")
    page.screenshot(path=artifacts / "web-phone.png", full_page=True)
    page.close()


def test_the_page_asks_for_the_api_key_and_keeps_it_out_of_urls(browser_context, server) -> None:
    page = browser_context.new_page()  # a new tab: no key yet
    seen: list[tuple[str, str | None]] = []
    page.on("request", lambda r: seen.append((r.url, r.headers.get("authorization"))))
    shell = page.goto(server.url + "/")  # the page itself holds no data: no key needed
    assert shell.status == 200

    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", "a-wrong-key-of-some-length")
    page.click("#key-dialog button[value=ok]")
    page.wait_for_selector("#key-wrong:not([hidden])")  # refused: asked again
    page.fill("#key-input", KEY)
    page.click("#key-dialog button[value=ok]")
    page.wait_for_selector("body[data-ready=true]")

    assert page.inner_text("#model-name") == "· fashion-mnist-cosine"
    assert page.evaluate("sessionStorage.getItem('corel-api-key')") == KEY
    assert page.evaluate("localStorage.length") == 0
    assert all(KEY not in url for url, _ in seen)
    assert (server.url + "/model", f"Bearer {KEY}") in seen
    page.close()
