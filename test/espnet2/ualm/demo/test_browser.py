"""The web demo in a real browser: Debian's Chromium, headless, driven by
Selenium against the app served on 127.0.0.1 with the tiny packed model.

It types a caption, presses generate, waits for the audio player, checks that
the browser plays a wav of the expected length, uploads a clip and gets its
caption, sends a chat message with the clip and sees the reply's text and
audio in order, and saves screenshots (``$PYTEST_ARTIFACTS`` or ``test/artifacts/``).
Skips, saying why, only where Chromium, chromedriver, Selenium or Gradio are
not installed (``make -C tools demo browser`` installs them; test/run.sh runs
it).
"""

import io
import os
import shutil
import socket
import urllib.request

import pytest
import soundfile

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 4))
TIMEOUT = 60  # seconds for one generation to show (the tiny model takes ~1 s)

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    pytest.skip(
        f"Chromium could not be installed ({CHROMIUM} / {CHROMEDRIVER} missing): "
        "`make -C tools browser` installs Debian's chromium and chromium-driver "
        "(needs root and apt)",
        allow_module_level=True,
    )
pytest.importorskip("gradio", reason="the demo extra: `make -C tools demo`")
pytest.importorskip("selenium", reason="test tools: `make -C tools`")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model(request):
    """The tiny packed model, or the one ``$UALM_DEMO_TEST_MODEL`` names (e.g.
    the main job's ``ualm_mini.zip``: the same test on a trained model)."""
    return os.environ.get("UALM_DEMO_TEST_MODEL") or request.getfixturevalue(
        "packed_dir"
    )


@pytest.fixture(scope="module")
def url(model, tmp_path_factory):
    """The demo served as ``ualm_demo`` serves it (server in a thread)."""
    from espnet2.bin.ualm_demo import get_parser, launch

    port = _free_port()
    args = get_parser().parse_args(
        ["--model", model, "--port", str(port)]
        + ["--workdir", str(tmp_path_factory.mktemp("served"))]
    )
    demo = launch(args, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1280,1400",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def artifacts() -> str:
    out = os.environ.get("PYTEST_ARTIFACTS") or os.path.join(ROOT, "test", "artifacts")
    os.makedirs(out, exist_ok=True)
    return out


def _screenshot(driver, artifacts: str, name: str) -> str:
    path = os.path.join(artifacts, name)
    driver.save_screenshot(path)
    print(f"screenshot: {path}")
    return path


def _textbox(driver, elem_id: str):
    return driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea")


def test_generate_play_and_caption_in_a_browser(
    url, browser, model, artifacts, tmp_path
):
    from espnet2.ualm import UALM

    ualm = UALM.from_pretrained(model)  # what the page should show
    wait = WebDriverWait(browser, TIMEOUT)
    browser.get(url)
    caption = wait.until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, "#t2a_caption textarea"))
    )
    caption.send_keys("two high-pitched beeps")
    browser.find_element(By.ID, "t2a_go").click()
    audio = wait.until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "#t2a_audio_0 audio[src]"))
    )
    # The player's own <audio>: its duration, then a play that advances.
    duration = browser.execute_async_script(
        """const [a, done] = arguments;
        const report = () => done(a.duration);
        if (a.readyState >= 1) report(); else a.onloadedmetadata = report;""",
        audio,
    )
    played = browser.execute_async_script(
        """const [a, done] = arguments;
        a.onended = () => done(["ended", a.currentTime]);
        a.play().catch(e => done(["refused", String(e)]));
        setTimeout(() => done(["not ended", a.currentTime, a.error]), 10000);""",
        audio,
    )
    assert played == ["ended", duration], played
    with urllib.request.urlopen(audio.get_attribute("src"), timeout=30) as r:
        data = r.read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    info = soundfile.info(io.BytesIO(data))
    frame = ualm.codec.sample_rate / ualm.codec.frame_rate
    assert (info.samplerate, info.channels) == (ualm.codec.sample_rate, 1)
    assert info.frames % frame == 0  # whole codec frames
    s = ualm.settings
    assert s.min_audio_seconds <= info.duration <= s.max_audio_seconds + 1e-6
    assert duration == pytest.approx(info.duration, abs=0.01)
    assert _textbox(browser, "t2a_error").get_attribute("value") == ""
    assert browser.find_element(By.CSS_SELECTOR, "#t2a_spec_0 img")
    _screenshot(browser, artifacts, "ualm_demo_text_to_audio.png")

    # Understanding: upload a clip, caption it.
    clip = str(tmp_path / "upload.wav")
    soundfile.write(clip, soundfile.read(io.BytesIO(data))[0], info.samplerate)
    tab = browser.find_element(
        By.XPATH, "//button[@role='tab' and contains(., 'Understanding')]"
    )
    tab.click()
    upload = wait.until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "#und_audio input[type=file]"))
    )
    upload.send_keys(clip)
    # uploaded: the player offers the clip for download
    wait.until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "#und_audio a.download-link"))
    )
    browser.find_element(By.ID, "und_go").click()
    expected = ualm.caption([clip])[0].text
    assert expected  # (an empty caption could not tell the reply from no reply)
    wait.until(lambda d: _textbox(d, "und_text").get_attribute("value") == expected)
    assert _textbox(browser, "und_error").get_attribute("value") == ""
    _screenshot(browser, artifacts, "ualm_demo_understanding.png")

    # Chat: the clip and a question in one message, the reply as text then
    # audio, shown in that order (a text bubble, then a player).
    browser.find_element(
        By.XPATH, "//button[@role='tab' and contains(., 'Chat')]"
    ).click()
    browser.find_element(By.XPATH, "//label[contains(., 'text, then audio')]").click()
    browser.find_element(By.CSS_SELECTOR, "#chat_box input[type=file]").send_keys(clip)
    box = wait.until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, "#chat_box textarea"))
    )
    box.send_keys("How many sounds?")
    box.send_keys(Keys.ENTER)
    bot = wait.until(
        lambda d: (
            (
                len(
                    found := d.find_elements(
                        By.CSS_SELECTOR, "#chat_log [data-testid=bot]"
                    )
                )
                == 2
            )
            and found
        )
    )
    assert bot[0].text.strip()
    assert bot[1].find_elements(By.CSS_SELECTOR, "[data-testid=waveform-Audio]")
    assert _textbox(browser, "chat_error").get_attribute("value") == ""
    _screenshot(browser, artifacts, "ualm_demo_chat.png")
