"""export.py's GPT-2 tokenizer files, and lm-evaluation-harness end to end, offline: a local
multiple-choice task in HellaSwag's format, scored once on a gptlab checkpoint through
evaluate.py's adapter and once on the same checkpoint exported to Hugging Face through the
harness's own 'hf' model. Both must give the same loglikelihood for every choice."""

import json
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from checkpoint import save_checkpoint  # noqa: E402
from data.tokenizer import GPT2_BPE, Tokenizer  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402

ARGS = dict(n_layer=2, n_head=2, n_embd=32, block_size=64, vocab_size=50257, dropout=0.0)
EXAMPLES = [
    ("A man is sitting on a roof. He", ["starts pulling up roofing on a roof.", "is ripping level tiles off.",
                                        "is holding a rubik's cube.", "is using wrap to wrap a pair of skis."], 0),
    ("The knight rode out of the village and", ["fought a windmill.", "ate soup.", "slept.", "sang to the moon."], 0),
    ("Sancho filled the saddlebags, then", ["followed his master.", "sold the donkey.", "wept.", "ran off."], 1),
]


def gpt2_checkpoint(folder):
    torch.manual_seed(0)
    model = GPT(GPTConfig(**ARGS))
    os.makedirs(folder, exist_ok=True)
    save_checkpoint({"model": model.state_dict(), "model_args": dict(ARGS), "iter_num": 0, "config": {}},
                    os.path.join(folder, "ckpt.pt"))
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump({"vocab_size": 50257, "dtype": "uint16", "tokenizer": GPT2_BPE}, f)
    return model


