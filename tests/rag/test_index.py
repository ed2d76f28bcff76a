import hashlib
import json

import numpy as np
import pytest

from rag.chunking import SentenceChunker, WhitespaceSpans
from rag.config import RagConfig
from rag.documents import Document
from rag.errors import (
    ConfigError,
    DocumentError,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexOverwriteError,
    IndexVersionError,
    IndexWriteError,
)
from rag.hits import Hit
from rag.index import HybridIndex
from rag.retrieval import HybridRetriever

CONFIG = RagConfig(chunker="sentences", sentence_chunk_tokens=8)


def build(docs, embedder):
    index = HybridIndex(embedder, SentenceChunker(WhitespaceSpans(), 8), CONFIG)
    index.upsert(docs)
    return index


def retrievable(index, text):
    """Doc ids either retriever returns for ``text``."""
    r = HybridRetriever(index)
    return {h.doc_id for h in r.bm25(text, 10)} | {h.doc_id for h in r.dense(text, 10)}


def test_both_indexes_hold_the_same_chunks(docs, embedder):
    index = build(docs, embedder)
    assert set(index.bm25._counts) == set(index.chunks) == set(index.dense.ids)
    assert HybridRetriever(index).hybrid("vitamin D cancer", 1)[0].doc_id == "vitd"


def test_update_replaces_the_old_version_everywhere(docs, embedder):
    index = build(docs, embedder)
    report = index.upsert([Document("cats", "Kittens chase laser pointers.", title="Kittens")])
    assert report.replaced == ["cats"] and report.chunks_removed >= 2
    assert index.documents["cats"].version == 2
    assert set(index.bm25._counts) == set(index.chunks) == set(index.dense.ids)
    assert all(cid.startswith("cats@2#") for cid in index.doc_chunks["cats"])
    bm25_hits = HybridRetriever(index).bm25("purr content", 10)
    assert "cats" not in {h.doc_id for h in bm25_hits}  # old text is unreachable
    assert HybridRetriever(index).bm25("laser pointers", 1)[0].doc_id == "cats"
    assert all("purr" not in index.chunks[c].text for c in index.doc_chunks["cats"])


def test_chunk_to_doc_follows_every_change(docs, embedder):
    index = build(docs, embedder)
    before = dict(index.chunk_to_doc)  # built and cached here; every change must refresh it
    index.upsert([Document("cats", "Kittens chase laser pointers.", title="Kittens")])
    index.delete(["vitd"])
    expected = {cid: c.doc_id for cid, c in index.chunks.items()}
    assert index.chunk_to_doc == expected != before
    assert not any(d == "vitd" for d in index.chunk_to_doc.values())


def test_delete_removes_from_both_indexes(docs, embedder):
    index = build(docs, embedder)
    index.delete(["vitd", "no-such-doc"])
    assert "vitd" not in retrievable(index, "vitamin D cancer risk")
    assert not any(c.startswith("vitd@") for c in index.dense.ids)
    assert len(index.documents) == 4


def test_delete_takes_one_id_as_a_string(docs, embedder):
    index = build([*docs, Document("a", "alpha"), Document("b", "beta")], embedder)
    index.upsert([Document("ab", "alpha beta")])
    report = index.delete("ab")  # one id, not the characters "a" and "b"
    assert report.deleted == ["ab"] and {"a", "b"} <= set(index.documents)


def test_bad_documents_are_rejected_before_anything_changes(docs, embedder):
    index = build(docs, embedder)
    before = dict(index.chunks)
    with pytest.raises(DocumentError, match="duplicate"):
        index.upsert([Document("x", "one"), Document("x", "two")])
    with pytest.raises(DocumentError):
        Document("", "no id")
    with pytest.raises(DocumentError):
        Document("empty", "   ")
    with pytest.raises(DocumentError, match="JSON-serialisable"):
        Document("meta", "text", metadata={"when": object()})
    assert index.chunks == before


