"""The drawing page in a real headless chromium (Debian's, driven by Playwright) against a real
`digitrec serve` process: draw digits with the mouse and with touch, upload a photo, restart the
server under the page. Screenshots go to test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, sync_playwright
from predict_helpers import write_linear_onnx
from web_helpers import (
    AMBIGUOUS_4_9,
    PEN_STROKES,
    STROKES,
    draw_strokes,
    free_port,
    photo_of_digit,
    png,
    start_server,
    stop_server,
    wait_until_up,
)

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = dict(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)


class Server:
    """`digitrec serve` on a fixed free port, which the restart test stops and starts again."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process = None

    def start(self):
        self.process = start_server(self.port, self.log_path)
        wait_until_up(self.url, self.process)

    def stop(self):
        stop_server(self.process)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve") / "serve.log")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    # Never a silent skip: without chromium this test fails and says how to get it.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` (or apt-get install chromium) installs it")
    with sync_playwright() as playwright:
        b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, server, **context_options) -> tuple[Page, list[str]]:
    page = browser.new_context(**context_options).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    wait_for_status(page, "online")
    return page, errors


def number_answered_with(browser, server, reading: dict) -> tuple[Page, list[str]]:
    """The page in number mode, a stroke drawn, and the server's /v1/read answer replaced by
    `reading` (canned: the doubt shown for a given answer, whatever the model says)."""
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 900})
    page.route("**/v1/read*", lambda route: route.fulfill(json={"readings": [reading]}))
    page.locator("#mode-number").click()
    draw_with_mouse(page, 1, slot=0)
    return page, errors


def wait_for_status(page: Page, state: str, timeout_ms: int = 15_000):
    page.wait_for_function(f"document.getElementById('status').dataset.state === '{state}'", timeout=timeout_ms)


def wait_until_idle(page: Page):
    page.wait_for_function("document.body.dataset.busy === '0'", timeout=15_000)


def stroke_points(page: Page, digit: int, slot: int = 0) -> list[tuple[float, float]]:
    """The digit's MNIST pen path in page coordinates: the 28x28 grid stretched over the pad's
    height, in the `slot`-th square from the left (a number's pad is two squares wide)."""
    box = page.locator("#pad").bounding_box()
    side = box["height"]
    return [(box["x"] + (slot + (x + 0.5) / 28) * side, box["y"] + (y + 0.5) * side / 28) for x, y in STROKES[digit]]


def draw_with_mouse(page: Page, digit: int, slot: int = 0):
    points = stroke_points(page, digit, slot)
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=6)
    page.mouse.up()


def draw_pen_strokes(page: Page, strokes, left: float, top: float, height: float):
    """Pen paths in a box 100 units high, drawn with the mouse with their top-left corner at
    (`left`, `top`) and `height` high, all three as fractions of the pad's height."""
    box = page.locator("#pad").bounding_box()
    k = height * box["height"] / 100
    for path in strokes:
        points = [(box["x"] + left * box["height"] + x * k, box["y"] + top * box["height"] + y * k) for x, y in path]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=3)
        page.mouse.up()


def draw_with_finger(page: Page, digit: int):
    """Real touch input (Chrome DevTools Protocol), which reaches the page as touch pointer events."""
    cdp = page.context.new_cdp_session(page)
    points = stroke_points(page, digit)
    first = {"x": points[0][0], "y": points[0][1]}
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [first]})
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for t in (0.25, 0.5, 0.75, 1.0):
            point = {"x": x0 + (x1 - x0) * t, "y": y0 + (y1 - y0) * t}
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def screenshot(page: Page, path: Path, **options):
    page.wait_for_timeout(400)  # let the bars finish their 0.25 s transition
    page.screenshot(path=path, **options)


def shown_answer(page: Page) -> str:
    return page.locator("#digit").inner_text().strip()


def top_bar(page: Page) -> int:
    return page.locator("#bars li").evaluate_all("items => items.findIndex(li => li.classList.contains('top'))")


