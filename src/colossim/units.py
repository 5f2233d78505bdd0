"""Unit conversions.  The engine works in SI (flops, bytes, seconds, watts, usd); catalog columns keep
the datasheet's unit and are converted once, here, when loaded."""

TERA = 1e12
GIGA = 1e9
MEGA = 1e6
KILO = 1e3
BITS_PER_BYTE = 8
GIB = 2**30
SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
HOURS_PER_YEAR = 8766.0  # Because: 365.25 days x 24 h (Julian year), used for annual energy


def tflops_to_flops_per_s(tflops: float) -> float:
    return tflops * TERA


def tb_per_s_to_bytes_per_s(tb_per_s: float) -> float:
    return tb_per_s * TERA


def gbit_per_s_to_bytes_per_s(gbit_per_s: float) -> float:
    return gbit_per_s * GIGA / BITS_PER_BYTE


def gib_to_bytes(gib: float) -> float:
    return gib * GIB


def bytes_to_gib(n_bytes: float) -> float:
    return n_bytes / GIB


def watts_to_mw(watts: float) -> float:
    return watts / MEGA
