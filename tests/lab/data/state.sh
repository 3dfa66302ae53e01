#!/bin/sh
# state.sh ROOT PF: one PF's SR-IOV state as the kernel (or a simulated host under ROOT) shows
# it in sysfs and /dev/vfio. Runs unchanged in the lab guest (ROOT=/) and on a simulated host,
# so the differential test compares like with like. Lines:
#   numvfs N / autoprobe 0|1 / vf INDEX ADDRESS DRIVER GROUP OVERRIDE NETDEVS / vfio NAME...
R=${1%/}
D=$R/sys/bus/pci/devices/$2
echo "numvfs $(cat "$D/sriov_numvfs")"
echo "autoprobe $(cat "$D/sriov_drivers_autoprobe")"
for v in "$D"/virtfn*; do
    [ -e "$v" ] || continue
    drv=-; [ -e "$v/driver" ] && drv=$(basename "$(readlink "$v/driver")")
    grp=-; [ -e "$v/iommu_group" ] && grp=$(basename "$(readlink "$v/iommu_group")")
    ov=$(cat "$v/driver_override" 2>/dev/null); case "$ov" in ""|"(null)") ov=- ;; esac
    nets=$(ls "$v/net" 2>/dev/null | wc -l)
    echo "vf ${v##*virtfn} $(basename "$(readlink "$v")") $drv $grp $ov $nets"
done | sort -n -k2
echo "vfio $(ls "$R/dev/vfio" 2>/dev/null | sort | tr '\n' ' ')"
