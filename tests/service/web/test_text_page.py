"""The page of a text model in a real browser against a real server holding real WordNet
noun glosses: type a sentence, classify it, see its neighbours as texts; add items from
text lines and find them in Browse; the latent map's hover shows an item's text; imprint
a class from typed examples. The image model's page is tested beside this file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TEXT_BUNDLE
from tests.service.web.conftest import needs_chromium, opened_page
from tests.service.web.test_page import accessible_controls, open_view

WORDNET = Path("/usr/share/wordnet")
pytestmark = [
    pytest.mark.slow,  # a browser and a server: about 10 s in all
    needs_chromium,
    pytest.mark.skipif(
        not (TEXT_BUNDLE / "manifest.json").is_file(), reason=f"needs a text bundle: {TEXT_BUNDLE}"
    ),
    pytest.mark.skipif(not WORDNET.is_dir(), reason="needs wordnet-base"),
]

PER_CLASS = 8  # glosses of the test split stored per lexicographer class


@pytest.fixture(scope="module")
def glosses() -> list[tuple[str, str]]:
    """(gloss, class) of WordNet's test split: the first PER_CLASS of each class."""
    from training.text import is_test_text, read_wordnet_nouns

    texts, labels = read_wordnet_nouns()
    test = is_test_text(texts)
    taken: dict[str, int] = {}
    picked = []
    for text, label, held_out in zip(texts, labels, test, strict=True):
        if held_out and taken.get(label, 0) < PER_CLASS:
            taken[label] = taken.get(label, 0) + 1
            picked.append((text, label))
    return picked


@pytest.fixture(scope="module")
def server(start_module_server, glosses):
    server = start_module_server(bundle=TEXT_BUNDLE)
    items = [
        {"id": f"wn-{n}", "input": {"text": text}, "label": label, "metadata": {"split": "test"}}
        for n, (text, label) in enumerate(glosses)
    ]
    with server.client() as client:
        assert client.post("/items", json={"items": items}).status_code == 201
    return server


@pytest.fixture
def page(browser_context, server):
    with opened_page(browser_context, server.url) as page:
        yield page


def test_a_typed_sentence_is_classified_and_its_neighbours_shown_as_texts(
    page, server, glosses, artifacts
) -> None:
    # the text box stands where the drawing and the picture picker were
    assert page.is_visible("#try-text") and page.is_visible("label[for=try-text]")
    for picture_only in ("#draw-canvas", "#try-file", "#brush"):
        assert not page.is_visible(picture_only), picture_only
    text = glosses[40][0]

    page.fill("#try-text", text)
    with page.expect_request("**/classify") as request:
        page.click("#try-run")

    assert request.value.post_data_json["inputs"] == [{"text": text}]
    page.wait_for_selector("#try-neighbours .tile")
    labels = server.client().get("/model").json()["manifest"]["labels"]
    assert page.inner_text("#try-label") in labels
    tiles = page.locator("#try-neighbours .tile")
    assert tiles.count() == 12 and page.locator("#try-neighbours img").count() == 0
    assert tiles.first.get_attribute("data-id") == "wn-40"  # stored: its own nearest
    # neighbours carry ids only: the page fetches each one's stored text
    page.wait_for_function(
        "() => !document.querySelector('#try-neighbours .snippet').textContent.startsWith('…')"
    )
    assert page.inner_text("#try-neighbours .tile .snippet >> nth=0") == text
    page.screenshot(path=artifacts / "web-text-try.png", full_page=True)

    page.fill("#try-text", "   ")
    page.click("#try-run")
    assert page.inner_text("#try-status") == "Type a text first."


def test_a_long_text_is_said_to_be_cut(page) -> None:
    page.fill("#try-text", " ".join(["a long gloss about a chair with four legs"] * 40))
    page.click("#try-run")
    page.wait_for_selector("#try-truncated")
    assert "its first" in page.inner_text("#try-truncated")


