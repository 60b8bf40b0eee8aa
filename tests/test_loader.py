"""data/loader.py: which batch_module a dataset may name, and that a foreign one never runs."""

import numpy as np
import pytest

import data
from data.writer import write_dataset
from data.loader import Examples, TokenWindows, import_batch_module, open_batches


def test_the_repository_batch_module_is_imported():
    module = import_batch_module("data.birthplace.batches")
    assert hasattr(module, "load_split") and module.__name__ == "data.birthplace.batches"


@pytest.mark.parametrize("name", ["os", "subprocess", "datasets", "data", "data.no_such_module", "data/common",
                                  "", None])
def test_a_name_outside_data_is_refused(name):
    with pytest.raises(ValueError, match=r"which is not a module inside .*data; prepare the dataset again"):
        import_batch_module(name)


def test_a_data_name_whose_file_lies_elsewhere_is_refused_unrun(tmp_path, monkeypatch):
    """The name passes a prefix check, but the file it resolves to is outside data/: refused,
    and the module's code never runs."""
    marker = tmp_path / "ran"
    (tmp_path / "planted.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef load_split(*a): pass\n")
    monkeypatch.setattr(data, "__path__", [*data.__path__, str(tmp_path)])  # data.planted now resolves there
    with pytest.raises(ValueError, match="data.planted"):
        import_batch_module("data.planted")
    assert not marker.exists()


def test_open_batches_chooses_windows_or_examples_and_checks_the_module(tmp_path):
    meta = write_dataset(str(tmp_path), np.arange(100) % 7, np.arange(50) % 7,
                         tokenizer={"kind": "char", "chars": "abcdefg"}, vocab_size=7)
    windows = open_batches(str(tmp_path), "train", meta, 8, "cpu")
    assert isinstance(windows, TokenWindows) and len(windows) == 100
    x, y = windows.get(windows.draw(np.random.default_rng(0), 1, 4)[0])
    assert x.shape == (4, 8) and (y[:, :-1] == x[:, 1:]).all()
    with pytest.raises(ValueError, match=r"has 50 tokens, not more than block_size=64"):
        open_batches(str(tmp_path), "val", meta, 64, "cpu")
    with pytest.raises(ValueError, match=r"batch_module 'os'"):
        open_batches(str(tmp_path), "train", {**meta, "batch_module": "os"}, 8, "cpu")


def test_examples_trim_to_the_longest_target():
    class Source:  # the batch_module protocol: one (x, y) pair of block_size ids per seed
        def examples(self, seeds):
            out = []
            for s in seeds:
                x, y = np.zeros(8, dtype=np.int64), np.full(8, -1, dtype=np.int64)
                y[: 2 + int(s) % 3] = 1  # targets in the first 2 to 4 columns
                out.append((x, y))
            return out

    X, Y = Examples(Source(), 100, "cpu").get([0, 1, 2])
    assert X.shape == Y.shape == (3, 4) and (Y[2] != -1).all()
