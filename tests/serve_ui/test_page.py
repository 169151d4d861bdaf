"""The page of ``colorize serve`` in a real browser: headless Chromium driven by Selenium against live servers.

Two servers on 127.0.0.1 (ephemeral ports, uvicorn in threads) share one Colorizer (the default photo model on
ONNX Runtime FP32, the quickest to load): one open, one with API keys. One browser for the module. After every test
the browser's console must hold no error but the HTTP statuses the test provoked on purpose, and its performance log
no request to anything but the servers (``blob:`` URLs are the page's own answers held in memory).

The browser is Debian's ``chromium`` with ``chromium-driver`` (``.ci/run`` installs them when run as root). Where they
are not installed the tests skip, saying so. ``COLORIZE_SCREENSHOT=docs/serve_page.png`` writes the page, with photos
in it, to that file.
"""

import base64
import io
import json
import os
import shutil
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="needs the serve extra: pip install '.[serve]'")
uvicorn = pytest.importorskip("uvicorn", reason="needs the serve extra: pip install '.[serve]'")
httpx = pytest.importorskip("httpx", reason="needs httpx (the dev extra)")
pytest.importorskip("onnxruntime", reason="needs the cpu extra: pip install '.[cpu]'")
pytest.importorskip("selenium", reason="needs selenium (the dev extra): pip install '.[dev]'")

from selenium import webdriver  # noqa: E402
from selenium.webdriver import ActionChains  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from colorize.artifacts.model_ref import DEFAULT_PHOTO_MODEL  # noqa: E402
from colorize.serve.config import ServeConfig  # noqa: E402
from colorize.serve.service import create_app  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Chromium and its driver, not installed here: apt-get install chromium chromium-driver "
           "(.ci/run installs them when it runs as root)",
)
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,900", "--force-color-profile=srgb", "--hide-scrollbars")
KEY = "page-test-key-0123456789"
WAIT = 20.0
MAX_PIXELS = 1_000_000  # the open server's limit: above every example, below the test's large photo


# -- servers and browser -----------------------------------------------------------------------------------------


@contextmanager
def serving(colorizer, **config):
    """``create_app(colorizer, ServeConfig(**config))`` on 127.0.0.1, ephemeral port, in a thread; yields its URL."""
    app = create_app(colorizer, ServeConfig(**{"warmup": 0, "log_level": "warning", **config}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="page-test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    try:
        while httpx.get(url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "server not ready"
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(WAIT)


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    from colorize.colorizer import Colorizer

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLORIZE_CACHE", str(tmp_path_factory.mktemp("cache")))
        col = Colorizer.load(DEFAULT_PHOTO_MODEL, "onnxruntime", "fp32", small_model="none")
    yield col
    col.close()


@pytest.fixture(scope="module")
def server(colorizer):
    with serving(colorizer, max_pixels=MAX_PIXELS) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_server(colorizer, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# the page's test key\n{KEY}\n")
    with serving(colorizer, api_key_file=str(keys)) as url:
        yield url


class Browser:
    """The driver, where downloads land, and what its logs said so far."""

    def __init__(self, driver, downloads: Path):
        self.driver = driver
        self.downloads = downloads
        self.requests: list[str] = []  # URLs of every request the browser sent (performance log)
        self.console: list[dict] = []  # console entries at WARNING or above

    def drain_logs(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
        self.console += [e for e in self.driver.get_log("browser") if e["level"] in ("WARNING", "SEVERE")]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    downloads = tmp_path_factory.mktemp("downloads")
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
    })
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.get("about:blank")  # away from the start page (chrome://new-tab-page), whose requests are the browser's
    driver.get_log("performance"), driver.get_log("browser")
    try:
        yield Browser(driver, downloads)
    finally:
        driver.quit()


@pytest.fixture
def page(browser, server, keyed_server, request):
    """The browser, after the test: its console holds no error but the statuses the test lists with
    ``@pytest.mark.provokes(401, ...)``, and no request went anywhere but the two servers."""
    yield browser
    browser.drain_logs()
    provoked = request.node.get_closest_marker("provokes")
    allowed = {f"status of {status} " for status in (provoked.args if provoked else ())}
    errors = [e for e in browser.console if not (e["source"] == "network" and any(a in e["message"] for a in allowed))]
    browser.console.clear()
    assert not errors, errors
    origins = {server, keyed_server}
    elsewhere = [u for u in browser.requests
                 if u.split(":", 1)[0] not in ("blob", "data") and origin(u) not in origins]
    browser.requests.clear()
    assert not elsewhere, elsewhere


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# -- helpers -------------------------------------------------------------------------------------------------------


def open_page(browser: Browser, url: str):
    driver = browser.driver
    driver.get(url + "/")
    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return document.readyState") == "complete")
    # the module script has run once the empty-state text is set up and the key field is shown or removed
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "progress-text") is not None)
    return driver


def choose(driver, *paths: Path) -> None:
    driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))