def test_save_and_load_round_trip(tmp_path, docs, embedder):
    index = build(docs, embedder)
    index.save(tmp_path / "idx")
    loaded = HybridIndex.load(tmp_path / "idx", embedder, tokens=WhitespaceSpans())
    for q in ("dog walks", "vitamin D", "birds eggs"):
        a, b = HybridRetriever(index).hybrid(q, 3), HybridRetriever(loaded).hybrid(q, 3)
        assert [h.doc_id for h in a] == [h.doc_id for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-6)
    index.upsert([Document("new", "Octopuses have three hearts.")])
    index.save(tmp_path / "idx")  # overwrite in place
    again = HybridIndex.load(tmp_path / "idx", embedder, tokens=WhitespaceSpans())
    assert "new" in again.documents and not (tmp_path / "idx.tmp").exists()


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({1: "x"}, "the key 1 \\(int\\), which JSON saves as the string '1'"),
        ({"t": (1, 2)}, r"metadata\['t'\] is a tuple"),
        ({"a": [{"b": (1,)}]}, r"metadata\['a'\]\[0\]\['b'\] is a tuple"),
    ],
)
def test_metadata_that_json_would_change_is_refused(metadata, message):
    # {1: "x", "t": (1, 2)} passed the JSON check and loaded back as {"1": "x", "t": [1, 2]}
    with pytest.raises(DocumentError, match=message):
        Document("meta", "text", metadata=metadata)


def test_metadata_round_trips_through_save_and_load(tmp_path, embedder):
    metadata = {"source": "wiki", "tags": ["a", "b"], "n": 3, "nested": {"ok": [1.5, None]}}
    index = HybridIndex(embedder, SentenceChunker(WhitespaceSpans(), 8), CONFIG)
    index.upsert([Document("a", "cats purr", metadata=metadata)])
    index.save(tmp_path / "idx")
    loaded = HybridIndex.load(tmp_path / "idx", embedder, tokens=WhitespaceSpans())
    assert dict(loaded.documents["a"].metadata) == metadata


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_text_holding_a_unicode_line_separator_loads_back_as_saved(tmp_path, embedder, separator):
    # documents.jsonl keeps these characters raw (ensure_ascii=False) and load split it with
    # str.splitlines(), which splits on them too: the index saved, then never loaded again
    doc = Document("a", f"first line{separator}second line", title=f"Title{separator}two")
    index = HybridIndex(embedder, SentenceChunker(WhitespaceSpans(), 8), CONFIG)
    index.upsert([doc, Document("b", "plain text")])
    index.save(tmp_path / "idx")
    loaded = HybridIndex.load(tmp_path / "idx", embedder, tokens=WhitespaceSpans())
    assert loaded.documents["a"] == doc
    assert [c.text for c in loaded.chunks.values()] == [c.text for c in index.chunks.values()]


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("documents.jsonl", "{not json"),
        ("documents.jsonl", '{"title": "no doc_id"}'),
        ("documents.jsonl", '{"doc_id": " ", "text": "an id Document refuses"}'),
        ("chunks.jsonl", '{"chunk_id": "a#0", "doc_id": "a"}'),
        ("chunks.jsonl", "[1, 2]"),
    ],
)
def test_a_row_that_does_not_parse_is_corrupt_and_names_its_file(saved, embedder, name, line):
    # such a file passed its checksum (the manifest was written for it), then load raised a bare
    # JSONDecodeError, KeyError or DocumentError that named no file
    path = saved / name
    path.write_bytes(path.read_bytes() + line.encode() + b"\n")
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=rf"{name}, line \d+, cannot be read"):
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())


def test_an_index_saved_empty_takes_documents_after_loading(tmp_path, docs, embedder):
    # it reloaded with dim 0 and refused every document: "expected vectors of shape (1, 0)"
    HybridIndex(embedder, SentenceChunker(WhitespaceSpans(), 8), CONFIG).save(tmp_path / "idx")
    loaded = HybridIndex.load(tmp_path / "idx", embedder, tokens=WhitespaceSpans())
    assert loaded.dense is None  # no dimension until the first document, as for a new index
    loaded.upsert(docs)
    assert HybridRetriever(loaded).dense("dog walks", 1)[0].doc_id == "dogs"


def test_query_vectors_follow_the_index_a_retriever_is_pointed_at(docs, embedder, make_embedder):
    # the query-vector cache was keyed by the text only: after `retriever.index = other`, queries
    # were searched with vectors of the first index's model
    from rag.chunking import DocumentChunker

    class Rotated(make_embedder):  # another model with the same dimension
        def encode(self, texts, *, progress=False):
            return np.roll(super().encode(texts), 7, axis=1)

    first = HybridIndex(embedder, DocumentChunker())
    first.upsert(docs)
    other = HybridIndex(Rotated(model_id="rotated-64"), DocumentChunker())
    other.upsert(docs)
    retriever = HybridRetriever(first)
    retriever.dense("cats purr", 2)
    retriever.index = other
    fresh = HybridRetriever(other).dense("cats purr", 5)
    assert retriever.dense("cats purr", 5) == fresh
    np.testing.assert_array_equal(
        retriever.embed(["cats purr"]), other.embedder.encode(["cats purr"])
    )


