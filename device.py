"""
Which device and number format a run uses, and how fast that device could go.

train.py, sample.py, bench.py and evaluate.py all resolve 'auto' here, so every stage
picks the same device and dtype for the same machine.
"""

from contextlib import nullcontext

import torch


def resolve_device(device):
    """'auto' -> 'cuda', else 'mps', else 'cpu'; anything else is kept as given."""
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_bf16():
    """True where the CPU multiplies bf16 in hardware (AMX or AVX512-BF16: Intel Sapphire Rapids and
    later, AMD Zen 4 and later). Elsewhere torch emulates bf16 and autocast is far slower than fp32:
    the birthplace model's step took ~100 s in bf16 against ~2 s in fp32 on an AVX2-only AMD EPYC."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch.cpu's, private but long-lived
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def resolve_dtype(dtype, device, has_cpu_bf16=None):
    """'auto' -> 'bfloat16' on a GPU that has it, else 'float16' (with a GradScaler); on a CPU,
    'bfloat16' only where the CPU has bf16 units (cpu_has_bf16), else 'float32'."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device.startswith("cpu"):
        return "bfloat16" if (cpu_has_bf16() if has_cpu_bf16 is None else has_cpu_bf16) else "float32"
    return "float32"


def bf16_warning(dtype, optimizer, has_bf16):
    """The line to print on a CPU without bf16 units when the run would use bf16 anyway (or None)."""
    if has_bf16:
        return None
    if dtype == "bfloat16":
        return ("warning: this CPU has no bf16 units (AMX or AVX512-BF16), so torch emulates bf16 autocast, "
                "many times slower than fp32; use --dtype=float32")
    if optimizer == "muon":
        return ("warning: this CPU has no bf16 units (AMX or AVX512-BF16), and torch's Muon orthogonalises in "
                "bf16: emulated, that can cost more than the rest of the step; --optimizer=adamw may be faster")
    return None


def autocast_context(device, dtype):
    """Mixed precision for the forward pass; a no-op in fp32."""
    if dtype == "float32":
        return nullcontext()
    ptdtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    return torch.autocast(device_type=device.split(":")[0], dtype=ptdtype)


# known dense bf16 peaks (FLOP/s); anything else: pass --peak_flops
PEAK_FLOPS = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "A10": 125e12, "L4": 121e12,
              "4090": 165e12, "3090": 71e12, "V100": 125e12, "T4": 65e12}


def lookup_peak_flops(device):
    """The peak FLOP/s of a known GPU for MFU, or 0.0 (MFU is then not shown)."""
    if not device.startswith("cuda"):
        return 0.0
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), 0.0)
