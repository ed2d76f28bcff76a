"""Dataset resolution, verification, download and the real loaders."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import pytest

from evals import datasets
from evals.datasets import DatasetSpec, FileSpec, load_beir, resolve
from evals.errors import DatasetIntegrityError, DatasetNotFoundError, UnknownDatasetError
from tests.beir_folder import write_beir_folder

TOY_CONTENT = b"a,b\n1,2\n3,4\n"


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """A registered two-row dataset whose canonical source is a zip on a loopback HTTP server."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("toy/data.csv", TOY_CONTENT)
    payloads = {"/toy.zip": archive.getvalue(), "/bad.zip": _zip(b"a,b\n9,9\n")}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/cut.zip":  # promises the whole zip, sends 5 bytes, hangs up
                self.send_response(200)
                self.send_header("Content-Length", str(len(payloads["/toy.zip"])))
                self.end_headers()
                self.wfile.write(payloads["/toy.zip"][:5])
                self.close_connection = True
                return
            body = payloads.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    spec = DatasetSpec(
        name="toy",
        description="toy",
        files=(FileSpec("data.csv", hashlib.sha256(TOY_CONTENT).hexdigest(), rows=2),),
        url=f"{url}/toy.zip",
        archive_prefix="toy/",
    )
    monkeypatch.setitem(datasets.DATASETS, "toy", spec)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AIS_DATA_DIR", raising=False)
    monkeypatch.delenv("AIS_NO_DOWNLOAD", raising=False)
    yield spec, url
    server.shutdown()


def _zip(content: bytes) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("toy/data.csv", content)
    return archive.getvalue()


def _place(folder: Path, content: bytes = TOY_CONTENT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.csv").write_bytes(content)
    return folder


def test_explicit_dir_wins_over_env_and_both_layouts_work(toy, tmp_path, monkeypatch):
    explicit = _place(tmp_path / "explicit" / "toy")
    env = _place(tmp_path / "env" / "toy")
    monkeypatch.setenv("AIS_DATA_DIR", str(tmp_path / "env"))
    assert resolve("toy", tmp_path / "explicit") == explicit
    assert resolve("toy") == env
    assert resolve("toy", explicit) == explicit  # a folder that holds the files itself


def test_an_explicit_dir_without_the_data_is_an_error_not_a_fallback(toy, tmp_path, monkeypatch):
    _place(tmp_path / "env" / "toy")
    monkeypatch.setenv("AIS_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError, match="used as given") as info:
        resolve("toy", tmp_path / "typo")  # the env folder and a download would both work
    assert str(tmp_path / "typo") in str(info.value)
    assert str(tmp_path / "env") not in str(info.value)
    assert not (tmp_path / "cache").exists()  # nothing was downloaded


def test_download_is_verified_and_cached(toy, tmp_path):
    folder = resolve("toy")
    assert folder == tmp_path / "cache" / "ai-interview-systems" / "toy"
    assert (folder / "data.csv").read_bytes() == TOY_CONTENT
    assert resolve("toy", download=False) == folder  # now served from the cache


def test_a_download_with_the_wrong_checksum_never_becomes_a_cache_entry(toy, tmp_path, monkeypatch):
    spec, url = toy
    monkeypatch.setitem(
        datasets.DATASETS, "toy", DatasetSpec(**{**spec.__dict__, "url": f"{url}/bad.zip"})
    )
    with pytest.raises(DatasetIntegrityError, match="sha256"):
        resolve("toy")
    cache = tmp_path / "cache" / "ai-interview-systems"
    assert not (cache / "toy").exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".toy")]  # no staging left behind