def test_export_writes_gpt2_tokenizer_files_that_load_offline(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import tiktoken
    from transformers import AutoTokenizer

    import export
    from checkpoint import load_checkpoint
    gpt2_checkpoint(tmp_path / "run")
    dest = str(tmp_path / "hf")
    export.export_hf(load_checkpoint(str(tmp_path / "run" / "ckpt.pt")), dest, Tokenizer(GPT2_BPE))
    assert {"vocab.json", "merges.txt", "tokenizer_config.json", "config.json"} <= set(os.listdir(dest))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hf_tok = AutoTokenizer.from_pretrained(dest, local_files_only=True)
    enc = tiktoken.get_encoding("gpt2")
    for text in ["Hello world", " In a village of La Mancha,\n\nthere lived", "¿Señor? 1234 it's   spaced  ",
                 "naïve café — “quoted” 😀"]:
        assert hf_tok(text)["input_ids"] == enc.encode_ordinary(text)
    assert hf_tok.eos_token_id == 50256 and hf_tok.model_max_length == ARGS["block_size"]


TASK_YAML = """\
task: local_hellaswag
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {data}
validation_split: validation
output_type: multiple_choice
doc_to_text: "{{{{ctx}}}}"
doc_to_target: "{{{{label}}}}"
doc_to_choice: "{{{{endings}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""

# a task whose metric imports Hugging Face's evaluate package, as squadv2's and xquad's do: run from
# the repository, evaluate.py must not take that name
METRIC_YAML = TASK_YAML.replace("local_hellaswag", "local_hf_metric").replace("""metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
""", """process_results: !function utils.process_results
metric_list:
  - metric: hf_evaluate
""")
METRIC_UTILS = """\
import evaluate


def process_results(doc, results):
    return {"hf_evaluate": float(hasattr(evaluate, "load") and hasattr(evaluate, "EvaluationModule"))}
"""

DRIVER = """\
import json, sys
sys.path.insert(0, {root!r})
import lm_eval
from lm_eval.tasks import TaskManager
from checkpoint import load_model
from evals.harness import harness_lm

model, tok, _ = load_model("resume", {run!r})
out = {{}}
for name, lm, args in [("gptlab", harness_lm(model.eval(), tok), None),
                       ("hf", "hf", "pretrained={hf},dtype=float32,device=cpu,batch_size=4")]:
    r = lm_eval.simple_evaluate(model=lm, model_args=args, tasks=["local_hellaswag"],
                                task_manager=TaskManager(include_path={tasks!r}), log_samples=True)
    out[name] = {{"acc": r["results"]["local_hellaswag"]["acc,none"],
                 "acc_norm": r["results"]["local_hellaswag"]["acc_norm,none"],
                 "loglikelihoods": [[float(x[0][0]) for x in s["resps"]] for s in
                                    sorted(r["samples"]["local_hellaswag"], key=lambda s: s["doc_id"])]}}
# and the command line, in this process (importing the harness takes most of the time), timed
import contextlib, io, runpy, time
sys.argv = ["evaluate.py", "--out_dir={run}", "--task=lm_eval", "--lm_eval_tasks=local_hellaswag,local_hf_metric",
            "--lm_eval_include={cli_tasks}", "--device=cpu"]
printed, t0 = io.StringIO(), time.time()
with contextlib.redirect_stdout(printed):
    runpy.run_path({root!r} + "/evaluate.py", run_name="__main__")
out["cli"], out["cli_s"] = printed.getvalue(), time.time() - t0
json.dump(out, open({result!r}, "w"))
"""


@pytest.mark.slow
def test_harness_gives_the_same_scores_through_the_adapter_and_through_hf(tmp_path):
    pytest.importorskip("lm_eval")
    import export
    from checkpoint import load_checkpoint
    gpt2_checkpoint(tmp_path / "run")
    export.export_hf(load_checkpoint(str(tmp_path / "run" / "ckpt.pt")), str(tmp_path / "hf"),
                     Tokenizer(GPT2_BPE))
    data = tmp_path / "hellaswag_local.jsonl"
    with open(data, "w") as f:
        for i, (ctx, endings, label) in enumerate(EXAMPLES):
            f.write(json.dumps({"ind": i, "activity_label": "Test", "ctx_a": ctx, "ctx_b": "", "ctx": ctx,
                                "endings": endings, "source_id": f"t~{i}", "split": "val",
                                "split_type": "indomain", "label": label}) + "\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "local_hellaswag.yaml").write_text(TASK_YAML.format(data=data))
    cli_tasks = tmp_path / "cli_tasks"  # the command line's: both tasks
    cli_tasks.mkdir()
    (cli_tasks / "local_hellaswag.yaml").write_text(TASK_YAML.format(data=data))
    (cli_tasks / "local_hf_metric.yaml").write_text(METRIC_YAML.format(data=data))
    (cli_tasks / "utils.py").write_text(METRIC_UTILS)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "cache"),
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    result = tmp_path / "result.json"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(root=ROOT, run=str(tmp_path / "run"), hf=str(tmp_path / "hf"),
                                    tasks=str(tasks), cli_tasks=str(cli_tasks), result=str(result)))
    p = subprocess.run([sys.executable, str(driver)], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(result.read_text())
    assert (r["gptlab"]["acc"], r["gptlab"]["acc_norm"]) == (r["hf"]["acc"], r["hf"]["acc_norm"])
    assert len(r["gptlab"]["loglikelihoods"]) == len(EXAMPLES)
    for ours, theirs in zip(r["gptlab"]["loglikelihoods"], r["hf"]["loglikelihoods"]):
        assert ours == pytest.approx(theirs, abs=1e-4)

    assert "local_hellaswag" in r["cli"] and "acc_norm" in r["cli"], r["cli"]  # evaluate.py --task=lm_eval
    row = next(line for line in r["cli"].splitlines() if "hf_evaluate" in line)
    assert "1.0000" in [cell.strip() for cell in row.split("|")], r["cli"]  # the metric saw Hugging Face's evaluate, not this repository's
    print(f"evaluate.py --task=lm_eval on {len(EXAMPLES)} examples, harness imported: {r['cli_s']:.1f} s")
