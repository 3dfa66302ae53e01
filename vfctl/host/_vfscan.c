/* Batch per-VF sysfs reads for discovery, GIL-free: the C twin of vfctl/host/vfscan.py.
 *
 * checks_regular(dir): whether scan() below dir fstats each file (not on sysfs; see below).
 * links(dir, paths, full): readlink of each path relative to dir: basename (virtfnN, where
 * discovery cannot derive VF addresses from offset/stride) or the whole target (class/net
 * links), or None.
 * reads(dir, paths): each relative path's text, read as driver_override below, or None
 * (a PF's attributes, all PFs in one call).
 * scan(dir, addresses, flags): per VF address, relative to dir (sys/bus/pci/devices):
 *   readlink  VF/driver           -> driver name (basename) or None
 *   open+read VF/driver_override  -> raw text (<= 4 KiB) or None
 *   readlink  VF/iommu_group      -> group name (basename) or None
 *   open dir  VF/net              -> netdev names, sorted (absent for most VF drivers)
 * columns(dir, addresses, flags): the same reads as one list per fact (no tuple per VF, the
 * few distinct override texts decoded once each, groups as ints), what discovery consumes.
 * (flags SKIP_DRIVER / SKIP_NET leave driver None / netdevs empty: the caller has them from
 * one listing for all VFs, which is cheaper when there are many).
 * listing(dir): sorted(os.listdir(dir)), the names sorted as bytes in C (see py_listing).
 * owners(dir, drivers, names): that listing for the drivers, as one column: each name's
 * driver, the last of drivers whose directory lists it (hash lookups, no str per entry).  Python builds no object
 * until every read is done.
 *
 * Reads are Host.read's: never block (O_NONBLOCK), read once, at most 64 KiB, and only regular
 * files: on sysfs (checked once with fstatfs) the kernel guarantees that, elsewhere
 * (simulated or copied trees) each file is fstat'ed.  Directories (net/) are opened with
 * O_DIRECTORY.  Descriptors are closed in batches (close_range over runs of our own
 * consecutive descriptors).
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SYSFS_MAGIC_ 0x62656572
#define MAX_ATTR 65536 /* as Host.read: a sysfs attribute is one page */
#define PENDING 256 /* descriptors held open until one close_range (limit 1024: room left) */

/* ---- a growable byte arena: strings are stored as offsets, -1 means None ---- */

struct arena {
    char *buf;
    size_t len, cap;
    bool oom;
};

static long arena_put(struct arena *a, const char *s, size_t n)
{
    if (a->oom)
        return -1;
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 1 << 16;
        while (a->len + n + 1 > cap)
            cap *= 2;
        char *b = realloc(a->buf, cap);
        if (b == NULL) {
            a->oom = true;
            return -1;
        }
        a->buf = b;
        a->cap = cap;
    }
    long at = (long)a->len;
    memcpy(a->buf + a->len, s, n);
    a->buf[a->len + n] = '\0';
    a->len += n + 1;
    return at;
}

struct vf {
    long driver, override, group, nets; /* arena offsets; nets: names back to back */
    size_t override_len;
    int nnets;
};

/* ---- descriptors closed in batches ---- */

struct closer {
    int fds[PENDING];
    int n;
};

static void close_run(int lo, int hi)
{
#ifdef SYS_close_range
    if (hi > lo && syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0) == 0)
        return;
#endif
    for (int fd = lo; fd <= hi; fd++)
        close(fd);
}

static void flush(struct closer *c)
{
    int i = 0;
    while (i < c->n) {
        int j = i;
        while (j + 1 < c->n && c->fds[j + 1] == c->fds[j] + 1)
            j++;
        close_run(c->fds[i], c->fds[j]); /* a run of our own open fds: nothing else in it */
        i = j + 1;
    }
    c->n = 0;
}

static void defer_close(struct closer *c, int fd)
{
    if (c->n == PENDING) /* open_at made room; kept for any other caller */
        flush(c);
    c->fds[c->n++] = fd;
}