@pytest.mark.parametrize("digit", [1, 7])
def test_drawing_a_digit_shows_it(browser, server, artifacts_dir, digit):
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 760})
    draw_with_mouse(page, digit)
    wait_until_idle(page)
    assert shown_answer(page) == str(digit)
    assert top_bar(page) == digit
    assert "sure" in page.locator("#conf").inner_text()
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")
    screenshot(page, artifacts_dir / f"page-drawn-{digit}.png")

    page.locator("#clear").click()
    wait_until_idle(page)
    assert shown_answer(page) == "?" and top_bar(page) == -1
    assert errors == []
    page.context.close()


def test_phone_screen_with_touch(browser, server, artifacts_dir):
    page, errors = open_page(browser, server, **PHONE)
    # Everything fits the width: no sideways scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    pad = page.locator("#pad").bounding_box()
    assert pad["width"] >= 300 and pad["x"] >= 0 and pad["x"] + pad["width"] <= 390
    draw_with_finger(page, 7)
    wait_until_idle(page)
    assert shown_answer(page) == "7"
    screenshot(page, artifacts_dir / "page-phone.png", full_page=True)
    assert errors == []
    page.context.close()


def test_uploading_a_photo(browser, server, artifacts_dir, tmp_path):
    photo = tmp_path / "seven.jpg"
    photo.write_bytes(photo_of_digit(7))
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 760})
    page.locator("#upload").set_input_files(str(photo))
    page.wait_for_function("document.body.dataset.answer === '7'", timeout=15_000)
    assert top_bar(page) == 7
    assert errors == []
    page.context.close()


def test_a_photo_of_a_number_in_digit_mode_is_read_as_a_number_in_one_click(browser, server, tmp_path):
    """A photo of "71" uploaded in digit mode: the real server's rejector says several digits, the
    page offers to read it as a number, and one click reads the same upload in number mode."""
    seven, one = (cv2.imdecode(np.frombuffer(photo_of_digit(d, 560, 800, seed=d), np.uint8), 1) for d in (7, 1))
    photo = tmp_path / "seventy-one.jpg"
    assert cv2.imwrite(str(photo), np.hstack([seven[:, 40:-40], one[:, 40:-40]]))
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 760})
    page.locator("#upload").set_input_files(str(photo))
    page.wait_for_function("document.body.dataset.doubt === 'several digits'", timeout=15_000)
    assert page.locator("#conf").inner_text() == "Several digits: read it as a number"
    page.locator("#read-number").click()
    page.wait_for_function("document.body.dataset.answer === '71'", timeout=15_000)
    assert page.evaluate("document.body.dataset.mode") == "number"
    assert errors == []
    page.context.close()


def test_writing_a_number_shows_it_with_a_box_per_digit(browser, server, artifacts_dir):
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 900})
    page.locator("#mode-number").click()
    draw_with_mouse(page, 1, slot=0)
    draw_with_mouse(page, 7, slot=1)
    wait_until_idle(page)
    assert shown_answer(page) == "17"
    assert page.locator("#chips li").count() == 2 and page.locator("#boxes div").count() == 2
    first, second = (page.locator("#boxes div").nth(i).bounding_box() for i in (0, 1))
    assert first["x"] + first["width"] <= second["x"]  # the 1's box left of the 7's
    screenshot(page, artifacts_dir / "page-number.png")
    page.locator("#mode-digit").click()
    assert shown_answer(page) == "?"
    assert errors == []
    page.context.close()


def test_the_page_survives_a_server_restart(browser, server, artifacts_dir):
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 760})
    server.stop()
    draw_with_mouse(page, 1)  # drawn while the server is down: kept and sent when it is back
    wait_for_status(page, "offline")
    assert page.locator("#status-text").inner_text() == "Reconnecting…"
    screenshot(page, artifacts_dir / "page-offline.png")
    server.start()
    wait_for_status(page, "online")
    wait_until_idle(page)
    assert shown_answer(page) == "1"
    assert errors == []
    page.context.close()


# --- doubt: what the page says when the server is not sure, or says it is not a digit ---


