import os

import pytest

from configurator import ConfigError, apply_overrides, config_keys, help_text


def defaults():
    return {"learning_rate": 6e-4, "batch_size": 12, "compile": False, "device": "auto",
            "betas": (0.9, 0.95), "vocab_size": None, "out_dir": "out"}


def test_types_are_parsed_and_checked():
    g = defaults()
    chosen = apply_overrides(g, ["--learning_rate=1", "--batch_size=32", "--compile=TRUE", "--device=cuda:1",
                                 "--betas=[0.8, 0.9]", "--vocab_size=100", "--out_dir=2024"])
    assert g["learning_rate"] == 1.0 and isinstance(g["learning_rate"], float)
    assert g["batch_size"] == 32 and g["compile"] is True and g["device"] == "cuda:1"
    assert g["betas"] == (0.8, 0.9) and g["vocab_size"] == 100 and g["out_dir"] == "2024"
    assert set(chosen) == {"learning_rate", "batch_size", "compile", "device", "betas", "vocab_size", "out_dir"}


def test_value_split_on_first_equals():
    g = defaults()
    apply_overrides(g, ["--out_dir=a=b"])
    assert g["out_dir"] == "a=b"


def test_unknown_key_names_nearest():
    with pytest.raises(ConfigError, match=r"unknown config key 'lerning_rate'.*--learning_rate"):
        apply_overrides(defaults(), ["--lerning_rate=1e-3"])


def test_auto_only_where_the_script_allows_it(tmp_path):
    g = {**defaults(), "weight_decay": 0.1, "AUTO_KEYS": ["learning_rate"]}
    assert "AUTO_KEYS" not in apply_overrides(g, ["--learning_rate=auto"]) and g["learning_rate"] == "auto"
    cfg = tmp_path / "c.py"
    cfg.write_text("learning_rate = 'auto'\n")
    g["learning_rate"] = 6e-4
    apply_overrides(g, [str(cfg)])
    assert g["learning_rate"] == "auto"
    with pytest.raises(ConfigError, match="--weight_decay expects float"):
        apply_overrides(g, ["--weight_decay=auto"])
    with pytest.raises(ConfigError, match="--learning_rate expects float"):
        apply_overrides(defaults(), ["--learning_rate=auto"])  # a script without AUTO_KEYS


@pytest.mark.parametrize("arg, expect", [("--batch_size=1.5", "expects int"), ("--compile=1", "expects bool"),
                                         ("--learning_rate=fast", "expects float"), ("--batch_size", "no value")])
def test_wrong_type_is_an_error(arg, expect):
    with pytest.raises(ConfigError, match=expect):
        apply_overrides(defaults(), [arg])


def test_config_file_then_cli(tmp_path):
    cfg = tmp_path / "c.py"
    cfg.write_text("import math\nbatch_size = 7\nlearning_rate = math.sqrt(4) * 1e-3\n")
    g = defaults()
    apply_overrides(g, [str(cfg), "--batch_size=9"])
    assert g["batch_size"] == 9 and g["learning_rate"] == pytest.approx(2e-3)


def test_config_file_unknown_key(tmp_path):
    cfg = tmp_path / "c.py"
    cfg.write_text("batchsize = 7\n")
    with pytest.raises(ConfigError, match="batch_size"):
        apply_overrides(defaults(), [str(cfg)])
    with pytest.raises(ConfigError, match="not found"):
        apply_overrides(defaults(), [str(tmp_path / "missing.py")])


def test_help_lists_every_key():
    text = help_text(defaults(), "train.py")
    for k in defaults():
        assert f"--{k}=" in text


def test_repo_configs_load():
    import train
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in sorted(os.listdir(os.path.join(root, "config"))):
        g = {k: getattr(train, k) for k in train.CONFIG_KEYS}
        apply_overrides(g, [os.path.join(root, "config", name)])  # raises on any unknown key


def test_unknown_keys_may_be_skipped_where_another_script_checks_them(tmp_path):
    cfg = tmp_path / "train_cfg.py"
    cfg.write_text("batch_size = 7\nout_dir = 'elsewhere'\n")  # out_dir: a key this script lacks
    with pytest.raises(ConfigError, match="unknown config key 'out_dir'"):
        apply_overrides({"batch_size": 1}, [str(cfg)])
    g = {"batch_size": 1}
    assert apply_overrides(g, [str(cfg)], unknown_keys="skip_in_files") == {"batch_size": 7}
    with pytest.raises(ConfigError, match=r"unknown config key 'batch_sise'; did you mean --batch_size"):
        apply_overrides(g, ["--batch_sise=3"], unknown_keys="skip_in_files")  # a typed key is still checked
    g = {"batch_size": 1}
    assert apply_overrides(g, [str(cfg), "--n_layer=3", "--batch_size=5"], unknown_keys="skip") == {"batch_size": 5}
    assert g == {"batch_size": 5}
    with pytest.raises(ValueError, match="unknown_keys must be one of"):
        apply_overrides(g, [], unknown_keys="ignore")


def test_bench_and_ablate_take_train_configs_with_trains_defaults():
    """bench.py and ablate.py keep their own keys; a train.py config file still works with them,
    and the train.py keys they read default to train.py's values."""
    import ablate
    import bench
    import train
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for module in (bench, ablate):
        shared_keys = set(config_keys(vars(module))) & set(train.CONFIG_KEYS)
        assert {"batch_size", "block_size", "gradient_accumulation_steps"} <= shared_keys
        for k in shared_keys:
            assert getattr(module, k) == getattr(train, k), (module.__name__, k)
        g = {k: getattr(module, k) for k in config_keys(vars(module))}
        apply_overrides(g, [os.path.join(root, "config", "train_shakespeare_char_cpu.py")], unknown_keys="skip_in_files")
        assert g["n_embd" if module is bench else "max_iters"] in (128, 2000) and g["block_size"] == 64


@pytest.mark.parametrize("script", ["train", "sample", "evaluate", "bench", "export", "ablate"])
def test_help_lists_the_settings_one_a_line_each_with_its_comment(script):
    """--help shows every setting on one line with its default and the comment it has in the source
    (a GPTConfig field's comment comes from model.py), and no module constant (TASKS, GPT2_BPE_NAMES)."""
    import importlib
    module = importlib.import_module(script)
    text = help_text(vars(module), f"{script}.py")
    lines = [line for line in text.splitlines() if line.startswith("  --")]
    keys = config_keys(vars(module))
    assert [line.split("=", 1)[0].strip()[2:] for line in lines] == keys
    assert not [k for k in keys if k.isupper()], "module constants are not settings"
    bare = [line for line in lines if "  # " not in line]
    assert not bare, f"{script}.py: settings without a comment in the source:\n" + "\n".join(bare)
    assert "--n_embd=" not in text or "--dropout=0.0" in text and "residual branches" in text  # model.py's comment


def test_every_argparse_option_has_its_help():
    """The scripts that take argparse options (data/*/prepare.py, plot.py, bench/*.py) say what each one does."""
    import ast
    import glob
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bare = []
    for path in sorted(glob.glob(os.path.join(root, "data", "*", "prepare.py")) + glob.glob(os.path.join(root, "bench", "*.py"))
                       + [os.path.join(root, "plot.py")]):
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                if not any(k.arg == "help" for k in node.keywords):
                    bare.append(f"{os.path.relpath(path, root)}:{node.lineno}")
    assert not bare, "options without help=: " + ", ".join(bare)