static int open_at(struct closer *c, int dirfd, const char *path, int flags)
{
    if (c->n == PENDING)
        flush(c); /* before the open: the next descriptors reuse the same run (one close_range) */
    int fd = openat(dirfd, path, flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && c->n) {
        flush(c);
        fd = openat(dirfd, path, flags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    }
    return fd;
}

/* ---- the reads ---- */

#define SKIP_DRIVER 1 /* the caller has the drivers' own lists (drivers/<drv>/<bdf>) */
#define SKIP_NET 2    /* the caller has sys/class/net's links */

struct scan {
    int devfd;
    int flags;
    bool check_regular;
    char *buf; /* MAX_ATTR bytes */
    struct arena a;
    struct closer c;
};

static long link_to(struct scan *s, const char *path, bool full)
{
    char buf[PATH_MAX];
    ssize_t n = readlinkat(s->devfd, path, buf, sizeof buf - 1);
    if (n < 0)
        return -1;
    size_t start = full ? 0 : (size_t)n;
    while (start > 0 && buf[start - 1] != '/')
        start--;
    return arena_put(&s->a, buf + start, (size_t)n - start);
}

static long link_base(struct scan *s, const char *path) { return link_to(s, path, false); }

static long read_attr(struct scan *s, const char *path, size_t *len)
{
    int fd = open_at(&s->c, s->devfd, path, O_RDONLY);
    if (fd < 0)
        return -1;
    struct stat st;
    if (s->check_regular && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        defer_close(&s->c, fd);
        return -1;
    }
    ssize_t n;
    do {
        n = read(fd, s->buf, MAX_ATTR);
    } while (n < 0 && errno == EINTR);
    defer_close(&s->c, fd);
    if (n < 0)
        return -1;
    *len = (size_t)n;
    return arena_put(&s->a, s->buf, (size_t)n);
}

static int list_dir(struct scan *s, const char *path, long *first)
{
    int fd = open_at(&s->c, s->devfd, path, O_RDONLY | O_DIRECTORY);
    *first = -1;
    if (fd < 0)
        return 0;
    char buf[8192];
    int count = 0;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                continue;
            long at = arena_put(&s->a, d->d_name, strlen(d->d_name));
            if (*first < 0)
                *first = at;
            count++;
        }
    }
    defer_close(&s->c, fd);
    return count;
}

/* name + suffix into path, as snprintf(path, PATH_MAX, "%s%s") would write it (truncated
 * alike), without its format parsing: ~700 instructions a call, 33,000 calls on 16,384 VFs */
static const char *join(char *path, const char *name, size_t nlen, const char *suffix,
                        size_t slen)
{
    size_t n = nlen < PATH_MAX - 1 ? nlen : PATH_MAX - 1;
    memcpy(path, name, n);
    size_t m = slen < PATH_MAX - 1 - n ? slen : PATH_MAX - 1 - n;
    memcpy(path + n, suffix, m);
    path[n + m] = '\0';
    return path;
}

#define JOIN(path, name, nlen, lit) join(path, name, nlen, lit, sizeof lit - 1)

static void scan_vf(struct scan *s, const char *name, struct vf *v)
{
    char path[PATH_MAX];
    size_t nlen = strlen(name);
    v->driver = v->override = v->group = v->nets = -1;
    v->nnets = 0;
    if (!(s->flags & SKIP_DRIVER))
        v->driver = link_base(s, JOIN(path, name, nlen, "/driver"));
    v->override = read_attr(s, JOIN(path, name, nlen, "/driver_override"), &v->override_len);
    v->group = link_base(s, JOIN(path, name, nlen, "/iommu_group"));
    if (!(s->flags & SKIP_NET))
        v->nnets = list_dir(s, JOIN(path, name, nlen, "/net"), &v->nets);
}

/* ---- Python ---- */

static PyObject *str_or_none(const struct arena *a, long at)
{
    if (at < 0)
        Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(a->buf + at);
}

static PyObject *netdev_list(const struct arena *a, const struct vf *v)
{
    PyObject *nets = PyList_New(v->nnets);
    if (nets == NULL)
        return NULL;
    long at = v->nets;
    for (int i = 0; i < v->nnets; i++) {
        PyObject *n = PyUnicode_DecodeFSDefault(a->buf + at);
        if (n == NULL) {
            Py_DECREF(nets);
            return NULL;
        }
        PyList_SET_ITEM(nets, i, n);
        at += (long)strlen(a->buf + at) + 1;
    }
    if (v->nnets > 1 && PyList_Sort(nets) < 0) {
        Py_DECREF(nets);
        return NULL;
    }
    return nets;
}