def cards(driver):
    return driver.find_elements(By.CSS_SELECTOR, "#results .card")


def wait_settled(driver, count: int) -> list:
    """The ``count`` result cards once none is waiting or working."""

    def settled(d):
        found = cards(d)
        states = [c.get_attribute("data-state") for c in found]
        return found if len(found) == count and all(s in ("done", "failed") for s in states) else False

    return WebDriverWait(driver, WAIT).until(settled)


def shown_image(driver, img) -> Image.Image:
    """The pixels an ``<img>`` shows, at its natural size, read back through a canvas (the page's CSP lets no
    script fetch its blob: URLs, this one included)."""
    data = driver.execute_script(
        """const img = arguments[0], canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        canvas.getContext('2d').drawImage(img, 0, 0);
        return canvas.toDataURL('image/png').split(',')[1];""",
        img,
    )
    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def screenshot(driver, last, path: Path) -> None:
    """The top of the page down to the ``last`` element, as a 256-colour PNG (small enough for the docs)."""
    driver.execute_script("window.scrollTo(0, 0)")
    bottom = driver.execute_script("return arguments[0].getBoundingClientRect().bottom", last)
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    shot = shot.crop((0, 0, shot.width, min(shot.height, int(bottom) + 24)))
    shot.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def chroma(image: Image.Image) -> float:
    """Mean distance of the pixels from gray (0 for a gray image)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    return float(np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean())


def set_strength(driver, card, key: str) -> None:
    """Move the card's colour-strength slider with the keyboard (Home: 0, End: the maximum)."""
    slider = card.find_element(By.CSS_SELECTOR, "input[type=range]")
    slider.send_keys(key)


def status(card) -> str:
    return card.find_element(By.CSS_SELECTOR, ".status").text


def error(card) -> str:
    return card.find_element(By.CSS_SELECTOR, ".error").text


# -- the page ------------------------------------------------------------------------------------------------------


def test_the_page_is_a_labelled_form_in_tab_order(page, server):
    driver = open_page(page, server)
    assert driver.title == "colorize"
    assert not driver.find_elements(By.ID, "key"), "no key field on a server without keys"
    unnamed = driver.execute_script(
        """return [...document.querySelectorAll('input, button, output, progress')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                          && !e.getAttribute('aria-labelledby') && !e.textContent.trim())
             .map(e => e.outerHTML);"""
    )
    assert not unnamed, unnamed
    # Tab from the top of the page: the file chooser, then the strength; the disabled buttons are skipped.
    driver.find_element(By.TAG_NAME, "body").click()
    order = []
    for _ in range(2):
        ActionChains(driver).send_keys(Keys.TAB).perform()  # to the page, not to an element (a file input
        order.append(driver.switch_to.active_element.get_attribute("id"))  # reads keys as file names)
    assert order == ["files", "strength"]
    assert driver.find_element(By.ID, "download-all").get_attribute("disabled")


def test_a_photo_comes_back_in_colour_at_its_size(page, server):
    driver = open_page(page, server)
    choose(driver, EXAMPLES / "chelsea.png")
    [card] = wait_settled(driver, 1)
    assert card.get_attribute("data-state") == "done", error(card)
    gray = Image.open(EXAMPLES / "chelsea.png")
    before = shown_image(driver, card.find_element(By.CSS_SELECTOR, ".before img"))
    after = shown_image(driver, card.find_element(By.CSS_SELECTOR, ".after img"))
    assert before.size == after.size == gray.size
    assert chroma(gray) == 0 and chroma(after) > 2.0
    luminance = np.asarray(after.convert("L"), dtype=np.float32)
    assert np.abs(luminance - np.asarray(gray, dtype=np.float32)).mean() < 3.0  # the input's own luminance
    shown = driver.execute_script(
        "const i = arguments[0]; return [i.naturalWidth, i.naturalHeight, i.clientWidth, i.clientHeight];",
        card.find_element(By.CSS_SELECTOR, ".after img"),
    )
    assert shown[:2] == list(gray.size)
    assert abs(shown[2] / shown[3] - gray.width / gray.height) < 0.02  # drawn at the photo's aspect ratio
    link = card.find_element(By.CSS_SELECTOR, "a.download")
    assert link.is_displayed() and link.get_attribute("download") == "chelsea-colour.png"


