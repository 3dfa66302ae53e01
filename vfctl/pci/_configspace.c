/*
 * Batch PCI config-space reader and capability decoder (the C half of
 * vfctl/pci/configspace.py, which is its oracle: both must return identical documents).
 *
 * For each sysfs `config` file it preads only what the decoders need: the 64-byte header,
 * one dword per capability header on the standard (from 0x34) and extended (from 0x100)
 * chains, then the bodies of SR-IOV, ARI, ACS, PCI Express (link registers) and the bridge
 * Subsystem ID capability.  I/O and decoding run without the GIL; Python objects are built
 * afterwards.  Every fetch is bounds-checked and both walks are loop-safe.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Register layout: C cannot import vfctl/pci/regs.py, so it is repeated here with the same
 * names and values; tests/pci/test_pci_regs_parity.py fails on any difference. */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_HEADER_TYPE_MASK 0x7f
#define PCI_HEADER_TYPE_NORMAL 0
#define PCI_HEADER_TYPE_BRIDGE 1
#define PCI_HEADER_TYPE_CARDBUS 2
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID 0x2e
#define PCI_CAPABILITY_LIST 0x34
#define PCI_CB_CAPABILITY_LIST 0x14
#define PCI_STD_HEADER_SIZEOF 0x40
#define PCI_CFG_SPACE_SIZE 0x100
#define PCI_CFG_SPACE_EXP_SIZE 0x1000

#define PCI_CAP_LIST_ID 0
#define PCI_CAP_LIST_NEXT 1
#define PCI_CAP_FLAGS 2
#define PCI_CAP_HEADER_SIZE 4
#define PCI_CAP_PTR_MASK 0xfc
#define PCI_CAP_MAX_ENTRIES 48

#define PCI_CAP_ID_SSVID 0x0d
#define PCI_SSVID_VENDOR_ID 4
#define PCI_SSVID_DEVICE_ID 6
#define PCI_SSVID_SIZEOF 8

#define PCI_CAP_ID_EXP 0x10
#define PCI_EXP_FLAGS_VERS 0x000f
#define PCI_EXP_FLAGS_TYPE 0x00f0
#define PCI_EXP_FLAGS_TYPE_SHIFT 4
#define PCI_EXP_LNKCAP 0x0c
#define PCI_EXP_LNKSTA 0x12
#define PCI_EXP_LNK_SPEED 0x000f
#define PCI_EXP_LNK_WIDTH 0x03f0
#define PCI_EXP_LNK_WIDTH_SHIFT 4
#define PCI_EXP_LNK_REGS_END 0x14
#define PCI_EXP_TYPE_ROOT_INT_EP 0x9
#define PCI_EXP_TYPE_ROOT_EC 0xa

#define PCI_EXT_CAP_ID_MASK 0xffff
#define PCI_EXT_CAP_VER_SHIFT 16
#define PCI_EXT_CAP_VER_MASK 0xf
#define PCI_EXT_CAP_NEXT_SHIFT 20
#define PCI_EXT_CAP_NEXT_MASK 0xffc
#define PCI_EXT_CAP_MAX_ENTRIES 960

#define PCI_EXT_CAP_ID_ACS 0x000d
#define PCI_ACS_CAP 0x04
#define PCI_ACS_CTRL 0x06
#define PCI_ACS_SIZEOF 0x08
#define PCI_ACS_SV 0x0001
#define PCI_ACS_TB 0x0002
#define PCI_ACS_RR 0x0004
#define PCI_ACS_CR 0x0008
#define PCI_ACS_UF 0x0010
#define PCI_ACS_EC 0x0020
#define PCI_ACS_DT 0x0040

#define PCI_EXT_CAP_ID_ARI 0x000e
#define PCI_ARI_CAP 0x04
#define PCI_ARI_CTRL 0x06
#define PCI_ARI_SIZEOF 0x08
#define PCI_ARI_CAP_MFVC 0x0001
#define PCI_ARI_CAP_ACS 0x0002
#define PCI_ARI_CAP_NFN_SHIFT 8
#define PCI_ARI_CAP_NFN_MASK 0xff
#define PCI_ARI_CTRL_MFVC 0x0001
#define PCI_ARI_CTRL_ACS 0x0002
#define PCI_ARI_CTRL_FG_SHIFT 4
#define PCI_ARI_CTRL_FG_MASK 0x7

#define PCI_EXT_CAP_ID_SRIOV 0x0010
#define PCI_IOV_CAP 0x04
#define PCI_IOV_CAP_VFM 0x00000001u
#define PCI_IOV_CTRL 0x08
#define PCI_IOV_CTRL_VFE 0x0001
#define PCI_IOV_CTRL_MSE 0x0008
#define PCI_IOV_CTRL_ARI 0x0010
#define PCI_IOV_INITIAL_VF 0x0c
#define PCI_IOV_TOTAL_VF 0x0e
#define PCI_IOV_NUM_VF 0x10
#define PCI_IOV_FUNC_LINK 0x12
#define PCI_IOV_VF_OFFSET 0x14
#define PCI_IOV_VF_STRIDE 0x16
#define PCI_IOV_VF_DID 0x1a
#define PCI_IOV_SUP_PGSIZE 0x1c
#define PCI_IOV_SYS_PGSIZE 0x20
#define PCI_IOV_BAR_0 0x24
#define PCI_IOV_NUM_BAR 6
#define PCI_IOV_FETCH_END 0x3c