static PyObject *build_vf(const struct arena *a, const struct vf *v)
{
    PyObject *nets = netdev_list(a, v);
    if (nets == NULL)
        return NULL;
    PyObject *override;
    if (v->override < 0) {
        override = Py_NewRef(Py_None);
    } else {
        override = PyUnicode_DecodeUTF8(a->buf + v->override, (Py_ssize_t)v->override_len,
                                        "replace");
    }
    if (override == NULL) {
        Py_DECREF(nets);
        return NULL;
    }
    return Py_BuildValue("(NNNN)", str_or_none(a, v->driver), override, str_or_none(a, v->group),
                         nets);
}

/* Paths of a sequence as C strings held by a new list (bytes objects, or the str itself when
 * it is ASCII: its own NUL-terminated bytes are what the file-system encoding gives, without an
 * encode and a bytes object per name), or NULL with an exception set (as PyUnicode_FSConverter
 * sets it: an embedded NUL is a ValueError). */
static PyObject *fs_paths(PyObject *seq_obj, const char ***out)
{
    PyObject *seq = PySequence_Fast(seq_obj, "expected a sequence of names");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *list = PyList_New(n);
    *out = PyMem_Calloc((size_t)n + 1, sizeof **out);
    for (Py_ssize_t i = 0; list != NULL && *out != NULL && i < n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(seq, i), *b = NULL;
        if (PyUnicode_CheckExact(o) && PyUnicode_IS_COMPACT_ASCII(o)) {
            const char *text = (const char *)PyUnicode_DATA(o);
            if (strlen(text) != (size_t)PyUnicode_GET_LENGTH(o)) {
                PyErr_SetString(PyExc_ValueError, "embedded null byte");
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, i, Py_NewRef(o));
            (*out)[i] = text;
            continue;
        }
        if (!PyUnicode_FSConverter(o, &b)) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, b);
        (*out)[i] = PyBytes_AS_STRING(b);
    }
    Py_DECREF(seq);
    if (*out == NULL) {
        Py_XDECREF(list);
        return PyErr_NoMemory();
    }
    if (list == NULL) {
        PyMem_Free(*out);
        *out = NULL;
    }
    return list;
}

