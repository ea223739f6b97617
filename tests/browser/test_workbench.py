"""The workbench in a real browser (issue 28; docs/workbench.md).

Debian's chromium, headless, driven by chromium-driver through python3-selenium, against
`nephroseg serve --root ROOT --token T` on a free loopback port, with the tiny golden SAM
and DINOv2 checkpoints and phantom micrographs (`nephroseg phantom`). One scripted
session, as a user works: browse, annotate a reference with two clicks and one brush
stroke, save it, run GBMSeg on 4 targets, wait for the results, open the worst, correct it
with a click, save, export. Then the files on disk are checked against independent
computations (the API replaying the same clicks, `nephroseg measure` on the saved mask).
Screenshots of each step go to $NEPHROSEG_ARTIFACTS (default: build/artifacts/workbench).
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "wb-test-token"
NM_PER_PIXEL = 16.0


def shared_dir():
    for d in (os.environ.get("NEPHROSEG_SHARED"), os.environ.get("NEPHROSEG_SHARED_DIR_DEFAULT")):
        if d and os.path.isdir(os.path.join(d, "golden", "models")):
            return d
    return None


def cli():
    return os.environ.get("NEPHROSEG_CLI", "")


# ---- a small PNG reader (8-bit grey / RGB / RGBA, not interlaced): no PIL needed ------

def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (0, 2, 6), (path, depth, colour)
            channels = {0: 1, 2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line[::channels]))  # first channel
        prev = line
    return width, height, rows


def foreground(path):
    """The set of (x, y) with a non-zero first channel."""
    w, h, rows = read_png(path)
    return {(x, y) for y in range(h) for x in range(w) if rows[y][x]}


# ---- fixtures ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def setup():
    shared = shared_dir()
    if not shared:
        pytest.skip("needs ../shared (golden tiny models); absent in a fresh clone without it")
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(tool):
            pytest.skip(f"needs {tool} (Debian packages chromium, chromium-driver)")
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        pytest.skip("needs python3-selenium")
    assert cli() and os.path.exists(cli()), "NEPHROSEG_CLI must name the nephroseg binary"
    work = tempfile.mkdtemp(prefix="nephroseg_test_wb_")
    artifacts = os.environ.get("NEPHROSEG_ARTIFACTS") or os.path.join(
        os.path.dirname(cli()), "artifacts", "workbench")
    os.makedirs(artifacts, exist_ok=True)
    server = None
    try:
        root = os.path.join(work, "micrographs")
        phantoms = os.path.join(work, "phantoms")
        subprocess.run([cli(), "phantom", "--out", phantoms, "--count", "5", "--size", "384", "--seed", "3"],
                       check=True, capture_output=True, timeout=120)
        for sub in ("reference", "targets", "truth"):
            os.makedirs(os.path.join(root, sub))
        shutil.copy(os.path.join(phantoms, "images", "phantom_3.png"), os.path.join(root, "reference", "ref.png"))
        for i in range(4, 8):
            shutil.copy(os.path.join(phantoms, "images", f"phantom_{i}.png"), os.path.join(root, "targets"))
            shutil.copy(os.path.join(phantoms, "masks", f"phantom_{i}.png"), os.path.join(root, "truth"))
        os.symlink(work, os.path.join(root, "outside"))  # a link out of the root
        models = os.path.join(shared, "golden", "models")
        weights = os.path.join(work, "weights.json")
        json.dump([{"name": "tiny", "kind": "sam", "checkpoint": os.path.join(models, "sam_tiny.pth"),
                    "model_config": os.path.join(models, "sam_tiny.json")},
                   {"name": "tinydino", "kind": "dinov2", "checkpoint": os.path.join(models, "dinov2_tiny.pth"),
                    "model_config": os.path.join(models, "dinov2_tiny.json")}], open(weights, "w"))
        log = open(os.path.join(work, "serve.log"), "w+")
        server = subprocess.Popen([cli(), "serve", "--root", root, "--weights", weights, "--port", "0",
                                   "--token", TOKEN], stderr=log, stdout=log)
        port = None
        for _ in range(300):
            log.seek(0)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", log.read())
            if m:
                port = int(m.group(1))
                break
            assert server.poll() is None, "the server stopped: " + open(log.name).read()
            time.sleep(0.1)
        assert port, "the server did not say its port"
        yield {"work": work, "root": root, "phantoms": phantoms, "port": port, "artifacts": artifacts,
               "base": f"http://127.0.0.1:{port}/{TOKEN}/"}
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(setup):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1360,860",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 f"--user-data-dir={os.path.join(setup['work'], 'profile')}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as e:  # the browser cannot start here (no display libraries, ...)
        pytest.skip(f"chromium could not be started through chromedriver: {e}")
    driver.set_script_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


# ---- helpers -----------------------------------------------------------------------

def api(setup, route, body=None):
    req = urllib.request.Request(setup["base"] + "api/" + route,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        data = r.read()
        return json.loads(data) if "json" in r.headers.get("Content-Type", "") else data


def wait_for(driver, script, timeout=120, what=""):
    end = time.time() + timeout
    while time.time() < end:
        value = driver.execute_script("return " + script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or script}: status '"
                         + driver.execute_script("return document.getElementById('status').textContent") + "'")


def shot(driver, setup, name):
    path = os.path.join(setup["artifacts"], f"workbench-{name}.png")
    driver.save_screenshot(path)
    print(f"screenshot: {path}")


def click_image(driver, x, y, hold_to=None):
    """A real mouse click (or drag to hold_to) at image pixel (x, y) on the map."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    m = driver.find_element(By.ID, "map")
    size = m.size
    cx, cy = driver.execute_script(f"return window.nephroseg.imageToContainer({x}, {y})")
    chain = ActionChains(driver).move_to_element_with_offset(m, int(cx - size["width"] / 2), int(cy - size["height"] / 2))
    if hold_to is None:
        chain.click().perform()
        return
    chain.click_and_hold()
    tx, ty = driver.execute_script(f"return window.nephroseg.imageToContainer({hold_to[0]}, {hold_to[1]})")
    steps = 6
    for k in range(1, steps + 1):
        chain.move_by_offset(int((tx - cx) / steps), int((ty - cy) / steps))
    chain.release().perform()