#define PCI_BASE_ADDRESS_SPACE_IO 0x1u
#define PCI_BASE_ADDRESS_MEM_TYPE_MASK 0x6u
#define PCI_BASE_ADDRESS_MEM_TYPE_64 0x4u
#define PCI_BASE_ADDRESS_MEM_PREFETCH 0x8u
#define PCI_BASE_ADDRESS_MEM_MASK 0xfffffff0u

#define MAX_ERRORS 16 /* listed; more are counted (MORE_ERRORS), as configspace.py does */
#define ERROR_LEN 96
#define CHUNK 256     /* devices decoded per GIL release */

/* Names: the same strings as the tables in capnames.py. */
static const char *const cap_names[22] = {
    [0x01] = "Power Management",
    [0x02] = "AGP",
    [0x03] = "Vital Product Data",
    [0x04] = "Slot Identification",
    [0x05] = "MSI",
    [0x06] = "CompactPCI Hot Swap",
    [0x07] = "PCI-X",
    [0x08] = "HyperTransport",
    [0x09] = "Vendor Specific",
    [0x0a] = "Debug Port",
    [0x0b] = "CompactPCI Central Resource Control",
    [0x0c] = "PCI Hot-Plug",
    [0x0d] = "Subsystem ID",
    [0x0e] = "AGP 8x",
    [0x0f] = "Secure Device",
    [0x10] = "PCI Express",
    [0x11] = "MSI-X",
    [0x12] = "SATA",
    [0x13] = "PCI Advanced Features",
    [0x14] = "Enhanced Allocation",
    [0x15] = "Flattening Portal Bridge",
};
static const char *const ext_cap_names[53] = {
    [0x01] = "Advanced Error Reporting",
    [0x02] = "Virtual Channel",
    [0x03] = "Device Serial Number",
    [0x04] = "Power Budgeting",
    [0x05] = "Root Complex Link Declaration",
    [0x06] = "Root Complex Internal Link Control",
    [0x07] = "Root Complex Event Collector Endpoint Association",
    [0x08] = "Multi-Function Virtual Channel",
    [0x09] = "Virtual Channel",
    [0x0a] = "Root Complex Register Block",
    [0x0b] = "Vendor Specific",
    [0x0c] = "Configuration Access Correlation",
    [0x0d] = "Access Control Services",
    [0x0e] = "Alternative Routing-ID Interpretation",
    [0x0f] = "Address Translation Service",
    [0x10] = "Single Root I/O Virtualization",
    [0x11] = "Multi-Root I/O Virtualization",
    [0x12] = "Multicast",
    [0x13] = "Page Request Interface",
    [0x15] = "Resizable BAR",
    [0x16] = "Dynamic Power Allocation",
    [0x17] = "TPH Requester",
    [0x18] = "Latency Tolerance Reporting",
    [0x19] = "Secondary PCI Express",
    [0x1a] = "Protocol Multiplexing",
    [0x1b] = "Process Address Space ID",
    [0x1c] = "LN Requester",
    [0x1d] = "Downstream Port Containment",
    [0x1e] = "L1 PM Substates",
    [0x1f] = "Precision Time Measurement",
    [0x20] = "PCI Express over M-PHY",
    [0x21] = "FRS Queueing",
    [0x22] = "Readiness Time Reporting",
    [0x23] = "Designated Vendor-Specific",
    [0x24] = "VF Resizable BAR",
    [0x25] = "Data Link Feature",
    [0x26] = "Physical Layer 16.0 GT/s",
    [0x27] = "Lane Margining at the Receiver",
    [0x28] = "Hierarchy ID",
    [0x29] = "Native PCIe Enclosure Management",
    [0x2a] = "Physical Layer 32.0 GT/s",
    [0x2b] = "Alternate Protocol",
    [0x2c] = "System Firmware Intermediary",
    [0x2d] = "Shadow Functions",
    [0x2e] = "Data Object Exchange",
    [0x2f] = "Device 3",
    [0x30] = "Integrity and Data Encryption",
    [0x31] = "Physical Layer 64.0 GT/s",
    [0x32] = "Flit Logging",
    [0x33] = "Flit Performance Measurement",
    [0x34] = "Flit Error Injection",
};
static const char *const device_types[16] = {
    [0x00] = "endpoint",
    [0x01] = "legacy_endpoint",
    [0x04] = "root_port",
    [0x05] = "upstream_port",
    [0x06] = "downstream_port",
    [0x07] = "pcie_pci_bridge",
    [0x08] = "pci_pcie_bridge",
    [0x09] = "rc_integrated_endpoint",
    [0x0a] = "rc_event_collector",
};
static const char *const link_speeds[16] = {
    [0x01] = "2.5GT/s",
    [0x02] = "5GT/s",
    [0x03] = "8GT/s",
    [0x04] = "16GT/s",
    [0x05] = "32GT/s",
    [0x06] = "64GT/s",
};

