"""
Weight-only quantization for decoding and evaluation (sample.py, evaluate.py, bench.py --mode=sample):
every Linear of a model (the blocks' and the LM head) keeps its weights in fewer bytes, and each
product's output is in the activations' dtype (its inputs may be rounded: see bf16 and int8).
Training never uses it.

    none  fp32 weights, as trained: 4 bytes each
    bf16  bf16 weights and bf16 products, 2 bytes; the output goes back to the
          activations' dtype. Only where the hardware multiplies bf16: a CPU with bf16 units
          (device.cpu_has_bf16) or a GPU; elsewhere torch emulates bf16, slower than fp32.
    int8  int8 weights with one fp32 scale per output row (symmetric, per channel): 1 byte. On a CPU,
          torch's weight-only kernel (torch._weight_int8pack_mm) multiplies the int8 weights as
          they are, by the activations rounded to bf16 (so fp32 activations lose their low
          mantissa bits at each Linear's input; Int8Linear says why); on other devices each
          product converts the weights to the activations' dtype first.

Why: at batch 1 a decoding step reads every weight once and does two FLOPs with it, so memory
bandwidth sets the floor, and fewer bytes per weight lower it (bench.py --mode=sample prints each
format's floor). The embedding tables stay fp32: a step reads only its tokens' rows. A tied LM head
gets a quantized copy of its own; the token embedding keeps the fp32 matrix.

Why not torchao: its weight-only int8 (Int8WeightOnlyConfig, 0.18.0) computes
mm(x, weight.to(x.dtype)) * scale, which writes a float copy of each weight for every product, eager
and compiled alike (inductor on a CPU fuses the conversion into one kernel that writes the copy, then
calls mm on it; checked with torch 2.13). The kernel called here reads the int8 bytes only, needs
no dependency, and prints nothing on import.

Imports torch and device.py only.
"""

import torch
import torch.nn as nn
from torch.nn import functional as F

from device import cpu_has_bf16, cuda_has_bf16

FORMATS = ("none", "bf16", "int8")


class Int8Linear(nn.Module):
    """nn.Linear with int8 weights and one fp32 scale per output row: W ~= scale[:, None] * weight.
    Each row's largest weight maps to +-127, so a row's error is at most half its scale.

    On a CPU the product is torch._weight_int8pack_mm, which reads the int8 weights as they are.
    In torch 2.13 its x86 kernel is vectorized (AVX2 / AVX-512) for bf16 activations only: with
    fp32 ones it runs a scalar loop (its fp32 results equal a sequential sum), slower than fp32
    weights. So the activations go in as bf16 (the kernel turns them back to fp32 and accumulates in
    fp32; no bf16 units needed) and it returns bf16, to which the fp32 scales are applied here. Its
    vector loads also need rows of a multiple of 16 values (wrong sums or a crash otherwise): other
    widths, and other devices, convert the weights to the activations' dtype for each product."""

    def __init__(self, linear):
        super().__init__()
        w = linear.weight.detach().float()  # (out, in)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (out,); an all-zero row stays zero
        self.register_buffer("weight", torch.round(w / scale[:, None]).to(torch.int8))  # (out, in)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float())
        self.register_buffer("ones", torch.ones_like(scale, dtype=torch.bfloat16), persistent=False)  # the kernel's scales
        self.cpu_kernel = w.size(1) % 16 == 0

    def forward(self, x):
        x2 = x.reshape(-1, x.size(-1))  # (N, in): both products take a matrix
        if x.is_cpu and self.cpu_kernel:  # a fresh bf16 copy: its rows start where the kernel's loads expect
            y = torch._weight_int8pack_mm(x2.to(torch.bfloat16, copy=True), self.weight, self.ones)  # (N, out)
            y = y.float() * self.scale
        else:
            y = F.linear(x2, self.weight.to(x2.dtype)) * self.scale.to(x2.dtype)  # (N, out)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(x.dtype).view(*x.shape[:-1], y.size(-1))  # (..., out)


class BF16Linear(nn.Module):
    """nn.Linear with bf16 weights: the product in bf16, the output in the input's dtype, so the
    norms, softmax and residual stream around it keep theirs."""

    def __init__(self, linear):
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().to(torch.bfloat16))  # (out, in)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().to(torch.bfloat16))

    def forward(self, x):
        return F.linear(x.to(torch.bfloat16), self.weight, self.bias).to(x.dtype)


LINEARS = (nn.Linear, Int8Linear, BF16Linear)  # whatever holds a weight matrix, quantized or not


def quantize_error(fmt, device):
    """The one-line error for a weight format this device cannot run well (or None)."""
    if fmt not in FORMATS:
        return f"--quantize={fmt!r} is not a weight format; use one of {', '.join(FORMATS)}"
    if fmt == "bf16" and device.startswith("cpu") and not cpu_has_bf16():
        return ("--quantize=bf16 needs a CPU with bf16 units (AMX or AVX512-BF16); this one would emulate bf16, "
                "slower than fp32: use --quantize=int8")
    if fmt == "bf16" and device.startswith("cuda") and not cuda_has_bf16():
        return "--quantize=bf16 needs a GPU with bf16 units (Ampere or later); use --quantize=int8"
    return None


def usable_formats(device):
    """The formats this device runs: none and int8 everywhere, bf16 where quantize_error allows it."""
    return [fmt for fmt in FORMATS if quantize_error(fmt, device) is None]


def quantize_model(model, fmt):
    """Replace every nn.Linear of model (already on its device) by fmt's counterpart, in place;
    returns model. 'none' leaves it as it is. Call compile_decoding() after this, not before."""
    if fmt not in FORMATS:
        raise ValueError(quantize_error(fmt, "cpu"))
    if fmt == "none":
        return model
    make = {"bf16": BF16Linear, "int8": Int8Linear}[fmt]
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, make(child))
    return model


def weight_bytes(module):
    """Bytes of the tensors a module holds itself (weight, scale, bias): what a product with it reads."""
    tensors = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
    return sum(t.numel() * t.element_size() for t in tensors)
