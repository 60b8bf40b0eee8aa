"""
Scoring a continuation: the log-probability a model gives a continuation's tokens after a
context, in fp32, many pairs in one right-padded forward (score_continuations); and a text of any
length cut into such pairs so that every token is scored once (rolling_pairs, the harness's rolling
windows). HellaSwag and the lm-evaluation-harness adapter score through it.
"""

import torch
import torch.nn.functional as F


@torch.no_grad()
def score_continuations(model, pairs):
    """pairs of (context ids, continuation ids) -> one (log-probability of the continuation given
    the context, whether it is the greedy continuation) per pair, in fp32. The pairs share one
    right-padded forward: padding sits after every scored position, so causal attention never
    lets it change a score. A pair longer than block_size + 1 keeps its last tokens."""
    device = next(model.parameters()).device
    block = model.config.block_size
    if any(len(x) > block for _, x in pairs):
        raise ValueError(f"a continuation is longer than block_size={block}: the model cannot score it in one window")
    rows = [(c + x)[-(block + 1):] for c, x in pairs]
    T = max(len(r) for r in rows) - 1
    inp = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        inp[i, :len(r) - 1] = torch.tensor(r[:-1])
    with torch.autocast(device.type, enabled=False):  # fp32 whatever the caller's autocast says
        logp = F.log_softmax(model(inp.to(device))[0].float(), dim=-1)  # (B, T, V)
    out = []
    for i, ((_, cont), r) in enumerate(zip(pairs, rows)):
        k = len(cont)
        where = torch.arange(len(r) - 1 - k, len(r) - 1, device=device)  # the positions that predict cont
        target = torch.tensor(cont, device=device)
        lp = logp[i, where]  # (k, V)
        out.append((lp.gather(1, target[:, None]).sum().item(), bool((lp.argmax(-1) == target).all())))
    return out


def rolling_pairs(ids, prefix, block):
    """A text of any length as (context, continuation) windows that together predict every token
    once, each with up to block_size tokens of context: the first window reads prefix (the
    end-of-text token) then the text; later windows predict the next block_size tokens, and the
    last one reads the whole block before its tokens. lm-evaluation-harness's rolling windows."""
    ids = list(ids)
    first = min(block, len(ids))
    pairs = [([prefix], ids[:first])]
    done = first
    while done < len(ids):
        end = min(done + block, len(ids))
        pairs.append((ids[max(0, end - block - 1):done], ids[done:end]))
        done = end
    return pairs