def test_an_unsure_digit_names_the_two_it_hesitates_between(browser, server, artifacts_dir, tmp_path):
    """The default server (doubt on, min_confidence 0.93) and a 4 that looks like a 9."""
    drawing = tmp_path / "four-or-nine.png"
    drawing.write_bytes(png(draw_strokes(AMBIGUOUS_4_9)))
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 760})
    page.locator("#upload").set_input_files(str(drawing))
    page.wait_for_function("document.body.dataset.doubt === 'low confidence'", timeout=15_000)
    assert shown_answer(page) == "?" and page.locator("#digit").get_attribute("class") == "digit empty"
    assert page.locator("#conf").inner_text() == "Not sure: 9 or 4?"
    assert top_bar(page) == 9  # the bars still show what it hesitates between
    screenshot(page, artifacts_dir / "page-not-sure.png")
    page.locator("#clear").click()
    assert page.evaluate("document.body.dataset.doubt") == ""
    assert errors == []
    page.context.close()


def test_a_speck_on_white_paper_says_nothing_is_written(browser, server, artifacts_dir, tmp_path):
    """A photo of blank paper with one speck on it: the server answers "no ink" (digit None, with
    the top three still listed). The page used to word it as low confidence ("Not sure: 0 or 9?")."""
    speck = np.full((280, 280), 255, np.uint8)
    cv2.circle(speck, (140, 140), 4, 0, -1, lineType=cv2.LINE_AA)  # 8 px across: a pencil tap
    upload = tmp_path / "speck.png"
    upload.write_bytes(png(speck))
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 760})
    page.locator("#upload").set_input_files(str(upload))
    page.wait_for_function("document.body.dataset.doubt === 'no ink'", timeout=15_000)
    wait_until_idle(page)
    assert shown_answer(page) == "?"
    assert page.locator("#conf").inner_text() == "Nothing written here"
    screenshot(page, artifacts_dir / "page-no-ink.png")
    assert errors == []
    page.context.close()


def canned_prediction(reason: str) -> dict:
    """A /v1/predict answer flagged for `reason`, as the server words it (digitrec.doubt)."""
    probabilities = [0.02] * 10
    probabilities[8], probabilities[3] = 0.6, 0.24
    return {
        "predictions": [
            {
                "digit": None,
                "confidence": 0.6,
                "top": [[8, 0.6], [3, 0.24], [0, 0.02]],
                "probabilities": probabilities,
                "uncertain": True,
                "reason": reason,
            }
        ]
    }


@pytest.mark.parametrize(
    "reason, said",
    [
        ("not a digit", "That doesn't look like a digit"),
        ("several digits", "Several digits: read it as a number"),
        ("low confidence", "Not sure: 8 or 3?"),
    ],
)
def test_each_reason_is_said_in_words(browser, server, artifacts_dir, reason, said):
    """The page's words for each reason; the server's answer is canned (page.route), so this holds
    whichever model decides the reason."""
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 760})
    page.route("**/v1/predict*", lambda route: route.fulfill(json=canned_prediction(reason)))
    draw_with_mouse(page, 7)
    page.wait_for_function(f"document.body.dataset.doubt === {reason!r}", timeout=15_000)
    wait_until_idle(page)
    assert page.locator("#conf").inner_text() == said and shown_answer(page) == "?"
    screenshot(page, artifacts_dir / f"page-{reason.replace(' ', '-')}.png")
    assert errors == []
    page.context.close()


def test_a_number_marks_the_digits_to_check(browser, server, artifacts_dir):
    """Digits under the server's threshold (0.93, from /v1/model) are marked 'check'; the
    reading is canned so that one digit sits just under it and one just over."""
    reading = {
        "text": "17",
        "confidence": 0.86,
        "lines": ["17"],
        "digits": [
            {"digit": 1, "confidence": 0.95, "box": [40, 60, 60, 180]},
            {"digit": 7, "confidence": 0.91, "box": [320, 60, 140, 180]},
        ],
    }
    page, errors = number_answered_with(browser, server, reading)
    page.wait_for_function("document.body.dataset.doubt === 'check'", timeout=15_000)
    wait_until_idle(page)
    assert shown_answer(page) == "17"
    assert page.locator("#conf").inner_text() == "86.0% sure of all 2 digits · check 1 digit"
    chips = page.locator("#chips li")
    assert [chips.nth(i).get_attribute("class") for i in (0, 1)] == ["", "check"]
    assert (
        chips.nth(1).inner_text().split() == ["7", "check"] and chips.nth(1).get_attribute("title") == "check this one"
    )
    assert [page.locator("#boxes div").nth(i).get_attribute("class") for i in (0, 1)] == ["", "check"]
    screenshot(page, artifacts_dir / "page-number-check.png")
    assert errors == []
    page.context.close()


