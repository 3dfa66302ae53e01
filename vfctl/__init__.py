"""vfctl: SR-IOV virtual functions for Proxmox VE and libvirt/KVM hosts."""

__version__ = "0.1.0"
