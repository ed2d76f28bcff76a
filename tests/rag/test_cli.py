"""The CLI end to end on a tiny folder of markdown files, with the real MiniLM model."""

import os
import re
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from llm_client.fault_server import FaultServer
from rag.__main__ import main
from tests.beir_folder import write_beir_folder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory, minilm):
    root = tmp_path_factory.mktemp("cli")
    notes = root / "notes"
    notes.mkdir()
    (notes / "tea.md").write_text("# Green tea\n\nGreen tea contains catechins and caffeine.\n")
    (notes / "bikes.md").write_text("# Bicycles\n\nA bicycle chain needs oil every month.\n")
    (notes / "sub").mkdir()
    (notes / "sub" / "moon.txt").write_text("The Moon orbits the Earth every 27 days.")
    index = root / "idx"
    assert main(["index", str(notes), "--index", str(index), "--cache-dir", str(root / "c")]) == 0
    return index


def test_index_and_search(built, capsys):
    assert (
        main(["search", "how often should I oil my chain", "--index", str(built), "-k", "2"]) == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[1].split()[2] == "bikes.md"


def test_ask_abstains_above_threshold_without_a_model(built, capsys):
    args = [
        "ask",
        "Who won the 1998 World Cup?",
        "--index",
        str(built),
        "--threshold",
        "0.99",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--llm-model",
        "any",
    ]
    assert main(args) == 0
    assert "could not find" in capsys.readouterr().out


def test_ask_without_a_threshold_says_it_cannot_abstain(built, capsys):
    # No reranker was trained into this index, so no threshold was calibrated. The closed port
    # makes the model call fail after the note is printed.
    args = ["ask", "What does green tea contain?", "--index", str(built)]
    args += ["--base-url", "http://127.0.0.1:9/v1", "--llm-model", "any"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no abstention threshold" in err
    assert "LLM call failed" in err


def test_corrupt_index_is_a_clear_error(built, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    (copy / "documents.jsonl").write_text("garbage\n")
    assert main(["search", "tea", "--index", str(copy)]) == 2
    assert "fails its checksum" in capsys.readouterr().err
    assert main(["search", "tea", "--index", str(tmp_path / "none")]) == 2
    assert "no index" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
@pytest.mark.parametrize("k", ["0", "-3"])
def test_search_refuses_a_k_below_one_in_every_mode(built, capsys, mode, k):
    assert main(["search", "tea", "--index", str(built), "--mode", mode, "-k", k]) == 2
    assert "k must be a positive integer" in capsys.readouterr().err


def test_ask_refuses_a_nan_threshold(built, capsys):
    # `ask --threshold nan` never abstained: every `confidence < nan` is False
    args = ["ask", "Who won the 1998 World Cup?", "--index", str(built), "--threshold", "nan"]
    assert main([*args, "--base-url", "http://127.0.0.1:9/v1", "--llm-model", "any"]) == 2
    assert "--threshold must be a finite number" in capsys.readouterr().err


def test_ask_names_what_is_missing_before_loading_anything(built, capsys, monkeypatch):
    for name in ("AIS_LLM_BASE_URL", "OPENAI_BASE_URL", "AIS_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["ask", "  ", "--index", str(built), "--local"]) == 2  # no server is started
    assert "question is empty" in capsys.readouterr().err
    assert main(["ask", "What is in tea?", "--index", str(built)]) == 2
    assert "--base-url" in capsys.readouterr().err
    args = ["ask", "What is in tea?", "--index", str(built), "--base-url", "http://x:1/v1"]
    assert main(args) == 2
    assert "--llm-model" in capsys.readouterr().err


def test_a_query_of_bytes_that_were_not_utf8_is_a_one_line_error(built, capsys):
    # `search "$(printf 'caf\351')"`: argv decodes the Latin-1 byte to "\udce9", which ended
    # in a TypeError traceback from the tokenizer; `ask` checks it before starting any server
    assert main(["search", "caf\udce9 cancer", "--index", str(built)]) == 2
    assert "the query holds '\\udce9'" in capsys.readouterr().err
    args = ["ask", "caf\udce9?", "--index", str(built), "--local"]
    assert main(args) == 2
    assert "the question holds '\\udce9'" in capsys.readouterr().err


def test_bad_sources_are_one_line_errors(built, tmp_path, capsys):
    assert main(["index", str(tmp_path / "nowhere"), "--index", str(tmp_path / "i")]) == 2
    assert "neither a folder" in capsys.readouterr().err
    args = ["index", str(built.parent / "notes"), "--index", str(tmp_path / "i")]
    assert main([*args, "--model", "no-such-model", "--encoder", "torch"]) == 2
    assert "cannot load embedding model 'no-such-model'" in capsys.readouterr().err
    assert main(["eval", "--dataset", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: dataset")


@pytest.mark.parametrize("extra", ["corpus only", "judged on dev"])
def test_index_reads_a_beir_folder_from_its_corpus_alone(built, tmp_path, capsys, extra):
    # it went through load_beir, which wants queries.jsonl and qrels/test.tsv: "is this a BEIR
    # folder?" for a corpus of one's own, or for a dataset judged only on its dev split
    corpus = {
        "tea": {"title": "Green tea", "text": "Green tea contains catechins and caffeine."},
        "bike": {"title": "Bicycles", "text": "A bicycle chain needs oil every month."},
    }
    folder = write_beir_folder(tmp_path / "beir", corpus, {"q1": "tea"}, {}, splits=("dev",))
    if extra == "corpus only":
        (folder / "queries.jsonl").unlink()
        (folder / "qrels" / "dev.tsv").unlink()
    index, cache = tmp_path / "idx", str(built.parent / "c")
    assert main(["index", str(folder), "--index", str(index), "--cache-dir", cache]) == 0
    assert "indexed 2 documents" in capsys.readouterr().out
    assert (
        main(["search", "chain oil", "--index", str(index), "--cache-dir", cache, "-k", "1"]) == 0
    )
    assert capsys.readouterr().out.splitlines()[1].split()[2] == "bike"


def test_a_reranker_needs_qrels_for_this_index(built, capsys):
    # the index holds three notes; SciFact's train qrels point at none of them
    assert main(["train-reranker", "--index", str(built), "--dataset", "scifact"]) == 2
    assert "built from another corpus" in capsys.readouterr().err


def test_index_with_an_unusable_cache_dir_still_saves_the_index(built, tmp_path, capsys):
    # the embedding cache's write raised FileExistsError after all the embedding work
    notes = built.parent / "notes"
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("")
    args = ["index", str(notes), "--index", str(tmp_path / "idx"), "--cache-dir", str(not_a_folder)]
    assert main([*args, "--encoder", "torch"]) == 0
    assert (tmp_path / "idx" / "manifest.json").exists()
    assert "indexed 3 documents" in capsys.readouterr().out


def test_data_dir_is_where_a_dataset_name_is_read(built, tmp_path, capsys, monkeypatch):
    # the missing-dataset advice said "pass --data-dir DIR", which rag's CLI did not accept
    from evals.sources import resolve
    from rag.__main__ import _load_documents

    data_dir = resolve("scifact").parent  # wherever this machine keeps SciFact
    monkeypatch.setenv("AIS_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("AIS_NO_DOWNLOAD", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in (
        ["index", "scifact", "--index", str(tmp_path / "idx")],
        ["eval", "--dataset", "scifact"],
        ["train-reranker", "--index", str(built), "--dataset", "scifact"],
    ):
        assert main([*command, "--data-dir", str(empty)]) == 2
        assert str(empty / "scifact") in capsys.readouterr().err  # looked there, nowhere else
    assert len(_load_documents("scifact", str(data_dir))) == 5183


def test_index_refuses_to_overwrite_the_folder_it_indexes(built, capsys):
    # `python -m rag index NOTES --index NOTES` deleted the user's notes once the index was saved
    notes = built.parent / "notes"
    before = sorted(str(p.relative_to(notes)) for p in notes.rglob("*"))
    assert main(["index", str(notes), "--index", str(notes)]) == 2
    err = capsys.readouterr().err
    assert f"cannot save the index to {notes}" in err and "holds no index" in err
    assert sorted(str(p.relative_to(notes)) for p in notes.rglob("*")) == before


def trained_reranker(**meta):
    """A real LambdaRank model (on synthetic candidates: the notes have no qrels) with ``meta``."""
    import numpy as np

    from rag.features import FEATURE_NAMES
    from rag.hits import Candidate
    from rag.rerank import LTRSettings, train_ltr

    rng = np.random.default_rng(0)
    cands = {
        f"q{q}": [
            Candidate(
                f"q{q}d{i}",
                f"q{q}d{i}#0",
                "text",
                features={n: float(rng.normal()) for n in FEATURE_NAMES} | {"coverage": i == 0},
            )
            for i in range(10)
        ]
        for q in range(30)
    }
    model = train_ltr(cands, {q: {f"{q}d0": 1} for q in cands}, LTRSettings(n_estimators=5))
    model.meta |= meta
    return model


def test_a_trained_reranker_brings_its_fusion_and_weight(built, tmp_path, capsys):
    # the CLI applied the reranker's dense weight but not the fusion its candidates came from
    import argparse
    import shutil

    from rag.__main__ import _open

    copy = tmp_path / "idx"
    shutil.copytree(built, copy)
    trained_reranker(fusion="minmax", dense_weight=0.3, threshold=0.2).save(copy / "reranker.json")
    args = argparse.Namespace(index=str(copy), encoder="onnx", cache_dir=str(built.parent / "c"))
    retriever, threshold = _open(args)
    assert (retriever.config.fusion, retriever.config.dense_weight, threshold) == (
        "minmax",
        0.3,
        0.2,
    )
    assert main(["search", "chain oil", "--index", str(copy), "--cache-dir", args.cache_dir]) == 0
    assert capsys.readouterr().out.startswith("rerank results")
    trained_reranker(fusion="borda", dense_weight=0.3).save(copy / "reranker.json")
    assert main(["search", "chain oil", "--index", str(copy), "--cache-dir", args.cache_dir]) == 2
    err = capsys.readouterr().err
    assert "reranker.json records settings this code cannot serve" in err and "borda" in err


def test_index_dot_from_inside_the_index_folder_saves_it(built, tmp_path, monkeypatch, capsys):
    # `index NOTES --index .` embedded everything, then crashed in save with a ValueError
    import shutil

    copy, cache = tmp_path / "idx", str(built.parent / "c")
    shutil.copytree(built, copy)
    trained_reranker().save(copy / "reranker.json")
    monkeypatch.chdir(copy)
    assert main(["index", str(built.parent / "notes"), "--index", ".", "--cache-dir", cache]) == 0
    assert "kept reranker.json" in capsys.readouterr().out  # looked for in the new folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "idx.lock"]
    assert (copy / "reranker.json").exists()
    assert main(["search", "chain oil", "--index", str(copy), "--cache-dir", cache]) == 0


def test_reindexing_keeps_the_reranker_only_for_the_same_model_and_chunker(built, tmp_path, capsys):
    import shutil

    copy = tmp_path / "idx"
    shutil.copytree(built, copy)
    notes, cache = built.parent / "notes", built.parent / "c"
    args = ["index", str(notes), "--index", str(copy), "--cache-dir", str(cache)]
    (copy / "reranker.json").write_text('{"format": "rag-ltr"}')
    assert main(args) == 0
    assert "kept reranker.json" in capsys.readouterr().out
    assert (copy / "reranker.json").exists()
    assert main([*args, "--chunker", "sentences"]) == 0
    assert "dropped reranker.json" in capsys.readouterr().out
    assert not (copy / "reranker.json").exists()


def tiny_beir(root):
    """A BEIR folder whose train qrels point into its own corpus: four topics, three documents
    each, the first of each relevant to that topic's query."""
    topics = ["vitamin D cancer", "insulin diabetes", "statins heart", "exercise sleep"]
    corpus = {
        f"d{t}_{i}": {
            "title": f"{topic} {i}",
            "text": f"This study of {topic} found effects in cohort {i}. " * (i + 1),
        }
        for t, topic in enumerate(topics)
        for i in range(3)
    }
    queries = {f"q{t}": f"does {topic} matter" for t, topic in enumerate(topics)}
    qrels = {f"q{t}": {f"d{t}_0": 1} for t in range(len(topics))}
    return write_beir_folder(root, corpus, queries, qrels, splits=("train", "test"))


def test_train_reranker_during_an_interrupted_save_writes_beside_the_index_it_read(
    built, tmp_path, capsys
):
    # train-reranker read INDEX.old (a save killed between its renames) but wrote
    # INDEX/reranker.json: a folder with no index in it, which `search` could not open and
    # `index` refused to save over
    import shutil

    beir, index, cache = tiny_beir(tmp_path / "beir"), tmp_path / "idx", built.parent / "c"
    assert main(["index", str(beir), "--index", str(index), "--cache-dir", str(cache)]) == 0
    shutil.copytree(index, tmp_path / "idx.tmp")  # what the crash left: old and new, aside
    index.rename(tmp_path / "idx.old")
    args = ["--index", str(index), "--cache-dir", str(cache)]
    assert main(["train-reranker", "--dataset", str(beir), *args]) == 0
    assert not index.exists()
    assert (tmp_path / "idx.old" / "reranker.json").exists()
    capsys.readouterr()
    assert main(["search", "insulin diabetes", *args]) == 0
    assert capsys.readouterr().out.startswith("rerank results")
    assert main(["index", str(beir), *args]) == 0  # the next save puts idx.old back, reranker too
    assert "kept reranker.json" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir", "idx", "idx.lock"]
    assert (index / "reranker.json").exists()


def test_train_reranker_refuses_to_write_beside_an_index_swapped_in_while_it_trained(
    built, tmp_path, capsys, monkeypatch
):
    # train-reranker wrote INDEX/reranker.json by name, after minutes of training: a save that
    # swapped in a new version meanwhile (here with another chunker, whose scores the reranker
    # never saw) got a reranker trained on the version that save deleted, and search served it
    import rag.eval

    beir, index, cache = tiny_beir(tmp_path / "beir"), tmp_path / "idx", built.parent / "c"
    args = ["--index", str(index), "--cache-dir", str(cache)]
    assert main(["index", str(beir), *args]) == 0
    real_fit = rag.eval.fit_on_train

    def fit_while_another_process_saves(*a, **kw):
        tuned = real_fit(*a, **kw)
        assert main(["index", str(beir), *args, "--chunker", "sentences"]) == 0  # a real save
        return tuned

    monkeypatch.setattr(rag.eval, "fit_on_train", fit_while_another_process_saves)
    capsys.readouterr()
    assert main(["train-reranker", "--dataset", str(beir), *args]) == 2
    err = capsys.readouterr().err
    assert f"error: the index at {index} was replaced by another save" in err
    assert "Traceback" not in err
    assert not (index / "reranker.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beir", "idx", "idx.lock"]


def test_train_reranker_writes_under_the_index_writer_lock(built, tmp_path, monkeypatch):
    # The check that the index is still the version trained on, and the write of reranker.json,
    # hold the writer lock: a save cannot land between them. Here the test holds the lock, as a
    # save in another process would, and the reranker is written only once it is released.
    import threading

    import rag.eval
    from rag.store import writer_lock

    beir, index, cache = tiny_beir(tmp_path / "beir"), tmp_path / "idx", built.parent / "c"
    args = ["--index", str(index), "--cache-dir", str(cache)]
    assert main(["index", str(beir), *args]) == 0
    real_fit, trained, codes = rag.eval.fit_on_train, threading.Event(), []

    def fit_then_signal(*a, **kw):
        tuned = real_fit(*a, **kw)
        trained.set()
        return tuned

    monkeypatch.setattr(rag.eval, "fit_on_train", fit_then_signal)
    train = threading.Thread(
        target=lambda: codes.append(main(["train-reranker", "--dataset", str(beir), *args])),
        daemon=True,
    )
    with writer_lock(index):
        train.start()
        assert trained.wait(timeout=120)
        train.join(timeout=1.0)
        assert train.is_alive() and not (index / "reranker.json").exists()
    train.join(timeout=60)
    assert codes == [0] and (index / "reranker.json").exists()


@pytest.mark.parametrize("corpus", ["", '{"_id": "d1", "title": "", "text": " "}\n'])
def test_index_of_an_empty_beir_corpus_is_refused_and_keeps_the_index(
    built, tmp_path, capsys, corpus
):
    # a 0-byte corpus.jsonl (or one of blank records) was saved as an empty index over a working
    # one, with exit 0; every later search printed nothing
    import shutil

    copy, beir = tmp_path / "idx", tmp_path / "beir"
    shutil.copytree(built, copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    beir.mkdir()
    (beir / "corpus.jsonl").write_text(corpus)
    args = ["index", str(beir), "--index", str(copy), "--cache-dir", str(built.parent / "c")]
    assert main(args) == 2
    found = "1 records, all blank" if corpus else "no records"
    assert f"error: {beir} holds no document with a title or text ({found})" in (
        capsys.readouterr().err
    )
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


@pytest.mark.parametrize("where", ["under a file", "in /sys"])
def test_index_into_a_folder_that_cannot_be_written_fails_before_embedding(
    built, tmp_path, capsys, where
):
    # the only check was "is a file in the way": every document was embedded, then the save
    # crashed with a traceback (FileExistsError, PermissionError on INDEX.lock)
    notes, cache = built.parent / "notes", tmp_path / "fresh-cache"
    target = notes / "tea.md" / "idx" if where == "under a file" else Path("/sys/rag-idx")
    assert main(["index", str(notes), "--index", str(target), "--cache-dir", str(cache)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot save the index to {target}: its folder {target.parent}")
    assert "Traceback" not in err
    assert not cache.exists()  # nothing was embedded (the cache would hold the vectors)


@contextmanager
def unwritable(folder):
    """``folder`` refuses new files meanwhile, as on a read-only mount: ``chmod`` for a user,
    ``chattr +i`` for root (whom permission bits do not stop); skipped where neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("root, and chattr +i is not available here to make a folder read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_train_reranker_into_an_index_folder_that_cannot_be_written_fails_before_training(
    built, tmp_path, capsys, monkeypatch
):
    # the reranker trained for minutes, then writing reranker.json crashed with a traceback
    import rag.eval

    beir, index, cache = tiny_beir(tmp_path / "beir"), tmp_path / "idx", built.parent / "c"
    args = ["--index", str(index), "--cache-dir", str(cache)]
    assert main(["index", str(beir), *args]) == 0
    capsys.readouterr()
    real_fit, fits = rag.eval.fit_on_train, []

    def counted_fit(*a, **kw):
        fits.append(1)
        return real_fit(*a, **kw)

    monkeypatch.setattr(rag.eval, "fit_on_train", counted_fit)
    with unwritable(index):
        assert main(["train-reranker", "--dataset", str(beir), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write reranker.json into the index folder {index}")
    assert fits == []  # refused before the training, not after it
    assert not (index / "reranker.json").exists()


def _rag(*args, **kwargs) -> subprocess.Popen:
    """``python -m rag ARGS`` as its own process, the way a shell runs it."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.Popen(
        [sys.executable, "-m", "rag", *args], cwd=root, env=env, text=True, **kwargs,
        # a background job (CI's, a nohup'd run) ignores SIGINT and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def test_ctrl_c_while_waiting_for_the_model_is_one_line_and_status_130(built):
    # Ctrl-C ended every command in a traceback of wherever the work was (62 lines for search).
    # The model here is a real socket that accepts the call and never answers, so the signal
    # arrives while `ask` waits for it, not at a guessed moment.
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(120)
        proc = _rag(
            "ask", "What does green tea contain?", "--index", str(built),
            "--cache-dir", str(built.parent / "c"),
            "--base-url", f"http://127.0.0.1:{server.getsockname()[1]}/v1", "--llm-model", "any",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            connection, _ = server.accept()
        except TimeoutError:
            proc.kill()
            pytest.fail(f"ask never called the model: {proc.communicate()}")
        with connection:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.endswith("\ninterrupted\n") and "Traceback" not in err


def test_a_reader_that_goes_away_is_status_1_without_a_traceback(built):
    # `python -m rag search ... | head -1` ended in a BrokenPipeError traceback
    args = ["search", "tea", "--index", str(built), "--cache-dir", str(built.parent / "c")]
    proc = _rag(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line: every write finds no one
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1
    assert err == ""


def test_control_characters_from_files_and_answers_are_printed_escaped(tmp_path, capsys, minilm):
    # ESC[2J clears the screen, OSC 0 sets the window title, OSC 52 writes the clipboard: a file
    # name, title or text in the index, or a model's answer, reached the terminal raw
    payload = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2gK\x07\x9b31m"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "vitamin\x1b[31m.md").write_text(
        f"# Vitamin D {payload}trial\n\nVitamin D and cancer risk in a large trial.\n"
    )
    (notes / "sleep.md").write_text("# Sleep\n\nSleep and memory consolidation.\n")
    where = ["--index", str(tmp_path / "idx"), "--cache-dir", str(tmp_path / "c")]
    assert main(["index", str(notes), *where]) == 0
    capsys.readouterr()
    assert main(["search", "vitamin D and cancer", *where]) == 0
    search = capsys.readouterr().out
    assert "vitamin\\x1b[31m.md  Vitamin D \\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\x1b]52;c;" in search
    with FaultServer() as server:  # a real endpoint whose model echoes the prompt it is sent
        args = ["ask", "Does vitamin D lower cancer risk?", *where, "--threshold", "-1"]
        assert main([*args, "--base-url", server.base_url, "--llm-model", "echo"]) == 0
    ask = capsys.readouterr().out
    assert ask.startswith("echo: Sources:\n\n[1] Vitamin D \\x1b[2J")  # the answer
    assert "[1] vitamin\\x1b[31m.md  Vitamin D \\x1b[2J" in ask  # its sources
    for out in (search, ask):
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)