def test_a_number_the_server_doubts_is_marked_even_when_each_digit_passes(browser, server, artifacts_dir):
    """A number whose own confidence is under the threshold, each digit over it: the server's answer
    for a '2029' drawn with real pen strokes (a slashed zero split into '90'), as /v1/read gave it.
    The page used to show it as sure."""
    reading = {
        "text": "29029",
        "confidence": 0.923186,
        "lines": ["29029"],
        "uncertain": True,
        "reason": "low confidence",
        "digits": [
            {"digit": d, "confidence": c, "box": [x, 150, 200, 280], "uncertain": False}
            for d, c, x in [(2, 0.9999, 33), (9, 0.9969, 302), (0, 0.9993, 398), (2, 0.9999, 595), (9, 0.9998, 864)]
        ],
    }
    page, errors = number_answered_with(browser, server, reading)
    page.wait_for_function("document.body.dataset.answer === '29029'", timeout=15_000)
    wait_until_idle(page)
    assert page.evaluate("document.body.dataset.doubt") == "check"
    assert page.locator("#conf").inner_text() == "92.3% sure of all 5 digits · check the number"
    assert [page.locator("#chips li").nth(i).get_attribute("class") for i in range(5)] == [""] * 5
    screenshot(page, artifacts_dir / "page-number-doubted.png")
    assert errors == []
    page.context.close()


@pytest.mark.parametrize("digit", sorted(PEN_STROKES))
def test_a_digit_drawn_small_in_a_corner_is_read(browser, server, artifacts_dir, digit):
    """A fifth of the pad high, near its top-left corner, with real pen strokes. With a pen 1/13 of
    the pad high the 8's and 3's loops filled in, and the 5's hook ('Not sure: 3 or 8?')."""
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 760})
    draw_pen_strokes(page, PEN_STROKES[digit], left=0.12, top=0.1, height=0.2)
    wait_until_idle(page)
    assert shown_answer(page) == str(digit), page.locator("#conf").inner_text()
    assert "sure" in page.locator("#conf").inner_text()
    screenshot(page, artifacts_dir / f"page-small-{digit}.png")
    assert errors == []
    page.context.close()


def test_the_footer_names_the_model_a_reload_brought_in(browser, server, tmp_path):
    """`POST /v1/reload` (after `digitrec finetune`) swaps the model under an open page: its footer
    followed within one health check (5 s). It used to keep the old name until a reconnect."""
    from digitrec.runtime import default_model_path

    bias = np.full(10, -5.0)
    bias[3] = 5.0
    three = write_linear_onnx(tmp_path / "three.onnx", np.zeros((784, 10)), bias, card={"name": "always-three"})
    page, errors = open_page(browser, server, viewport={"width": 1100, "height": 760})
    page.wait_for_function("document.getElementById('model').textContent.includes('digitrec-cnn-mix')")
    try:
        assert httpx.post(f"{server.url}/v1/reload", json={"model": str(three)}, timeout=60).status_code == 200
        page.wait_for_function("document.getElementById('model').textContent === 'model: always-three'", timeout=8_000)
    finally:
        back = httpx.post(f"{server.url}/v1/reload", json={"model": str(default_model_path())}, timeout=60)
        assert back.status_code == 200
    page.wait_for_function("document.getElementById('model').textContent.includes('digitrec-cnn-mix')", timeout=8_000)
    assert errors == []
    page.context.close()
