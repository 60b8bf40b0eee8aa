"""
The GPT language model, in one file, with every ablation behind a flag.

All flags off gives GPT-2 (Radford et al. 2019): learned positions, pre-norm
LayerNorm blocks, GELU MLP, tied input/output embeddings. Read it top to bottom:
config, small layers (norms, rotary embeddings, the KV cache), attention, MLP,
block, the GPT itself, then generation. The LM head's loss in tiles (fused_loss) is a
kernel of its own, in fused_loss.py.

Imports only torch, and fused_loss.py (which imports only torch).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from fused_loss import FUSED_MIN_VOCAB, linear_cross_entropy


@dataclass
class GPTConfig:
    block_size: int = 1024  # longest context the model sees (and learns positions for)
    vocab_size: int = 50257  # token ids 0 .. vocab_size-1 (GPT-2's BPE has 50257)
    pad_vocab: bool = False  # round the embedding and head up to a multiple of 64 rows, for faster matmuls (nanoGPT's 50304)
    n_layer: int = 12  # transformer blocks
    n_head: int = 12  # attention heads per block (head size n_embd // n_head)
    n_embd: int = 768  # width of the residual stream (embeddings)
    dropout: float = 0.0  # on attention weights and residual branches; 0 for pretraining, 0.1+ to finetune
    bias: bool = True  # biases in Linears and LayerNorms, as GPT-2; False is a little faster and often as good
    attn_impl: str = "sdpa"  # 'sdpa': fused F.scaled_dot_product_attention; 'manual': the readable reference
    attention: str = "vanilla"  # 'vanilla': dot-product; 'synthesizer': dense Synthesizer (Tay et al. 2020, CS224N a5)
    n_kv_head: int = 0  # grouped-query attention (Ainslie et al. 2023): heads sharing k/v; 0 means n_head (plain MHA)
    use_qk_norm: bool = False  # normalise q and k per head before the dot product (Dehghani et al. 2023, OLMo 2)
    use_rope: bool = False  # rotary position embeddings on q, k (Su et al. 2021) instead of a learned position table
    rope_theta: float = 10000.0  # RoPE base: rotation wavelengths run from 2*pi to 2*pi*theta
    use_rmsnorm: bool = False  # RMSNorm (Zhang & Sennrich 2019) instead of LayerNorm, in every norm
    norm_eps: float = 1e-5  # added to the variance (RMSNorm: the mean square) in every norm, QK-norm too
    use_swiglu: bool = False  # SiLU-gated MLP (Shazeer 2020, LLaMA); see mlp_width() for the width rule
    use_relu2: bool = False  # squared-ReLU MLP (So et al. 2021, Primer; modded-nanogpt)
    gelu_tanh: bool = False  # tanh-approximate GELU, which OpenAI trained GPT-2 with ("gelu_new" in Hugging Face)
    mlp_hidden: int = 0  # MLP hidden width; 0 means 4*n_embd, or 2/3 of that for SwiGLU (same parameter count)
    tie_embeddings: bool = True  # share the token embedding with the LM head, as GPT-2; False unties them
    fused_loss: str = "auto"  # head and loss in tiles, never the whole logits: 'on', 'off', 'auto' (vocab_size >= 8192)

    def __post_init__(self):
        def need(ok, msg):
            if not ok:
                raise ValueError(msg)

        need(self.n_embd % self.n_head == 0, f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        need(self.attn_impl in ("sdpa", "manual"), f"attn_impl must be 'sdpa' or 'manual', got {self.attn_impl!r}")
        need(self.attention in ("vanilla", "synthesizer"),
             f"attention must be 'vanilla' or 'synthesizer', got {self.attention!r}")
        need(not (self.attention == "synthesizer" and self.attn_impl == "sdpa"),
             "attention='synthesizer' computes its own attention weights, so it needs --attn_impl=manual")
        need(not (self.attention == "synthesizer" and (self.use_rope or self.use_qk_norm
                                                   or self.n_kv_head not in (0, self.n_head))),
             "attention='synthesizer' has no queries or keys, so use_rope, use_qk_norm and n_kv_head do not apply; "
             "turn them off")
        kv = self.n_kv_head or self.n_head
        need(0 < kv <= self.n_head and self.n_head % kv == 0,
             f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head}")
        need(not (self.use_rope and (self.n_embd // self.n_head) % 2),
             "use_rope needs an even head size (n_embd // n_head)")
        need(not (self.use_swiglu and self.use_relu2), "use_swiglu and use_relu2 are two different MLPs; pick one")
        need(self.block_size > 0 and self.vocab_size > 0, "block_size and vocab_size must be positive")
        need(self.fused_loss in ("auto", "on", "off"),
             f"fused_loss must be 'auto', 'on' or 'off', got {self.fused_loss!r}")

    @property
    def head_dim(self):
        return self.n_embd // self.n_head

    @property
    def padded_vocab(self):
        """Rows of the embedding and the LM head. The padded rows are never looked up (no token
        has their id) and forward cuts their logits off, so they are never sampled or scored."""
        return -(-self.vocab_size // 64) * 64 if self.pad_vocab else self.vocab_size

    def mlp_width(self):
        # SwiGLU has three matrices instead of two, so 2/3 of the GELU width keeps
        # the parameter count: 3 * n_embd * (2/3 * 4 * n_embd) == 2 * n_embd * 4 * n_embd.
        if self.mlp_hidden:
            return self.mlp_hidden
        return int(2 * 4 * self.n_embd / 3) if self.use_swiglu else 4 * self.n_embd


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's cannot switch the bias off)."""

    def __init__(self, ndim, bias, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight: no mean subtraction, no bias."""

    def __init__(self, ndim, bias, eps):  # bias is ignored; the signature matches LayerNorm
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.eps = eps

    def forward(self, x):
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


def make_norm(cfg):
    """The block's and the final norm: RMSNorm or LayerNorm over n_embd, as use_rmsnorm says."""
    return (RMSNorm if cfg.use_rmsnorm else LayerNorm)(cfg.n_embd, cfg.bias, cfg.norm_eps)


def rope_tables(head_dim, max_len, theta):
    """cos and sin of the rotation angle pos * theta^(-2i/head_dim), each (max_len, head_dim/2).
    The angles are computed in float64: in float32, pos * freq loses digits as pos grows."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x, cos, sin):
    """Rotate each (x1[i], x2[i]) pair of x (B, nh, T, hs) by its position's angle.
    Pairs are the two halves of the head (the GPT-NeoX / LLaMA-HF layout)."""
    x1, x2 = x.float().chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.type_as(x)


class KVCache:
    """Keys and values of the tokens seen so far, for decoding one token at a time: one
    (B, nkv, max_len, hs) buffer per layer. GPT.forward advances it.

    Every forward with a cache writes its T new positions into their slots and attends over the
    whole buffer with a (T, max_len) mask of the slots each new token may see. The shapes are the
    same at every one-token step, and the position is read from a tensor (`index`), so
    torch.compile traces that step once (GPT.compile_decoding).

    rolling=True is for rotary positions, whose attention scores depend only on how far apart two
    tokens are: once max_len positions are stored, each new token overwrites the oldest slot and
    the window slides by one token, with no prefill. Every layer then attends to the last max_len
    tokens (sliding-window attention); the older tokens' keys still carry what they saw when
    they were computed. Positions keep growing, so rebase() moves them back now and then.

    static=True is for a compiled step: the buffers are marked as inputs whose addresses never change
    (they do not: rebase() rotates the keys in place), which CUDA graphs need."""

    def __init__(self, n_layer, max_len, rolling=False, static=False):
        self.n_layer, self.max_len, self.rolling, self.static = n_layer, max_len, rolling, static
        self.k = [None] * n_layer  # allocated on first use, in the dtype and device of the keys
        self.v = [None] * n_layer
        self.pos = 0  # the position of the next token (the number stored, until a rolling cache rebases)
        self.index = None  # the same, as a (1,) tensor on the device, for the compiled step
        self.slots = self.mask = None  # where this forward's tokens go, what they see: set by GPT.forward

    def reset(self):
        self.pos = 0
        self.index = None

    def check(self, T, device):
        """Before a forward of T new tokens: do they fit? (Python ints: outside the compiled step.)"""
        if self.pos + T > self.max_len and not (self.rolling and T == 1 and self.pos >= self.max_len):
            raise ValueError(f"KV cache holds {self.max_len} positions; {self.pos}+{T} do not fit")
        if self.index is None:
            self.index = torch.full((1,), self.pos, dtype=torch.long, device=device)

    def begin(self, T, device):
        """Set up a forward of T new tokens: their slots and mask. Returns their positions, (T,)."""
        pos = self.index + torch.arange(T, device=device)  # (T,)
        self.slots = pos % self.max_len
        # slot s holds position s until the buffer first fills; after that, all slots are the window
        self.mask = (torch.arange(self.max_len, device=device) <= pos[:, None]) | (pos[:, None] >= self.max_len)
        return pos

    def advance(self, T):
        self.pos += T
        self.index += T

    def store(self, layer, k, v):
        """k, v: (B, nkv, T, hs) for the new positions (k may be None: Synthesizer has no keys).
        Returns the whole buffers, (B, nkv, max_len, hs), and the (T, max_len) mask to attend with."""
        B, nkv, T, hs = v.shape
        if self.v[layer] is None or self.v[layer].shape[0] != B:
            self.v[layer] = v.new_zeros(B, nkv, self.max_len, hs)
            self.k[layer] = None if k is None else k.new_zeros(B, nkv, self.max_len, hs)
            # CUDA graphs (compile_decoding(mode='reduce-overhead')) replay a step that writes into these only
            # if they are marked static, as Hugging Face's StaticCache marks its own; unguarded, so a new cache
            # does not recompile the step (its graph is recorded again instead)
            for buf in (self.k[layer], self.v[layer]):
                if self.static and buf is not None and not torch.compiler.is_compiling():
                    torch._dynamo.mark_static_address(buf)
        self.v[layer].index_copy_(2, self.slots, v)
        if k is not None:
            self.k[layer].index_copy_(2, self.slots, k)
        return self.k[layer], self.v[layer], self.mask

    def rebase(self, shift, cos, sin):
        """Move every position back by shift: rotate the stored keys by -shift (cos, sin: that
        angle, (hs/2,) each), which leaves every score unchanged, since each depends only on the
        distance between two positions. Keeps positions inside the model's rotary table."""
        for k in self.k:
            if k is not None:
                k.copy_(apply_rope(k, cos, -sin))  # in place: the buffers keep their addresses
        self.pos -= shift
        self.index -= shift


def causal_mask(T, device):
    """(T, T) bool, True where query t may see key s (s <= t)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


class CausalSelfAttention(nn.Module):
    """Multi-head dot-product attention; grouped-query when n_kv_head < n_head."""

    def __init__(self, cfg, layer):
        super().__init__()
        self.layer, self.n_head, self.hs = layer, cfg.n_head, cfg.head_dim
        self.n_kv_head = cfg.n_kv_head or cfg.n_head
        kv_dim = self.n_kv_head * self.hs
        # q, k, v in one matrix; with n_kv_head == n_head this is GPT-2's c_attn
        self.c_attn = nn.Linear(cfg.n_embd, cfg.n_embd + 2 * kv_dim, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.q_norm = RMSNorm(self.hs, False, cfg.norm_eps) if cfg.use_qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.hs, False, cfg.norm_eps) if cfg.use_qk_norm else nn.Identity()
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.dropout, self.manual = cfg.dropout, cfg.attn_impl == "manual"

    def forward(self, x, rope=None, cache=None):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split([C, self.n_kv_head * self.hs, self.n_kv_head * self.hs], dim=2)
        q = q.view(B, T, self.n_head, self.hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_kv_head, self.hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, self.n_kv_head, self.hs).transpose(1, 2)  # (B, nkv, T, hs)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        mask = None  # without a cache: causal over the T tokens
        if cache is not None:
            k, v, mask = cache.store(self.layer, k, v)  # (B, nkv, S, hs), S = max_len; mask (T, S)
        groups = self.n_head // self.n_kv_head  # query heads per k/v head (1: plain multi-head)
        # a compiled cached step takes the hand-written form too: the compiler fuses it with what is
        # around it, where the fused kernel is a library call (about 8% less per token on a CPU). So does
        # a CPU under bf16 autocast: there torch's fused kernel runs 2.5-5x slower than in fp32 (its bf16
        # backward most), while the hand-written products run in bf16 (docs/results.md, dtype on a CPU)
        if self.manual or (cache is not None and torch.compiler.is_compiling()) or \
                (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")):
            if groups > 1:  # each group of heads reads the same k, v
                k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, nh, S, hs)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hs))  # (B, nh, T, S)
            att = att.masked_fill(~(causal_mask(T, x.device) if mask is None else mask), float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v  # (B, nh, T, S) x (B, nh, S, hs) -> (B, nh, T, hs)
        else:
            # enable_gqa lets the kernel read each k/v head for its group, without copying the cache
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1,
                                               dropout_p=self.dropout if self.training else 0.0,
                                               enable_gqa=groups > 1)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C): merge heads
        return self.resid_dropout(self.c_proj(y))


class SynthesizerAttention(nn.Module):
    """Dense Synthesizer: each token proposes its attention logits over positions from
    itself alone, ReLU(x W1 + b1) W2 + b2 per head; no queries or keys, no dot products.
    W2 has one column per position, so the context can never exceed block_size."""

    def __init__(self, cfg, layer):
        super().__init__()
        self.layer, self.n_head, self.hs = layer, cfg.n_head, cfg.head_dim
        self.w1 = nn.Linear(cfg.n_embd, cfg.n_embd, bias=True)
        self.w2 = nn.Parameter(torch.empty(self.hs, cfg.block_size))
        nn.init.uniform_(self.w2, -0.001, 0.001)  # logits start near uniform attention
        self.b2 = nn.Parameter(torch.zeros(cfg.block_size))
        self.value = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x, rope=None, cache=None):  # rope is always None: positions are W2's columns
        B, T, C = x.size()
        h = F.relu(self.w1(x)).view(B, T, self.n_head, self.hs).transpose(1, 2)  # (B, nh, T, hs)
        v = self.value(x).view(B, T, self.n_head, self.hs).transpose(1, 2)  # (B, nh, T, hs)
        mask = causal_mask(T, x.device)
        if cache is not None:
            _, v, mask = cache.store(self.layer, None, v)  # (B, nh, S, hs), S = block_size; mask (T, S)
        S = v.size(2)
        att = h @ self.w2[:, :S] + self.b2[:S]  # (B, nh, T, hs) x (hs, S) -> (B, nh, T, S)
        att = att.masked_fill(~mask, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Two-matrix MLP with GELU (GPT-2) or squared ReLU (Primer)."""

    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, cfg.mlp_width(), bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.mlp_width(), cfg.n_embd, bias=cfg.bias)
        self.act = ReLU2() if cfg.use_relu2 else nn.GELU(approximate="tanh" if cfg.gelu_tanh else "none")
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class ReLU2(nn.Module):
    def forward(self, x):
        return F.relu(x).square()


