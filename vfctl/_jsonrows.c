/* JSON rows from columns, in one pass: the C twin of vfctl/jsonrows.py.
 *
 * rows(pieces, columns, raw, objects=None) -> str
 *   pieces: a tuple of k + 1 ASCII str; columns: a tuple of k lists, all of one length n, or
 *   attribute names (str): that column is getattr(objects[i], name), read row by row (each
 *   object once while it is in the cache, no list per column), or a tuple of names, a path
 *   (getattr(getattr(objects[i], a), b)); objects: a list or tuple of n.
 *   Row i is pieces[0] + enc(columns[0][i]) + pieces[1] + ... + enc(columns[k-1][i]) +
 *   pieces[k]; the result is the n rows joined by ", ".
 *   enc: when bit j of raw is set, column j holds ASCII str fragments copied as they are;
 *   otherwise each value is a JSON scalar spelled as json.dumps spells it (ensure_ascii):
 *   None -> null, True/False -> true/false, an exact int -> its repr, an exact str -> a
 *   quoted string (strings that need escaping are passed to json.encoder's own
 *   encode_basestring_ascii, so the escapes are json's, byte for byte).
 *   Anything else (a float, a subclass, non-ASCII raw text) raises TypeError and mismatched
 *   lengths ValueError, as the twin does: the caller then encodes those rows with json.dumps.
 *
 * Why: `vfctl list --all --json` on 16,384 VFs spent ~65 ms formatting rows in Python
 * (benchmarks/README.md, fourth round); here it is a few ms.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_grow(struct buf *b, size_t n)
{
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (b->len + n > cap) {
        if (cap > ((size_t)PY_SSIZE_T_MAX) / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *p = PyMem_Realloc(b->p, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(struct buf *b, const char *s, size_t n)
{
    if (n == 0) /* an empty piece: nothing to copy (and memcpy wants a buffer) */
        return 0;
    if (buf_grow(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

/* the bytes of an ASCII str (the caller checked PyUnicode_IS_ASCII) */
static int put_ascii(struct buf *b, PyObject *s)
{
    return buf_put(b, (const char *)PyUnicode_DATA(s), (size_t)PyUnicode_GET_LENGTH(s));
}

static PyObject *escaper; /* json.encoder.encode_basestring_ascii, fetched on first need */

static int put_string(struct buf *b, PyObject *s)
{
    if (PyUnicode_IS_ASCII(s)) {
        const unsigned char *d = PyUnicode_DATA(s);
        Py_ssize_t n = PyUnicode_GET_LENGTH(s), i;
        for (i = 0; i < n; i++) {
            unsigned char c = d[i];
            if (c < 0x20 || c == '"' || c == '\\' || c == 0x7f)
                break;
        }
        if (i == n) { /* nothing to escape: the text between quotes */
            if (buf_grow(b, (size_t)n + 2) < 0)
                return -1;
            b->p[b->len++] = '"';
            memcpy(b->p + b->len, d, (size_t)n);
            b->len += (size_t)n;
            b->p[b->len++] = '"';
            return 0;
        }
    }
    if (escaper == NULL) {
        PyObject *mod = PyImport_ImportModule("json.encoder");
        if (mod == NULL)
            return -1;
        escaper = PyObject_GetAttrString(mod, "encode_basestring_ascii");
        Py_DECREF(mod);
        if (escaper == NULL)
            return -1;
    }
    PyObject *q = PyObject_CallOneArg(escaper, s);
    if (q == NULL)
        return -1;
    int rc = -1;
    if (PyUnicode_CheckExact(q) && PyUnicode_IS_ASCII(q))
        rc = put_ascii(b, q);
    else
        PyErr_SetString(PyExc_TypeError, "rows: json's escaper returned non-ASCII text");
    Py_DECREF(q);
    return rc;
}

static int put_int(struct buf *b, PyObject *v)
{
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (overflow) { /* beyond 64 bits: int's own repr, as json.dumps */
        PyObject *r = PyObject_Repr(v);
        if (r == NULL)
            return -1;
        int rc = put_ascii(b, r);
        Py_DECREF(r);
        return rc;
    }
    /* decimal digits from the right (what %lld prints, without snprintf's ~60 ns a call:
     * two ints a row, 16,384 rows) */
    char tmp[32];
    char *end = tmp + sizeof tmp, *p = end;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        *--p = '-';
    return buf_put(b, p, (size_t)(end - p));
}

static int put_value(struct buf *b, PyObject *v, bool raw, Py_ssize_t col, Py_ssize_t row)
{
    if (raw) {
        if (PyUnicode_CheckExact(v) && PyUnicode_IS_ASCII(v))
            return put_ascii(b, v);
    } else if (v == Py_None) {
        return buf_put(b, "null", 4);
    } else if (v == Py_True) {
        return buf_put(b, "true", 4);
    } else if (v == Py_False) {
        return buf_put(b, "false", 5);
    } else if (PyLong_CheckExact(v)) {
        return put_int(b, v);
    } else if (PyUnicode_CheckExact(v)) {
        return put_string(b, v);
    }
    PyErr_Format(PyExc_TypeError, "rows: column %zd row %zd: %s %.100s not encodable", col, row,
                 raw ? "raw" : "value", Py_TYPE(v)->tp_name);
    return -1;
}

/* getattr(obj, name), or along a tuple of names (a new reference) */
static PyObject *get_path(PyObject *obj, PyObject *path)
{
    if (PyUnicode_CheckExact(path))
        return PyObject_GetAttr(obj, path);
    Py_INCREF(obj);
    for (Py_ssize_t q = 0; q < PyTuple_GET_SIZE(path); q++) {
        PyObject *next = PyObject_GetAttr(obj, PyTuple_GET_ITEM(path, q));
        Py_DECREF(obj);
        if (next == NULL)
            return NULL;
        obj = next;
    }
    return obj;
}

static PyObject *py_rows(PyObject *self, PyObject *args)
{
    PyObject *pieces, *columns, *rawobj, *objarg = Py_None, *objects = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!O!|O:rows", &PyTuple_Type, &pieces, &PyTuple_Type,
                          &columns, &PyLong_Type, &rawobj, &objarg))
        return NULL;
    unsigned long long raw = PyLong_AsUnsignedLongLong(rawobj); /* negative: OverflowError */
    if (raw == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t k = PyTuple_GET_SIZE(columns), n = -1;
    if (PyTuple_GET_SIZE(pieces) != k + 1) {
        PyErr_SetString(PyExc_ValueError, "rows: need one piece more than columns");
        return NULL;
    }
    if (k > 64) {
        PyErr_SetString(PyExc_ValueError, "rows: at most 64 columns");
        return NULL;
    }
    for (Py_ssize_t j = 0; j <= k; j++) {
        PyObject *p = PyTuple_GET_ITEM(pieces, j);
        if (!PyUnicode_CheckExact(p) || !PyUnicode_IS_ASCII(p)) {
            PyErr_Format(PyExc_TypeError, "rows: piece %zd is not ASCII str", j);
            return NULL;
        }
    }
    if (objarg != Py_None) {
        if (!PyList_CheckExact(objarg) && !PyTuple_CheckExact(objarg)) {
            PyErr_SetString(PyExc_TypeError, "rows: objects is a list or a tuple");
            return NULL;
        }
        objects = objarg;
        n = PySequence_Fast_GET_SIZE(objects);
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        PyObject *c = PyTuple_GET_ITEM(columns, j);
        if (PyTuple_CheckExact(c)) { /* an attribute path: names only, at least one */
            Py_ssize_t m = PyTuple_GET_SIZE(c);
            for (Py_ssize_t q = 0; q < m; q++)
                if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(c, q)))
                    m = -1;
            if (m <= 0) {
                PyErr_Format(PyExc_TypeError, "rows: column %zd is not a path of names", j);
                return NULL;
            }
        }
        if (PyUnicode_CheckExact(c) || PyTuple_CheckExact(c)) {
            if (objects == NULL) {
                PyErr_Format(PyExc_TypeError, "rows: column %zd names an attribute: no objects", j);
                return NULL;
            }
            continue;
        }
        if (!PyList_CheckExact(c)) {
            PyErr_Format(PyExc_TypeError, "rows: column %zd is not a list", j);
            return NULL;
        }
        if (n < 0)
            n = PyList_GET_SIZE(c);
        else if (PyList_GET_SIZE(c) != n) {
            PyErr_SetString(PyExc_ValueError, "rows: columns differ in length");
            return NULL;
        }
    }
    if (n < 0)
        n = 0;
    Py_XINCREF(objects); /* getattr runs Python code: keep what we read alive */
    Py_INCREF(columns);
    struct buf b = {NULL, 0, 0};
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0 && buf_put(&b, ", ", 2) < 0)
            goto fail;
        if (put_ascii(&b, PyTuple_GET_ITEM(pieces, 0)) < 0)
            goto fail;
        for (Py_ssize_t j = 0; j < k; j++) {
            PyObject *c = PyTuple_GET_ITEM(columns, j), *v;
            int rc;
            if (PyUnicode_CheckExact(c) || PyTuple_CheckExact(c)) {
                if (PySequence_Fast_GET_SIZE(objects) != n) {
                    PyErr_SetString(PyExc_ValueError, "rows: the objects changed length");
                    goto fail;
                }
                v = get_path(PySequence_Fast_GET_ITEM(objects, i), c);
                if (v == NULL)
                    goto fail;
                rc = put_value(&b, v, (raw >> j) & 1, j, i);
                Py_DECREF(v);
            } else {
                if (PyList_GET_SIZE(c) != n) { /* getattr may run code that resizes a list */
                    PyErr_SetString(PyExc_ValueError, "rows: a column changed length");
                    goto fail;
                }
                v = PyList_GET_ITEM(c, i);
                Py_INCREF(v);
                rc = put_value(&b, v, (raw >> j) & 1, j, i);
                Py_DECREF(v);
            }
            if (rc < 0 || put_ascii(&b, PyTuple_GET_ITEM(pieces, j + 1)) < 0)
                goto fail;
        }
    }
    PyObject *out = PyUnicode_New((Py_ssize_t)b.len, 127);
    if (out != NULL && b.len)
        memcpy(PyUnicode_DATA(out), b.p, b.len);
    PyMem_Free(b.p);
    Py_XDECREF(objects);
    Py_DECREF(columns);
    return out;
