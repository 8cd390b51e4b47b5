/* One pass over the heap for leakkit.heap.heap_summary: the object set of pympler's
 * muppy.get_objects() (tracked non-frame objects, plus their direct untracked referents, each
 * once), counted and sized per type.  The Python fallback in heap.py computes the same result
 * with bulk builtins; tests check both against pympler.
 *
 * On 3.10 the values of an untracked instance __dict__ count as direct referents of the instance
 * (3.11+ store them inline and visit them so), where pympler, one level deep, misses them.
 *
 * scan(objects, per_object_types) -> (types, counts, sizes, named_objects, named_sizes)
 *   objects: the list gc.get_objects() returned (held by the caller for the whole call).
 *   per_object_types: a tuple of types whose objects pympler names one by one (functions,
 *   modules, frames): those objects are returned with their sizes instead of being counted.
 * Sizes are what sys.getsizeof gives for types whose __sizeof__ is written in C (the method
 * is called directly, looked up once per type, plus the pre-header sys.getsizeof adds, which
 * differs per CPython version: see preheader()), and the shallow size (object.__sizeof__ plus
 * the pre-header) for types whose __sizeof__ is Python code, which is never run.  No Python code
 * runs during the scan, so no object can die under it.  Public C API only, 3.10 to 3.13.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

typedef struct {
    void **keys;
    Py_ssize_t *values;
    Py_ssize_t size;  /* power of two */
    Py_ssize_t used;
} PtrMap;

static int map_init(PtrMap *m, Py_ssize_t hint) {
    Py_ssize_t size = 1024;
    while (size < hint * 2) size <<= 1;
    m->keys = PyMem_RawCalloc(size, sizeof(void *));
    m->values = PyMem_RawMalloc(size * sizeof(Py_ssize_t));
    m->size = size;
    m->used = 0;
    return (m->keys && m->values) ? 0 : -1;
}

static void map_free(PtrMap *m) {
    PyMem_RawFree(m->keys);
    PyMem_RawFree(m->values);
    m->keys = NULL;
    m->values = NULL;
}

static inline size_t hash_ptr(void *p) {
    size_t x = (size_t)p;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return x;
}

static int map_grow(PtrMap *m);

/* Index of p's slot; *found says whether it was there. Inserts when absent. */
static Py_ssize_t map_slot(PtrMap *m, void *p, int *found) {
    if ((m->used + 1) * 2 > m->size && map_grow(m) < 0) return -1;
    size_t mask = (size_t)m->size - 1;
    size_t i = hash_ptr(p) & mask;
    while (m->keys[i] != NULL) {
        if (m->keys[i] == p) { *found = 1; return (Py_ssize_t)i; }
        i = (i + 1) & mask;
    }
    m->keys[i] = p;
    m->used++;
    *found = 0;
    return (Py_ssize_t)i;
}

static int map_grow(PtrMap *m) {
    PtrMap bigger;
    if (map_init(&bigger, m->size) < 0) return -1;
    for (Py_ssize_t i = 0; i < m->size; i++) {
        if (m->keys[i] != NULL) {
            int found;
            size_t mask = (size_t)bigger.size - 1;
            size_t j = hash_ptr(m->keys[i]) & mask;
            while (bigger.keys[j] != NULL) j = (j + 1) & mask;
            bigger.keys[j] = m->keys[i];
            bigger.values[j] = m->values[i];
            bigger.used++;
            (void)found;
        }
    }
    map_free(m);
    *m = bigger;
    return 0;
}

typedef struct {
    PtrMap seen;        /* untracked referents already counted */
    PtrMap types;       /* type -> row */
    PyObject *kinds;    /* list of types, one per row */
    Py_ssize_t *counts;
    Py_ssize_t *sizes;
    char *modes;        /* per row: how to size its objects (MODE_*) */
    PyCFunction *meths; /* per row: the C __sizeof__ for MODE_CALL */
    Py_ssize_t rows, cap;
    PyObject *per_object;      /* tuple of types named per object */
    PyObject *named, *named_sizes;
    int error;
} Scan;

static PyObject *sizeof_name;
static PyObject *object_sizeof;    /* object.__sizeof__, the descriptor */
static PyCFunction object_sizeof_c; /* its C function */
static PyObject *sys_getsizeof;    /* the original sys.getsizeof, for the rare other C methods */

enum { MODE_INLINE = 0, MODE_CALL = 1, MODE_GETSIZEOF = 2, MODE_NAMED = 3 };

