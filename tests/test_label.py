"""``attpc-classify label``: the labels file, the order, the page (in a real browser).

The model is a tiny CNN trained once on the synthetic image file; the run file the page
shows is written by the real Spyral writer of tests/_formats.py. Expected orders, joins
and probabilities are computed here independently (numpy sorts, the csv module,
``classify``'s own output), never by the function under test.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
import urllib.error
import urllib.request

import h5py
import numpy as np
import pytest
from _formats import write_spyral
from _synthetic import make_events, make_image_file, train_tiny_cnn

from attpc_classify.cli import main
from attpc_classify.label import ranking
from attpc_classify.label.server import make_server, serve_in_thread, url
from attpc_classify.label.session import Session, Settings
from attpc_classify.label.store import COLUMNS, LabelStore, apply_labels
from attpc_classify.predict import read_predictions
from data_prep.events import CLASS_NAMES, Event


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 3-class CNN (2 epochs on 3 x 40 synthetic events) and a run file of 30 events."""
    root = tmp_path_factory.mktemp("label")
    train = make_image_file(root / "train.h5", n_per_class=40, seed=0)
    run = root / "runs" / "cnn"
    train_tiny_cnn(train, run)
    clouds, _ = make_events(10, np.random.default_rng(1))
    events = [Event(run=7, event_id=100 + i, points=p) for i, p in enumerate(clouds)]
    raw = write_spyral(root / "run_0007.h5", events, labels=False)
    return {"root": root, "run": run, "raw": raw, "n": len(events)}


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------- ranking


def test_uncertain_order_is_lowest_margin_first_with_a_random_share():
    rng = np.random.default_rng(3)
    proba = rng.dirichlet(np.ones(3), size=40)
    # margin by hand: the two largest of each row
    by_hand = np.array([sorted(p)[-1] - sorted(p)[-2] for p in proba])
    everything = np.arange(40)
    plain = ranking.order(everything, "uncertain", proba=proba, random_share=0.0)
    np.testing.assert_array_equal(plain, np.argsort(by_hand, kind="stable"))

    mixed = ranking.order(everything, "uncertain", proba=proba, random_share=0.25, seed=1)
    assert sorted(mixed.tolist()) == list(range(40))  # every event exactly once
    # the non-random places (all but every 4th) keep ascending margin among themselves
    ranked_places = [p for s, p in enumerate(mixed.tolist()) if s % 4 != 3]
    assert list(np.diff(by_hand[ranked_places]) >= 0) == [True] * (len(ranked_places) - 1)
    # the random places are not simply the next in margin order
    assert mixed.tolist() != plain.tolist()
    # same seed, same order (resume shows the same queue)
    again = ranking.order(everything, "uncertain", proba=proba, random_share=0.25, seed=1)
    np.testing.assert_array_equal(mixed, again)


def test_filters_by_predicted_class_and_probability():
    proba = np.array([[0.7, 0.2, 0.1], [0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.5, 0.1, 0.4]])
    predicted = proba.argmax(1)
    p_pred = proba.max(1)
    # "events called proton with p < 0.8": rows 0 and 3
    got = ranking.select(predicted, p_pred, 4, only=[0], p_range=(0.0, 0.8))
    assert got.tolist() == [0, 3]


# ------------------------------------------------------------------------- store


def test_labels_file_is_rewritten_per_label_and_resumed(tmp_path):
    path = tmp_path / "labels.csv"
    store = LabelStore(path, CLASS_NAMES, "ada")
    store.set(7, 5, "proton")
    store.set(7, 9, "carbon")
    store.set(7, 5, "other")  # a second label of the same event replaces the first
    rows = _rows(path)
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["run"], r["event_id"], r["label"], r["labeller"]) for r in rows] == [
        ("7", "5", "other", "ada"),
        ("7", "9", "carbon", "ada"),
    ]
    assert not list(tmp_path.glob(".labels.csv.tmp-*"))  # nothing left behind
    again = LabelStore(path, CLASS_NAMES, "bob")
    assert len(again) == 2 and again.get(7, 9) == "carbon"
    path.write_text("run,event_id,label,labeller,time\n7,1,pion,x,t\n")
    with pytest.raises(Exception, match="line 2: label 'pion'"):
        LabelStore(path, CLASS_NAMES, "ada")