def test_several_photos_show_progress_then_download_as_one_zip(page, server):
    driver = open_page(page, server)
    driver.execute_script(
        """window.progressSeen = [];
        const text = document.getElementById('progress-text'), bar = document.getElementById('progress');
        new MutationObserver(() => progressSeen.push([text.textContent, bar.hidden, bar.value, bar.max]))
          .observe(text, {childList: true, characterData: true, subtree: true});"""
    )
    names = ["coffee.jpg", "rocket.jpg", "astronaut.jpg", "chelsea.png"]
    choose(driver, *(EXAMPLES / n for n in names))
    found = wait_settled(driver, len(names))
    assert [c.find_element(By.CSS_SELECTOR, ".name").text for c in found] == names
    for name, card in zip(names, found):
        assert card.get_attribute("data-state") == "done", error(card)
        after = shown_image(driver, card.find_element(By.CSS_SELECTOR, ".after img"))
        assert after.size == Image.open(EXAMPLES / name).size and chroma(after) > 2.0
    seen = driver.execute_script("return progressSeen")
    assert any(text.startswith("Colorizing: 0 of 4") and not hidden for text, hidden, _, _ in seen), seen
    assert seen[-1][:2] == ["4 of 4 done", True], seen

    if os.environ.get("COLORIZE_SCREENSHOT"):
        screenshot(driver, found[0], Path(os.environ["COLORIZE_SCREENSHOT"]))

    for old in page.downloads.glob("*"):
        old.unlink()
    driver.find_element(By.ID, "download-all").click()
    archive = page.downloads / "colorized.zip"
    WebDriverWait(driver, WAIT).until(lambda d: archive.exists())
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None  # every CRC-32 right
        assert z.namelist() == ["coffee-colour.png", "rocket-colour.png", "astronaut-colour.png",
                                "chelsea-colour.png"]
        for name, member in zip(names, z.namelist()):
            image = Image.open(io.BytesIO(z.read(member)))
            assert image.format == "PNG" and image.size == Image.open(EXAMPLES / name).size

    found[0].find_element(By.CSS_SELECTOR, "a.download").send_keys(Keys.ENTER)  # one photo, from the keyboard
    single = page.downloads / "coffee-colour.png"
    WebDriverWait(driver, WAIT).until(lambda d: single.exists())
    assert Image.open(single).size == Image.open(EXAMPLES / "coffee.jpg").size


def test_the_strength_control_redoes_the_photo(page, server):
    driver = open_page(page, server)
    choose(driver, EXAMPLES / "coffee.jpg")
    [card] = wait_settled(driver, 1)
    img = card.find_element(By.CSS_SELECTOR, ".after img")
    default = chroma(shown_image(driver, img))

    def redone_at(key: str, strength: str) -> float:
        set_strength(driver, card, key)
        WebDriverWait(driver, WAIT).until(lambda d: status(card) == f"Done at strength {strength}.")
        return chroma(shown_image(driver, img))

    assert redone_at(Keys.HOME, "0") < 0.5  # no colour at all (JPEG-free PNG: exactly gray but for rounding)
    vivid = redone_at(Keys.END, "4")
    assert vivid > 1.5 * default > 0
    assert card.find_element(By.CSS_SELECTOR, "output").text == "4"
    # Ten steps at once: one request at a time for the photo, and the last strength is the one it ends at.
    slider = card.find_element(By.CSS_SELECTOR, "input[type=range]")
    page.drain_logs()
    sent = len(page.requests)
    slider.send_keys(Keys.ARROW_LEFT * 10)
    assert slider.get_attribute("value") == "3"
    WebDriverWait(driver, WAIT).until(lambda d: status(card) == "Done at strength 3.")
    page.drain_logs()
    steps = [u for u in page.requests[sent:] if "/colorize?" in u]
    assert len(steps) < 10 and steps[-1].endswith("/colorize?strength=3"), steps
    assert default < chroma(shown_image(driver, img)) < vivid