#define KEYS(X) \
    X(id) \
    X(offset) \
    X(name) \
    X(version) \
    X(index) \
    X(address) \
    X(type) \
    X(prefetchable) \
    X(total_vfs) \
    X(initial_vfs) \
    X(num_vfs) \
    X(vf_offset) \
    X(vf_stride) \
    X(vf_device_id) \
    X(function_dependency_link) \
    X(supported_page_sizes) \
    X(system_page_size) \
    X(vf_enable) \
    X(vf_mse) \
    X(ari_hierarchy) \
    X(vf_migration_capable) \
    X(vf_bars) \
    X(mfvc) \
    X(acs) \
    X(next_function) \
    X(mfvc_group) \
    X(acs_group) \
    X(function_group) \
    X(device_type) \
    X(link_speed_max) \
    X(link_width_max) \
    X(link_speed) \
    X(link_width) \
    X(vendor_id) \
    X(device_id) \
    X(header_type) \
    X(class) \
    X(subsystem_vendor_id) \
    X(subsystem_id) \
    X(capabilities) \
    X(extended_capabilities) \
    X(sriov) \
    X(ari) \
    X(pcie) \
    X(truncated) \
    X(errors) \
    X(path) \
    X(error) \
    X(bytes_read) \
    X(reads) \
    X(source_validation) \
    X(translation_blocking) \
    X(request_redirect) \
    X(completion_redirect) \
    X(upstream_forwarding) \
    X(egress_control) \
    X(direct_translated) \
    X(ctrl_source_validation) \
    X(ctrl_translation_blocking) \
    X(ctrl_request_redirect) \
    X(ctrl_completion_redirect) \
    X(ctrl_upstream_forwarding) \
    X(ctrl_egress_control) \
    X(ctrl_direct_translated)

enum key_index {
#define X(name) K_##name,
    KEYS(X)
#undef X
    K_COUNT
};

/* Interned once at import: the dict keys and every constant string value. */
static PyObject *keys[K_COUNT];
static PyObject *cap_name_obj[sizeof(cap_names) / sizeof(cap_names[0])];
static PyObject *ext_cap_name_obj[sizeof(ext_cap_names) / sizeof(ext_cap_names[0])];
static PyObject *device_type_obj[16];
static PyObject *link_speed_obj[16];
static PyObject *unknown_obj, *mem32_obj, *mem64_obj;
#define K(name) keys[K_##name]

static const struct {
    enum key_index name, ctrl_name;
    uint16_t bit;
} acs_bits[] = {
    {K_source_validation, K_ctrl_source_validation, PCI_ACS_SV},
    {K_translation_blocking, K_ctrl_translation_blocking, PCI_ACS_TB},
    {K_request_redirect, K_ctrl_request_redirect, PCI_ACS_RR},
    {K_completion_redirect, K_ctrl_completion_redirect, PCI_ACS_CR},
    {K_upstream_forwarding, K_ctrl_upstream_forwarding, PCI_ACS_UF},
    {K_egress_control, K_ctrl_egress_control, PCI_ACS_EC},
    {K_direct_translated, K_ctrl_direct_translated, PCI_ACS_DT},
};
#define N_ACS_BITS (sizeof(acs_bits) / sizeof(acs_bits[0]))

/* ---- decoded result of one function (plain C, built without the GIL) ---- */

struct std_cap {
    uint8_t id;
    uint8_t offset;
};

struct ext_cap {
    uint16_t id;
    uint16_t offset;
    uint8_t version;
};

struct vf_bar {
    uint8_t index;
    bool is64;
    bool prefetchable;
    uint64_t address;
};

struct sriov {
    uint16_t offset, total_vfs, initial_vfs, num_vfs, vf_offset, vf_stride, vf_device_id;
    uint8_t function_dependency_link;
    uint32_t supported_page_sizes, system_page_size;
    bool vf_enable, vf_mse, ari_hierarchy, vf_migration_capable;
    int n_bars;
    struct vf_bar bars[PCI_IOV_NUM_BAR];
};

struct ari {
    uint16_t cap, ctrl;
};

struct acs {
    uint16_t cap, ctrl;
};

struct pcie {
    uint8_t version, type;
    bool has_link;
    uint32_t lnkcap;
    uint16_t lnksta;
};

enum status { ST_OK, ST_OPEN_FAILED, ST_NOT_REGULAR, ST_READ_FAILED, ST_SHORT };

struct result {
    enum status status;
    int err_no;
    uint8_t hdr[PCI_STD_HEADER_SIZEOF];
    bool has_ssvid;
    uint16_t ssvid, ssid;
    bool has_pcie, has_sriov, has_ari, has_acs, truncated;
    struct pcie pcie;
    struct sriov sriov;
    struct ari ari;
    struct acs acs;
    int n_std, n_ext, n_err, n_err_more;
    struct std_cap std[PCI_CAP_MAX_ENTRIES];
    struct ext_cap ext[PCI_EXT_CAP_MAX_ENTRIES];
    char err[MAX_ERRORS][ERROR_LEN];
    unsigned long long bytes_read;
    unsigned long reads;
};

/* ---- the byte source: a file descriptor (pread) or a buffer ---- */

struct source {
    int fd; /* -1: use buf/len */
    const uint8_t *buf;
    size_t len;
    struct result *r;
    int read_errno;
};

/* Copy [off, off+n) into dst; false when the source ends first (or the read fails). */
static bool fetch(struct source *s, uint32_t off, uint32_t n, uint8_t *dst)
{
    if (s->fd < 0) {
        if ((size_t)off + n > s->len)
            return false;
        memcpy(dst, s->buf + off, n);
        return true;
    }
    s->r->reads++;
    ssize_t got;
    do {
        got = pread(s->fd, dst, n, (off_t)off);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
        s->read_errno = errno;
        return false;
    }
    s->r->bytes_read += (unsigned long long)got;
    return (size_t)got == n;
}