def test_offline_with_no_data_names_the_dataset_the_places_and_the_fix(toy, tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        resolve("toy", tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert "'toy'" in message and str(tmp_path / "nowhere") in message and "--data-dir" in message


def test_unreachable_source_is_a_not_found_error(toy, monkeypatch):
    spec, _ = toy
    dead = DatasetSpec(**{**spec.__dict__, "url": "http://127.0.0.1:9/toy.zip"})
    monkeypatch.setitem(datasets.DATASETS, "toy", dead)
    with pytest.raises(DatasetNotFoundError, match="failed from"):
        resolve("toy")


def test_a_download_cut_short_is_a_not_found_error_and_leaves_no_cache_entry(toy, monkeypatch):
    # urllib raises http.client.IncompleteRead here, which is not an OSError
    spec, url = toy
    cut = DatasetSpec(**{**spec.__dict__, "url": f"{url}/cut.zip"})
    monkeypatch.setitem(datasets.DATASETS, "toy", cut)
    with pytest.raises(DatasetNotFoundError, match=r"failed from .*IncompleteRead"):
        resolve("toy")
    monkeypatch.setitem(datasets.DATASETS, "toy", spec)
    assert resolve("toy").joinpath("data.csv").read_bytes() == TOY_CONTENT


def test_a_corrupt_local_file_is_refused(toy, tmp_path):
    _place(tmp_path / "d" / "toy", b"a,b\n1,2\n3,5\n")
    with pytest.raises(DatasetIntegrityError, match="expected"):
        resolve("toy", tmp_path / "d")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(UnknownDatasetError, match="scifact"):
        resolve("imagenet")


def test_a_user_beir_folder_loads_without_checksums(tmp_path):
    # written by hand, not with write_beir_folder: a user's own tools may leave out the final
    # newline and end lines in CRLF, and the loader must read such a folder too
    (tmp_path / "qrels").mkdir()
    docs = [{"_id": "d1", "title": "T", "text": "alpha"}, {"_id": "d2", "text": "beta"}]
    (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (tmp_path / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "alpha?"}) + "\n" + json.dumps({"_id": "q2", "text": "x"})
    )
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\n")
    data = load_beir(tmp_path)
    assert data.corpus["d2"] == {"title": "", "text": "beta"}
    assert data.queries == {"q1": "alpha?"} and data.qrels == {"q1": {"d1": 1}}
    assert len(data.all_queries) == 2


def _good_folder(folder: Path) -> None:
    """One document, one query, one judgment: a test then damages one of its files."""
    write_beir_folder(folder, {"d1": {"text": "a"}}, {"q1": "a"}, {"q1": {"d1": 1}})


def test_a_beir_folder_with_a_malformed_qrels_line_is_refused(tmp_path):
    _good_folder(tmp_path)
    (tmp_path / "qrels" / "test.tsv").write_text("q1 d1 1\n")  # spaces, not tabs
    with pytest.raises(DatasetIntegrityError, match="3 tab-separated"):
        load_beir(tmp_path)


def _corpus_bytes(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


GOOD = json.dumps({"_id": "d1", "text": "a"}).encode()


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        (
            "corpus.jsonl.gz",
            gzip.compress(_corpus_bytes([GOOD] * 50))[:-30],
            "cut short after line",
        ),
        ("corpus.jsonl.gz", b"not gzip at all", "not a readable gzip file"),
        ("corpus.jsonl", _corpus_bytes([GOOD, b"[1, 2]"]), "line 2 is a list, not a JSON object"),
        ("corpus.jsonl", _corpus_bytes([GOOD, b'"d2"']), "line 2 is a str, not a JSON object"),
        ("corpus.jsonl", _corpus_bytes([GOOD, b'{"_id": "d2", "text": "\xff"}']), "line 2 is not"),
        ("queries.jsonl", b'{"_id": "q1", "text": "\xfe"}\n', "line 1 is not UTF-8"),
        ("qrels/test.tsv", b"q1\td1\t1\nq1\td\xff2\t1\n", "line 2 is not UTF-8"),
    ],
    ids=["cut-gzip", "not-gzip", "list-line", "str-line", "bad-utf8", "bad-utf8-query", "qrels"],
)
def test_a_damaged_user_beir_file_is_an_integrity_error_naming_file_and_line(
    tmp_path, file, content, message
):
    _good_folder(tmp_path)
    if file.endswith(".gz"):
        (tmp_path / "corpus.jsonl").unlink()
    (tmp_path / file).write_bytes(content)
    with pytest.raises(DatasetIntegrityError, match=message) as caught:
        load_beir(tmp_path)
    assert caught.value.path == tmp_path / file


# --- the real datasets (read from AIS_DATA_DIR, verified by sha256) -------------------------


@pytest.mark.slow
def test_real_scifact():
    test, train = load_beir("scifact", "test"), load_beir("scifact", "train")
    assert (len(test.corpus), len(test.queries), len(train.queries)) == (5183, 300, 809)
    assert sum(len(j) for j in test.qrels.values()) == 339
    assert not set(test.qrels) & set(train.qrels)


@pytest.mark.slow
def test_real_tabular_datasets():
    ml = datasets.load_movielens_100k()
    assert ml.ratings.shape == (100_000, 4) and ml.users.shape[0] == 943
    assert ml.ratings.groupby("user_id").size().min() == 20
    assert len(ml.genres) == 19 and "Sci-Fi" in ml.items.columns
    bikes = datasets.load_bike_sharing()
    assert (bikes["cnt"] == bikes["casual"] + bikes["registered"]).all()
    tweets = datasets.load_davidson()
    assert tweets["class"].value_counts().to_dict() == {1: 19190, 2: 4163, 0: 1430}


@pytest.mark.slow
def test_loaders_return_fresh_objects():
    a = datasets.load_movielens_100k()
    a.ratings.loc[0, "rating"] = 99
    assert datasets.load_movielens_100k().ratings.loc[0, "rating"] != 99
