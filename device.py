"""
Which device and number format a run uses, how it is set up, and how fast that device could go.

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


def cuda_has_bf16():
    """True where the GPU computes bf16 in hardware (Ampere and later). torch's plain
    is_bf16_supported() also says True on a V100 or T4, which only emulate it, slowly."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_dtype(dtype, device, has_cpu_bf16=None):
    """'auto' -> 'bfloat16' on a GPU that has it (cuda_has_bf16), else 'float16' (with a GradScaler);
    on a CPU, 'bfloat16' only where the CPU has bf16 units (cpu_has_bf16), else 'float32'."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if cuda_has_bf16() else "float16"
    if device.startswith("cpu"):
        return "bfloat16" if (cpu_has_bf16() if has_cpu_bf16 is None else has_cpu_bf16) else "float32"
    return "float32"


def dtype_error(dtype, device):
    """The one-line error for a dtype this device cannot run (or None)."""
    if dtype == "bfloat16" and device.startswith("cuda") and not cuda_has_bf16():
        return "this GPU has no bfloat16 units (torch would only emulate it); use --dtype=float16"
    return None


def setup_device(device):
    """What every stage does once before it builds a model on device: make cuda:N the current
    GPU (so kernels, streams and torch.cuda calls without a device use it), let fp32 matmuls and
    convolutions use TF32 on GPUs that have it, and on a CPU flush denormal floats to zero
    (they slowed fp32 steps here up to 1.6x)."""
    if device.startswith("cuda"):
        if ":" in device:
            torch.cuda.set_device(device)
        try:  # torch >= 2.9; mixing these with the legacy allow_tf32 switches is an error there
            torch.backends.cuda.matmul.fp32_precision = "tf32"
            torch.backends.cudnn.conv.fp32_precision = "tf32"
        except AttributeError:  # older torch: only the legacy switches
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
    elif device.startswith("cpu"):
        torch.set_flush_denormal(True)


def bf16_warning(dtype, has_bf16):
    """The line to print on a CPU without bf16 units when the run would use bf16 anyway (or None).
    (Muon needs no warning: there it orthogonalises in fp32, optim.muon_dtype.)"""
    if has_bf16 or dtype != "bfloat16":
        return None
    return ("warning: this CPU has no bf16 units (AMX or AVX512-BF16), so torch emulates bf16 autocast, "
            "many times slower than fp32; use --dtype=float32")


def autocast_context(device, dtype):
    """Mixed precision for the forward pass; a no-op in fp32."""
    if dtype == "float32":
        return nullcontext()
    ptdtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    return torch.autocast(device_type=device.split(":")[0], dtype=ptdtype)


# Peak tensor-core FLOP/s for MFU, by the exact name torch.cuda.get_device_name gives: dense (no
# sparsity) bf16 with fp32 accumulation, or fp16 where the GPU has no bf16 (V100, T4). From NVIDIA's
# spec sheets, which print the sparse figure, twice the dense one, for Ampere and later: A100
# datasheet (312 TF, SXM and PCIe), H100 datasheet (SXM 1,979 / NVL 1,671 sparse; PCIe 1,513 sparse
# in the 2022 sheet), H200 datasheet (SXM 1,979 / NVL 1,671 sparse), A10 (125 dense), L4 (242
# sparse), L40 and L40S (181.05 and 362.05 dense), the Ada whitepaper for the RTX 4090 (165.2 with
# fp32 accumulate), the Ampere GA102 whitepaper for the RTX 3090 (71), V100 (SXM2 125, PCIe 112)
# and T4 (65), both fp16.
PEAK_FLOPS = {  # name: (FLOP/s, what the number is)
    "NVIDIA A100-SXM4-40GB": (312e12, "bf16"), "NVIDIA A100-SXM4-80GB": (312e12, "bf16"),
    "NVIDIA A100-PCIE-40GB": (312e12, "bf16"), "NVIDIA A100 80GB PCIe": (312e12, "bf16"),
    "NVIDIA H100 80GB HBM3": (989.5e12, "bf16"), "NVIDIA H100 NVL": (835.5e12, "bf16"),
    "NVIDIA H100 PCIe": (756.5e12, "bf16"),
    "NVIDIA H200": (989.5e12, "bf16"), "NVIDIA H200 NVL": (835.5e12, "bf16"),
    "NVIDIA A10": (125e12, "bf16"), "NVIDIA L4": (121e12, "bf16"), "NVIDIA L40S": (362.05e12, "bf16"),
    "NVIDIA L40": (181.05e12, "bf16"),
    "NVIDIA GeForce RTX 4090": (165.2e12, "bf16"), "NVIDIA GeForce RTX 3090": (71e12, "bf16"),
    "Tesla V100-SXM2-16GB": (125e12, "fp16"), "Tesla V100-SXM2-32GB": (125e12, "fp16"),
    "Tesla V100-PCIE-16GB": (112e12, "fp16"), "Tesla V100-PCIE-32GB": (112e12, "fp16"),
    "Tesla T4": (65e12, "fp16"),
}


def peak_flops_of(name):
    """The peak FLOP/s of the GPU named exactly so (PEAK_FLOPS), or 0.0. Never a near name: the
    L4 is not the L40S, and an H100 PCIe runs at three quarters of an H100 SXM."""
    return PEAK_FLOPS.get(name.strip(), (0.0, None))[0]


def lookup_peak_flops(device):
    """The peak FLOP/s of this device for MFU, or 0.0 (MFU is then not shown; pass --peak_flops)."""
    if not device.startswith("cuda"):
        return 0.0
    return peak_flops_of(torch.cuda.get_device_name(device))