/* How sys.getsizeof would size instances of tp, without looking the method up per object:
 * object's own __sizeof__ (and Python-level ones, never run: their objects get object's) is
 * called directly (MODE_INLINE), so is a C method taking no arguments (MODE_CALL); anything else
 * goes through sys.getsizeof itself. Only public C API (3.13 made _PySys_GetSizeOf internal). */
static char sizing_mode(PyTypeObject *tp, PyCFunction *meth) {
    PyObject *method = _PyType_Lookup(tp, sizeof_name);
    if (method == NULL || method == object_sizeof || !Py_IS_TYPE(method, &PyMethodDescr_Type))
        return MODE_INLINE;
    PyMethodDef *def = ((PyMethodDescrObject *)method)->d_method;
    if ((def->ml_flags & (METH_VARARGS | METH_KEYWORDS | METH_NOARGS | METH_O | METH_FASTCALL)) == METH_NOARGS) {
        *meth = def->ml_meth;
        return MODE_CALL;
    }
    return MODE_GETSIZEOF;
}

#define PTR ((Py_ssize_t)sizeof(void *))

/* What sys.getsizeof adds to __sizeof__() for o (CPython's _PySys_GetSizeOf, per version):
 * 3.10: the GC header if o is a GC object (a static type is not);
 * 3.11: the GC header if its type is a GC type, two pointers before a managed dict;
 * 3.12: two pointers before a managed dict or a managed weakref list (Py_TPFLAGS_PREHEADER);
 * 3.13: as 3.12, but nothing for a static type. */
static Py_ssize_t preheader(PyObject *o, PyTypeObject *tp) {
#if PY_VERSION_HEX < 0x030B0000
    (void)tp;
    return PyObject_IS_GC(o) ? 2 * PTR : 0;
#else
    Py_ssize_t size = PyType_IS_GC(tp) ? 2 * PTR : 0;
#if defined(Py_TPFLAGS_MANAGED_WEAKREF)
    if (tp->tp_flags & (Py_TPFLAGS_MANAGED_DICT | Py_TPFLAGS_MANAGED_WEAKREF)) size += 2 * PTR;
#else
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) size += 2 * PTR;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    if (Py_IS_TYPE(o, &PyType_Type) && !(((PyTypeObject *)o)->tp_flags & Py_TPFLAGS_HEAPTYPE)) return 0;
#else
    (void)o;
#endif
    return size;
#endif
}

/* The result of a C __sizeof__ as a size, 0 if it failed (pympler would fail on it too). */
static Py_ssize_t as_size(PyObject *r) {
    if (r == NULL) { PyErr_Clear(); return -1; }
    Py_ssize_t size = PyLong_AsSsize_t(r);
    Py_DECREF(r);
    if (size == -1 && PyErr_Occurred()) { PyErr_Clear(); return -1; }
    return size;
}

static int count(Scan *s, PyObject *o) {
    PyTypeObject *tp = Py_TYPE(o);
    int found;
    Py_ssize_t slot = map_slot(&s->types, tp, &found);
    if (slot < 0) { PyErr_NoMemory(); return -1; }
    Py_ssize_t row;
    if (found) {
        row = s->types.values[slot];
    } else {
        row = s->rows++;
        s->types.values[slot] = row;
        if (row >= s->cap) {
            Py_ssize_t cap = s->cap ? s->cap * 2 : 4096;
            Py_ssize_t *c = PyMem_RawRealloc(s->counts, cap * sizeof(Py_ssize_t));
            if (!c) { PyErr_NoMemory(); return -1; }
            s->counts = c;
            Py_ssize_t *z = PyMem_RawRealloc(s->sizes, cap * sizeof(Py_ssize_t));
            if (!z) { PyErr_NoMemory(); return -1; }
            s->sizes = z;
            char *m = PyMem_RawRealloc(s->modes, cap);
            if (!m) { PyErr_NoMemory(); return -1; }
            s->modes = m;
            PyCFunction *f = PyMem_RawRealloc(s->meths, cap * sizeof(PyCFunction));
            if (!f) { PyErr_NoMemory(); return -1; }
            s->meths = f;
            s->cap = cap;
        }
        s->counts[row] = 0;
        s->sizes[row] = 0;
        s->meths[row] = NULL;
        s->modes[row] = sizing_mode(tp, &s->meths[row]);
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(s->per_object); i++) {
            if ((PyObject *)tp == PyTuple_GET_ITEM(s->per_object, i)) s->modes[row] |= 4;  /* named */
        }
        if (PyList_Append(s->kinds, (PyObject *)tp) < 0) return -1;
    }
    char mode = s->modes[row];
    Py_ssize_t size;
    switch (mode & 3) {
    case MODE_CALL:
        size = as_size(s->meths[row](o, NULL));
        size = size < 0 ? 0 : size + preheader(o, tp);
        break;
    case MODE_GETSIZEOF:
        size = as_size(PyObject_CallOneArg(sys_getsizeof, o));
        if (size < 0) size = 0;
        break;
    default:
        size = as_size(object_sizeof_c(o, NULL));
        size = size < 0 ? 0 : size + preheader(o, tp);
    }
    if (mode & 4) {
        PyObject *z = PyLong_FromSsize_t(size);
        if (!z || PyList_Append(s->named, o) < 0 || PyList_Append(s->named_sizes, z) < 0) {
            Py_XDECREF(z);
            return -1;
        }
        Py_DECREF(z);
        return 0;
    }
    s->counts[row] += 1;
    s->sizes[row] += size;
    return 0;
}

