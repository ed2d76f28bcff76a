"""Reading the systems' saved models (pickles) without letting a file run code.

``pickle.load`` runs whatever a file names: a global such as ``os.system`` called with the
file's arguments. :func:`restricted_load` is the standard library's "Restricting Globals" recipe
(what ``torch.load(weights_only=True)`` does) with one more check:

* **globals**: only the ``(module, name)`` pairs a system lists as what its models are made of
  resolve; any other name is refused before it is imported;
* **state on globals**: BUILD, the opcode that restores an object's state, is refused on a
  class and on anything else ``find_class`` returned (an allowed function such as numpy's
  ``_frombuffer``). Pickle's default ``__setstate__`` would ``setattr`` on it: on a class that
  changes every object of the class, on a function its ``__qualname__`` or ``__defaults__``, for
  the whole process and even if the file were refused further on (a renamed ``_frombuffer``
  breaks ``pickle.dumps`` of every numpy array). Saved models only ever BUILD the instances
  they create.

The second check needs the pure-Python unpickler (``pickle._Unpickler``, as joblib's is): the C
one has no hook for BUILD. It is slower on files of many small objects (a 5 MB moderation model
with its TF-IDF vocabularies loads in 0.3 s instead of 0.03 s) and about as fast on a few large
arrays (a recommender).

This closes the usual way a pickle runs code, not every way: the allowed classes still restore
their own state (LightGBM and FAISS parse their own bytes), so a model file is as trustworthy as
its source. ``moderation.classifier`` and ``recsys.recommender`` hold the two allow-lists.
"""

from __future__ import annotations

import pickle
from typing import IO, ClassVar

from evals.errors import RefusedPickleError

__all__ = ["restricted_load"]


def restricted_load(file: IO[bytes], allowed: frozenset[tuple[str, str]]) -> object:
    """Unpickle ``file``, resolving only the globals in ``allowed`` and never setting attributes
    on a class or on a global; anything else raises :class:`~evals.errors.RefusedPickleError`."""
    return _RestrictedUnpickler(file, allowed).load()


class _RestrictedUnpickler(pickle._Unpickler):
    def __init__(self, file: IO[bytes], allowed: frozenset[tuple[str, str]]) -> None:
        super().__init__(file)
        self.allowed = allowed
        # every object find_class returned, by id (holding the object keeps its id unique)
        self._resolved: dict[int, tuple[object, str]] = {}

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
        super().load_build()

    dispatch: ClassVar[dict] = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: load_build}