@pytest.fixture
def saved(tmp_path, docs, embedder):
    build(docs, embedder).save(tmp_path / "idx")
    return tmp_path / "idx"


def test_missing_index(tmp_path, embedder):
    with pytest.raises(IndexNotFoundError, match="python -m rag index"):
        HybridIndex.load(tmp_path / "nothing", embedder)


def test_corrupt_vectors_are_detected(saved, embedder):
    data = bytearray((saved / "vectors.npy").read_bytes())
    data[-1] ^= 0xFF
    (saved / "vectors.npy").write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"vectors\.npy fails its checksum"):
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())


def test_truncated_or_missing_files_are_detected(saved, embedder):
    text = (saved / "documents.jsonl").read_text()
    (saved / "documents.jsonl").write_text(text[: len(text) // 2])
    with pytest.raises(IndexCorruptError):
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    (saved / "chunks.jsonl").unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())


def test_other_format_version_is_refused(saved, embedder):
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["format_version"] = 99
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexVersionError) as info:
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    assert info.value.found == 99 and info.value.expected == 1
    (saved / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorruptError, match="not valid JSON"):
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())


def test_other_model_is_refused(saved, make_embedder):
    with pytest.raises(IndexMismatchError, match="hashing-64"):
        HybridIndex.load(saved, make_embedder(model_id="other-model"), tokens=WhitespaceSpans())


def test_another_model_under_the_same_name_is_caught_at_the_first_query(saved, make_embedder):
    impostor = make_embedder(dim=16)  # model_id "hashing-64", but 16-dimensional vectors
    index = HybridIndex.load(saved, impostor, tokens=WhitespaceSpans())
    with pytest.raises(IndexMismatchError, match="16 dimensions, the index 64"):
        HybridRetriever(index).dense("dog walks", 3)


def test_a_failed_save_leaves_nothing_behind(tmp_path, docs, embedder, monkeypatch):
    index = build(docs, embedder)
    index.save(tmp_path / "idx")
    monkeypatch.setattr(HybridIndex, "manifest", lambda self: {"bad": object()})
    with pytest.raises(TypeError):
        index.save(tmp_path / "idx")
    assert not (tmp_path / "idx.tmp").exists()
    assert HybridIndex.load(tmp_path / "idx", embedder, tokens=WhitespaceSpans()).documents


class KeepOrder:
    """A reranker that keeps the fused order, so rerank() has one and can only fail its checks."""

    def rerank(self, query, candidates):
        return [Hit(c.doc_id, 1.0 / (1 + i)) for i, c in enumerate(candidates)]


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid", "rerank"])
@pytest.mark.parametrize(("query", "k"), [("dogs", 0), ("dogs", 2.5), ("dogs", True), (42, 3),
                                          (None, 3), ("  ", 3)])  # fmt: skip
def test_every_retrieval_mode_checks_its_query_and_k(docs, embedder, mode, query, k):
    retriever = HybridRetriever(build(docs, embedder), reranker=KeepOrder())
    with pytest.raises(ConfigError, match=r"query|k must"):
        getattr(retriever, mode)(query, k)
    with pytest.raises(ConfigError, match=r"query|k must"):
        retriever.search(query, k, mode=mode)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid", "rerank"])
def test_a_query_that_utf8_cannot_encode_is_refused_in_every_mode(docs, embedder, mode):
    # "café" in Latin-1 on the command line arrives as "caf\udce9" (surrogateescape): it was
    # searched, or crashed inside the model's tokenizer with a TypeError naming nothing
    retriever = HybridRetriever(build(docs, embedder), reranker=KeepOrder())
    with pytest.raises(ConfigError, match="the query holds '\\\\udce9' at position 3"):
        retriever.search("caf\udce9 cancer", 3, mode=mode)