static int visit(PyObject *o, void *arg) {
    Scan *s = (Scan *)arg;
    if (s->error || PyObject_GC_IsTracked(o)) return 0;
    int found;
    Py_ssize_t slot = map_slot(&s->seen, o, &found);
    if (slot < 0) { PyErr_NoMemory(); s->error = 1; return 0; }
    if (!found && count(s, o) < 0) s->error = 1;
    return 0;
}

static int ignored(PyObject *o) {
    /* pympler's muppy.ignore_object: frames, and dead weak proxies (isinstance raises) */
    if (PyFrame_Check(o)) return 1;
    if (!PyWeakref_CheckProxy(o)) return 0;
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *target;  /* PyWeakref_GET_OBJECT is deprecated since 3.13 */
    int alive = PyWeakref_GetRef(o, &target);
    if (alive < 0) { PyErr_Clear(); return 0; }
    if (alive == 0) return 1;
    Py_DECREF(target);
    return 0;
#else
    return PyWeakref_GET_OBJECT(o) == Py_None;
#endif
}

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *objects, *per_object;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &objects, &PyTuple_Type, &per_object)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(objects);
    Scan s = {0};
    s.per_object = per_object;
    s.kinds = PyList_New(0);
    s.named = PyList_New(0);
    s.named_sizes = PyList_New(0);
    PyObject *result = NULL;
    if (!s.kinds || !s.named || !s.named_sizes) goto done;
    if (map_init(&s.seen, n) < 0 || map_init(&s.types, 4096) < 0) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyList_GET_ITEM(objects, i);
        if (ignored(o)) continue;
        if (count(&s, o) < 0) goto done;
        traverseproc traverse = Py_TYPE(o)->tp_traverse;
        if (traverse != NULL) {
            traverse(o, visit, &s);
            if (s.error) goto done;
        }
#if PY_VERSION_HEX < 0x030B0000
        /* 3.10 keeps instance attributes in a separate dict, untracked while it holds only
         * untracked values (a bytearray buffer): its values are counted as the object's own
         * referents, as 3.11+ visit them (inline values), so both see the same objects. */
        if (Py_TYPE(o)->tp_dictoffset != 0 && !PyType_Check(o)) {
            PyObject **dictptr = _PyObject_GetDictPtr(o);
            if (dictptr != NULL && *dictptr != NULL && PyDict_CheckExact(*dictptr)
                    && !PyObject_GC_IsTracked(*dictptr)) {
                Py_TYPE(*dictptr)->tp_traverse(*dictptr, visit, &s);
                if (s.error) goto done;
            }
        }
#endif
    }
    PyObject *counts = PyList_New(s.rows), *sizes = PyList_New(s.rows);
    if (!counts || !sizes) { Py_XDECREF(counts); Py_XDECREF(sizes); goto done; }
    for (Py_ssize_t r = 0; r < s.rows; r++) {
        Py_ssize_t size = s.sizes[r];
        PyList_SET_ITEM(counts, r, PyLong_FromSsize_t(s.counts[r]));
        PyList_SET_ITEM(sizes, r, PyLong_FromSsize_t(size));
    }
    result = Py_BuildValue("(ONNOO)", s.kinds, counts, sizes, s.named, s.named_sizes);
done:
    map_free(&s.seen);
    map_free(&s.types);
    PyMem_RawFree(s.counts);
    PyMem_RawFree(s.sizes);
    PyMem_RawFree(s.modes);
    PyMem_RawFree(s.meths);
    Py_XDECREF(s.kinds);
    Py_XDECREF(s.named);
    Py_XDECREF(s.named_sizes);
    return result;
}

