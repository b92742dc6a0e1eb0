"""The processor named beside measured times (`describe_cpu`), from /proc/cpuinfo text."""

from __future__ import annotations

from attpc_classify.device import describe_cpu


def _cpuinfo(n: int, name: str, flags: str) -> str:
    block = f"processor\t: 0\nmodel name\t: {name}\nflags\t\t: fpu sse2 {flags}\n\n"
    return block * n


def test_describe_cpu_names_the_vector_units_that_set_the_speed():
    assert describe_cpu(_cpuinfo(2, "AMD EPYC", "avx2 avx512f avx512_bf16")) == (
        "2 cores, AMD EPYC, AVX-512 (BF16)"
    )
    assert describe_cpu(_cpuinfo(2, "AMD EPYC", "avx2 avx512f")) == "2 cores, AMD EPYC, AVX-512"
    # the host without AVX-512 (its flags list avx2 only)
    assert describe_cpu(_cpuinfo(4, "Intel Xeon", "avx avx2")) == (
        "4 cores, Intel Xeon, AVX2, no AVX-512"
    )
    # a flag that merely contains "avx2" as a substring is not AVX2
    assert describe_cpu(_cpuinfo(1, "Old", "avx avx2x")).endswith("no AVX2")
