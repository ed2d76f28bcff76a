"""Reading the systems' saved models (pickles) without letting a file run code.

``pickle.load`` runs whatever a file names: a global such as ``os.system`` called with the
file's arguments. :func:`restricted_load` is the standard library's "Restricting Globals" recipe
(what ``torch.load(weights_only=True)`` does) with more checks:

* **globals**: only the ``(module, name)`` pairs a system lists as what its models are made of
  resolve; any other name is refused before it is imported;
* **state on globals**: BUILD, the opcode that restores an object's state, is refused on a
  class and on anything else ``find_class`` returned (an allowed function such as numpy's
  ``_frombuffer``). Pickle's default ``__setstate__`` would ``setattr`` on it: on a class that
  changes every object of the class, on a function its ``__qualname__`` or ``__defaults__``, for
  the whole process and even if the file were refused further on (a renamed ``_frombuffer``
  breaks ``pickle.dumps`` of every numpy array). Saved models only ever BUILD the instances
  they create.
* **numpy state**: every allow-list holds numpy's dtypes and arrays, whose C code believes
  their state. A dtype's state carries its flags, so a file could describe an object dtype
  whose flags say it holds no objects: the array's bytes, numbers from the file, are then
  dereferenced as pointers (a segfault at best). So a BUILD on a dtype or an array is applied
  to a new one, never to the object the file made, and a dtype must come out as numpy itself
  makes that type (:func:`_check_dtype`). The new one takes the object's place on the stack
  and in the memo (:class:`_Memo`); the object stays as numpy made it, so an array or view
  the file made from it earlier (to change its dtype or data under it: a longer item, a freed
  buffer) sees no change. Saved models hold only plain dtypes (``<f8``, ``<i4``, ``<U1``,
  ``|O``...), so dtypes with fields or sub-arrays are refused outright.

The BUILD checks need the pure-Python unpickler (``pickle._Unpickler``, as joblib's is): the C
one has no hook for BUILD. It is slower on files of many small objects (a 5 MB moderation model
with its TF-IDF vocabularies loads in 0.3 s instead of 0.03 s) and about as fast on a few large
arrays (a recommender). The memo lookups of the numpy check add about a fifth to the first.

This closes the usual way a pickle runs code or corrupts memory, not every way: the allowed
classes still restore their own state (LightGBM and FAISS parse their own bytes), so a model
file is as trustworthy as its source. A SciPy sparse matrix's index arrays are checked against
its shape once it is built (:func:`_check_sparse`). ``moderation.classifier`` and
``recsys.store`` hold the two allow-lists.
"""

from __future__ import annotations

import pickle
from typing import IO, ClassVar

import numpy as np

from evals.errors import RefusedPickleError

__all__ = ["restricted_load"]


def restricted_load(file: IO[bytes], allowed: frozenset[tuple[str, str]]) -> object:
    """Unpickle ``file``, resolving only the globals in ``allowed``, never setting attributes on
    a class or on a global, and building numpy dtypes only as numpy itself makes them; anything
    else raises :class:`~evals.errors.RefusedPickleError`."""
    return _RestrictedUnpickler(file, allowed).load()


class _RestrictedUnpickler(pickle._Unpickler):
    def __init__(self, file: IO[bytes], allowed: frozenset[tuple[str, str]]) -> None:
        super().__init__(file)
        self.allowed = allowed
        # every object find_class returned, by id (holding the object keeps its id unique)
        self._resolved: dict[int, tuple[object, str]] = {}
        self.memo = _Memo()

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.allowed:
            raise RefusedPickleError(
                f"{module}.{name}", f"names {module}.{name}, which no saved model is made of"
            )
        found = super().find_class(module, name)
        self._resolved[id(found)] = (found, f"{module}.{name}")
        return found

    def load_build(self) -> None:
        target = self.stack[-2]  # BUILD pops the state and sets it on the object beneath
        if isinstance(target, type):
            name = f"{target.__module__}.{target.__qualname__}"
            raise RefusedPickleError(
                name, f"sets attributes on the class {name} itself, which no saved model does"
            )
        if id(target) in self._resolved:
            name = self._resolved[id(target)][1]
            raise RefusedPickleError(
                name, f"sets attributes on the global {name} itself, which no saved model does"
            )
        if isinstance(target, np.dtype | np.ndarray):
            self._build_copy(target)
        else:
            super().load_build()
            if type(target).__module__.startswith("scipy.sparse."):
                _check_sparse(target)

    def _build_copy(self, target: np.dtype | np.ndarray) -> None:
        """BUILD ``target``'s state on a new dtype or array that takes its place (see above)."""
        state = self.stack.pop()
        if isinstance(target, np.dtype):  # made as the file made it: np.dtype("V8", False, True)
            # (np.dtype(target, copy=True) returns target itself for all but built-in dtypes)
            built = np.dtype(*target.__reduce__()[1])
        else:  # what numpy's own pickles BUILD on: _reconstruct(ndarray, (0,), b"b")
            built = np.ndarray.__new__(type(target), (0,), np.int8)
        built.__setstate__(state)
        if isinstance(built, np.dtype):
            _check_dtype(built)
        self.stack[-1] = built
        self.memo.replace(target, built)

    dispatch: ClassVar[dict] = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: load_build}


