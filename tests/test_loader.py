"""data/loader.py: which batch_module a dataset may name, and that a foreign one never runs."""

import numpy as np
import pytest

import data
from data.common import write_dataset
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


def test_mixture_takes_each_batch_from_one_source_at_the_given_share(tmp_path):
    from data.loader import mixture
    tok = {"kind": "char", "chars": "abcdefgh"}
    write_dataset(str(tmp_path / "main"), [2] * 500, [2] * 100, tok, 8)
    write_dataset(str(tmp_path / "other"), [5] * 500, [5] * 100, tok, 8)
    main = open_batches(str(tmp_path / "main"), "train", {"vocab_size": 8, "dtype": "uint16"}, 16, "cpu")
    meta = {"tokenizer": tok}
    mixed = mixture(main, meta, str(tmp_path / "other"), 0.3, 16, "cpu")
    rows = mixed.draw(np.random.default_rng(0), 2000, 4)
    again = mixed.draw(np.random.default_rng(0), 2000, 4)  # the run's generator decides everything
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(rows, again))
    share = np.mean([which for which, _ in rows])
    assert 0.27 < share < 0.33  # 2,000 draws at 0.3: 3 standard errors is 0.03
    for row in rows[:40]:
        x, y = mixed.get(row)
        assert x.shape == (4, 16) and set(x.flatten().tolist()) == {5 if row[0] else 2}  # the whole batch from one source
    everything = mixture(main, meta, str(tmp_path / "other"), 1.0, 16, "cpu")
    assert all(which == 1 for which, _ in everything.draw(np.random.default_rng(1), 50, 2))
    assert len(mixed) == len(main)  # the run's size is the main dataset's
    with pytest.raises(ValueError, match=r"mix_fraction=1.5 must be in \(0, 1\]"):
        mixture(main, meta, str(tmp_path / "other"), 1.5, 16, "cpu")
    with pytest.raises(ValueError, match="needs --mix_dataset"):
        mixture(main, meta, "", 0.5, 16, "cpu")
    with pytest.raises(ValueError, match="another tokenizer"):
        mixture(main, {"tokenizer": {"kind": "char", "chars": "abcdefgz"}}, str(tmp_path / "other"), 0.5, 16, "cpu")