def inner_points(mask_path, count):
    """Points well inside the mask's foreground, spread along it."""
    fg = foreground(mask_path)
    inner = sorted(p for p in fg if all((p[0] + dx, p[1] + dy) in fg for dx in (-3, 0, 3) for dy in (-3, 0, 3)))
    assert len(inner) > 50, "the phantom mask has no thick part"
    return [inner[(k + 1) * len(inner) // (count + 1)] for k in range(count)]


def temporaries(folder):
    return [f for _, _, files in os.walk(folder) for f in files if f.startswith(".tmp-")]


# ---- the session -------------------------------------------------------------------

def test_the_five_steps_in_a_browser(setup, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    d = browser
    d.get(setup["base"])
    wait_for(d, "window.nephroseg && window.nephroseg.ready", what="the page to load its roots and models")

    # 1 Browse: the reference folder, its thumbnail, the image in the viewer.
    d.find_element(By.CSS_SELECTOR, '#folders div[data-path="micrographs/reference"]').click()
    wait_for(d, "document.querySelectorAll('#images .thumb').length === 1", what="the thumbnail")
    wait_for(d, "document.querySelector('#images .thumb .meta').textContent.includes('384x384')", what="image info")
    d.find_element(By.CSS_SELECTOR, "#images .thumb").click()
    wait_for(d, "window.nephroseg.state.info && window.nephroseg.state.info.width === 384", what="the viewer")
    time.sleep(1.0)
    shot(d, setup, "1-browse")

    # 2 Annotate: two clicks on the membrane and one brush stroke, then save.
    d.find_element(By.ID, "step-annotate").click()
    Select(d.find_element(By.ID, "annotate-model")).select_by_value("tiny")
    ref_mask = os.path.join(setup["phantoms"], "masks", "phantom_3.png")
    (x1, y1), (x2, y2) = inner_points(ref_mask, 2)
    click_image(d, x1, y1)
    wait_for(d, "window.nephroseg.state.version === 1 && window.nephrosegLatencies.length === 1", what="click 1")
    click_image(d, x2, y2)
    wait_for(d, "window.nephroseg.state.version === 2 && window.nephrosegLatencies.length === 2", what="click 2")
    d.find_element(By.TAG_NAME, "body").send_keys("r")  # the brush, by its shortcut
    click_image(d, 40, 40, hold_to=(90, 60))
    wait_for(d, "window.nephroseg.state.version === 3", what="the brush stroke")
    time.sleep(0.5)
    shot(d, setup, "2-annotate")
    clicks = d.execute_script("return window.nephroseg.state.points")
    strokes = d.execute_script("return window.nephroseg.state.strokes")
    assert len(clicks) == 2 and len(strokes) == 1
    d.find_element(By.ID, "save-reference").click()
    wait_for(d, "window.nephroseg.state.references.length === 1", what="the saved reference")
    saved = os.path.join(setup["root"], "reference", "ref.mask.png")
    assert os.path.exists(saved)

    # The saved PNG is the mask the API gives for the same clicks and stroke.
    s = api(setup, "annotate/start", {"path": "micrographs/reference/ref.png", "model": "tiny"})
    for k in range(1, len(clicks) + 1):
        api(setup, "annotate/click", {"session": s["session"], "points": clicks[:k]})
    api(setup, "annotate/brush", dict(strokes[0], session=s["session"]))
    replay = os.path.join(setup["work"], "replay.png")
    open(replay, "wb").write(api(setup, "annotate/mask?session=" + s["session"]))
    assert foreground(saved) == foreground(replay)
    assert 0 < len(foreground(saved)) < 384 * 384

    # 3 Run GBMSeg on the 4 targets of the targets folder.
    d.find_element(By.ID, "step-browse").click()
    d.find_element(By.CSS_SELECTOR, '#folders div[data-path="micrographs"]').click() if d.find_elements(
        By.CSS_SELECTOR, '#folders div[data-path="micrographs"]') else None
    d.execute_script("window.nephroseg.browse('micrographs/targets')")
    wait_for(d, "document.querySelectorAll('#images .thumb').length === 4", what="the 4 targets")
    d.find_element(By.ID, "step-run").click()
    Select(d.find_element(By.ID, "run-features")).select_by_value("tinydino")
    Select(d.find_element(By.ID, "run-segmenter")).select_by_value("tiny")
    d.find_element(By.ID, "run-nm").send_keys(str(NM_PER_PIXEL))
    d.find_element(By.ID, "run-truth").send_keys("micrographs/truth")
    out = d.find_element(By.ID, "run-out")
    out.clear()
    out.send_keys("micrographs/run1")
    d.find_element(By.ID, "run-start").click()
    wait_for(d, "document.getElementById('run-progress').value >= 1", timeout=300, what="the first result")
    shot(d, setup, "3-run")
    wait_for(d, "document.querySelectorAll('#review-table tr[data-name]').length === 4", timeout=600,
             what="the review table")
    time.sleep(1.0)
    run_dir = os.path.join(setup["root"], "run1")
    rows = [r for r in open(os.path.join(run_dir, "summary.csv")).read().splitlines()[1:] if not r.startswith("mean,")]
    assert len(rows) == 4

    # 4 Review: the worst first (Dice ascending), corrected with one click, saved.
    run = api(setup, "run?path=micrographs/run1")
    worst = min(run["rows"], key=lambda r: r["dice"])["name"]
    assert d.execute_script("return window.nephroseg.state.rows[window.nephroseg.state.current].name") == worst
    shot(d, setup, "4-review")
    d.find_element(By.ID, "correct").click()
    wait_for(d, "window.nephroseg.state.correcting && window.nephroseg.state.session", what="the correction session")
    d.find_element(By.TAG_NAME, "body").send_keys("p")
    (cx, cy), = inner_points(os.path.join(setup["root"], "truth", worst + ".png"), 1)
    click_image(d, cx, cy)
    wait_for(d, "!document.getElementById('save-correction').disabled", what="the corrected mask")
    d.find_element(By.ID, "save-correction").click()
    wait_for(d, f"window.nephroseg.state.rows.find(r => r.name === '{worst}').edited === true", what="the saved correction")
    time.sleep(1.0)
    shot(d, setup, "5-correct")

    # The corrected row: thickness equal to `nephroseg measure` on the saved mask.
    mask = os.path.join(run_dir, worst + ".png")
    assert os.path.exists(os.path.join(run_dir, worst + ".auto.png"))
    measured = os.path.join(setup["work"], "measured")
    subprocess.run([cli(), "measure", "--mask", mask, "--nm-per-pixel", str(NM_PER_PIXEL), "--out", measured],
                   check=True, capture_output=True, timeout=300)
    item = json.load(open(os.path.join(measured, "summary.json")))["images"][0]
    row = next(r for r in api(setup, "run?path=micrographs/run1")["rows"] if r["name"] == worst)
    assert row["edited"] is True
    assert row["thickness_oi_harmonic_3d_nm"] == pytest.approx(item["oi_stereological_harmonic_nm"], rel=1e-9)
    assert row["thickness_direct_mean_nm"] == pytest.approx(item["direct_mean_nm"], rel=1e-9)
    assert row["thickness_class"] == item["class"]

    # 5 Export: the links of the page.
    d.find_element(By.ID, "step-export").click()
    shot(d, setup, "6-export")
    csv_url = d.find_element(By.ID, "export-csv").get_attribute("href")
    zip_url = d.find_element(By.ID, "export-zip").get_attribute("href")
    csv_text = urllib.request.urlopen(csv_url, timeout=60).read().decode()
    header = csv_text.splitlines()[0].split(",")
    assert header[-2:] == ["edited", "review"]
    edited = {line.split(",")[0]: line.split(",")[-2] for line in csv_text.splitlines()[1:]}
    assert edited[worst] == "1" and sum(v == "1" for v in edited.values()) == 1
    zpath = os.path.join(setup["work"], "masks.zip")
    open(zpath, "wb").write(urllib.request.urlopen(zip_url, timeout=60).read())
    with zipfile.ZipFile(zpath) as z:
        assert z.testzip() is None
        names = set(z.namelist())
    assert names == {r.split(",")[0] + ".png" for r in rows} | {worst + ".auto.png"}
    assert temporaries(setup["root"]) == []

    latencies = d.execute_script("return window.nephrosegLatencies")
    print("click-to-mask latency in the browser (ms, cached view after the first):",
          ", ".join(f"{v:.0f}" for v in latencies))


def test_path_rules_from_the_page(setup, browser):
    """The page's own fetch: paths out of the roots are 403, with the token prefix kept."""
    d = browser
    d.get(setup["base"])
    wait_for(d, "window.nephroseg && window.nephroseg.ready")
    for path in ("micrographs/../x", "/etc", "micrographs/outside", "elsewhere/x"):
        status = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('api/list?path=' + encodeURIComponent(arguments[0])).then(r => done(r.status));", path)
        assert status == 403, path
    # Without the token nothing is served.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{setup['port']}/api/roots", timeout=30)
    assert e.value.code == 401
