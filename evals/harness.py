"""
gptlab's GPT and tokenizer as an lm-evaluation-harness model, so any harness task runs on any
checkpoint, whatever its flags and tokenizer: loglikelihood requests are scored by scoring.py
(a batch in one right-padded forward), loglikelihood_rolling in its rolling windows, and
generate_until decodes greedily with the KV cache up to a stop string. The harness (pip install
lm-eval) is imported only when the adapter is built; evaluate.py --task=lm_eval drives it.
Details: docs/evaluation.md#lm_eval-lm-evaluation-harness.
"""

import torch

from evals.scoring import rolling_pairs, score_continuations


def harness_lm(model, tok, batch_size=16):
    """model and tok as an lm-evaluation-harness LM (TemplateLM: the harness splits each request
    into context and continuation ids as it does for Hugging Face models, then calls
    _loglikelihood_tokens). Built on gptlab's own GPT and tokenizer, so every flag works."""
    from lm_eval.api.model import TemplateLM

    block = model.config.block_size

    class GptlabLM(TemplateLM):
        @property
        def eot_token_id(self):
            return tok.eot

        def tok_encode(self, string, add_special_tokens=None, **kwargs):
            return tok.encode(string)

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, **kwargs):
            pairs = [(c, x) for _, c, x in requests]
            batches = (pairs[i:i + batch_size] for i in range(0, len(pairs), batch_size))
            return [r for batch in batches for r in score_continuations(model, batch)]

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            out = []
            for (text,) in (r.args for r in requests):
                ids = tok.encode(text)
                if tok.eot is None:  # nothing to read before the first token: it goes unscored
                    ids, prefix = ids[1:], ids[0]
                else:
                    prefix = tok.eot
                pairs = rolling_pairs(ids, prefix, block) if ids else []
                out.append(sum(lp for lp, _ in self._loglikelihood_tokens([(None, c, x) for c, x in pairs])))
            return out

        def generate_until(self, requests, disable_tqdm=False):
            return [generate_until(model, tok, context, kw) for context, kw in (r.args for r in requests)]

    return GptlabLM()


@torch.no_grad()
def generate_until(model, tok, context, gen_kwargs):
    """Greedy (or sampled, when gen_kwargs says so) text after context, with the KV cache, cut at
    the first of gen_kwargs["until"] (stop strings) or the end-of-text token."""
    until = gen_kwargs.get("until") or []
    until = [until] if isinstance(until, str) else list(until)
    max_new = gen_kwargs.get("max_gen_toks", 256)
    temperature = gen_kwargs.get("temperature", 0.0) if gen_kwargs.get("do_sample", False) else 0.0
    device = next(model.parameters()).device
    x = torch.tensor([tok.encode(context)[-model.config.block_size:]], dtype=torch.long, device=device)  # (1, T)
    ids, text = [], ""
    with torch.autocast(device.type, enabled=False):
        for nxt in model.stream(x, max_new, temperature=temperature, use_cache=True, eos_token=tok.eot):
            if tok.eot is not None and nxt.item() == tok.eot:
                break
            ids.append(nxt.item())
            text = tok.decode(ids)
            if any(s in text for s in until):
                break
    cut = min([text.find(s) for s in until if s in text], default=len(text))
    return text[:cut]
