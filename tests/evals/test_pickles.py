"""The restricted unpickler the systems read their saved models with."""

import io
import pickle
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from evals.errors import RefusedPickleError
from evals.pickles import restricted_load

ALLOWED = frozenset({("collections", "OrderedDict")})
ROOT = Path(__file__).resolve().parents[2]


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


# --- numpy state: a dtype or array a file BUILDs must be one numpy itself could have made ---

NUMPY = frozenset(
    {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy._core.multiarray", "_reconstruct")}
)


def _opcodes(obj) -> bytes:
    """``obj``'s pickle opcodes without PROTO and STOP, to splice into a hand-made file."""
    return pickle.dumps(obj, protocol=3)[2:-1]


def _dtype(spec: str, state: tuple | None = None) -> bytes:
    """np.dtype(spec, False, True), as numpy's own pickles make one, BUILT with ``state``."""
    made = b"cnumpy\ndtype\n" + _opcodes((spec, False, True)) + pickle.REDUCE
    return made if state is None else made + _opcodes(state) + pickle.BUILD


def _array(dtype: bytes, shape: tuple, data: bytes) -> bytes:
    """_reconstruct(ndarray, (0,), b"b") BUILT with (1, shape, dtype, False, data)."""
    empty = (
        b"cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + _opcodes((0,))
        + _opcodes(b"b")
        + pickle.TUPLE3
        + pickle.REDUCE
    )
    state = pickle.MARK + _opcodes(1) + _opcodes(shape) + dtype + _opcodes(False) + _opcodes(data)
    return empty + state + pickle.TUPLE + pickle.BUILD


def _put(key: int) -> bytes:
    return pickle.LONG_BINPUT + key.to_bytes(4, "little")


def _get(key: int) -> bytes:
    return pickle.LONG_BINGET + key.to_bytes(4, "little")


POINTERS = b"".join((0x4141414141 + 8 * i).to_bytes(8, "little") for i in range(3))

# Each file names only numpy.dtype, numpy.ndarray and _reconstruct. Before the fix the first two
# loaded and the array's first copy read the file's numbers as object pointers (SIGSEGV).
HIDDEN_OBJECTS = {
    # the review's file: a void dtype with one object field, its flags 0 ("holds no objects")
    "an object field in a dtype whose flags say no objects": _array(
        _dtype("V8", (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)), (3,), POINTERS
    ),
    # no fields needed: the object dtype itself, with flags 0
    "an object dtype whose flags say no objects": _array(
        _dtype("O8", (3, "|", None, None, None, -1, -1, 0)), (3,), POINTERS
    ),
}


def _load_in_a_subprocess(tmp_path, data: bytes, then: str) -> subprocess.CompletedProcess:
    """Load ``data`` with restricted_load in a new interpreter, run ``then`` on the result
    ``out``: a crash must not take the test run with it."""
    path = tmp_path / "crafted.pkl"
    path.write_bytes(pickle.PROTO + b"\x03" + data + pickle.STOP)
    code = (
        "import sys\n"
        "from evals.pickles import restricted_load\n"
        f"allowed = frozenset({sorted(NUMPY)!r})\n"
        f"with open({str(path)!r}, 'rb') as fh:\n"
        "    out = restricted_load(fh, allowed)\n"
        f"{then}\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("case", HIDDEN_OBJECTS)
def test_a_dtype_that_hides_object_pointers_is_refused_not_a_crash(case, tmp_path):
    result = _load_in_a_subprocess(tmp_path, HIDDEN_OBJECTS[case], "print(out.copy())")
    assert result.returncode == 1, (result.returncode, result.stderr)  # -11 was SIGSEGV
    assert "RefusedPickleError: the pickle builds a numpy dtype" in result.stderr


def test_a_dtype_state_numpy_would_not_make_names_what_it_found():
    data = _array(_dtype("U2", (3, "<", None, None, None, 8, 4, 0x3F)), (1,), b"\0" * 8)
    with pytest.raises(
        RefusedPickleError, match=r"flags\) \('<U2', 8, 4, 63\), where numpy "
    ) as caught:
        restricted_load(io.BytesIO(pickle.PROTO + b"\x03" + data + pickle.STOP), NUMPY)
    assert caught.value.name == "numpy.dtype"


def test_a_dtype_rebuilt_after_an_array_used_it_leaves_that_array_alone(tmp_path):
    # V8 (plain bytes) makes a 2-item array of 16 bytes, then the same dtype is BUILT again as
    # V(2**30), a consistent dtype: before the fix the array's items grew to 1 GiB each under it
    data = (
        _dtype("V8")
        + _put(1000)
        + pickle.POP
        + _array(_get(1000), (2,), b"\0" * 16)
        + _put(1001)
        + pickle.POP
        + _get(1000)
        + _opcodes((3, "|", None, None, None, 1 << 30, 1, 0))
        + pickle.BUILD
        + pickle.POP
        + _get(1001)
    )
    then = "print(out.dtype.itemsize, out.copy().tobytes() == bytes(16))"
    result = _load_in_a_subprocess(tmp_path, data, then)
    assert (result.returncode, result.stdout.split()) == (0, ["8", "True"]), result.stderr


def test_an_array_rebuilt_under_a_view_keeps_the_data_the_view_reads(tmp_path):
    # ndarray((n,), f8, A) is a view on A's buffer; BUILDing A again freed that buffer, and the
    # view read freed memory (or crashed once the memory went back to the system)
    n = 1 << 20
    f8 = _opcodes(np.dtype("f8"))
    data = (
        _array(f8, (n,), np.full(n, 2.5).tobytes())
        + _put(1000)
        + b"cnumpy\nndarray\n"
        + pickle.MARK
        + _opcodes((n,))
        + f8
        + _get(1000)
        + pickle.TUPLE
        + pickle.REDUCE
        + _put(1001)
        + pickle.POP
        + _get(1000)
        + pickle.MARK
        + _opcodes(1)
        + _opcodes((1,))
        + f8
        + _opcodes(False)
        + _opcodes(b"\0" * 8)
        + pickle.TUPLE
        + pickle.BUILD
        + pickle.POP
        + _get(1001)
    )
    then = "import numpy as np\nnoise = np.ones(4 * len(out))\nprint(set(out.tolist()))"
    result = _load_in_a_subprocess(tmp_path, data, then)
    assert (result.returncode, result.stdout.strip()) == (0, "{2.5}"), result.stderr


def test_numpy_arrays_and_dtypes_load_as_the_standard_unpickler_loads_them():
    shared = np.arange(6, dtype=np.int32).reshape(2, 3)
    values = {
        "f8": np.linspace(0, 1, 5),
        "big-endian": np.arange(4, dtype=">f8"),  # numpy's unpickling makes it native
        "big-endian dtype": np.dtype(">f8"),
        "str": np.array(["a", "bc"]),
        "object": np.array(["x", None, 3], dtype=object),
        "datetime": np.array(["2024-01-01"], dtype="M8[ns]"),
        "bool": np.array([True, False]),
        "fortran": np.asfortranarray(np.ones((2, 3))),
        "shared": shared,
        "shared again": shared,  # one object: the memo's second reference reads the built array
    }
    data = pickle.dumps(values, protocol=4)  # REDUCE + BUILD, as moderation's models are saved
    loaded = restricted_load(io.BytesIO(data), NUMPY)
    expected = pickle.loads(data)
    assert loaded["shared"] is loaded["shared again"]
    assert loaded["big-endian dtype"].str == ">f8"
    for name, value in expected.items():
        if isinstance(value, np.dtype):
            assert (loaded[name], loaded[name].flags) == (value, value.flags)
            continue
        assert (loaded[name].dtype, loaded[name].dtype.flags) == (value.dtype, value.dtype.flags)
        assert loaded[name].flags.f_contiguous == value.flags.f_contiguous
        np.testing.assert_array_equal(loaded[name], value)


CRAFTED_CSR = """
import io, pickle, sys
import numpy as np, scipy.sparse as sp
from evals.pickles import restricted_load
allowed = frozenset({("scipy.sparse._csr", "csr_matrix"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
    ("copyreg", "_reconstructor"), ("builtins", "object")} | {tuple(x.split(":")) for x in
    sys.argv[2:]})
m = sp.csr_matrix(np.ones((2, 2)))
if sys.argv[1] == "crafted":  # an index past the last column, set after SciPy's own check
    m.indices = np.array([0, 1, 0, 400_000_000], dtype=np.int32)
out = restricted_load(io.BytesIO(pickle.dumps(m, protocol=5)), allowed)
print((out @ np.ones(2)).tolist())
"""


@pytest.mark.parametrize("case", ["whole", "crafted"])
def test_a_sparse_matrix_whose_indices_leave_its_shape_is_refused_not_a_crash(case):
    # a security review's note: csr_matrix(...) @ v read past its arrays (SIGSEGV) when a file
    # set indices beyond the shape; SciPy checks them only when it builds the matrix itself
    import scipy.sparse as sp

    globals_used = _globals_of(pickle.dumps(sp.csr_matrix(np.ones((2, 2))), protocol=5))
    argv = [sys.executable, "-c", CRAFTED_CSR, case, *[f"{m}:{n}" for m, n in globals_used]]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if case == "whole":
        assert (result.returncode, result.stdout.strip()) == (0, "[2.0, 2.0]"), result.stderr
    else:
        assert result.returncode == 1, (result.returncode, result.stderr)  # -11 was SIGSEGV
        assert "whose index arrays do not fit its shape (indices must be < 2)" in result.stderr


def _globals_of(data: bytes) -> set[tuple[str, str]]:
    """The (module, name) pairs a pickle resolves (what an allow-list must hold to load it)."""
    import pickletools

    found, strings = set(), []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif opcode.name == "STACK_GLOBAL":
            found.add((strings[-2], strings[-1]))
        elif opcode.name == "GLOBAL":
            found.add(tuple(arg.split(" ", 1)))
    return found
