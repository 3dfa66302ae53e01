/* The syscall floor of `vfctl list --all` per VF: what no listing of VFs can skip.
 * Per PF (listed in PFS_FILE with its VF count, First VF Offset and VF Stride): per VF index N,
 * relative to the devices dir:
 *   (no syscall)                           the VF's address, from the PF's offset and stride by
 *                                          the kernel's own rule (drivers/pci/iov.c,
 *                                          pci_iov_virtfn_bus()/pci_iov_virtfn_devfn()), as
 *                                          vfctl derives it; earlier rounds' floor read each
 *                                          PF/virtfnN link here (one readlink per VF)
 *   readlink VF/iommu_group                (no other file tells a VF's group)
 *   open + [fstat] + read VF/driver_override (user-set, nothing else shows it; fstat only
 *                                           off sysfs, the regular-file check), close
 * Driver, netdevs, vendor and device come from listings and the PF, so they add nothing per VF.
 * Prints the best elapsed seconds of REPEATS and the syscalls made in one repeat.
 * Build: cc -O2 -o floor_vf floor_vf.c;  run: ./floor_vf DEVICES_DIR PFS_FILE REPEATS FSTAT
 * PFS_FILE lines: "dddd:bb:dd.f VFS OFFSET STRIDE". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s DEVICES_DIR PFS_FILE REPEATS FSTAT\n", argv[0]);
        return 2;
    }
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FILE *f = fopen(argv[2], "r");
    if (dir < 0 || f == NULL) {
        perror("open");
        return 1;
    }
    char pfs[1024][16];
    int nvfs[1024], offs[1024], strides[1024], npf = 0;
    while (npf < 1024 && fscanf(f, "%15s %d %d %d", pfs[npf], &nvfs[npf], &offs[npf],
                                &strides[npf]) == 4)
        npf++;
    fclose(f);
    int repeats = atoi(argv[3]), with_fstat = atoi(argv[4]);
    double best = -1;
    long calls = 0;
    char path[PATH_MAX + 32], vf[32], buf[4096];
    for (int r = 0; r < (repeats > 0 ? repeats : 1); r++) {
        struct timespec a, b;
        calls = 0;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int p = 0; p < npf; p++) {
            unsigned dom, bus, dev, fn;
            if (sscanf(pfs[p], "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4)
                continue;
            unsigned rid = (bus << 8) | (dev << 3) | fn;
            for (int i = 0; i < nvfs[p]; i++) {
                unsigned v = rid + (unsigned)offs[p] + (unsigned)strides[p] * (unsigned)i;
                snprintf(vf, sizeof vf, "%04x:%02x:%02x.%x", dom, (v >> 8) & 0xff,
                         (v >> 3) & 0x1f, v & 7);
                snprintf(path, sizeof path, "%s/iommu_group", vf);
                calls++;
                if (readlinkat(dir, path, buf, sizeof buf) < 0)
                    buf[0] = '\0';
                snprintf(path, sizeof path, "%s/driver_override", vf);
                int fd = openat(dir, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
                calls++;
                if (fd < 0)
                    continue;
                struct stat st;
                if (with_fstat) {
                    calls++;
                    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
                        close(fd);
                        continue;
                    }
                }
                calls += 2;
                if (read(fd, buf, sizeof buf) < 0)
                    buf[0] = '\0';
                close(fd);
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double t = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        if (best < 0 || t < best)
            best = t;
    }
    printf("%.6f %ld\n", best, calls);
    return 0;
}
