"""Documents and their loaders: BEIR corpus files, folders of text files, and what a Document
refuses."""

import gzip
import logging
import os
import threading

import pytest

from evals.datasets import load_beir
from rag.documents import (
    Document,
    documents_from_beir,
    documents_from_folder,
    read_beir_corpus,
)
from rag.errors import DocumentError
from tests.beir_folder import write_beir_folder

CORPUS = {
    "d1": {"title": "Green tea", "text": "Green tea contains catechins."},
    "d2": {"text": "A bicycle chain needs oil."},  # no title, as in some real corpora
    "d3": {"title": "Moon", "text": "The Moon orbits the Earth\u2028every 27 days."},
}


def test_the_corpus_reads_as_load_beir_reads_it(tmp_path):
    folder = write_beir_folder(tmp_path / "full", CORPUS, {"q1": "tea"}, {"q1": {"d1": 1}})
    assert read_beir_corpus(folder) == load_beir(folder, split="test").corpus


def test_a_corpus_alone_is_enough_plain_or_gzipped(tmp_path):
    # indexing went through load_beir, which also wants queries.jsonl and qrels/test.tsv
    folder = write_beir_folder(tmp_path / "full", CORPUS, {"q1": "tea"}, {"q1": {"d1": 1}})
    expected = read_beir_corpus(folder)
    plain, gzipped = tmp_path / "plain", tmp_path / "gzipped"
    plain.mkdir(), gzipped.mkdir()
    (plain / "corpus.jsonl").write_bytes((folder / "corpus.jsonl").read_bytes())
    (gzipped / "corpus.jsonl.gz").write_bytes(gzip.compress((folder / "corpus.jsonl").read_bytes()))
    assert read_beir_corpus(plain) == read_beir_corpus(gzipped) == expected
    assert [d.doc_id for d in documents_from_beir(read_beir_corpus(plain))] == ["d1", "d2", "d3"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"_id": "d1", "text": "ok"}\n{not json\n', "line 2, is not a BEIR corpus record"),
        (b'{"text": "no id"}\n', "line 1, is not a BEIR corpus record.*KeyError"),
        (b'["a", "list"]\n', "line 1, is not a BEIR corpus record"),
        (b'{"_id": "d1", "title": 7, "text": "x"}\n', "title and text must be strings"),
        (b'{"_id": "d1", "text": "caf\xe9"}\n', "line 1, is not a BEIR corpus record"),
    ],
)
def test_a_bad_corpus_line_is_a_document_error_naming_the_line(tmp_path, content, message):
    (tmp_path / "corpus.jsonl").write_bytes(content)
    with pytest.raises(DocumentError, match=message):
        read_beir_corpus(tmp_path)


def test_a_damaged_gzip_corpus_is_a_document_error(tmp_path):
    data = gzip.compress(b'{"_id": "d1", "text": "ok"}\n' * 1000)
    (tmp_path / "corpus.jsonl.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DocumentError, match=r"corpus\.jsonl\.gz cannot be read"):
        read_beir_corpus(tmp_path)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"doc_id": "d\udce9", "text": "latin-1 bytes in a file name"}, "doc_id"),
        ({"doc_id": "d", "title": "cut \ud83d", "text": "x"}, "title"),
        ({"doc_id": "d", "text": "cut emoji \ud83d here"}, "text"),
        ({"doc_id": "d", "text": "x", "metadata": {"source": ["\udfff"]}}, "metadata"),
    ],
)
def test_text_that_utf8_cannot_encode_is_refused_naming_the_document(fields, where):
    # a lone surrogate passed, then crashed the corpus checksum or the index writer with a
    # UnicodeEncodeError that named no document
    with pytest.raises(DocumentError, match=f"its {where}.* holds .* lone surrogate") as info:
        Document(**fields)
    assert info.value.doc_id == fields["doc_id"]


def test_a_corpus_holding_half_an_emoji_names_the_document(tmp_path):
    # json.loads turns the escape "\ud83d" (an emoji cut in half by JavaScript) into a surrogate
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "ok", "text": "fine"}\n{"_id": "cut", "text": "half an emoji \\ud83d"}\n'
    )
    with pytest.raises(DocumentError, match="document 'cut': its text holds '\\\\ud83d'"):
        documents_from_beir(read_beir_corpus(tmp_path))


@pytest.fixture
def handbook(tmp_path):
    """A docs folder beside a private file, as in a cloned repository."""
    (tmp_path / "secret.env").write_text("DB_PASSWORD=hunter2\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "readme.md").write_text("# Welcome\nOur public handbook.\n")
    return docs


def test_a_symlink_out_of_the_folder_is_skipped_with_a_warning(handbook, caplog):
    # it was indexed like any document, then shown by search and sent to the model by ask
    (handbook / "notes.txt").symlink_to("../secret.env")
    outside = handbook.parent / "elsewhere"
    outside.mkdir()
    (outside / "private.md").write_text("# Private\nnot part of the handbook\n")
    (handbook / "linked").symlink_to(outside, target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="rag.documents"):
        docs = documents_from_folder(handbook)
    assert [d.doc_id for d in docs] == ["readme.md"]
    assert not any("hunter2" in d.text for d in docs)
    assert "notes.txt: it resolves to" in caplog.text and "outside" in caplog.text


def test_a_symlink_inside_the_folder_is_read_once(handbook):
    (handbook / "latest.md").symlink_to("readme.md")  # the file is read under its own path
    (handbook / "guide.rst").write_text("Read the handbook first.\n")
    (handbook / "guide.md").symlink_to("guide.rst")  # the only name with a text suffix
    (handbook / "loop.md").symlink_to("loop.md")  # a loop is skipped (it was an OSError)
    docs = {d.doc_id: d.text for d in documents_from_folder(handbook)}
    assert docs == {
        "guide.md": "Read the handbook first.\n",
        "readme.md": "# Welcome\nOur public handbook.\n",
    }


def test_a_folder_named_like_a_text_file_is_skipped_and_its_files_read(handbook):
    # a Hugo page bundle: ended in an IsADirectoryError traceback
    (handbook / "guide.md").mkdir()
    (handbook / "guide.md" / "part.txt").write_text("Inside the bundle.")
    assert [d.doc_id for d in documents_from_folder(handbook)] == ["guide.md/part.txt", "readme.md"]


def test_a_named_pipe_is_skipped_not_waited_on(handbook):
    # opening a FIFO for reading blocked until a writer came: the load hung forever
    os.mkfifo(handbook / "pipe.txt")
    found = []
    worker = threading.Thread(target=lambda: found.extend(documents_from_folder(handbook)))
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # unblock the old code so the test run can end
        with open(handbook / "pipe.txt", "w"):
            pass
        worker.join()
        pytest.fail("documents_from_folder blocked on a named pipe")
    assert [d.doc_id for d in found] == ["readme.md"]