/* A fetch during the walk: running out marks the document truncated. */
static bool walk_fetch(struct source *s, uint32_t off, uint32_t n, uint8_t *dst)
{
    if (fetch(s, off, n, dst))
        return true;
    s->r->truncated = true;
    return false;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (uint16_t)p[1] << 8); }

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void add_error(struct result *r, const char *fmt, ...)
{
    if (r->n_err >= MAX_ERRORS) {
        r->n_err_more++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err[r->n_err++], ERROR_LEN, fmt, ap);
    va_end(ap);
}

/* ---- one small decoder per capability ---- */

static void decode_pcie(struct source *s, uint32_t pos, uint16_t flags)
{
    struct result *r = s->r;
    uint8_t b[PCI_EXP_LNK_REGS_END - PCI_EXP_LNKCAP];

    r->has_pcie = true;
    r->pcie.version = flags & PCI_EXP_FLAGS_VERS;
    r->pcie.type = (flags & PCI_EXP_FLAGS_TYPE) >> PCI_EXP_FLAGS_TYPE_SHIFT;
    if (r->pcie.type == PCI_EXP_TYPE_ROOT_INT_EP || r->pcie.type == PCI_EXP_TYPE_ROOT_EC)
        return;
    if (pos + PCI_EXP_LNK_REGS_END > PCI_CFG_SPACE_SIZE) {
        add_error(r, "PCI Express capability at 0x%02x overruns the 256-byte header", pos);
        return;
    }
    if (!walk_fetch(s, pos + PCI_EXP_LNKCAP, sizeof b, b))
        return;
    r->pcie.has_link = true;
    r->pcie.lnkcap = le32(b);
    r->pcie.lnksta = le16(b + PCI_EXP_LNKSTA - PCI_EXP_LNKCAP);
}

static void decode_ssvid(struct source *s, uint32_t pos)
{
    struct result *r = s->r;
    uint8_t b[PCI_SSVID_SIZEOF - PCI_SSVID_VENDOR_ID];

    if (pos + PCI_SSVID_SIZEOF > PCI_CFG_SPACE_SIZE) {
        add_error(r, "Subsystem ID capability at 0x%02x overruns the 256-byte header", pos);
        return;
    }
    if (!walk_fetch(s, pos + PCI_SSVID_VENDOR_ID, sizeof b, b))
        return;
    r->has_ssvid = true;
    r->ssvid = le16(b);
    r->ssid = le16(b + PCI_SSVID_DEVICE_ID - PCI_SSVID_VENDOR_ID);
}

