"""``temporary_sibling``: each writer's own temporary name beside the entry it will replace."""

from evals.files import temporary_sibling


def test_names_sit_beside_the_entry_differ_on_every_call_and_keep_the_suffix(tmp_path):
    entry = tmp_path / "vectors.npy"
    names = {temporary_sibling(entry, ".tmp.npy") for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert name.parent == tmp_path  # same folder, so the final rename is atomic
        assert name.name.startswith("vectors.npy.") and name.name.endswith(".tmp.npy")
    assert temporary_sibling(entry).name.endswith(".tmp")