/* group_traces(traces) -> list of (traceback, total_size, count, large_size)
 * traces: tracemalloc._get_traces() (domain, size, traceback, total_nframe) tuples.  bisect calls
 * it at every checkpoint: grouping in C means the Python side does its work once per distinct
 * traceback, not once per live block, and allocates nothing per block (under tracemalloc, every
 * allocation costs a traceback capture). large_size: bytes of blocks over pymalloc's 512 B limit. */
static PyObject *group_traces(PyObject *self, PyObject *args) {
    PyObject *traces;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &traces)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(traces);
    PyObject *index = PyDict_New();
    PyObject *keys = PyList_New(0);
    Py_ssize_t cap = 1024, rows = 0;
    Py_ssize_t *sizes = PyMem_RawMalloc(cap * sizeof(Py_ssize_t));
    Py_ssize_t *counts = PyMem_RawMalloc(cap * sizeof(Py_ssize_t));
    Py_ssize_t *large = PyMem_RawMalloc(cap * sizeof(Py_ssize_t));
    PyObject *result = NULL;
    if (!index || !keys || !sizes || !counts || !large) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *trace = PyList_GET_ITEM(traces, i);
        if (!PyTuple_Check(trace) || PyTuple_GET_SIZE(trace) < 3) {
            PyErr_SetString(PyExc_TypeError, "expected tracemalloc trace tuples");
            goto done;
        }
        Py_ssize_t size = PyLong_AsSsize_t(PyTuple_GET_ITEM(trace, 1));
        if (size == -1 && PyErr_Occurred()) goto done;
        PyObject *tb = PyTuple_GET_ITEM(trace, 2);
        PyObject *row_obj = PyDict_GetItemWithError(index, tb);
        Py_ssize_t row;
        if (row_obj == NULL) {
            if (PyErr_Occurred()) goto done;
            if (rows >= cap) {
                cap *= 2;
                Py_ssize_t *a = PyMem_RawRealloc(sizes, cap * sizeof(Py_ssize_t));
                if (!a) { PyErr_NoMemory(); goto done; }
                sizes = a;
                a = PyMem_RawRealloc(counts, cap * sizeof(Py_ssize_t));
                if (!a) { PyErr_NoMemory(); goto done; }
                counts = a;
                a = PyMem_RawRealloc(large, cap * sizeof(Py_ssize_t));
                if (!a) { PyErr_NoMemory(); goto done; }
                large = a;
            }
            row = rows++;
            PyObject *r = PyLong_FromSsize_t(row);
            if (!r || PyDict_SetItem(index, tb, r) < 0 || PyList_Append(keys, tb) < 0) { Py_XDECREF(r); goto done; }
            Py_DECREF(r);
            sizes[row] = counts[row] = large[row] = 0;
        } else {
            row = PyLong_AsSsize_t(row_obj);
        }
        sizes[row] += size;
        counts[row] += 1;
        if (size > 512) large[row] += size;
    }
    result = PyList_New(rows);
    if (!result) goto done;
    for (Py_ssize_t r = 0; r < rows; r++) {
        PyObject *item = Py_BuildValue("(Onnn)", PyList_GET_ITEM(keys, r), sizes[r], counts[r], large[r]);
        if (!item) { Py_CLEAR(result); goto done; }
        PyList_SET_ITEM(result, r, item);
    }
done:
    Py_XDECREF(index);
    Py_XDECREF(keys);
    PyMem_RawFree(sizes);
    PyMem_RawFree(counts);
    PyMem_RawFree(large);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "scan(objects, per_object_types) -> (types, counts, sizes, named, named_sizes)"},
    {"group_traces", group_traces, METH_VARARGS, "group_traces(traces) -> [(traceback, size, count, large_size)]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_heapscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__heapscan(void) {
    sizeof_name = PyUnicode_InternFromString("__sizeof__");
    if (!sizeof_name) return NULL;
    object_sizeof = _PyType_Lookup(&PyBaseObject_Type, sizeof_name);  /* borrowed, immortal enough */
    if (!object_sizeof || !Py_IS_TYPE(object_sizeof, &PyMethodDescr_Type)) {
        PyErr_SetString(PyExc_ImportError, "object.__sizeof__ is not a C method here");
        return NULL;
    }
    object_sizeof_c = ((PyMethodDescrObject *)object_sizeof)->d_method->ml_meth;
    PyObject *sys = PyImport_ImportModule("sys");
    if (!sys) return NULL;
    sys_getsizeof = PyObject_GetAttrString(sys, "getsizeof");  /* kept for the process's life */
    Py_DECREF(sys);
    if (!sys_getsizeof) return NULL;
    return PyModule_Create(&module);
}