static int open_dir(struct scan *s, PyObject *dir_obj)
{
    PyObject *dir_bytes = NULL;
    if (!PyUnicode_FSConverter(dir_obj, &dir_bytes))
        return -1;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
    s->devfd = open(PyBytes_AS_STRING(dir_bytes), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct statfs fs;
    if (s->devfd < 0)
        err = errno;
    else
        s->check_regular = fstatfs(s->devfd, &fs) != 0 || fs.f_type != SYSFS_MAGIC_;
    Py_END_ALLOW_THREADS
    Py_DECREF(dir_bytes);
    if (err) {
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, dir_obj);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(checks_doc, "checks_regular(dir: str) -> bool\n\n"
                         "Whether scan() fstats each file below dir (False on sysfs).");

static PyObject *py_checks_regular(PyObject *self, PyObject *dir_obj)
{
    (void)self;
    struct scan s = {.devfd = -1};
    if (open_dir(&s, dir_obj) < 0)
        return NULL;
    close(s.devfd);
    return PyBool_FromLong(s.check_regular);
}

PyDoc_STRVAR(links_doc, "links(dir: str, paths: list[str], full: bool = False) -> list[str | None]\n\n"
                        "Basename (or all) of each relative path's symlink target, or None;\n"
                        "GIL-free.");

/* links() and reads(): one result per relative path, the same batch around one of two reads
 * (a symlink's target, or a small file's text as scan() reads driver_override) */
static PyObject *paths_batch(PyObject *args, const char *fmt, bool text)
{
    PyObject *dir_obj, *paths_obj, *out = NULL;
    int full = 0;
    if (!PyArg_ParseTuple(args, fmt, &dir_obj, &paths_obj, &full))
        return NULL;
    const char **paths = NULL;
    PyObject *keep = fs_paths(paths_obj, &paths);
    if (keep == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keep);
    struct scan s = {.devfd = -1, .buf = text ? PyMem_RawMalloc(MAX_ATTR) : NULL};
    long *at = PyMem_RawCalloc((size_t)n + 1, sizeof *at);
    size_t *len = PyMem_RawCalloc((size_t)n + 1, sizeof *len);
    if (at == NULL || len == NULL || (text && s.buf == NULL)) {
        PyErr_NoMemory();
        goto done;
    }
    if (open_dir(&s, dir_obj) < 0)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        at[i] = text ? read_attr(&s, paths[i], &len[i]) : link_to(&s, paths[i], full);
    flush(&s.c);
    close(s.devfd);
    Py_END_ALLOW_THREADS
    if (s.a.oom) {
        PyErr_NoMemory();
        goto done;
    }
    out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *v = !text  ? str_or_none(&s.a, at[i])
                      : at[i] < 0 ? Py_NewRef(Py_None)
                                  : PyUnicode_DecodeUTF8(s.a.buf + at[i], (Py_ssize_t)len[i],
                                                         "replace");
        if (v == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, v);
    }
done:
    PyMem_RawFree(s.buf);
    PyMem_RawFree(at);
    PyMem_RawFree(len);
    PyMem_Free(paths);
    Py_DECREF(keep);
    free(s.a.buf);
    return out;
}

static PyObject *py_links(PyObject *self, PyObject *args)
{
    (void)self;
    return paths_batch(args, "OO|p:links", false);
}

PyDoc_STRVAR(reads_doc, "reads(dir: str, paths: list[str]) -> list[str | None]\n\n"
                        "Each relative path's text as scan() reads driver_override, or None;\n"
                        "GIL-free.");

static PyObject *py_reads(PyObject *self, PyObject *args)
{
    (void)self;
    return paths_batch(args, "OO:reads", true);
}

/* ---- columns(): the scan's facts one list per fact, built without a tuple per VF ---- */

/* The last few distinct driver_override texts and their str: a host shows a handful of values
 * ("(null)\n", "vfio-pci\n"), so nearly every VF's is one already made. */
#define OVR_CACHE 4

struct ovr_cache {
    const char *text[OVR_CACHE];
    size_t len[OVR_CACHE];
    PyObject *str[OVR_CACHE];
    int next;
};

static PyObject *cached_override(struct ovr_cache *c, const char *text, size_t len)
{
    for (int i = 0; i < OVR_CACHE; i++)
        if (c->str[i] != NULL && c->len[i] == len && memcmp(c->text[i], text, len) == 0)
            return Py_NewRef(c->str[i]);
    PyObject *s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace");
    if (s == NULL)
        return NULL;
    int k = c->next;
    c->next = (k + 1) % OVR_CACHE;
    Py_XSETREF(c->str[k], Py_NewRef(s));
    c->text[k] = text;
    c->len[k] = len;
    return s;
}

/* An IOMMU group link's name: an int when it is 1-18 ASCII digits (the kernel's names), else
 * the name as str (the caller's rule decides; vfscan.group_value is the Python twin). */
static PyObject *group_value(const struct arena *a, long at)
{
    if (at < 0)
        Py_RETURN_NONE;
    const char *g = a->buf + at;
    size_t n = strlen(g);
    if (n == 0 || n > 18)
        return PyUnicode_DecodeFSDefault(g);
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (g[i] < '0' || g[i] > '9')
            return PyUnicode_DecodeFSDefault(g);
        v = v * 10 + (g[i] - '0');
    }
    return PyLong_FromLongLong(v);
}