static void decode_vf_bars(struct result *r, const uint32_t *bars)
{
    struct sriov *v = &r->sriov;
    int i = 0;

    v->n_bars = 0;
    while (i < PCI_IOV_NUM_BAR) {
        uint32_t lo = bars[i], hi = 0;
        bool is64 = (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
        if (is64) {
            if (i + 1 < PCI_IOV_NUM_BAR)
                hi = bars[i + 1];
            else
                add_error(r, "VF BAR %d is 64-bit but has no upper half", i);
        }
        if (lo & PCI_BASE_ADDRESS_SPACE_IO)
            add_error(r, "VF BAR %d has the I/O space bit set", i);
        if (lo || hi) {
            struct vf_bar *b = &v->bars[v->n_bars++];
            b->index = (uint8_t)i;
            b->is64 = is64;
            b->prefetchable = (lo & PCI_BASE_ADDRESS_MEM_PREFETCH) != 0;
            b->address = (uint64_t)hi << 32 | (lo & PCI_BASE_ADDRESS_MEM_MASK);
        }
        i += is64 ? 2 : 1;
    }
}

static void decode_sriov(struct source *s, uint32_t pos)
{
    struct result *r = s->r;
    struct sriov *v = &r->sriov;
    uint8_t b[PCI_IOV_FETCH_END - PCI_IOV_CAP];
    uint32_t bars[PCI_IOV_NUM_BAR];

    if (pos + PCI_IOV_FETCH_END > PCI_CFG_SPACE_EXP_SIZE) {
        add_error(r, "SR-IOV capability at 0x%03x overruns config space", pos);
        return;
    }
    if (!walk_fetch(s, pos + PCI_IOV_CAP, sizeof b, b))
        return;
#define REG16(reg) le16(b + (reg) - PCI_IOV_CAP)
#define REG32(reg) le32(b + (reg) - PCI_IOV_CAP)
    uint16_t ctrl = REG16(PCI_IOV_CTRL);
    r->has_sriov = true;
    v->offset = (uint16_t)pos;
    v->total_vfs = REG16(PCI_IOV_TOTAL_VF);
    v->initial_vfs = REG16(PCI_IOV_INITIAL_VF);
    v->num_vfs = REG16(PCI_IOV_NUM_VF);
    v->vf_offset = REG16(PCI_IOV_VF_OFFSET);
    v->vf_stride = REG16(PCI_IOV_VF_STRIDE);
    v->vf_device_id = REG16(PCI_IOV_VF_DID);
    v->function_dependency_link = b[PCI_IOV_FUNC_LINK - PCI_IOV_CAP];
    v->supported_page_sizes = REG32(PCI_IOV_SUP_PGSIZE);
    v->system_page_size = REG32(PCI_IOV_SYS_PGSIZE);
    v->vf_enable = (ctrl & PCI_IOV_CTRL_VFE) != 0;
    v->vf_mse = (ctrl & PCI_IOV_CTRL_MSE) != 0;
    v->ari_hierarchy = (ctrl & PCI_IOV_CTRL_ARI) != 0;
    v->vf_migration_capable = (REG32(PCI_IOV_CAP) & PCI_IOV_CAP_VFM) != 0;
    for (int i = 0; i < PCI_IOV_NUM_BAR; i++)
        bars[i] = REG32(PCI_IOV_BAR_0 + 4 * i);
#undef REG16
#undef REG32
    decode_vf_bars(r, bars);
}

static void decode_ari(struct source *s, uint32_t pos)
{
    struct result *r = s->r;
    uint8_t b[PCI_ARI_SIZEOF - PCI_ARI_CAP];

    if (pos + PCI_ARI_SIZEOF > PCI_CFG_SPACE_EXP_SIZE) {
        add_error(r, "ARI capability at 0x%03x overruns config space", pos);
        return;
    }
    if (!walk_fetch(s, pos + PCI_ARI_CAP, sizeof b, b))
        return;
    r->has_ari = true;
    r->ari.cap = le16(b);
    r->ari.ctrl = le16(b + PCI_ARI_CTRL - PCI_ARI_CAP);
}

static void decode_acs(struct source *s, uint32_t pos)
{
    struct result *r = s->r;
    uint8_t b[PCI_ACS_SIZEOF - PCI_ACS_CAP];

    if (pos + PCI_ACS_SIZEOF > PCI_CFG_SPACE_EXP_SIZE) {
        add_error(r, "ACS capability at 0x%03x overruns config space", pos);
        return;
    }
    if (!walk_fetch(s, pos + PCI_ACS_CAP, sizeof b, b))
        return;
    r->has_acs = true;
    r->acs.cap = le16(b);
    r->acs.ctrl = le16(b + PCI_ACS_CTRL - PCI_ACS_CAP);
}

/* ---- the walks ---- */

static void walk_standard(struct source *s, uint32_t pos, unsigned htype)
{
    struct result *r = s->r;
    bool seen[PCI_CFG_SPACE_SIZE] = {false};
    bool ssvid_done = false;
    uint8_t b[PCI_CAP_HEADER_SIZE];

    while (pos) {
        if (pos < PCI_STD_HEADER_SIZEOF) {
            add_error(r, "capability pointer 0x%02x points into the header", pos);
            return;
        }
        if (seen[pos]) {
            add_error(r, "capability chain loops back to 0x%02x", pos);
            return;
        }
        if (r->n_std >= PCI_CAP_MAX_ENTRIES) {
            add_error(r, "capability chain longer than 48 entries");
            return;
        }
        seen[pos] = true;
        if (!walk_fetch(s, pos, sizeof b, b))
            return;
        uint8_t id = b[PCI_CAP_LIST_ID];
        if (id == 0xff) {
            add_error(r, "capability at 0x%02x has id 0xff: chain broken", pos);
            return;
        }
        r->std[r->n_std].id = id;
        r->std[r->n_std].offset = (uint8_t)pos;
        r->n_std++;
        if (id == PCI_CAP_ID_EXP && !r->has_pcie) {
            decode_pcie(s, pos, le16(b + PCI_CAP_FLAGS));
        } else if (id == PCI_CAP_ID_SSVID && htype == PCI_HEADER_TYPE_BRIDGE && !ssvid_done) {
            ssvid_done = true;
            decode_ssvid(s, pos);
        }
        pos = b[PCI_CAP_LIST_NEXT] & PCI_CAP_PTR_MASK;
    }
}

static void walk_extended(struct source *s)
{
    struct result *r = s->r;
    bool seen[PCI_CFG_SPACE_EXP_SIZE] = {false};
    uint32_t pos = PCI_CFG_SPACE_SIZE;
    uint8_t b[4];

    for (;;) {
        if (r->n_ext >= PCI_EXT_CAP_MAX_ENTRIES) {
            add_error(r, "extended capability chain longer than 960 entries");
            return;
        }
        seen[pos] = true;
        if (!walk_fetch(s, pos, sizeof b, b))
            return;
        uint32_t header = le32(b);
        if (header == 0 || header == 0xffffffffu)
            return;
        uint16_t id = header & PCI_EXT_CAP_ID_MASK;
        struct ext_cap *e = &r->ext[r->n_ext++];
        e->id = id;
        e->offset = (uint16_t)pos;
        e->version = (header >> PCI_EXT_CAP_VER_SHIFT) & PCI_EXT_CAP_VER_MASK;
        if (id == PCI_EXT_CAP_ID_SRIOV && !r->has_sriov)
            decode_sriov(s, pos);
        else if (id == PCI_EXT_CAP_ID_ARI && !r->has_ari)
            decode_ari(s, pos);
        else if (id == PCI_EXT_CAP_ID_ACS && !r->has_acs)
            decode_acs(s, pos);
        uint32_t next = (header >> PCI_EXT_CAP_NEXT_SHIFT) & PCI_EXT_CAP_NEXT_MASK;
        if (next == 0)
            return;
        if (next < PCI_CFG_SPACE_SIZE) {
            add_error(r, "extended capability at 0x%03x points to 0x%03x, below 0x100", pos,
                      next);
            return;
        }
        if (seen[next]) {
            add_error(r, "extended capability chain loops back to 0x%03x", next);
            return;
        }
        pos = next;
    }
}

/* Decode from a source whose header fetch is done here; fills r (no Python calls). */
static void parse_source(struct source *s)
{
    struct result *r = s->r;
    const uint8_t *h = r->hdr;

    if (!fetch(s, 0, PCI_STD_HEADER_SIZEOF, r->hdr)) {
        r->status = s->read_errno ? ST_READ_FAILED : ST_SHORT;
        r->err_no = s->read_errno;
        return;
    }
    r->status = ST_OK;
    unsigned htype = h[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK;
    uint32_t ptr_reg = 0;
    if (htype == PCI_HEADER_TYPE_NORMAL) {
        uint16_t ssv = le16(h + PCI_SUBSYSTEM_VENDOR_ID);
        if (ssv != 0 && ssv != 0xffff) {
            r->has_ssvid = true;
            r->ssvid = ssv;
            r->ssid = le16(h + PCI_SUBSYSTEM_ID);
        }
    }
    if (htype == PCI_HEADER_TYPE_NORMAL || htype == PCI_HEADER_TYPE_BRIDGE)
        ptr_reg = PCI_CAPABILITY_LIST;
    else if (htype == PCI_HEADER_TYPE_CARDBUS)
        ptr_reg = PCI_CB_CAPABILITY_LIST;
    else
        add_error(r, "unknown header type 0x%02x", htype);
    if (ptr_reg && (le16(h + PCI_STATUS) & PCI_STATUS_CAP_LIST))
        walk_standard(s, h[ptr_reg] & PCI_CAP_PTR_MASK, htype);
    if (r->has_pcie)
        walk_extended(s);
}

static void parse_path(const char *path, struct result *r)
{
    struct source s = {.fd = -1, .r = r};

    memset(r, 0, offsetof(struct result, std)); /* the arrays are filled up to their counts */
    r->n_err = 0;
    r->n_err_more = 0;
    r->bytes_read = 0;
    r->reads = 0;
    /* O_NONBLOCK: a FIFO in place of a config file must not block the run; sysfs config
     * attributes are regular files, anything else is refused */
    s.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (s.fd < 0) {
        r->status = ST_OPEN_FAILED;
        r->err_no = errno;
        return;
    }
    struct stat st;
    if (fstat(s.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r->status = ST_NOT_REGULAR;
        close(s.fd);
        return;
    }
    parse_source(&s);
    close(s.fd);
}

/* ---- building the Python document ---- */

/* Steals `value`; returns -1 (with an exception set) on failure. */
static int put(PyObject *d, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int rc = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *hex4(unsigned v)
{
    static const char digits[] = "0123456789abcdef";
    char t[4] = {digits[v >> 12 & 0xf], digits[v >> 8 & 0xf], digits[v >> 4 & 0xf], digits[v & 0xf]};
    return PyUnicode_DecodeASCII(t, 4, NULL);
}

static PyObject *new_bool(bool v) { return PyBool_FromLong(v); }

static PyObject *none(void) { Py_RETURN_NONE; }

static PyObject *name_or_unknown(PyObject *const *table, size_t n, unsigned id)
{
    PyObject *name = id < n && table[id] != NULL ? table[id] : unknown_obj;
    Py_INCREF(name);
    return name;
}
#define NAME(table, id) name_or_unknown(table##_obj, sizeof(table##_obj) / sizeof(table##_obj[0]), (id))

static PyObject *build_caps(const struct result *r)
{
    PyObject *list = PyList_New(r->n_std);
    if (list == NULL)
        return NULL;
    for (int i = 0; i < r->n_std; i++) {
        PyObject *d = PyDict_New();
        if (d == NULL)
            goto fail;
        PyList_SET_ITEM(list, i, d);
        if (put(d, K(id), PyLong_FromLong(r->std[i].id)) ||
            put(d, K(offset), PyLong_FromLong(r->std[i].offset)) ||
            put(d, K(name), NAME(cap_name, r->std[i].id)))
            goto fail;
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *build_ext_caps(const struct result *r)
{
    PyObject *list = PyList_New(r->n_ext);
    if (list == NULL)
        return NULL;
    for (int i = 0; i < r->n_ext; i++) {
        PyObject *d = PyDict_New();
        if (d == NULL)
            goto fail;
        PyList_SET_ITEM(list, i, d);
        if (put(d, K(id), PyLong_FromLong(r->ext[i].id)) ||
            put(d, K(offset), PyLong_FromLong(r->ext[i].offset)) ||
            put(d, K(version), PyLong_FromLong(r->ext[i].version)) ||
            put(d, K(name), NAME(ext_cap_name, r->ext[i].id)))
            goto fail;
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *build_vf_bars(const struct sriov *v)
{
    PyObject *list = PyList_New(v->n_bars);
    if (list == NULL)
        return NULL;
    for (int i = 0; i < v->n_bars; i++) {
        const struct vf_bar *b = &v->bars[i];
        PyObject *d = PyDict_New();
        if (d == NULL)
            goto fail;
        PyList_SET_ITEM(list, i, d);
        if (put(d, K(index), PyLong_FromLong(b->index)) ||
            put(d, K(address), PyLong_FromUnsignedLongLong(b->address)) ||
            put(d, K(type), Py_NewRef(b->is64 ? mem64_obj : mem32_obj)) ||
            put(d, K(prefetchable), new_bool(b->prefetchable)))
            goto fail;
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *build_sriov(const struct result *r)
{
    const struct sriov *v = &r->sriov;
    if (!r->has_sriov)
        return none();
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    if (put(d, K(offset), PyLong_FromLong(v->offset)) ||
        put(d, K(total_vfs), PyLong_FromLong(v->total_vfs)) ||
        put(d, K(initial_vfs), PyLong_FromLong(v->initial_vfs)) ||
        put(d, K(num_vfs), PyLong_FromLong(v->num_vfs)) ||
        put(d, K(vf_offset), PyLong_FromLong(v->vf_offset)) ||
        put(d, K(vf_stride), PyLong_FromLong(v->vf_stride)) ||
        put(d, K(vf_device_id), hex4(v->vf_device_id)) ||
        put(d, K(function_dependency_link), PyLong_FromLong(v->function_dependency_link)) ||
        put(d, K(supported_page_sizes), PyLong_FromUnsignedLong(v->supported_page_sizes)) ||
        put(d, K(system_page_size), PyLong_FromUnsignedLong(v->system_page_size)) ||
        put(d, K(vf_enable), new_bool(v->vf_enable)) || put(d, K(vf_mse), new_bool(v->vf_mse)) ||
        put(d, K(ari_hierarchy), new_bool(v->ari_hierarchy)) ||
        put(d, K(vf_migration_capable), new_bool(v->vf_migration_capable)) ||
        put(d, K(vf_bars), build_vf_bars(v))) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *build_ari(const struct result *r)
{
    const struct ari *a = &r->ari;
    if (!r->has_ari)
        return none();
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    if (put(d, K(mfvc), new_bool(a->cap & PCI_ARI_CAP_MFVC)) ||
        put(d, K(acs), new_bool(a->cap & PCI_ARI_CAP_ACS)) ||
        put(d, K(next_function),
            PyLong_FromLong((a->cap >> PCI_ARI_CAP_NFN_SHIFT) & PCI_ARI_CAP_NFN_MASK)) ||
        put(d, K(mfvc_group), new_bool(a->ctrl & PCI_ARI_CTRL_MFVC)) ||
        put(d, K(acs_group), new_bool(a->ctrl & PCI_ARI_CTRL_ACS)) ||
        put(d, K(function_group),
            PyLong_FromLong((a->ctrl >> PCI_ARI_CTRL_FG_SHIFT) & PCI_ARI_CTRL_FG_MASK))) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *build_acs(const struct result *r)
{
    if (!r->has_acs)
        return none();
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < N_ACS_BITS; i++)
        if (put(d, keys[acs_bits[i].name], new_bool(r->acs.cap & acs_bits[i].bit)))
            goto fail;
    for (size_t i = 0; i < N_ACS_BITS; i++)
        if (put(d, keys[acs_bits[i].ctrl_name], new_bool(r->acs.ctrl & acs_bits[i].bit)))
            goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *build_pcie(const struct result *r)
{
    const struct pcie *p = &r->pcie;
    if (!r->has_pcie)
        return none();
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    if (put(d, K(version), PyLong_FromLong(p->version)) ||
        put(d, K(device_type), NAME(device_type, p->type)))
        goto fail;
    if (p->has_link) {
        unsigned cap_speed = p->lnkcap & PCI_EXP_LNK_SPEED, sta_speed = p->lnksta & PCI_EXP_LNK_SPEED;
        if (put(d, K(link_speed_max), NAME(link_speed, cap_speed)) ||
            put(d, K(link_width_max),
                PyLong_FromLong((p->lnkcap & PCI_EXP_LNK_WIDTH) >> PCI_EXP_LNK_WIDTH_SHIFT)) ||
            put(d, K(link_speed), NAME(link_speed, sta_speed)) ||
            put(d, K(link_width),
                PyLong_FromLong((p->lnksta & PCI_EXP_LNK_WIDTH) >> PCI_EXP_LNK_WIDTH_SHIFT)))
            goto fail;
    } else if (put(d, K(link_speed_max), none()) || put(d, K(link_width_max), none()) ||
               put(d, K(link_speed), none()) || put(d, K(link_width), none())) {
        goto fail;
    }
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *build_errors(const struct result *r)
{
    PyObject *list = PyList_New(r->n_err + (r->n_err_more > 0));
    if (list == NULL)
        return NULL;
    for (int i = 0; i < r->n_err; i++) {
        PyObject *s = PyUnicode_FromString(r->err[i]);
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, s);
    }
    if (r->n_err_more > 0) {
        PyObject *s = PyUnicode_FromFormat("%d more errors not listed", r->n_err_more);
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, r->n_err, s);
    }
    return list;
}

static PyObject *build_doc(const struct result *r)
{
    const uint8_t *h = r->hdr;
    unsigned long cls = h[PCI_CLASS_PROG] | (unsigned long)h[PCI_CLASS_PROG + 1] << 8 |
                        (unsigned long)h[PCI_CLASS_PROG + 2] << 16;
    char cls_text[8];
    snprintf(cls_text, sizeof cls_text, "%06lx", cls);

    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    if (put(d, K(vendor_id), hex4(le16(h + PCI_VENDOR_ID))) ||
        put(d, K(device_id), hex4(le16(h + PCI_DEVICE_ID))) ||
        put(d, K(header_type), PyLong_FromLong(h[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK)) ||
        put(d, K(class), PyUnicode_FromString(cls_text)) ||
        put(d, K(subsystem_vendor_id), r->has_ssvid ? hex4(r->ssvid) : none()) ||
        put(d, K(subsystem_id), r->has_ssvid ? hex4(r->ssid) : none()) ||
        put(d, K(capabilities), build_caps(r)) ||
        put(d, K(extended_capabilities), build_ext_caps(r)) ||
        put(d, K(sriov), build_sriov(r)) || put(d, K(ari), build_ari(r)) ||
        put(d, K(acs), build_acs(r)) || put(d, K(pcie), build_pcie(r)) ||
        put(d, K(truncated), new_bool(r->truncated)) || put(d, K(errors), build_errors(r))) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *build_file_doc(PyObject *path, const struct result *r)
{
    PyObject *d;

    if (r->status != ST_OK) {
        d = PyDict_New();
        if (d == NULL)
            return NULL;
        Py_INCREF(path);
        PyObject *msg;
        if (r->status == ST_OPEN_FAILED)
            msg = PyUnicode_FromFormat("cannot open: %s", strerror(r->err_no));
        else if (r->status == ST_NOT_REGULAR)
            msg = PyUnicode_FromString("cannot open: not a regular file");
        else if (r->status == ST_READ_FAILED)
            msg = PyUnicode_FromFormat("cannot read: %s", strerror(r->err_no));
        else
            msg = PyUnicode_FromFormat("short read: %llu bytes, need 64", r->bytes_read);
        if (put(d, K(path), path) || put(d, K(error), msg)) {
            Py_DECREF(d);
            return NULL;
        }
        return d;
    }
    d = build_doc(r);
    if (d == NULL)
        return NULL;
    Py_INCREF(path);
    if (put(d, K(path), path) || put(d, K(bytes_read), PyLong_FromUnsignedLongLong(r->bytes_read)) ||
        put(d, K(reads), PyLong_FromUnsignedLong(r->reads))) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* ---- module functions ---- */

PyDoc_STRVAR(parse_files_doc,
             "parse_files(paths: list[str]) -> list[dict]\n\n"
             "Read and decode each sysfs config file with minimal preads; the GIL is released\n"
             "during I/O. Same documents as vfctl.pci.configspace.parse_files_python().");

static PyObject *py_parse_files(PyObject *self, PyObject *arg)
{
    (void)self;
    PyObject *seq = PySequence_Fast(arg, "parse_files() expects a sequence of paths");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    struct result *results = PyMem_RawCalloc(CHUNK, sizeof *results);
    PyObject *encoded[CHUNK];
    const char *paths[CHUNK];
    if (out == NULL || results == NULL) {
        Py_XDECREF(out);
        Py_DECREF(seq);
        PyMem_RawFree(results);
        return results == NULL ? PyErr_NoMemory() : NULL;
    }
    /* The documents are acyclic: collecting while thousands of them are built is wasted work. */
    int gc_was_enabled = PyGC_Disable();
    for (Py_ssize_t start = 0; start < n; start += CHUNK) {
        Py_ssize_t m = n - start < CHUNK ? n - start : CHUNK;
        for (Py_ssize_t i = 0; i < m; i++) {
            encoded[i] = NULL;
            if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(seq, start + i), &encoded[i])) {
                for (Py_ssize_t j = 0; j < i; j++)
                    Py_DECREF(encoded[j]);
                goto fail;
            }
            paths[i] = PyBytes_AS_STRING(encoded[i]);
        }
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < m; i++)
            parse_path(paths[i], &results[i]);
        Py_END_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < m; i++)
            Py_DECREF(encoded[i]);
        for (Py_ssize_t i = 0; i < m; i++) {
            PyObject *doc = build_file_doc(PySequence_Fast_GET_ITEM(seq, start + i), &results[i]);
            if (doc == NULL)
                goto fail;
            PyList_SET_ITEM(out, start + i, doc);
        }
    }
    if (gc_was_enabled)
        PyGC_Enable();
    PyMem_RawFree(results);
    Py_DECREF(seq);
    return out;
fail:
    if (gc_was_enabled)
        PyGC_Enable();
    PyMem_RawFree(results);
    Py_DECREF(seq);
    Py_DECREF(out);
    return NULL;
}

PyDoc_STRVAR(parse_doc, "parse(data: bytes) -> dict\n\n"
                        "Decode config bytes held in memory; same document as configspace.parse().");

static PyObject *py_parse(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    struct result *r = PyMem_RawCalloc(1, sizeof *r);
    if (r == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    struct source s = {.fd = -1, .buf = view.buf, .len = (size_t)view.len, .r = r};
    parse_source(&s);
    PyObject *doc = NULL;
    if (r->status != ST_OK)
        PyErr_Format(PyExc_ValueError, "config space is %zd bytes; the header alone needs 64",
                     view.len);
    else
        doc = build_doc(r);
    PyMem_RawFree(r);
    PyBuffer_Release(&view);
    return doc;
}

static PyMethodDef methods[] = {
    {"parse_files", py_parse_files, METH_O, parse_files_doc},
    {"parse", py_parse, METH_O, parse_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_configspace",
    "Batch PCI config-space reader; see vfctl/pci/configspace.py.", -1, methods,
    NULL, NULL, NULL, NULL,
};

static int intern_table(PyObject **out, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] != NULL && (out[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return -1;
    return 0;
}

PyMODINIT_FUNC PyInit__configspace(void)
{
    static const char *const key_names[K_COUNT] = {
#define X(name) #name,
        KEYS(X)
#undef X
    };
    if (intern_table(keys, key_names, K_COUNT) ||
        intern_table(cap_name_obj, cap_names, sizeof(cap_names) / sizeof(cap_names[0])) ||
        intern_table(ext_cap_name_obj, ext_cap_names,
                     sizeof(ext_cap_names) / sizeof(ext_cap_names[0])) ||
        intern_table(device_type_obj, device_types, 16) ||
        intern_table(link_speed_obj, link_speeds, 16) ||
        (unknown_obj = PyUnicode_InternFromString("unknown")) == NULL ||
        (mem32_obj = PyUnicode_InternFromString("mem32")) == NULL ||
        (mem64_obj = PyUnicode_InternFromString("mem64")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