def test_write_images_joins_labels_by_run_and_event(tmp_path, capsys):
    images = make_image_file(tmp_path / "real.h5", n_per_class=5, seed=4, run=12)
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "run,event_id,label,labeller,time\n12,3,carbon,a,t\n12,0,proton,a,t\n99,0,other,a,t\n"
    )
    out = tmp_path / "real_labelled.h5"
    assert main(["label", str(images), "--labels", str(labels), "--write-images", str(out)]) == 0
    assert "2 events labelled, 13 without a label (-1), 1 label rows" in capsys.readouterr().out
    with h5py.File(out) as f, h5py.File(images) as g:
        np.testing.assert_array_equal(f["images"][()], g["images"][()])
        ids, label = f["event_id"][()].tolist(), f["label"][()].tolist()
    expected = {3: 1, 0: 0}  # carbon = 1, proton = 0 in CLASS_NAMES
    assert label == [expected.get(i, -1) for i in ids]
    # train reads the joined labels: 2 labelled events, the rest left out
    counts = apply_labels(images, labels, tmp_path / "again.h5")
    assert counts == {"labelled": 2, "unlabelled": 13, "not_found": 1}


# ------------------------------------------------------------------------- session


def test_session_probabilities_are_classify_s(setup, tmp_path):
    """The page's probabilities come from the run's preprocessing: the same as `classify`."""
    out = tmp_path / "p.csv"
    assert (
        main(["classify", str(setup["run"]), str(setup["raw"]), "--out", str(out), "--quiet"]) == 0
    )
    pred = read_predictions(out)
    session = Session.open([setup["raw"]], tmp_path / "l.csv", model=setup["run"])
    try:
        np.testing.assert_array_equal(session.event_id, pred["event_id"])
        got = session.proba
        want = np.column_stack([pred[f"p_{c}"] for c in CLASS_NAMES])
        np.testing.assert_allclose(got, want, atol=2e-6)
        p_sorted = np.sort(want, axis=1)
        margin = p_sorted[:, -1] - p_sorted[:, -2]
        first = session.queue[0]  # the first place is the lowest margin (not a random one)
        assert margin[first] == pytest.approx(margin.min(), abs=2e-6)
    finally:
        session.close()


def test_image_files_are_scored_and_shown_as_stored(setup, tmp_path):
    images = make_image_file(tmp_path / "real.h5", n_per_class=4, seed=5, run=3)
    out = tmp_path / "p.csv"
    assert main(["classify", str(setup["run"]), str(images), "--out", str(out), "--quiet"]) == 0
    pred = read_predictions(out)
    session = Session.open([images], tmp_path / "l.csv", model=setup["run"])
    try:
        want = np.column_stack([pred[f"p_{c}"] for c in CLASS_NAMES])
        np.testing.assert_allclose(session.proba, want, atol=2e-6)
        item = session.item(0)
        assert "points" not in item and item["views_png"].startswith("data:image/png")
        assert item["run"] == 3
    finally:
        session.close()