def test_items_added_as_text_lines_are_stored_and_browse_shows_their_text(
    page, server, artifacts
) -> None:
    open_view(page, "browse")
    page.wait_for_selector("#browse-gallery .tile")
    assert page.locator("#browse-gallery img").count() == 0
    first = page.locator("#browse-gallery .tile .snippet").first.inner_text()
    assert first == server.client().get("/items/wn-0").json()["text"]
    assert not page.is_visible("#add-files") and page.is_visible("#add-texts")
    lines = ["a small garden plant with yellow petals", "", "  a wooden boat with one sail  "]

    page.fill("#add-texts", "\n".join(lines))
    page.fill("#add-label", "web-added")
    page.click("#browse-add button[type=submit]")

    page.wait_for_function(
        "document.getElementById('browse-status').textContent.startsWith('Added 2 item(s)')"
    )
    page.fill("#browse-label", "web-added")
    page.click("#browse-filter button[type=submit]")
    page.wait_for_function(
        "document.getElementById('browse-status').textContent.startsWith('2 items labelled')"
    )
    shown = page.eval_on_selector_all("#browse-gallery .snippet", "s => s.map(n => n.textContent)")
    assert shown == ["a small garden plant with yellow petals", "a wooden boat with one sail"]
    page.click("#browse-gallery .tile >> nth=1")
    page.wait_for_selector("#browse-detail blockquote.item-text")
    assert page.inner_text("#browse-detail .item-text") == "a wooden boat with one sail"
    page.wait_for_selector("#detail-neighbours .tile")
    page.screenshot(path=artifacts / "web-text-browse.png", full_page=True)


def test_the_maps_hover_shows_the_stored_text(page, glosses) -> None:
    open_view(page, "map")
    page.wait_for_selector("#map-canvas[data-points]")
    spot = page.evaluate(
        """() => {
          const c = document.getElementById('map-canvas');
          const ratio = c.width / c.clientWidth;
          const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          for (let i = 0; i < px.length; i += 4) {
            if (px[i + 3] === 255 && px[i] + px[i + 1] + px[i + 2] >= 60) {
              return [((i / 4) % c.width) / ratio, Math.floor(i / 4 / c.width) / ratio];
            }
          }
          return null;
        }"""
    )
    box = page.locator("#map-canvas").bounding_box()
    page.mouse.move(box["x"] + spot[0] + 1, box["y"] + spot[1] + 1)

    page.wait_for_selector("#map-tip:not([hidden]) .snippet")
    page.wait_for_function(
        "!document.querySelector('#map-tip .snippet').textContent.startsWith('…')"
    )
    tip = page.inner_text("#map-tip .snippet")
    assert tip in {text for text, _ in glosses} | {
        "a small garden plant with yellow petals",
        "a wooden boat with one sail",
    }
    assert page.locator("#map-tip img").count() == 0


def test_a_class_is_imprinted_from_typed_examples(page) -> None:
    open_view(page, "classes")
    assert not page.is_visible("#imprint-files") and page.is_visible("#imprint-texts")
    page.fill("#imprint-name", "boat")
    page.fill("#imprint-texts", "a small boat with oars\na sailing boat\na boat with a motor")
    page.click("#imprint-form button[type=submit]")
    page.wait_for_selector("#classes-table tr[data-class=boat]")
    assert "from 3 example(s)" in page.inner_text("#classes-status")
    page.click("#classes-table tr[data-class=boat] button")
    page.wait_for_selector("#classes-table tr[data-class=boat]", state="detached")


def test_every_control_of_the_text_page_has_an_accessible_name(page) -> None:
    for view in ("try", "browse", "classes"):
        open_view(page, view)
        page.wait_for_timeout(200)
        controls = accessible_controls(page)
        assert [c for c in controls if not c["name"].strip()] == [], view
        assert any(c["role"] == "textbox" and "text" in c["name"].lower() for c in controls), view