@pytest.mark.parametrize("depth", [0, -2, 2.5, True, "3"])
def test_rerank_and_candidates_check_their_depth(docs, embedder, depth):
    # rerank passes depth to the unchecked _hybrid stage: 2.5 was a TypeError from a slice,
    # -2 and True silently reranked the wrong candidates
    retriever = HybridRetriever(build(docs, embedder), reranker=KeepOrder())
    with pytest.raises(ConfigError, match="depth must be a positive integer"):
        retriever.rerank("dogs", 2, depth=depth)
    with pytest.raises(ConfigError, match="depth must be a positive integer"):
        retriever.candidates("dogs", depth)
    assert len(retriever.rerank("dogs", 2, depth=3)) == 2


def test_embedding_failure_leaves_the_index_untouched(docs, embedder, make_embedder):
    index = build(docs, embedder)

    class Broken(make_embedder):
        def encode(self, texts, *, progress=False):
            raise RuntimeError("model crashed")

    index.embedder = Broken()
    with pytest.raises(RuntimeError):
        index.upsert([Document("cats", "replacement text")])
    assert index.documents["cats"].version == 1
    assert HybridRetriever(index).bm25("purr", 1)[0].doc_id == "cats"


# ---- saving: never delete what is not ours, keep what others keep in the folder, survive a crash


