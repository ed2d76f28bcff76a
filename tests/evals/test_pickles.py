"""The restricted unpickler the systems read their saved models with."""

import io
import pickle
import textwrap
from collections import OrderedDict
from pathlib import Path

import pytest

from evals.errors import RefusedPickleError
from evals.pickles import restricted_load

ALLOWED = frozenset({("collections", "OrderedDict")})


class _RunsCodeOnLoad:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_allowed_globals_load():
    data = pickle.dumps({"a": OrderedDict(b=1), "c": [1.5, "x"]})
    assert restricted_load(io.BytesIO(data), ALLOWED) == {"a": OrderedDict(b=1), "c": [1.5, "x"]}


def test_a_global_outside_the_list_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "code-ran"
    data = pickle.dumps([OrderedDict(), _RunsCodeOnLoad(marker)])
    with pytest.raises(RefusedPickleError, match=r"names pathlib\.Path\.touch") as caught:
        restricted_load(io.BytesIO(data), ALLOWED)
    assert caught.value.name == "pathlib.Path.touch" and not marker.exists()


def test_state_set_on_an_allowed_class_itself_is_refused():
    # GLOBAL pushes the class; BUILD with (None, {attr: ...}) would setattr on the class
    data = (
        pickle.GLOBAL
        + b"collections\nOrderedDict\n"
        + pickle.dumps((None, {"set_by_a_pickle": True}), protocol=2)[2:-1]
        + pickle.BUILD
        + pickle.STOP
    )
    try:
        with pytest.raises(RefusedPickleError, match=r"class collections\.OrderedDict itself"):
            restricted_load(io.BytesIO(data), ALLOWED)
        assert "set_by_a_pickle" not in vars(OrderedDict)
    finally:
        if "set_by_a_pickle" in vars(OrderedDict):
            delattr(OrderedDict, "set_by_a_pickle")


def test_state_set_on_an_allowed_function_is_refused():
    # the same trick on a function: numpy's _frombuffer renamed this way broke pickle.dumps of
    # every array for the rest of the process
    data = (
        pickle.GLOBAL
        + b"textwrap\ndedent\n"
        + pickle.dumps((None, {"set_by_a_pickle": True}), protocol=2)[2:-1]
        + pickle.BUILD
        + pickle.STOP
    )
    try:
        with pytest.raises(RefusedPickleError, match=r"global textwrap\.dedent itself"):
            restricted_load(io.BytesIO(data), frozenset({("textwrap", "dedent")}))
        assert not hasattr(textwrap.dedent, "set_by_a_pickle")
    finally:
        if hasattr(textwrap.dedent, "set_by_a_pickle"):
            del textwrap.dedent.set_by_a_pickle