fail:
    PyMem_Free(b.p);
    Py_XDECREF(objects);
    Py_DECREF(columns);
    return NULL;
}

PyDoc_STRVAR(rows_doc, "rows(pieces, columns, raw, objects=None) -> str: JSON rows from columns, joined by "
                       "', ' (see vfctl/jsonrows.py).");

/* objects(cls, keys, columns) -> list: row i is object.__new__(cls) with the __dict__
 * {keys[j]: columns[j][i]} (a column that is not a list: the same value in every row), set
 * as object.__setattr__(o, "__dict__", d) sets it (frozen classes too).  One presized dict
 * per row and no Python frame per row: discovery makes 16,384 VFs so (see vfctl/jsonrows.py). */
static PyObject *py_objects(PyObject *self, PyObject *args)
{
    PyObject *cls, *keys, *columns;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!O!:objects", &PyType_Type, &cls, &PyTuple_Type, &keys,
                          &PyTuple_Type, &columns))
        return NULL;
    if (((PyTypeObject *)cls)->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError, "objects: cls has a __new__ of its own");
        return NULL;
    }
    Py_ssize_t k = PyTuple_GET_SIZE(keys), n = -1;
    if (PyTuple_GET_SIZE(columns) != k) {
        PyErr_SetString(PyExc_ValueError, "objects: one column per key");
        return NULL;
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        PyObject *c = PyTuple_GET_ITEM(columns, j);
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(keys, j))) {
            PyErr_Format(PyExc_TypeError, "objects: key %zd is not a str", j);
            return NULL;
        }
        if (!PyList_CheckExact(c))
            continue;
        if (n < 0)
            n = PyList_GET_SIZE(c);
        else if (PyList_GET_SIZE(c) != n) {
            PyErr_SetString(PyExc_ValueError, "objects: columns differ in length");
            return NULL;
        }
    }
    if (n < 0)
        n = 0;
    PyObject *dict_name = PyUnicode_InternFromString("__dict__");
    PyObject *empty = PyTuple_New(0);
    /* every row's dict a copy of one with the keys in order (the compact str-keyed table a
     * literal makes, sized once): a copy and k replaced values, no table grown per row */
    PyObject *shape = PyDict_New();
    for (Py_ssize_t j = 0; shape != NULL && j < k; j++)
        if (PyDict_SetItem(shape, PyTuple_GET_ITEM(keys, j), Py_None) < 0)
            Py_CLEAR(shape);
    PyObject *out = dict_name && empty && shape ? PyList_New(n) : NULL;
    if (out == NULL)
        goto done;
    Py_INCREF(columns); /* object.__new__ may run no Python code, but keep them alive anyway */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyDict_Copy(shape);
        if (d == NULL)
            goto fail;
        for (Py_ssize_t j = 0; j < k; j++) {
            PyObject *c = PyTuple_GET_ITEM(columns, j);
            PyObject *v = PyList_CheckExact(c) ? PyList_GET_ITEM(c, i) : c;
            if (PyDict_SetItem(d, PyTuple_GET_ITEM(keys, j), v) < 0) {
                Py_DECREF(d);
                goto fail;
            }
        }
        PyObject *o = PyBaseObject_Type.tp_new((PyTypeObject *)cls, empty, NULL);
        if (o == NULL || PyObject_GenericSetAttr(o, dict_name, d) < 0) {
            Py_XDECREF(o);
            Py_DECREF(d);
            goto fail;
        }
        Py_DECREF(d);
        PyList_SET_ITEM(out, i, o);
    }
    Py_DECREF(columns);
    goto done;
fail:
    Py_DECREF(columns);
    Py_CLEAR(out);
done:
    Py_XDECREF(dict_name);
    Py_XDECREF(empty);
    Py_XDECREF(shape);
    return out;
}

PyDoc_STRVAR(objects_doc, "objects(cls, keys, columns) -> list: one object per row, its __dict__ the "
                          "row's values by key (see vfctl/jsonrows.py).");

static PyMethodDef methods[] = {
    {"rows", py_rows, METH_VARARGS, rows_doc},
    {"objects", py_objects, METH_VARARGS, objects_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jsonrows", "JSON rows from columns; see vfctl/jsonrows.py.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__jsonrows(void) { return PyModule_Create(&module); }
