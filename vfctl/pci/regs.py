"""Config-space register layout (PCI Local Bus 3.0, PCIe Base 6.0, SR-IOV 1.1), defined once.

Every Python module that reads or writes config space (the decoder ``configspace``, the
simulator's builder ``cfgbuild``) imports its offsets and bits from here. Names follow pciutils'
``lib/header.h`` so a reader can check them against it. vfctl/pci/_configspace.c keeps its own
``#define``s (C cannot import this file); tests/pci/test_pci_regs_parity.py fails if any of them
lacks a twin here or differs in value.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own flag without importing typing (~3 ms of start-up)
if TYPE_CHECKING:
    from typing import Final

# Type 0/1/2 common header
PCI_VENDOR_ID: Final = 0x00
PCI_DEVICE_ID: Final = 0x02
PCI_COMMAND: Final = 0x04
PCI_COMMAND_IO: Final = 0x1
PCI_COMMAND_MEMORY: Final = 0x2
PCI_COMMAND_MASTER: Final = 0x4
PCI_COMMAND_DISABLE_INTX: Final = 0x400
PCI_STATUS: Final = 0x06
PCI_STATUS_CAP_LIST: Final = 0x10
PCI_REVISION_ID: Final = 0x08
PCI_CLASS_PROG: Final = 0x09
PCI_CLASS_DEVICE: Final = 0x0A
PCI_CACHE_LINE_SIZE: Final = 0x0C
PCI_HEADER_TYPE: Final = 0x0E
PCI_HEADER_TYPE_MASK: Final = 0x7F
PCI_HEADER_TYPE_MFD: Final = 0x80
PCI_HEADER_TYPE_NORMAL: Final = 0
PCI_HEADER_TYPE_BRIDGE: Final = 1
PCI_HEADER_TYPE_CARDBUS: Final = 2
PCI_BASE_ADDRESS_0: Final = 0x10
PCI_SUBSYSTEM_VENDOR_ID: Final = 0x2C
PCI_SUBSYSTEM_ID: Final = 0x2E
PCI_CAPABILITY_LIST: Final = 0x34
PCI_INTERRUPT_LINE: Final = 0x3C
PCI_INTERRUPT_PIN: Final = 0x3D
# Type 1 (bridge) header
PCI_PRIMARY_BUS: Final = 0x18
PCI_SECONDARY_BUS: Final = 0x19
PCI_SUBORDINATE_BUS: Final = 0x1A
PCI_IO_BASE: Final = 0x1C
PCI_MEMORY_BASE: Final = 0x20
PCI_MEMORY_LIMIT: Final = 0x22
PCI_PREF_MEMORY_BASE: Final = 0x24
PCI_PREF_MEMORY_LIMIT: Final = 0x26
PCI_CB_CAPABILITY_LIST: Final = 0x14
PCI_STD_HEADER_SIZEOF: Final = 0x40
PCI_CFG_SPACE_SIZE: Final = 0x100
PCI_CFG_SPACE_EXP_SIZE: Final = 0x1000

# Standard capability list
PCI_CAP_LIST_ID: Final = 0
PCI_CAP_LIST_NEXT: Final = 1
PCI_CAP_FLAGS: Final = 2
PCI_CAP_HEADER_SIZE: Final = 4
PCI_CAP_PTR_MASK: Final = 0xFC
PCI_CAP_MAX_ENTRIES: Final = 48

PCI_CAP_ID_PM: Final = 0x01
PCI_CAP_ID_MSI: Final = 0x05
PCI_CAP_ID_MSIX: Final = 0x11
PCI_PM_PMC: Final = 2
PCI_PM_CTRL: Final = 4
PCI_MSI_FLAGS: Final = 2
PCI_MSI_FLAGS_64BIT: Final = 0x0080
PCI_MSI_FLAGS_MASK_BIT: Final = 0x0100
PCI_MSIX_FLAGS: Final = 2
PCI_MSIX_FLAGS_QSIZE: Final = 0x07FF
PCI_MSIX_TABLE: Final = 4
PCI_MSIX_PBA: Final = 8
PCI_CAP_ID_SSVID: Final = 0x0D
PCI_SSVID_VENDOR_ID: Final = 4
PCI_SSVID_DEVICE_ID: Final = 6
PCI_SSVID_SIZEOF: Final = 8

PCI_CAP_ID_EXP: Final = 0x10
PCI_EXP_FLAGS: Final = 0x02
PCI_EXP_FLAGS_VERS: Final = 0x000F
PCI_EXP_FLAGS_TYPE: Final = 0x00F0
PCI_EXP_FLAGS_TYPE_SHIFT: Final = 4
PCI_EXP_FLAGS_SLOT: Final = 0x0100
PCI_EXP_DEVCAP: Final = 0x04
PCI_EXP_DEVCAP_RBER: Final = 0x00008000
PCI_EXP_DEVCAP_FLR: Final = 0x10000000
PCI_EXP_DEVCTL: Final = 0x08
PCI_EXP_LNKCAP: Final = 0x0C
PCI_EXP_LNKSTA: Final = 0x12
PCI_EXP_LNKSTA_DL_ACT: Final = 0x2000
PCI_EXP_SLTCAP: Final = 0x14
PCI_EXP_DEVCAP2: Final = 0x24
PCI_EXP_LNKCAP2: Final = 0x2C
PCI_EXP_LNKCTL2: Final = 0x30
PCI_EXP_LNK_SPEED: Final = 0x000F
PCI_EXP_LNK_WIDTH: Final = 0x03F0
PCI_EXP_LNK_WIDTH_SHIFT: Final = 4
PCI_EXP_LNK_REGS_END: Final = 0x14
PCI_EXP_TYPE_ENDPOINT: Final = 0x0
PCI_EXP_TYPE_ROOT_PORT: Final = 0x4
PCI_EXP_TYPE_ROOT_INT_EP: Final = 0x9
PCI_EXP_TYPE_ROOT_EC: Final = 0xA

# Extended capability list
PCI_EXT_CAP_ID_ERR: Final = 0x0001
PCI_EXT_CAP_ID_DSN: Final = 0x0003
PCI_ERR_UNCOR_SEVER: Final = 0x0C
PCI_ERR_COR_MASK: Final = 0x14
PCI_DSN_SERIAL_LOW: Final = 0x04
PCI_DSN_SERIAL_HIGH: Final = 0x08
PCI_EXT_CAP_ID_MASK: Final = 0xFFFF
PCI_EXT_CAP_VER_SHIFT: Final = 16
PCI_EXT_CAP_VER_MASK: Final = 0xF
PCI_EXT_CAP_NEXT_SHIFT: Final = 20
PCI_EXT_CAP_NEXT_MASK: Final = 0xFFC
PCI_EXT_CAP_MAX_ENTRIES: Final = 960

PCI_EXT_CAP_ID_ACS: Final = 0x000D
PCI_ACS_CAP: Final = 0x04
PCI_ACS_CTRL: Final = 0x06
PCI_ACS_SIZEOF: Final = 0x08
PCI_ACS_SV: Final = 0x0001
PCI_ACS_TB: Final = 0x0002
PCI_ACS_RR: Final = 0x0004
PCI_ACS_CR: Final = 0x0008
PCI_ACS_UF: Final = 0x0010
PCI_ACS_EC: Final = 0x0020
PCI_ACS_DT: Final = 0x0040

PCI_EXT_CAP_ID_ARI: Final = 0x000E
PCI_ARI_CAP: Final = 0x04
PCI_ARI_CTRL: Final = 0x06
PCI_ARI_SIZEOF: Final = 0x08
PCI_ARI_CAP_MFVC: Final = 0x0001
PCI_ARI_CAP_ACS: Final = 0x0002
PCI_ARI_CAP_NFN_SHIFT: Final = 8
PCI_ARI_CAP_NFN_MASK: Final = 0xFF
PCI_ARI_CTRL_MFVC: Final = 0x0001
PCI_ARI_CTRL_ACS: Final = 0x0002
PCI_ARI_CTRL_FG_SHIFT: Final = 4
PCI_ARI_CTRL_FG_MASK: Final = 0x7

PCI_EXT_CAP_ID_SRIOV: Final = 0x0010
PCI_IOV_CAP: Final = 0x04
PCI_IOV_CAP_VFM: Final = 0x00000001
PCI_IOV_CTRL: Final = 0x08
PCI_IOV_CTRL_VFE: Final = 0x0001
PCI_IOV_CTRL_MSE: Final = 0x0008
PCI_IOV_CTRL_ARI: Final = 0x0010
PCI_IOV_INITIAL_VF: Final = 0x0C
PCI_IOV_TOTAL_VF: Final = 0x0E
PCI_IOV_NUM_VF: Final = 0x10
PCI_IOV_FUNC_LINK: Final = 0x12
PCI_IOV_VF_OFFSET: Final = 0x14
PCI_IOV_VF_STRIDE: Final = 0x16
PCI_IOV_VF_DID: Final = 0x1A
PCI_IOV_SUP_PGSIZE: Final = 0x1C
PCI_IOV_SYS_PGSIZE: Final = 0x20
PCI_IOV_BAR_0: Final = 0x24
PCI_IOV_NUM_BAR: Final = 6
PCI_IOV_FETCH_END: Final = 0x3C  # up to, not including, the VF Migration State register

PCI_BASE_ADDRESS_SPACE_IO: Final = 0x1
PCI_BASE_ADDRESS_IO_MASK: Final = 0xFFFFFFFC
PCI_BASE_ADDRESS_MEM_TYPE_MASK: Final = 0x6
PCI_BASE_ADDRESS_MEM_TYPE_64: Final = 0x4
PCI_BASE_ADDRESS_MEM_PREFETCH: Final = 0x8
PCI_BASE_ADDRESS_MEM_MASK: Final = 0xFFFFFFF0