/* The four columns of n scanned VFs (driver / netdevs None as a whole when skipped). */
static PyObject *build_columns(const struct arena *a, const struct vf *vfs, Py_ssize_t n,
                               int flags)
{
    struct ovr_cache cache = {0};
    PyObject *drv = (flags & SKIP_DRIVER) ? Py_NewRef(Py_None) : PyList_New(n);
    PyObject *ovr = PyList_New(n), *grp = PyList_New(n);
    PyObject *net = (flags & SKIP_NET) ? Py_NewRef(Py_None) : PyList_New(n);
    PyObject *out = NULL;
    if (drv == NULL || ovr == NULL || grp == NULL || net == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        const struct vf *v = &vfs[i];
        if (drv != Py_None) {
            PyObject *d = str_or_none(a, v->driver);
            if (d == NULL)
                goto done;
            PyList_SET_ITEM(drv, i, d);
        }
        PyObject *o = v->override < 0 ? Py_NewRef(Py_None)
                                      : cached_override(&cache, a->buf + v->override,
                                                        v->override_len);
        if (o == NULL)
            goto done;
        PyList_SET_ITEM(ovr, i, o);
        PyObject *g = group_value(a, v->group);
        if (g == NULL)
            goto done;
        PyList_SET_ITEM(grp, i, g);
        if (net != Py_None) {
            PyObject *l = netdev_list(a, v);
            if (l == NULL)
                goto done;
            PyList_SET_ITEM(net, i, l);
        }
    }
    out = PyTuple_Pack(4, drv, ovr, grp, net);
done:
    for (int i = 0; i < OVR_CACHE; i++)
        Py_XDECREF(cache.str[i]);
    Py_XDECREF(drv);
    Py_XDECREF(ovr);
    Py_XDECREF(grp);
    Py_XDECREF(net);
    return out;
}

/* scan() and columns(): the same reads, one tuple per VF or one list per fact */
static PyObject *scan_batch(PyObject *args, const char *fmt, bool columns)
{
    PyObject *dir_obj, *addrs_obj, *out = NULL;
    int flags = 0;
    if (!PyArg_ParseTuple(args, fmt, &dir_obj, &addrs_obj, &flags))
        return NULL;
    const char **addrs = NULL;
    PyObject *keep = fs_paths(addrs_obj, &addrs);
    if (keep == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keep);
    struct scan s = {.devfd = -1, .flags = flags, .buf = PyMem_RawMalloc(MAX_ATTR)};
    struct vf *vfs = PyMem_RawCalloc((size_t)n + 1, sizeof *vfs);
    if (vfs == NULL || s.buf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (open_dir(&s, dir_obj) < 0)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        scan_vf(&s, addrs[i], &vfs[i]);
    flush(&s.c);
    close(s.devfd);
    Py_END_ALLOW_THREADS
    if (s.a.oom) {
        PyErr_NoMemory();
        goto done;
    }
    if (columns) {
        out = build_columns(&s.a, vfs, n, flags);
        goto done;
    }
    out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *t = build_vf(&s.a, &vfs[i]);
        if (t == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, t);
    }
done:
    PyMem_RawFree(s.buf);
    PyMem_RawFree(vfs);
    PyMem_Free(addrs);
    Py_DECREF(keep);
    free(s.a.buf);
    return out;
}

PyDoc_STRVAR(scan_doc,
             "scan(dir: str, addresses: list[str], flags: int = 0) -> list[tuple]\n\n"
             "Per VF address: (driver, driver_override, iommu_group, netdevs); GIL-free.\n"
             "Same results as vfctl.host.vfscan.scan_python().");

static PyObject *py_scan(PyObject *self, PyObject *args)
{
    (void)self;
    return scan_batch(args, "OO|i:scan", false);
}

PyDoc_STRVAR(columns_doc,
             "columns(dir: str, addresses: list[str], flags: int = 0) -> tuple\n\n"
             "scan()'s reads as (drivers, overrides, groups, netdevs), one list per fact;\n"
             "drivers / netdevs None when skipped, a group an int when its name is digits.\n"
             "Same results as vfctl.host.vfscan.columns_python().");

static PyObject *py_columns(PyObject *self, PyObject *args)
{
    (void)self;
    return scan_batch(args, "OO|i:columns", true);
}

/* ---- owners(): each VF's driver from the drivers' own directories ---- */

PyDoc_STRVAR(owners_doc,
             "owners(dir: str, drivers: list[str], names: list[str]) -> list[str | None]\n\n"
             "For each name, the last of drivers whose directory dir/<driver> lists an entry\n"
             "of that name holding ':' (a device's link), else None; a directory that cannot\n"
             "be listed to its end counts as empty. GIL-free. Same results as\n"
             "vfctl.host.vfscan.owners_python().");

static size_t fnv1a(const char *s)
{
    size_t h = (size_t)14695981039346656037ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * (size_t)1099511628211ULL;
    return h;
}

struct owners {
    const char **names;
    Py_ssize_t n, *slot, *next, *tail, *owner, *hits;
    size_t mask;
};