class SwiGLU(nn.Module):
    """silu(x W_gate) * (x W_up), then W_down. Gate and up share one matrix c_fc."""

    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 2 * cfg.mlp_width(), bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.mlp_width(), cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        gate, up = self.c_fc(x).chunk(2, dim=-1)  # (B, T, hidden) each
        return self.dropout(self.c_proj(F.silu(gate) * up))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg, layer):
        super().__init__()
        Attention = SynthesizerAttention if cfg.attention == "synthesizer" else CausalSelfAttention
        self.ln_1 = make_norm(cfg)
        self.attn = Attention(cfg, layer)
        self.ln_2 = make_norm(cfg)
        self.mlp = SwiGLU(cfg) if cfg.use_swiglu else MLP(cfg)

    def forward(self, x, rope=None, cache=None):
        x = x + self.attn(self.ln_1(x), rope, cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.padded_vocab, cfg.n_embd),
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList([Block(cfg, i) for i in range(cfg.n_layer)]),
            ln_f=make_norm(cfg),
        ))
        if cfg.use_rope:  # fixed tables, not parameters, and not saved: they follow from the config
            # twice block_size positions: a rolling KV cache runs on past block_size (see forward)
            cos, sin = rope_tables(cfg.head_dim, 2 * cfg.block_size, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        else:  # learned absolute positions (GPT-2)
            self.transformer.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.padded_vocab, bias=False)
        # a wide vocabulary's logits dwarf a narrow model (docs/results.md, "The LM head and its loss"); a
        # character vocabulary's are small, and the tiles only add a matrix product to recompute them
        self.fused_loss = cfg.fused_loss == "on" or (cfg.fused_loss == "auto" and cfg.vocab_size >= FUSED_MIN_VOCAB)
        self.compiled_step = None  # compile_decoding() sets it: the one-token cached forward, compiled
        if cfg.tie_embeddings:
            # one matrix both ways (Press & Wolf 2017); torch.compile warns about this but handles it
            self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            # GPT-2: residual projections scaled down so the residual stream's variance
            # does not grow with depth (2 residual branches per layer)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding=True):
        """Parameter count; by default without the position table, as nanoGPT counts (and the
        FLOPs below): the token embedding stays, since tied it is also the LM head and does work."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and not self.config.use_rope:
            n -= self.transformer.wpe.weight.numel()
        return n

    def num_body_params(self):
        """Parameters of the blocks and the final norm: Kaplan et al. (2020)'s N, which leaves
        out every vocabulary and position matrix (token embedding, position table, LM head)."""
        return sum(p.numel() for p in self.transformer.h.parameters()) + \
            sum(p.numel() for p in self.transformer.ln_f.parameters())

    def forward(self, idx, targets=None, cache=None, ignore_index=-1, return_logits=False):
        """idx (B, T) token ids -> logits (B, T, V), and the mean cross-entropy against
        targets (B, T) when given (targets equal to ignore_index do not count).
        With targets and the fused loss on (config.fused_loss), the loss comes straight from the
        hidden states and the logits are None, unless return_logits=True asks for them.
        With a cache, idx holds only the new tokens; their positions continue from cache.pos."""
        B, T = idx.size()
        block = self.config.block_size
        if cache is None:
            if T > block:
                raise ValueError(f"sequence of {T} tokens is longer than block_size={block}")
            x = self.run(idx, torch.arange(T, device=idx.device))  # (B, T, C)
            # quantize.py's heads hold int8 or bf16 weights for their own products: those take the plain path
            if targets is not None and self.fused_loss and not return_logits and type(self.lm_head) is nn.Linear:
                return None, linear_cross_entropy(x.view(B * T, -1), self.lm_head.weight, targets.view(-1),
                                                  self.config.vocab_size, ignore_index)
            logits = self.head(x)
        else:
            if not cache.rolling and cache.pos + T > block:
                raise ValueError(f"sequence of {cache.pos + T} tokens is longer than block_size={block}")
            if cache.rolling and cache.pos + T > self.rope_cos.size(0):  # past the rotary table: move back
                cache.rebase(block, self.rope_cos[block], self.rope_sin[block])
            cache.check(T, idx.device)
            # the compiled step for one new token, once the cache holds its buffers (an empty cache would
            # be a second graph to compile: a one-token prompt's first step allocates them eagerly)
            compiled = self.compiled_step is not None and T == 1 and cache.pos > 0
            step = self.compiled_step if compiled else self.cached_step
            logits = step(idx.contiguous(), cache)  # a column sliced from a (B, T) batch would recompile the step
            cache.advance(T)  # the one place positions advance
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), ignore_index=ignore_index)
        return logits, loss

    def run(self, idx, pos, cache=None):
        """idx (B, T) token ids at positions pos (T,) -> hidden states (B, T, C), after the final norm."""
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if self.config.use_rope:
            rope = (self.rope_cos[pos], self.rope_sin[pos])  # (T, hs/2) each
        else:
            x = x + self.transformer.wpe(pos)  # (T, C) broadcast
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, rope, cache)
        return self.transformer.ln_f(x)

    def head(self, x):
        """Hidden states (B, T, C) -> logits (B, T, V)."""
        logits = self.lm_head(x)  # (B, T, padded V)
        return logits[..., :self.config.vocab_size]  # (B, T, V): padded rows are never sampled or scored

    def cached_step(self, idx, cache):
        """run() and head() for the tokens after those in the cache. It reads the position from a tensor
        and writes cache.slots and cache.mask, so a compiled one-token step never recompiles."""
        return self.head(self.run(idx, cache.begin(idx.size(1), idx.device), cache))

    def compile_decoding(self, mode=None):
        """torch.compile the one-token cached step (static shapes: it is traced once); prefills
        stay eager, since their lengths vary. mode='reduce-overhead' adds CUDA graphs on a GPU, which
        replay a step that writes into the cache because stream()'s cache marks its buffers static
        (a new cache's buffers: the graph is recorded again). bench/gpu_check.sh checks it on a GPU."""
        options = None if mode else {"cpp_wrapper": True}  # the graph called from C++: ~10% less per token on a CPU
        self.compiled_step = torch.compile(self.cached_step, dynamic=False, mode=mode, options=options)

    def flops_per_token(self):
        """Training FLOPs per token, forward + backward: 6N for the matrices plus the
        attention scores (PaLM paper, appendix B). N leaves out the input embedding when it is
        not tied to the head: a lookup, not a matrix product."""
        cfg = self.config
        n = self.num_params() - (0 if cfg.tie_embeddings else self.transformer.wte.weight.numel())
        return 6 * n + 12 * cfg.n_layer * cfg.n_head * cfg.head_dim * cfg.block_size

    def achieved_flops(self, tokens_per_iter, dt, world_size=1):
        """Model FLOP/s achieved per device: flops_per_token() for each of tokens_per_iter tokens
        (every rank's) in dt seconds, shared by world_size devices. Needs no peak."""
        return self.flops_per_token() * tokens_per_iter / dt / world_size

    def estimate_mfu(self, tokens_per_iter, dt, peak_flops, world_size=1):
        """Model FLOPs utilisation: achieved FLOP/s per device over one device's peak (e.g. 312e12
        for an A100 in bf16). Returns None when the peak is unknown."""
        if not peak_flops:
            return None
        return self.achieved_flops(tokens_per_iter, dt, world_size) / peak_flops

    # ---------------------------------------------------------------- generation

    @torch.no_grad()
    def stream(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
               use_cache=True, generator=None, eos_token=None):
        """Yield one (B, 1) tensor of new tokens per step, continuing idx (B, T).

        The model sees at most block_size tokens. When the window is full, it slides:
        - learned positions and Synthesizer: the last block_size // 2 tokens become the new
          window and are prefilled afresh (positions restart at 0, which both require);
        - rotary positions with the cache: the cache rolls (KVCache, rolling=True), one token
          at a time, with no prefill;
        - rotary positions without the cache: every step reads the last block_size tokens.
        use_cache=False recomputes the whole window at every step. It gives the cached logits
        exactly, except for a rotary model of two or more layers past block_size: there the
        rolling cache's older keys still carry context from before the window.
        generator: one torch.Generator for the whole batch, or a list of one per row, so that a
        row's text does not depend on the rows decoded beside it (sample.py)."""
        block = self.config.block_size
        rolling = self.config.use_rope  # rotary scores depend only on the distance between tokens
        keep = block if rolling else max(1, block // 2)  # tokens kept when the window slides
        static = self.compiled_step is not None  # the buffers are the compiled step's inputs
        cache = KVCache(self.config.n_layer, block, rolling, static) if use_cache else None
        n = min(idx.size(1), block)  # tokens in the current window
        feed = idx[:, -n:]  # what the next forward reads: the whole window, or with a cache the newest token
        done = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)  # rows that emitted eos_token
        for _ in range(max_new_tokens):
            logits, _ = self(feed, cache=cache)  # (B, T, V)
            nxt = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
            if eos_token is not None:  # reading done waits for the GPU, so only when it can stop early
                nxt = torch.where(done[:, None], eos_token, nxt)  # finished rows keep emitting end-of-text
                done |= nxt.squeeze(1) == eos_token
            yield nxt
            if eos_token is not None and done.all():
                return
            idx = torch.cat((idx, nxt), dim=1)  # (B, T + 1)
            if n == block and cache is not None and rolling:  # the cache makes room by itself
                feed = nxt
            elif n == block:  # no room for nxt: slide the window and prefill it afresh
                n = keep
                if cache is not None:
                    cache.reset()
                feed = idx[:, -n:]
            else:
                n += 1
                feed = nxt if cache is not None else idx[:, -n:]

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, **kwargs):
        """idx (B, T) -> (B, T + new) with up to max_new_tokens sampled tokens appended.
        Keyword arguments as for stream()."""
        new = list(self.stream(idx, max_new_tokens, **kwargs))
        return torch.cat([idx] + new, dim=1)


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """logits (B, V) -> (B, 1) token ids. temperature 0 means greedy (argmax). generator: one
    torch.Generator, or a list of B (row b draws from generator[b] alone)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k).values[:, -1:]  # (B, 1); a slice, not an index tensor made on the host
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        # nucleus: keep the smallest set of tokens whose probability sums to top_p
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum - sorted_logits.softmax(dim=-1) >= top_p  # mass before this token already enough
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = F.softmax(logits, dim=-1)
    # a draw from probs: argmax of p_i / E_i with E_i ~ Exp(1) picks i with probability p_i (the
    # exponential form of the Gumbel-max trick); a few elementwise ops, where torch.multinomial
    # costs about as much as a small model's whole decoding step on a CPU. A noise of exactly 0 (MPS's
    # exponential_ has been reported to return some) would make an excluded token's 0 / 0 a NaN, which
    # argmax takes: the smallest positive float instead keeps 0 / E at 0
    if isinstance(generator, (list, tuple)):  # a stream per row: the same draws whatever the batch
        noise = torch.stack([torch.empty_like(probs[0]).exponential_(generator=g) for g in generator])  # (B, V)
    else:
        noise = torch.empty_like(probs).exponential_(generator=generator)
    noise.clamp_(min=torch.finfo(noise.dtype).tiny)
    return (probs / noise).argmax(dim=-1, keepdim=True)