def test_cli_errors_are_one_line(setup, tmp_path, capsys):
    rc = main(["label", str(tmp_path / "missing.h5"), "--labels", str(tmp_path / "l.csv")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "missing.h5" in err and "\n" not in err
    rc = main(["label", str(setup["raw"]), "--labels", str(tmp_path / "l.csv"), "--order",
               "uncertain"])  # fmt: skip
    assert rc == 2 and "needs a model" in capsys.readouterr().err
    rc = main(["label", str(setup["raw"]), "--labels", str(tmp_path / "l.csv"),
               "--model", str(setup["run"]), "--predicted", "pion"])  # fmt: skip
    assert rc == 2 and "'pion' is not an output" in capsys.readouterr().err


def test_server_refuses_everything_but_its_routes(setup, tmp_path):
    session = Session.open([setup["raw"]], tmp_path / "l.csv", settings=Settings(order="file"))
    lines: list[str] = []
    server = make_server(session, log=lines.append)
    serve_in_thread(server)
    base = url(server)
    try:
        assert base.startswith("http://127.0.0.1:")
        for path in ("static/../../etc/passwd", "static/%2e%2e%2fetc%2fpasswd", "etc/passwd",
                     f"static/{setup['raw']}", "api/item/99", "api/item/x"):  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(base + path)
            assert info.value.code in (400, 403, 404)
            assert "error" in json.loads(info.value.read())
        assert len(lines) == 6 and all(line.startswith("error: ") for line in lines)
        item = json.loads(urllib.request.urlopen(base + "api/item/0").read())
        assert (item["run"], item["event_id"]) == (7, 100)  # file order
        assert item["views_png"].startswith("data:image/png;base64,")
        assert len(item["points"]["x"]) == item["n_points"]
    finally:
        server.shutdown()
        session.close()


# ------------------------------------------------------------------------- browser


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    if shutil.which("chromedriver") is None or shutil.which("chromium") is None:
        pytest.skip("chromium / chromium-driver not installed (make install gets them)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def _wait(driver, what, timeout: float = 15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = what(driver)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("page did not get there in time")


def test_label_events_by_key_press_in_a_real_browser(setup, tmp_path):
    """Label by keys in headless Chromium; check the CSV, resume and the error message."""
    from selenium.webdriver.common.by import By

    labels = tmp_path / "labels.csv"
    session = Session.open([setup["raw"]], labels, model=setup["run"],
                           settings=Settings(labeller="tester"))  # fmt: skip
    lines: list[str] = []
    server = make_server(session, log=lines.append)
    serve_in_thread(server)
    queue = [(7, int(session.event_id[i])) for i in session.queue]
    driver = _browser()
    try:
        driver.get(url(server))
        body = driver.find_element(By.TAG_NAME, "body")

        def at(slot):
            return lambda d: body.get_attribute("data-slot") == str(slot)

        _wait(driver, at(0))
        assert body.get_attribute("data-event") == f"7:{queue[0][1]}"
        # the 3-D view was drawn by plotly (served locally) and the views image loaded
        assert driver.find_elements(By.CSS_SELECTOR, "#cloud .main-svg")
        assert driver.execute_script("return document.getElementById('views').naturalWidth") > 0
        proba_text = driver.find_element(By.ID, "proba").text
        assert "model says" in proba_text
        for key, slot in (("p", 1), ("c", 2), ("s", 3), ("o", 4), ("b", 3), ("3", 4)):
            body.send_keys(key)
            _wait(driver, at(slot))
        rows = _rows(labels)
        got = [(int(r["run"]), int(r["event_id"]), r["label"], r["labeller"]) for r in rows]
        assert got == [
            (*queue[0], "proton", "tester"),
            (*queue[1], "carbon", "tester"),
            (*queue[3], "other", "tester"),
        ]
        # back (b) went to place 3 and '3' relabelled it "other" again: still 3 rows
        # a fresh page resumes at the first place not labelled: 2 (skipped before)
        driver.get(url(server))
        body = driver.find_element(By.TAG_NAME, "body")
        _wait(driver, at(2))
        # the labels file cannot be written (a directory took its name): the page says so
        labels.unlink()
        labels.mkdir()
        body.send_keys("p")
        message = _wait(driver, lambda d: d.find_element(By.ID, "message").text)
        assert "cannot save labels" in message and str(labels) in message
        assert lines and "cannot save labels" in lines[-1]
    finally:
        driver.quit()
        server.shutdown()
        session.close()