class _Memo(dict):
    """The unpickler's memo, where an object that a BUILD was applied to reads as its copy.

    (Replacing it in the memo instead would take a scan of the memo for each BUILD: a 7 MB
    TF-IDF model's memo holds 500,000 entries.) ``copies`` maps the object's id to its copy;
    ``objects`` holds the objects, which keeps their ids unique."""

    def __init__(self) -> None:
        super().__init__()
        self.copies: dict[int, object] = {}
        self.objects: list[object] = []

    def __getitem__(self, key: object) -> object:
        found = super().__getitem__(key)
        return self.copies.get(id(found), found)

    def replace(self, target: object, copy: object) -> None:
        """From now on, read ``copy`` wherever ``target`` was stored."""
        self.objects.append(target)
        self.copies[id(target)] = copy


def _check_sparse(matrix: object) -> None:
    """Refuse a SciPy compressed sparse matrix (CSR / CSC) whose index arrays do not fit its
    shape. Its C kernels trust ``indptr`` and ``indices``: an index past the last column makes
    ``matrix @ vector`` read and write outside its arrays. Any other sparse format is refused
    (saved models hold CSR only)."""
    name = f"{type(matrix).__module__}.{type(matrix).__qualname__}"
    check = getattr(matrix, "check_format", None)
    if check is None:
        raise RefusedPickleError(name, f"builds a {name}; saved models hold CSR matrices only")
    try:
        shape = matrix._shape  # set from the file's state, not checked by SciPy
        indptr, indices = matrix.indptr, matrix.indices
        if not (
            isinstance(shape, tuple)
            and len(shape) == 2
            and all(isinstance(n, int | np.integer) and n >= 0 for n in shape)
        ):
            raise ValueError(f"shape {shape!r} is not two non-negative whole numbers")
        if indptr.dtype.kind != "i" or indices.dtype.kind != "i":
            raise ValueError(f"index arrays of dtype {indptr.dtype} / {indices.dtype}")
        check(full_check=True)  # indptr size, start, order; every index within the shape
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise RefusedPickleError(
            name, f"builds a {name} whose index arrays do not fit its shape ({exc})"
        ) from None


def _check_dtype(built: np.dtype) -> None:
    """Refuse a dtype whose state differs from the dtype numpy itself makes from its description.

    The state a pickle gives ``dtype.__setstate__`` holds the byte order, fields, item size,
    alignment and flags separately, and numpy believes all of them. The flags say whether the
    items hold Python objects: an ``|O`` dtype with flags 0 makes numpy copy the file's bytes
    as if they were numbers, then read them as object pointers. ``np.dtype(built.str)`` is
    the same type as numpy builds it, so any difference is a state no pickler wrote.
    """
    if built.fields is not None or built.subdtype is not None:
        raise RefusedPickleError(
            "numpy.dtype",
            "builds a numpy dtype with fields or a sub-array; saved models hold only plain "
            "dtypes such as <f8, <i8, <U1 or |O",
        )
    try:
        made = np.dtype(built.str)
    except (TypeError, ValueError):
        made = None
    found = (built.str, built.itemsize, built.alignment, built.flags)
    expected = None if made is None else (made.str, made.itemsize, made.alignment, made.flags)
    if expected != found or made != built:
        raise RefusedPickleError(
            "numpy.dtype",
            f"builds a numpy dtype whose state contradicts itself: (str, itemsize, alignment, "
            f"flags) {found}, where numpy makes {expected or 'no such dtype'}; arrays of it could "
            "read the file's bytes as memory addresses, or past their end",
        )
