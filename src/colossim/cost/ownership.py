"""What one GPU-hour costs: the all-in capex amortised over the GPU's life plus the facility's energy.

    usd_per_gpu_hour = price x all_in_capex_multiplier / (lifetime_years x hours_per_year)
                       + watts_per_gpu_all_in / 1000 x electricity_usd_per_kwh
    watts_per_gpu_all_in = node_power_w / gpus_per_node x PUE

Every parameter comes from ``parameters.csv`` and is returned beside the figure.
"""

from __future__ import annotations

from colossim import units
from colossim.catalog import load_catalog
from colossim.specs.system import SystemSpec


def watts_per_gpu_all_in(hardware: SystemSpec) -> float:
    """Node power per GPU times the facility PUE (watts at the meter)."""
    return hardware.node_power_w / hardware.gpus_per_node * load_catalog().parameter("pue")


def usd_per_gpu_hour(hardware: SystemSpec) -> tuple[float, dict]:
    """(USD per GPU-hour, the parameters used)."""
    cat = load_catalog()
    chip = hardware.accelerator
    price = chip.price_usd(cat.parameters["price_point"].value) or 0.0
    allin = cat.parameter("all_in_capex_multiplier")
    life_h = cat.parameter("gpu_lifetime_years") * units.HOURS_PER_YEAR
    watts = watts_per_gpu_all_in(hardware)
    usd_kwh = cat.parameter("electricity_usd_per_kwh")
    per_h = price * allin / life_h + watts / units.KILO * usd_kwh
    return per_h, {"chip_price_usd": price, "all_in_capex_multiplier": allin,
                   "gpu_lifetime_years": cat.parameter("gpu_lifetime_years"), "pue": cat.parameter("pue"),
                   "watts_per_gpu_all_in": watts, "electricity_usd_per_kwh": usd_kwh,
                   "usd_per_gpu_hour": per_h}


__all__ = ["usd_per_gpu_hour", "watts_per_gpu_all_in"]