/* the slot of the first name equal to key, or the empty slot where it would go */
static size_t owners_find(const struct owners *o, const char *key)
{
    size_t k = fnv1a(key) & o->mask;
    while (o->slot[k] >= 0 && strcmp(o->names[o->slot[k]], key) != 0)
        k = (k + 1) & o->mask;
    return k;
}

/* one driver's directory: its device entries' names marked with d, only if listed to the end
 * (as os.listdir, which gives all or an error) */
static void owners_list(struct owners *o, int dirfd, const char *drv, Py_ssize_t d)
{
    int fd = openat(dirfd, drv, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return;
    char buf[16384];
    Py_ssize_t nhits = 0;
    long got;
    while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < got;) {
            struct dirent64 *e = (struct dirent64 *)(buf + off);
            off += e->d_reclen;
            if (strchr(e->d_name, ':') == NULL)
                continue;
            size_t k = owners_find(o, e->d_name);
            if (o->slot[k] >= 0 && nhits < o->n) /* names are distinct in one directory */
                o->hits[nhits++] = o->slot[k];
        }
    }
    close(fd);
    if (got < 0)
        return;
    for (Py_ssize_t h = 0; h < nhits; h++)
        for (Py_ssize_t i = o->hits[h]; i >= 0; i = o->next[i])
            o->owner[i] = d;
}

