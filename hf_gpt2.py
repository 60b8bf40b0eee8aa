"""
GPT-2 as Hugging Face's transformers stores it, and our GPT: configs and state dicts both ways.

    gpt2_config_from_hf / gpt2_state_dict_from_hf   OpenAI's GPT-2 or a Hugging Face folder, as our GPT
    gpt2_incompatible / gpt2_config_to_hf /          our checkpoint as a GPT2LMHeadModel (export.py)
    gpt2_state_dict_to_hf

Callers import transformers themselves (checkpoint.load_pretrained, export.py); these functions only
rename and transpose tensors (their own methods: nothing is imported).
"""

# Hugging Face's GPT-2 stores these four matrices as Conv1D, (in, out): nn.Linear's transpose
HF_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
HF_ACTIVATIONS = {"gelu_new": True, "gelu_pytorch_tanh": True, "gelu": False}  # name -> gelu_tanh


def gpt2_config_from_hf(hf):
    """A GPT2Config (as a dict) -> GPTConfig keyword arguments; ValueError for what we lack."""
    ours = {"activation_function": hf.get("activation_function") in HF_ACTIVATIONS,  # setting: do we have it?
            "scale_attn_weights": hf.get("scale_attn_weights", True),
            "scale_attn_by_inverse_layer_idx": not hf.get("scale_attn_by_inverse_layer_idx", False),
            "add_cross_attention": not hf.get("add_cross_attention", False)}
    unsupported = [f"{k}={hf.get(k)!r}" for k, ok in ours.items() if not ok]
    if unsupported:
        raise ValueError(f"this GPT-2 checkpoint uses settings gptlab does not implement: {', '.join(unsupported)}")
    return dict(block_size=hf["n_positions"], vocab_size=hf["vocab_size"], n_layer=hf["n_layer"],
                n_head=hf["n_head"], n_embd=hf["n_embd"], norm_eps=hf["layer_norm_epsilon"],
                mlp_hidden=hf.get("n_inner") or 0, gelu_tanh=HF_ACTIVATIONS[hf["activation_function"]],
                tie_embeddings=hf.get("tie_word_embeddings", True), bias=True)


def gpt2_incompatible(cfg):
    """The flags of a GPTConfig that a Hugging Face GPT-2 cannot express, as 'flag=value' strings."""
    gpt2_values = dict(use_swiglu=False, use_relu2=False, use_rope=False, use_rmsnorm=False,
                       use_qk_norm=False, attention="vanilla")
    bad = [f"{k}={getattr(cfg, k)!r}" for k, v in gpt2_values.items() if getattr(cfg, k) != v]
    if cfg.n_kv_head not in (0, cfg.n_head):
        bad.append(f"n_kv_head={cfg.n_kv_head}")
    return bad


def gpt2_config_to_hf(cfg):
    """GPTConfig -> GPT2Config keyword arguments (call gpt2_incompatible first)."""
    return dict(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                n_head=cfg.n_head, n_inner=cfg.mlp_hidden or None, layer_norm_epsilon=cfg.norm_eps,
                activation_function="gelu_new" if cfg.gelu_tanh else "gelu", tie_word_embeddings=cfg.tie_embeddings,
                resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout)


def gpt2_state_dict_from_hf(hf_sd):
    """GPT2LMHeadModel's state dict -> ours: transpose the Conv1D matrices, drop the
    causal-mask buffers that older transformers versions save as attn.bias / attn.masked_bias."""
    sd = {k: v.t() if k.endswith(HF_CONV1D) else v for k, v in hf_sd.items()
          if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    sd.setdefault("lm_head.weight", sd["transformer.wte.weight"])  # tied heads may be saved once
    return sd


def gpt2_state_dict_to_hf(sd, vocab_size):
    """Our state dict -> GPT2LMHeadModel's with vocab_size tokens. Hugging Face's GPT-2 always
    has biases: a model trained with bias=False gets zero biases, which compute exactly the same
    function. The rows pad_vocab added to the embedding and head are dropped (never used)."""
    vocab = ("transformer.wte.weight", "lm_head.weight")
    hf = {k: v.t().contiguous() if k.endswith(HF_CONV1D) else v[:vocab_size] if k in vocab else v for k, v in sd.items()}
    for k, v in sd.items():
        if k.startswith(("transformer.h.", "transformer.ln_f.")) and k.endswith(".weight"):
            hf.setdefault(k[:-len("weight")] + "bias", v.new_zeros(v.shape[0]))  # Linear (out, in) or norm (C,)
    return hf