def test_save_refuses_a_folder_that_is_not_an_index(tmp_path, docs, embedder):
    # `python -m rag index NOTES --index NOTES` deleted the notes it had just indexed
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "tea.md").write_text("# Tea\n")
    (notes / "manifest.json").write_text('{"format": "someone-elses"}')
    index = build(docs, embedder)
    with pytest.raises(IndexOverwriteError, match=r"notes: the folder is not empty \(manifest"):
        index.save(notes)
    assert sorted(p.name for p in notes.iterdir()) == ["manifest.json", "tea.md"]
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(IndexOverwriteError, match="it is a file"):
        index.save(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    index.save(tmp_path / "empty")  # an empty folder is fine, and so is an index (round trip)
    assert HybridIndex.load(tmp_path / "empty", embedder, tokens=WhitespaceSpans()).documents


def test_save_into_a_folder_that_cannot_be_written_is_an_index_write_error(
    tmp_path, docs, embedder
):
    # it raised the OSError of the lock file beside the folder (FileExistsError under a file,
    # PermissionError in /sys); `/sys` refuses new files even to root
    index = build(docs, embedder)
    (tmp_path / "a.md").write_text("# a note\n")
    with pytest.raises(IndexWriteError, match=r"a\.md cannot be created \(a part of"):
        index.save(tmp_path / "a.md" / "idx")
    assert (tmp_path / "a.md").read_text() == "# a note\n"
    with pytest.raises(IndexWriteError, match="its folder /sys cannot be written"):
        index.save("/sys/rag-idx")


def test_saving_an_updated_index_keeps_the_files_beside_it(saved, embedder):
    # the CLI keeps the trained reranker (and anything else) in the index folder: a save of the
    # same model and chunker carries every file it does not write itself over to the new folder
    (saved / "reranker.json").write_text('{"format": "rag-ltr"}')
    (saved / "notes").mkdir()
    (saved / "notes" / "why.txt").write_text("kept")
    index = HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    index.upsert([Document("new", "Octopuses have three hearts.")])
    index.save(saved)
    assert (saved / "reranker.json").read_text() == '{"format": "rag-ltr"}'
    assert (saved / "notes" / "why.txt").read_text() == "kept"
    assert "new" in HybridIndex.load(saved, embedder, tokens=WhitespaceSpans()).documents


def test_a_failed_swap_puts_the_old_index_back(saved, embedder, monkeypatch):
    index = HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    index.delete(["vitd"])
    rename = type(saved).rename

    def fail_into_place(self, target):  # the second rename (tmp -> path) fails: EXDEV, EPERM
        if self.name.endswith(".tmp"):
            raise OSError("cannot move the new index into place")
        return rename(self, target)

    monkeypatch.setattr(type(saved), "rename", fail_into_place)
    with pytest.raises(OSError, match="into place"):
        index.save(saved)
    monkeypatch.undo()
    assert sorted(p.name for p in saved.parent.iterdir()) == ["idx", "idx.lock"]
    assert "vitd" in HybridIndex.load(saved, embedder, tokens=WhitespaceSpans()).documents


def test_two_saves_to_one_path_run_one_after_the_other(saved, docs, embedder):
    # Without the writer lock the second save deleted the first one's idx.tmp while it was being
    # written: the first failed (or swapped in a folder the second was still filling).
    import threading

    first, second = build(docs, embedder), build(docs, embedder)
    first.delete(["vitd"])
    second.delete(["cats"])
    writing, go, errors = threading.Event(), threading.Event(), []
    write = first._write

    def write_then_wait(tmp):
        write(tmp)
        writing.set()
        go.wait(timeout=30)

    first._write = write_then_wait

    def save(index):
        try:
            index.save(saved)
        except Exception as exc:  # reported below: a thread's exception would be lost
            errors.append(exc)

    a = threading.Thread(target=save, args=(first,), daemon=True)
    b = threading.Thread(target=save, args=(second,), daemon=True)
    a.start()
    assert writing.wait(timeout=30)
    b.start()
    b.join(timeout=1.0)
    assert b.is_alive(), "the second save did not wait for the first"
    go.set()
    a.join(timeout=30)
    b.join(timeout=30)
    assert errors == []
    loaded = HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    assert "cats" not in loaded.documents and "vitd" in loaded.documents  # the second, whole
    assert sorted(p.name for p in saved.parent.iterdir()) == ["idx", "idx.lock"]


def test_a_read_modify_write_holds_the_writer_lock_from_load_to_save(saved, embedder):
    # The lock is re-entrant within a thread: a save inside writer_lock does not wait for itself
    # (a nested flock on a new file description would, forever), and another thread still waits.
    import threading

    from rag.store import writer_lock

    done, other_done, waited = threading.Event(), threading.Event(), []

    def update():
        with writer_lock(saved):
            index = HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
            index.delete(["vitd"])
            index.save(saved)
            done.set()
            other.start()
            other.join(timeout=1.0)
            waited.append(not other_done.is_set())  # another thread's writer waits for this one

    def other_writer():
        with writer_lock(saved):
            other_done.set()

    # daemon threads: a writer stuck on its own lock must not keep the test process alive
    other = threading.Thread(target=other_writer, daemon=True)
    worker = threading.Thread(target=update, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert done.is_set(), "the save inside writer_lock waited for its own lock"
    other.join(timeout=30)
    assert waited == [True] and other_done.is_set()
    assert "vitd" not in HybridIndex.load(saved, embedder, tokens=WhitespaceSpans()).documents


@pytest.mark.parametrize("spelling", ["sub/../idx", "alias/idx", "idx/"])
def test_the_writer_lock_is_one_lock_however_the_path_is_spelt(saved, spelling):
    # keyed by the path's text, a nested writer_lock on "sub/../idx" waited for itself forever
    import threading

    from rag.store import writer_lock

    root = saved.parent
    (root / "sub").mkdir(exist_ok=True)
    if not (root / "alias").exists():
        (root / "alias").symlink_to(root, target_is_directory=True)
    done = threading.Event()

    def nested():
        with writer_lock(saved), writer_lock(root / spelling):
            done.set()

    threading.Thread(target=nested, daemon=True).start()  # daemon: a hang must not outlive us
    assert done.wait(timeout=10), f"writer_lock({spelling!r}) inside writer_lock(idx) hung"


CRASH_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from rag.chunking import WhitespaceSpans
from rag.index import HybridIndex

class Named:  # load checks the model's name; a delete embeds nothing
    model_id = "hashing-64"

path = Path(sys.argv[1])
index = HybridIndex.load(path, Named(), tokens=WhitespaceSpans())
index.delete(["vitd"])
rename = Path.rename

def rename_then_die(self, target):
    rename(self, target)
    os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no finally: the process is gone

Path.rename = rename_then_die
index.save(path)
"""


@pytest.mark.parametrize(("inside", "spelling"), [(".", "."), ("notes", "..")])
def test_a_read_modify_write_through_dot_or_dotdot_from_inside_the_index(
    saved, embedder, monkeypatch, inside, spelling
):
    # `--index .` run from inside the index folder: every write did all its work (embedding,
    # training), then crashed naming PATH.tmp or PATH.lock: "PosixPath('.') has an empty name"
    from rag.store import writer_lock

    (saved / inside).mkdir(exist_ok=True)
    monkeypatch.chdir(saved / inside)
    with writer_lock(spelling):
        index = HybridIndex.load(spelling, embedder, tokens=WhitespaceSpans())
        index.upsert([Document("new", "Octopuses have three hearts.")])
        index.save(spelling)
    assert "new" in HybridIndex.load(saved, embedder, tokens=WhitespaceSpans()).documents
    assert sorted(p.name for p in saved.parent.iterdir()) == ["idx", "idx.lock"]


def test_a_save_killed_between_its_renames_is_recovered_by_the_next_save(saved, embedder):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import rag

    root = Path(rag.__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_BETWEEN_RENAMES, str(saved)], cwd=root, capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    # what the crash left: the old index and the new one, aside (the kernel freed its lock)
    left = ["idx.lock", "idx.old", "idx.tmp"]
    assert sorted(p.name for p in saved.parent.iterdir()) == left
    # load is read-only (a reader must not rename under a writer): it serves idx.old in place
    index = HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    assert "vitd" in index.documents  # the save never finished: the previous index is served
    assert sorted(p.name for p in saved.parent.iterdir()) == left
    index.delete(["vitd"])
    index.save(saved)  # the next save puts idx.old back, then swaps as usual
    assert sorted(p.name for p in saved.parent.iterdir()) == ["idx", "idx.lock"]
    assert "vitd" not in HybridIndex.load(saved, embedder, tokens=WhitespaceSpans()).documents


def test_a_stale_old_folder_alone_is_not_an_interrupted_save(saved, embedder):
    # a finished save whose clean-up of idx.old stopped part way, then idx deleted by the user:
    # with no complete idx.tmp beside it, idx.old is not the index a crash left behind
    saved.rename(saved.parent / "idx.old")
    with pytest.raises(IndexNotFoundError):
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    build([Document("new", "Octopuses have three hearts.")], embedder).save(saved)
    assert set(HybridIndex.load(saved, embedder, tokens=WhitespaceSpans()).documents) == {"new"}


def test_a_save_that_cannot_delete_the_previous_index_says_so(saved, embedder, monkeypatch, caplog):
    import shutil

    monkeypatch.setattr(shutil, "rmtree", lambda path, ignore_errors=False: None)
    with caplog.at_level("WARNING", logger="rag.store"):
        build([Document("new", "Octopuses have three hearts.")], embedder).save(saved)
    assert (saved.parent / "idx.old").is_dir()
    assert "could not delete the previous one" in caplog.text


def test_saving_through_a_symlink_swaps_its_target_and_keeps_the_link(tmp_path, docs, embedder):
    real, link = tmp_path / "real", tmp_path / "idx"
    link.symlink_to(real, target_is_directory=True)
    index = build(docs, embedder)
    index.save(link)
    index.delete(["vitd"])
    index.save(link)  # the second save replaces the target again, not the link
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "real", "real.lock"]
    assert "vitd" not in HybridIndex.load(link, embedder, tokens=WhitespaceSpans()).documents


def test_a_failed_first_rename_leaves_nothing_behind(saved, embedder, monkeypatch):
    rename = type(saved).rename

    def fail_aside(self, target):  # the first rename (path -> path.old) fails
        if self.name == "idx":
            raise OSError("cannot move the old index aside")
        return rename(self, target)

    monkeypatch.setattr(type(saved), "rename", fail_aside)
    with pytest.raises(OSError, match="aside"):
        build([Document("new", "Octopuses have three hearts.")], embedder).save(saved)
    monkeypatch.undo()
    assert sorted(p.name for p in saved.parent.iterdir()) == ["idx", "idx.lock"]
    assert "vitd" in HybridIndex.load(saved, embedder, tokens=WhitespaceSpans()).documents


@pytest.mark.parametrize("change", ["model", "chunker"])
def test_a_reranker_is_not_kept_for_another_model_or_chunker(saved, make_embedder, change, caplog):
    # reranker.json's features and abstention threshold are one model's cosines over one
    # chunking: a rebuild with another model or chunker drops it (other files are still kept)
    from rag.chunking import DocumentChunker

    (saved / "reranker.json").write_text('{"format": "rag-ltr"}')
    (saved / "notes.txt").write_text("kept")
    if change == "model":
        emb = make_embedder(model_id="other-model")
        index = HybridIndex(emb, SentenceChunker(WhitespaceSpans(), 8), CONFIG)
    else:
        emb = make_embedder()
        index = HybridIndex(emb, DocumentChunker(), RagConfig(chunker="document"))
    index.upsert([Document("new", "Octopuses have three hearts.")])
    with caplog.at_level("WARNING", logger="rag.store"):
        index.save(saved)
    assert sorted(p.name for p in saved.iterdir() if p.suffix not in (".jsonl", ".npy")) == [
        "manifest.json",
        "notes.txt",
    ]
    assert "not keeping reranker.json" in caplog.text and "retrain" in caplog.text


# ---- load: aliases of one model, manifests that lie ------------------------------------------


def test_the_same_model_under_its_hub_alias_is_accepted(tmp_path, docs, make_embedder):
    # "sentence-transformers/all-MiniLM-L6-v2" and "all-MiniLM-L6-v2" are one model (dense.py
    # resolves both to the packaged copy): load compares model identities, not raw names
    from rag.dense import model_identity, same_model

    build(docs, make_embedder(model_id="all-MiniLM-L6-v2")).save(tmp_path / "idx")
    alias = make_embedder(model_id="sentence-transformers/all-MiniLM-L6-v2")
    assert HybridIndex.load(tmp_path / "idx", alias, tokens=WhitespaceSpans()).documents
    with pytest.raises(IndexMismatchError, match="all-mpnet-base-v2"):
        HybridIndex.load(
            tmp_path / "idx",
            make_embedder(model_id="sentence-transformers/all-mpnet-base-v2"),
            tokens=WhitespaceSpans(),
        )
    assert same_model("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
    assert not same_model("all-MiniLM-L6-v2", "all-MiniLM-L12-v2")
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert model_identity(str(folder)) == model_identity(str(folder / ".." / "my-model"))


@pytest.mark.parametrize("key", ["model", "config", "n_chunks", "files"])
def test_a_manifest_missing_a_key_is_corrupt_and_says_which(saved, embedder, key):
    manifest = json.loads((saved / "manifest.json").read_text())
    del manifest[key]
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=f"lacks '{key}'"):
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_documents": 99}, "5 documents, manifest says 99"),
        ({"config": {"chunker": "no-such"}}, "invalid config"),
        ({"config": {"no_such_setting": 1}}, "invalid config"),
    ],
)
def test_a_manifest_that_disagrees_with_the_files_is_corrupt(saved, embedder, change, message):
    manifest = json.loads((saved / "manifest.json").read_text()) | change
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=message):
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())


def swap_in_after_reading_the_manifest(monkeypatch, swap, times=1):
    """Make ``swap()`` run right after load reads the manifest, as a concurrent writer would."""
    import rag.store

    original, calls = rag.store.read_manifest, []

    def read_then_swap(path):
        manifest = original(path)
        if len(calls) < times:
            calls.append(path)
            swap()
        return manifest

    monkeypatch.setattr(rag.store, "read_manifest", read_then_swap)
    return calls


def test_a_save_swapped_in_during_a_load_gives_the_new_index(saved, docs, embedder, monkeypatch):
    # manifest of the old index, files of the new one: a false "fails its checksum ... Rebuild"
    newer = build([*docs, Document("new", "Octopuses have three hearts.")], embedder)
    calls = swap_in_after_reading_the_manifest(monkeypatch, lambda: newer.save(saved))
    index = HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    assert calls and "new" in index.documents and len(index.documents) == 6


def test_an_interrupted_save_finished_during_a_load_gives_the_new_index(
    saved, docs, embedder, monkeypatch
):
    import shutil

    # the state a save killed between its renames leaves: load reads idx.old in place...
    build([Document("new", "Octopuses have three hearts.")], embedder).save(saved.parent / "b")
    saved.rename(saved.parent / "idx.old")
    (saved.parent / "b").rename(saved.parent / "idx.tmp")

    def finish_the_save():  # ...and a writer finishes it, deleting idx.old under the reader
        (saved.parent / "idx.tmp").rename(saved)
        shutil.rmtree(saved.parent / "idx.old")

    calls = swap_in_after_reading_the_manifest(monkeypatch, finish_the_save)
    index = HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    assert calls and list(index.documents) == ["new"]


def test_an_index_that_keeps_changing_while_read_says_so_not_rebuild(
    saved, docs, embedder, monkeypatch
):
    versions = [build(docs[:2], embedder), build(docs[2:], embedder)]
    calls = swap_in_after_reading_the_manifest(
        monkeypatch, lambda: versions[len(calls) % 2].save(saved), times=100
    )
    with pytest.raises(IndexCorruptError, match="changed while it was read") as info:
        HybridIndex.load(saved, embedder, tokens=WhitespaceSpans())
    assert "Rebuild" not in str(info.value)