static PyObject *py_owners(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *dir_obj, *drv_obj, *names_obj, *out = NULL, *dir_bytes = NULL;
    if (!PyArg_ParseTuple(args, "OOO:owners", &dir_obj, &drv_obj, &names_obj))
        return NULL;
    PyObject *drv_seq = PySequence_Fast(drv_obj, "expected a sequence of driver names");
    if (drv_seq == NULL)
        return NULL;
    const char **drvs = NULL;
    struct owners o = {0};
    PyObject *keep_d = fs_paths(drv_seq, &drvs), *keep_n = NULL;
    if (keep_d == NULL)
        goto done;
    keep_n = fs_paths(names_obj, &o.names);
    if (keep_n == NULL || !PyUnicode_FSConverter(dir_obj, &dir_bytes))
        goto done;
    Py_ssize_t nd = PyList_GET_SIZE(keep_d);
    o.n = PyList_GET_SIZE(keep_n);
    size_t cap = 16;
    while (cap < 2 * (size_t)o.n)
        cap *= 2;
    o.mask = cap - 1;
    size_t m = (size_t)o.n + 1;
    o.slot = PyMem_RawMalloc(cap * sizeof *o.slot);
    o.next = PyMem_RawMalloc(m * sizeof *o.next);
    o.tail = PyMem_RawMalloc(m * sizeof *o.tail);
    o.owner = PyMem_RawMalloc(m * sizeof *o.owner);
    o.hits = PyMem_RawMalloc(m * sizeof *o.hits);
    if (!o.slot || !o.next || !o.tail || !o.owner || !o.hits) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (size_t k = 0; k < cap; k++)
        o.slot[k] = -1;
    for (Py_ssize_t i = 0; i < o.n; i++) { /* equal names chained from the first (tail: O(1)) */
        o.owner[i] = o.next[i] = -1;
        size_t k = owners_find(&o, o.names[i]);
        if (o.slot[k] < 0) {
            o.slot[k] = o.tail[i] = i;
        } else {
            Py_ssize_t head = o.slot[k];
            o.next[o.tail[head]] = i;
            o.tail[head] = i;
        }
    }
    int dirfd = open(PyBytes_AS_STRING(dir_bytes), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    for (Py_ssize_t d = 0; dirfd >= 0 && d < nd; d++)
        owners_list(&o, dirfd, drvs[d], d);
    if (dirfd >= 0)
        close(dirfd);
    Py_END_ALLOW_THREADS
    out = PyList_New(o.n);
    for (Py_ssize_t i = 0; out != NULL && i < o.n; i++)
        PyList_SET_ITEM(out, i, Py_NewRef(o.owner[i] < 0 ? Py_None
                                          : PySequence_Fast_GET_ITEM(drv_seq, o.owner[i])));
done:
    PyMem_RawFree(o.slot);
    PyMem_RawFree(o.next);
    PyMem_RawFree(o.tail);
    PyMem_RawFree(o.owner);
    PyMem_RawFree(o.hits);
    PyMem_Free(o.names);
    PyMem_Free(drvs);
    Py_XDECREF(keep_n);
    Py_XDECREF(keep_d);
    Py_XDECREF(dir_bytes);
    Py_DECREF(drv_seq);
    return out;
}

/* ---- listing(dir): sorted(os.listdir(dir)) ---- */

PyDoc_STRVAR(listing_doc, "listing(dir: str) -> list[str]\n\n"
                          "sorted(os.listdir(dir)): one getdents64 loop and a sort of the bytes.");

static int by_bytes(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Names decoded as os.listdir decodes them (PyUnicode_DecodeFSDefaultAndSize).  UTF-8's byte
 * order is its code points' order, so a C sort of the bytes is Python's sort of the names,
 * except where a byte >= 0x80 may have been escaped (surrogateescape: U+DC80..U+DCFF sorts
 * below U+E000 and up, its byte above their lead bytes): such a list is sorted again by
 * Python.  16,500 names of bus/pci/devices: a third of os.listdir + sorted()'s instructions. */
static PyObject *py_listing(PyObject *self, PyObject *dir_obj)
{
    (void)self;
    PyObject *dir_bytes = NULL, *out = NULL;
    if (!PyUnicode_FSConverter(dir_obj, &dir_bytes))
        return NULL;
    struct arena a = {0};
    long *at = NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;
    bool high = false, oom = false;
    int err = 0;
    const char *path = PyBytes_AS_STRING(dir_bytes);
    Py_BEGIN_ALLOW_THREADS
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        err = errno;
    } else {
        char buf[32768];
        long got = 0;
        while (!oom && (got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
            for (long off = 0; off < got && !oom;) {
                struct dirent64 *d = (struct dirent64 *)(buf + off);
                off += d->d_reclen;
                const char *name = d->d_name;
                if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
                    continue;
                size_t len = strlen(name);
                for (size_t i = 0; i < len && !high; i++)
                    high = (unsigned char)name[i] >= 0x80;
                if (n == cap) {
                    size_t c = cap ? 2 * cap : 256;
                    long *b = realloc(at, c * sizeof *at);
                    if (b == NULL) {
                        oom = true;
                        break;
                    }
                    at = b;
                    cap = c;
                }
                at[n] = arena_put(&a, name, len);
                oom = a.oom;
                n++;
            }
        }
        if (!oom && got < 0)
            err = errno;
        close(fd);
        if (!err && !oom && n > 0) {
            names = malloc(n * sizeof *names);
            if (names == NULL) {
                oom = true;
            } else {
                for (size_t i = 0; i < n; i++)
                    names[i] = a.buf + at[i];
                qsort(names, n, sizeof *names, by_bytes);
            }
        }
    }
    Py_END_ALLOW_THREADS
    if (err) {
        errno = err;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, dir_obj);
        goto done;
    }
    if (oom) {
        PyErr_NoMemory();
        goto done;
    }
    out = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; out != NULL && i < n; i++) {
        size_t len = strlen(names[i]);
        PyObject *s; /* ASCII decodes to itself in every file system encoding Python allows */
        if (!high && (s = PyUnicode_New((Py_ssize_t)len, 127)) != NULL)
            memcpy(PyUnicode_DATA(s), names[i], len);
        else if (high)
            s = PyUnicode_DecodeFSDefaultAndSize(names[i], (Py_ssize_t)len);
        if (s == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, (Py_ssize_t)i, s);
    }
    if (out != NULL && high && PyList_Sort(out) < 0)
        Py_CLEAR(out);
done:
    free(names);
    free(at);
    free(a.buf);
    Py_DECREF(dir_bytes);
    return out;
}

static PyMethodDef methods[] = {
    {"checks_regular", py_checks_regular, METH_O, checks_doc},
    {"links", py_links, METH_VARARGS, links_doc},
    {"reads", py_reads, METH_VARARGS, reads_doc},
    {"scan", py_scan, METH_VARARGS, scan_doc},
    {"columns", py_columns, METH_VARARGS, columns_doc},
    {"owners", py_owners, METH_VARARGS, owners_doc},
    {"listing", py_listing, METH_O, listing_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_vfscan", "Batch per-VF sysfs reads; see vfctl/host/vfscan.py.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__vfscan(void) { return PyModule_Create(&module); }