def test_a_dropped_photo_is_colorized_and_clear_empties_the_list(page, server):
    driver = open_page(page, server)
    data = base64.b64encode((EXAMPLES / "rocket.jpg").read_bytes()).decode()
    driver.execute_script(
        """const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'rocket.jpg', {type: 'image/jpeg'}));
        for (const type of ['dragover', 'drop'])
          document.querySelector('main').dispatchEvent(
            new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));""",
        data,
    )
    [card] = wait_settled(driver, 1)
    assert card.get_attribute("data-state") == "done", error(card)
    assert shown_image(driver, card.find_element(By.CSS_SELECTOR, ".after img")).size == (384, 256)
    driver.find_element(By.ID, "clear").click()
    assert cards(driver) == [] and driver.find_element(By.ID, "empty").is_displayed()
    assert driver.switch_to.active_element.get_attribute("id") == "files"


@pytest.mark.provokes(413, 415)
def test_refused_files_get_their_message_beside_them(page, server, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    large = tmp_path / "large.png"
    Image.new("L", (1250, 1000), 128).save(large)  # a small file of too many pixels
    driver = open_page(page, server)
    choose(driver, EXAMPLES / "rocket.jpg", notes, large)
    good, not_image, too_large = wait_settled(driver, 3)
    assert good.get_attribute("data-state") == "done"
    assert not good.find_element(By.CSS_SELECTOR, ".error").is_displayed()
    for card in (not_image, too_large):
        assert card.get_attribute("data-state") == "failed"
        message = card.find_element(By.CSS_SELECTOR, ".error")
        assert message.get_attribute("role") == "alert" and message.is_displayed()
        assert card.find_element(By.CSS_SELECTOR, ".retry").is_displayed()
        assert not card.find_element(By.CSS_SELECTOR, "a.download").is_displayed()
    assert error(not_image).startswith("Error 415: unsupported media: not an image format this server can read")
    assert not_image.find_element(By.CSS_SELECTOR, ".no-preview").text == "No preview"
    assert error(too_large).startswith(f"Error 413: image is 1250x1000 = 1250000 pixels, over max_pixels={MAX_PIXELS}")
    assert driver.find_element(By.ID, "progress-text").text == "1 of 3 done, 2 failed"


@pytest.mark.provokes(401)
def test_with_keys_the_page_asks_for_one_and_keeps_it_for_the_session(page, keyed_server):
    assert httpx.get(keyed_server + "/").status_code == 200  # the page's own files need no key
    assert httpx.get(keyed_server + "/ui/app.js").status_code == 200
    driver = open_page(page, keyed_server)
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    key_input = driver.find_element(By.ID, "key")
    assert key_input.is_displayed() and key_input.get_attribute("type") == "password"
    assert driver.find_element(By.CSS_SELECTOR, "label[for=key]").text == "API key"

    choose(driver, EXAMPLES / "chelsea.png")
    [card] = wait_settled(driver, 1)
    assert card.get_attribute("data-state") == "failed"
    assert error(card).startswith("Error 401: API key required"), error(card)

    key_input.send_keys("not-the-key")
    card.find_element(By.CSS_SELECTOR, ".retry").click()
    WebDriverWait(driver, WAIT).until(lambda d: error(card).startswith("Error 401: invalid API key"))

    key_input.clear()
    key_input.send_keys(KEY)
    assert driver.execute_script("return sessionStorage.getItem('colorize.apiKey')") == KEY
    assert driver.execute_script("return localStorage.length") == 0  # not kept beyond the session
    card.find_element(By.CSS_SELECTOR, ".retry").click()
    WebDriverWait(driver, WAIT).until(lambda d: card.get_attribute("data-state") == "done")
    assert chroma(shown_image(driver, card.find_element(By.CSS_SELECTOR, ".after img"))) > 2.0

    driver.refresh()  # the same tab: the key is still there
    assert driver.find_element(By.ID, "key").get_attribute("value") == KEY


def test_the_page_talks_to_its_own_origin_only(page, server):
    driver = open_page(page, server)
    choose(driver, EXAMPLES / "rocket.jpg")
    [card] = wait_settled(driver, 1)
    assert card.get_attribute("data-state") == "done"
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert {r.split("?")[0].removeprefix(server) for r in resources} >= {"/ui/app.js", "/ui/zip.js",
                                                                         "/ui/style.css", "/colorize"}
    assert all(origin(r) == server for r in resources), resources
    page.drain_logs()  # the fixture checks every request of every test; here, that the log does see them
    assert server + "/colorize?strength=1" in page.requests
