"""v1 VM sizes as Ray node shapes: what one worker node of an ``AmlCompute`` cluster advertises.

A size names CPUs, memory and GPUs (Azure's published figures); :func:`node_resources` turns it
into the resources a worker node of that type offers Ray, plus ``runs_per_node`` run slots
(:data:`~trainyard._execution.ray.connection.SLOT_RESOURCE`). Names are case-insensitive and the
``Standard_`` prefix may be left out.

Example::

    node_resources("Standard_NC6", runs_per_node=1)
    # {'CPU': 6, 'memory': 60129542144, 'GPU': 1, 'trainyard_slot': 1}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainyard._execution.ray.connection import SLOT_RESOURCE
from trainyard.exceptions import ComputeConfigurationError


@dataclass(frozen=True)
class VmSize:
    """One VM size: its CPUs, memory in GiB and GPUs."""

    name: str
    cpus: int
    memory_gib: float
    gpus: int = 0

    @property
    def memory_bytes(self) -> int:
        """Memory in bytes (what Ray's ``memory`` resource counts)."""
        return int(self.memory_gib * 2**30)


_TABLE: tuple[tuple[str, int, float, int], ...] = (
    # general purpose (D, Dv2, DSv2, Dv3, Dsv3, Av2)
    ("STANDARD_A2_V2", 2, 4, 0),
    ("STANDARD_A4_V2", 4, 8, 0),
    ("STANDARD_D1", 1, 3.5, 0),
    ("STANDARD_D2", 2, 7, 0),
    ("STANDARD_D3", 4, 14, 0),
    ("STANDARD_D4", 8, 28, 0),
    ("STANDARD_D1_V2", 1, 3.5, 0),
    ("STANDARD_D2_V2", 2, 7, 0),
    ("STANDARD_D3_V2", 4, 14, 0),
    ("STANDARD_D4_V2", 8, 28, 0),
    ("STANDARD_D5_V2", 16, 56, 0),
    ("STANDARD_D11_V2", 2, 14, 0),
    ("STANDARD_D12_V2", 4, 28, 0),
    ("STANDARD_D13_V2", 8, 56, 0),
    ("STANDARD_D14_V2", 16, 112, 0),
    ("STANDARD_DS1_V2", 1, 3.5, 0),
    ("STANDARD_DS2_V2", 2, 7, 0),
    ("STANDARD_DS3_V2", 4, 14, 0),
    ("STANDARD_DS4_V2", 8, 28, 0),
    ("STANDARD_DS5_V2", 16, 56, 0),
    ("STANDARD_DS11_V2", 2, 14, 0),
    ("STANDARD_DS12_V2", 4, 28, 0),
    ("STANDARD_DS13_V2", 8, 56, 0),
    ("STANDARD_DS14_V2", 16, 112, 0),
    ("STANDARD_D2_V3", 2, 8, 0),
    ("STANDARD_D4_V3", 4, 16, 0),
    ("STANDARD_D8_V3", 8, 32, 0),
    ("STANDARD_D16_V3", 16, 64, 0),
    ("STANDARD_D2S_V3", 2, 8, 0),
    ("STANDARD_D4S_V3", 4, 16, 0),
    ("STANDARD_D8S_V3", 8, 32, 0),
    ("STANDARD_D16S_V3", 16, 64, 0),
    # memory optimised
    ("STANDARD_E4S_V3", 4, 32, 0),
    ("STANDARD_E8S_V3", 8, 64, 0),
    ("STANDARD_E16S_V3", 16, 128, 0),
    # compute optimised
    ("STANDARD_F2S_V2", 2, 4, 0),
    ("STANDARD_F4S_V2", 4, 8, 0),
    ("STANDARD_F8S_V2", 8, 16, 0),
    ("STANDARD_F16S_V2", 16, 32, 0),
    ("STANDARD_F32S_V2", 32, 64, 0),
    ("STANDARD_F72S_V2", 72, 144, 0),
    # GPU: K80 (NC), P100 (NCv2), V100 (NCv3, NDv2), P40 (ND), M60 (NV), T4, A100
    ("STANDARD_NC6", 6, 56, 1),
    ("STANDARD_NC12", 12, 112, 2),
    ("STANDARD_NC24", 24, 224, 4),
    ("STANDARD_NC24R", 24, 224, 4),
    ("STANDARD_NC6S_V2", 6, 112, 1),
    ("STANDARD_NC12S_V2", 12, 224, 2),
    ("STANDARD_NC24S_V2", 24, 448, 4),
    ("STANDARD_NC6S_V3", 6, 112, 1),
    ("STANDARD_NC12S_V3", 12, 224, 2),
    ("STANDARD_NC24S_V3", 24, 448, 4),
    ("STANDARD_NC24RS_V3", 24, 448, 4),
    ("STANDARD_NC4AS_T4_V3", 4, 28, 1),
    ("STANDARD_NC8AS_T4_V3", 8, 56, 1),
    ("STANDARD_NC16AS_T4_V3", 16, 110, 1),
    ("STANDARD_NC64AS_T4_V3", 64, 440, 4),
    ("STANDARD_NC24ADS_A100_V4", 24, 220, 1),
    ("STANDARD_NC48ADS_A100_V4", 48, 440, 2),
    ("STANDARD_NC96ADS_A100_V4", 96, 880, 4),
    ("STANDARD_ND6S", 6, 112, 1),
    ("STANDARD_ND12S", 12, 224, 2),
    ("STANDARD_ND24S", 24, 448, 4),
    ("STANDARD_ND40RS_V2", 40, 672, 8),
    ("STANDARD_ND96ASR_V4", 96, 900, 8),
    ("STANDARD_NV6", 6, 56, 1),
    ("STANDARD_NV12", 12, 112, 2),
    ("STANDARD_NV24", 24, 224, 4),
)

#: Every known size by its upper-case name.
VM_SIZES: dict[str, VmSize] = {row[0]: VmSize(*row) for row in _TABLE}


def vm_size(name: str) -> VmSize:
    """The size called ``name`` (any case, ``Standard_`` optional); raises
    ``ComputeConfigurationError`` naming the known sizes for an unknown one."""
    key = str(name or "").strip().upper()
    if key and not key.startswith("STANDARD_"):
        key = "STANDARD_" + key
    found = VM_SIZES.get(key)
    if found is None:
        known = ", ".join(VM_SIZES)
        raise ComputeConfigurationError(
            f"Unknown vm_size {name!r} for a Ray cluster. Known sizes: {known}.",
            vm_size=name,
            known=list(VM_SIZES),
        )
    return found


def node_resources(name: str, runs_per_node: int = 1) -> dict[str, Any]:
    """What one worker node of size ``name`` offers Ray: CPU, memory (bytes), GPU (only when it
    has any) and ``runs_per_node`` run slots."""
    size = vm_size(name)
    out: dict[str, Any] = {"CPU": size.cpus, "memory": size.memory_bytes}
    if size.gpus > 0:
        out["GPU"] = size.gpus
    out[SLOT_RESOURCE] = runs_per_node
    return out


def node_type_name(name: str) -> str:
    """The autoscaler's node type for size ``name`` (its canonical name, lower case)."""
    return vm_size(name).name.lower()


__all__ = ["VM_SIZES", "VmSize", "node_resources", "node_type_name", "vm_size"]
