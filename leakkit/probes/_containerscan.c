/* Which containers grew: bisect's growth-led retention search (leakkit/containers.py).
 *
 * sizes(objects, deque_type) -> bytes
 *   The length of every container among `objects` (the list gc.get_objects() returned) and among
 *   their direct referents the GC does not track (a dict of strings, a bytearray): lists, dicts,
 *   sets, deques and bytearrays, subclasses included.  The result is an array of
 *   (address, length) pairs sorted by address, packed in a bytes object (16 bytes a container).
 *   No reference is kept: the table only says how long each container was.
 *
 * grown(objects, table, deque_type) -> [(container, parent, old_length), ...]
 *   The containers among the same kind of set whose length is now larger than in `table`;
 *   `parent` is the tracked object that refers to an untracked container (None for a tracked one).
 *   A container whose address is not in the table is new (or reuses a freed one's address): not
 *   reported, the caller finds new containers through the objects the run created.
 *
 * Module objects are never traversed: their referents are their dict (tracked, in the list) and
 * the module state of C modules, which on CPython 3.12.0-3.12.5 can hold freed objects
 * (gh-122695).  Nothing here increments the reference count of a referent before checking it
 * is a container of a known type, and no Python code runs during the scan.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    uintptr_t addr;
    Py_ssize_t len;
} Entry;

typedef struct {
    Entry *items;
    Py_ssize_t used;
    Py_ssize_t cap;
} Table;

static PyTypeObject *deque_type = NULL;

static Py_ssize_t container_len(PyObject *o) {
    if (PyList_Check(o)) return PyList_GET_SIZE(o);
    if (PyDict_Check(o)) return PyDict_Size(o);
    if (PySet_Check(o)) return PySet_GET_SIZE(o);
    if (PyByteArray_Check(o)) return PyByteArray_GET_SIZE(o);
    if (deque_type != NULL && PyObject_TypeCheck(o, deque_type)) return Py_SIZE(o);
    return -1;
}

static int table_add(Table *t, PyObject *o, Py_ssize_t len) {
    if (t->used >= t->cap) {
        Py_ssize_t cap = t->cap ? t->cap * 2 : 4096;
        Entry *items = PyMem_RawRealloc(t->items, (size_t)cap * sizeof(Entry));
        if (items == NULL) return -1;
        t->items = items;
        t->cap = cap;
    }
    t->items[t->used].addr = (uintptr_t)o;
    t->items[t->used].len = len;
    t->used++;
    return 0;
}

typedef struct {
    Table *table;
    int failed;
} SizeVisit;

static int visit_size(PyObject *ref, void *arg) {
    SizeVisit *state = (SizeVisit *)arg;
    if (ref == NULL || state->failed) return 0;
    if (PyObject_IS_GC(ref) && PyObject_GC_IsTracked(ref)) return 0;  /* in the list itself */
    Py_ssize_t len = container_len(ref);
    if (len >= 0 && table_add(state->table, ref, len) < 0) state->failed = 1;
    return 0;
}

static int compare_addresses(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

static int compare_entries(const void *a, const void *b) {
    uintptr_t x = ((const Entry *)a)->addr, y = ((const Entry *)b)->addr;
    return (x > y) - (x < y);
}

static int parse_deque(PyObject *deque) {
    if (deque == Py_None) { deque_type = NULL; return 0; }
    if (!PyType_Check(deque)) {
        PyErr_SetString(PyExc_TypeError, "deque_type: expected a type or None");
        return -1;
    }
    deque_type = (PyTypeObject *)deque;
    return 0;
}

static PyObject *sizes(PyObject *self, PyObject *args) {
    PyObject *objects, *deque;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &objects, &deque)) return NULL;
    if (parse_deque(deque) < 0) return NULL;
    Table table = {NULL, 0, 0};
    SizeVisit state = {&table, 0};
    Py_ssize_t n = PyList_GET_SIZE(objects);
    for (Py_ssize_t i = 0; i < n && !state.failed; i++) {
        PyObject *o = PyList_GET_ITEM(objects, i);
        Py_ssize_t len = container_len(o);
        if (len >= 0 && table_add(&table, o, len) < 0) { state.failed = 1; break; }
        if (PyModule_Check(o)) continue;
        traverseproc traverse = Py_TYPE(o)->tp_traverse;
        if (traverse != NULL) traverse(o, visit_size, &state);
    }
    if (state.failed) {
        PyMem_RawFree(table.items);
        return PyErr_NoMemory();
    }
    if (table.used) qsort(table.items, (size_t)table.used, sizeof(Entry), compare_entries);
    /* one entry per address (an untracked dict met from several parents) */
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < table.used; i++) {
        if (kept == 0 || table.items[kept - 1].addr != table.items[i].addr) table.items[kept++] = table.items[i];
    }
    PyObject *result = PyBytes_FromStringAndSize((const char *)table.items, kept * (Py_ssize_t)sizeof(Entry));
    PyMem_RawFree(table.items);
    return result;
}

typedef struct {
    const Entry *items;
    Py_ssize_t n;
    PyObject *out;
    PyObject *parent;
    int failed;
} GrowVisit;

static Py_ssize_t lookup(const Entry *items, Py_ssize_t n, uintptr_t addr) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (items[mid].addr < addr) lo = mid + 1; else hi = mid;
    }
    return (lo < n && items[lo].addr == addr) ? items[lo].len : -1;
}

static int report(GrowVisit *state, PyObject *container, PyObject *parent) {
    Py_ssize_t len = container_len(container);
    if (len < 0) return 0;
    Py_ssize_t old = lookup(state->items, state->n, (uintptr_t)container);
    if (old < 0 || len <= old) return 0;
    PyObject *row = Py_BuildValue("(OOn)", container, parent ? parent : Py_None, old);
    if (row == NULL || PyList_Append(state->out, row) < 0) { Py_XDECREF(row); return -1; }
    Py_DECREF(row);
    return 0;
}

static int visit_grown(PyObject *ref, void *arg) {
    GrowVisit *state = (GrowVisit *)arg;
    if (ref == NULL || state->failed) return 0;
    if (PyObject_IS_GC(ref) && PyObject_GC_IsTracked(ref)) return 0;
    if (report(state, ref, state->parent) < 0) state->failed = 1;
    return 0;
}

static PyObject *grown(PyObject *self, PyObject *args) {
    PyObject *objects, *table, *deque;
    if (!PyArg_ParseTuple(args, "O!SO", &PyList_Type, &objects, &table, &deque)) return NULL;
    if (parse_deque(deque) < 0) return NULL;
    if (PyBytes_GET_SIZE(table) % (Py_ssize_t)sizeof(Entry) != 0) {
        PyErr_SetString(PyExc_ValueError, "table: expected the bytes sizes() returned");
        return NULL;
    }
    GrowVisit state = {(const Entry *)PyBytes_AS_STRING(table), PyBytes_GET_SIZE(table) / (Py_ssize_t)sizeof(Entry),
                       PyList_New(0), NULL, 0};
    if (state.out == NULL) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(objects);
    for (Py_ssize_t i = 0; i < n && !state.failed; i++) {
        PyObject *o = PyList_GET_ITEM(objects, i);
        if (report(&state, o, NULL) < 0) { state.failed = 1; break; }
        if (PyModule_Check(o)) continue;
        traverseproc traverse = Py_TYPE(o)->tp_traverse;
        if (traverse == NULL) continue;
        state.parent = o;
        traverse(o, visit_grown, &state);
        state.parent = NULL;
    }
    if (state.failed) {
        Py_DECREF(state.out);
        return NULL;
    }
    return state.out;
}

/* addresses(objects) -> bytes: the sorted addresses of `objects`, for has(table, obj).  One
 * allocation whatever the count: under tracemalloc every Python int id() makes costs a traceback. */
static PyObject *addresses(PyObject *self, PyObject *objects) {
    if (!PyList_Check(objects)) {
        PyErr_SetString(PyExc_TypeError, "objects: expected a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(objects);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(uintptr_t));
    if (out == NULL) return NULL;
    uintptr_t *items = (uintptr_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) items[i] = (uintptr_t)PyList_GET_ITEM(objects, i);
    qsort(items, (size_t)n, sizeof(uintptr_t), compare_addresses);
    return out;
}

/* exactly(objects, type) -> list: the objects among `objects` whose type is `type` itself (not a
 * subclass): a pointer compare each, where a Python loop over a million objects costs 50 ms. */
static PyObject *exactly(PyObject *self, PyObject *args) {
    PyObject *objects, *kind;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &objects, &PyType_Type, &kind)) return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(objects);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyList_GET_ITEM(objects, i);
        if ((PyObject *)Py_TYPE(o) == kind && PyList_Append(out, o) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *has(PyObject *self, PyObject *args) {
    PyObject *table, *obj;
    if (!PyArg_ParseTuple(args, "SO", &table, &obj)) return NULL;
    const uintptr_t *items = (const uintptr_t *)PyBytes_AS_STRING(table);
    Py_ssize_t lo = 0, hi = PyBytes_GET_SIZE(table) / (Py_ssize_t)sizeof(uintptr_t);
    uintptr_t addr = (uintptr_t)obj;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (items[mid] < addr) lo = mid + 1; else hi = mid;
    }
    return PyBool_FromLong(lo < PyBytes_GET_SIZE(table) / (Py_ssize_t)sizeof(uintptr_t) && items[lo] == addr);
}

/* A growing set of addresses, for walks that must look at each object once: a Python set of
 * id()s makes an int per object, and under tracemalloc each costs a traceback of the whole stack.
 * seen_new() -> capsule; seen_add(capsule, obj) -> True if obj's address was not in it yet. */
typedef struct {
    size_t mask;  /* slots - 1, slots a power of two */
    size_t used;
    uintptr_t *slots;  /* 0: empty (no object lives at address 0) */
} Seen;

static void seen_free(PyObject *capsule) {
    Seen *seen = (Seen *)PyCapsule_GetPointer(capsule, "leakkit.seen");
    if (seen != NULL) {
        PyMem_RawFree(seen->slots);
        PyMem_RawFree(seen);
    }
}

static PyObject *seen_new(PyObject *self, PyObject *unused) {
    Seen *seen = (Seen *)PyMem_RawCalloc(1, sizeof(Seen));
    if (seen == NULL) return PyErr_NoMemory();
    seen->mask = 1023;
    seen->slots = (uintptr_t *)PyMem_RawCalloc(seen->mask + 1, sizeof(uintptr_t));
    if (seen->slots == NULL) {
        PyMem_RawFree(seen);
        return PyErr_NoMemory();
    }
    PyObject *capsule = PyCapsule_New(seen, "leakkit.seen", seen_free);
    if (capsule == NULL) {
        PyMem_RawFree(seen->slots);
        PyMem_RawFree(seen);
    }
    return capsule;
}

static size_t seen_slot(const Seen *seen, uintptr_t addr) {
    size_t i = (size_t)((addr >> 4) * 11400714819323198485ull) & seen->mask;
    while (seen->slots[i] != 0 && seen->slots[i] != addr) i = (i + 1) & seen->mask;
    return i;
}

static int seen_grow(Seen *seen) {
    Seen bigger = {seen->mask * 2 + 1, seen->used, NULL};
    bigger.slots = (uintptr_t *)PyMem_RawCalloc(bigger.mask + 1, sizeof(uintptr_t));
    if (bigger.slots == NULL) return -1;
    for (size_t i = 0; i <= seen->mask; i++) {
        if (seen->slots[i] != 0) bigger.slots[seen_slot(&bigger, seen->slots[i])] = seen->slots[i];
    }
    PyMem_RawFree(seen->slots);
    *seen = bigger;
    return 0;
}

static PyObject *seen_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "seen_add(seen, obj): expected 2 arguments");
        return NULL;
    }
    Seen *seen = (Seen *)PyCapsule_GetPointer(args[0], "leakkit.seen");
    if (seen == NULL) return NULL;
    uintptr_t addr = (uintptr_t)args[1];
    size_t i = seen_slot(seen, addr);
    if (seen->slots[i] == addr) Py_RETURN_FALSE;
    seen->slots[i] = addr;
    seen->used++;
    if (seen->used * 2 > seen->mask && seen_grow(seen) < 0) return PyErr_NoMemory();
    Py_RETURN_TRUE;
}

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
PyAPI_FUNC(PyObject *) _PyTraceMalloc_GetTraceback(unsigned int domain, uintptr_t ptr);

/* managed_traceback(obj) -> frames or None: where 3.11 allocated an object with a managed dict,
 * whose memory block starts two pointers before its GC header (tracemalloc's own lookup misses
 * it). Only for objects of such types: the caller checks the flag. */
static PyObject *managed_traceback(PyObject *self, PyObject *obj) {
    uintptr_t start = (uintptr_t)obj - 4 * sizeof(void *);  /* PyGC_Head (two words), then the dict pointers */
    return _PyTraceMalloc_GetTraceback(0, start);
}
#endif


#if PY_VERSION_HEX < 0x030B0000
#include <frameobject.h>
#endif
#if PY_VERSION_HEX < 0x030C0000
/* ---- Calls counted by code object (3.10, 3.11; 3.12+ uses sys.monitoring) -------------------
 *
 * count_start(codes, on_call, on_return) installs a C profile function on every thread (and,
 * through threading.setprofile(count_thread), on threads started later) that looks each Python
 * call's code object up in an address table and, for the codes given, calls
 * on_call(index, first) when a frame of it starts or resumes (first: a new call, not a generator
 * resumed) and on_return(index, failed) when it returns, yields or unwinds. Every other call costs
 * one table probe. Registered callables, decorated functions and functions stored anywhere run
 * the same code object, so they are counted wherever they are called from.
 * count_stop() removes it where it is ours. A thread that already had a profile function is left
 * alone (count_start says how many). Python code run by the callbacks is not profiled.
 */
static struct {
    uintptr_t *slots;      /* code addresses, open addressing; 0: empty */
    Py_ssize_t *index;     /* index of each slot's code */
    size_t mask;
    PyObject *codes;       /* the tuple of codes: kept alive while counted */
    PyObject *indexes;     /* tuple of ints: the argument passed for each index */
    PyObject *on_call, *on_return;
    int active;
} counting;

static Py_ssize_t count_lookup(PyObject *code) {
    uintptr_t addr = (uintptr_t)code;
    size_t i = (size_t)((addr >> 4) * 11400714819323198485ull) & counting.mask;
    while (counting.slots[i] != 0) {
        if (counting.slots[i] == addr) return counting.index[i];
        i = (i + 1) & counting.mask;
    }
    return -1;
}

static int count_profile(PyObject *unused, PyFrameObject *frame, int what, PyObject *arg) {
    if ((what != PyTrace_CALL && what != PyTrace_RETURN) || !counting.active) return 0;
    PyCodeObject *code = PyFrame_GetCode(frame);
    Py_ssize_t i = count_lookup((PyObject *)code);
    Py_DECREF(code);
    if (i < 0) return 0;
    PyObject *result;
    if (what == PyTrace_CALL) {
#if PY_VERSION_HEX >= 0x030B0000
        int first = PyFrame_GetLasti(frame) < 0;
#else
        int first = frame->f_lasti < 0;
#endif
        result = PyObject_CallFunctionObjArgs(counting.on_call, PyTuple_GET_ITEM(counting.indexes, i),
                                              first ? Py_True : Py_False, NULL);
    } else {
        result = PyObject_CallFunctionObjArgs(counting.on_return, PyTuple_GET_ITEM(counting.indexes, i),
                                              arg == NULL ? Py_True : Py_False, NULL);
    }
    if (result == NULL) PyErr_Clear();  /* leakkit's own failure never reaches the program */
    else Py_DECREF(result);
    return 0;
}

static int count_install(PyThreadState *tstate) {
    if (tstate->c_profilefunc != NULL && tstate->c_profilefunc != count_profile) return 0;
    return _PyEval_SetProfile(tstate, count_profile, NULL) == 0;
}

static PyObject *count_stop(PyObject *self, PyObject *unused) {
    counting.active = 0;
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t != NULL; t = PyThreadState_Next(t)) {
        if (t->c_profilefunc == count_profile && _PyEval_SetProfile(t, NULL, NULL) < 0) PyErr_Clear();
    }
    Py_CLEAR(counting.codes);
    Py_CLEAR(counting.indexes);
    Py_CLEAR(counting.on_call);
    Py_CLEAR(counting.on_return);
    PyMem_RawFree(counting.slots);
    PyMem_RawFree(counting.index);
    counting.slots = NULL;
    counting.index = NULL;
    Py_RETURN_NONE;
}

static PyObject *count_start(PyObject *self, PyObject *args) {
    PyObject *codes, *on_call, *on_return;
    if (!PyArg_ParseTuple(args, "O!OO", &PyTuple_Type, &codes, &on_call, &on_return)) return NULL;
    if (counting.slots != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "count_start: already counting");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(codes);
    size_t size = 16;
    while (size < (size_t)(4 * n + 4)) size *= 2;
    counting.slots = (uintptr_t *)PyMem_RawCalloc(size, sizeof(uintptr_t));
    counting.index = (Py_ssize_t *)PyMem_RawCalloc(size, sizeof(Py_ssize_t));
    counting.indexes = PyTuple_New(n);
    if (counting.slots == NULL || counting.index == NULL || counting.indexes == NULL) {
        count_stop(NULL, NULL);
        return PyErr_NoMemory();
    }
    counting.mask = size - 1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *code = PyTuple_GET_ITEM(codes, k);
        PyObject *number = PyLong_FromSsize_t(k);
        if (!PyCode_Check(code) || number == NULL) {
            Py_XDECREF(number);
            count_stop(NULL, NULL);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "count_start: expected a tuple of code objects");
            return NULL;
        }
        PyTuple_SET_ITEM(counting.indexes, k, number);
        uintptr_t addr = (uintptr_t)code;
        size_t i = (size_t)((addr >> 4) * 11400714819323198485ull) & counting.mask;
        while (counting.slots[i] != 0 && counting.slots[i] != addr) i = (i + 1) & counting.mask;
        counting.slots[i] = addr;
        counting.index[i] = k;
    }
    Py_INCREF(codes);
    Py_INCREF(on_call);
    Py_INCREF(on_return);
    counting.codes = codes;
    counting.on_call = on_call;
    counting.on_return = on_return;
    counting.active = 1;
    long installed = 0, skipped = 0;
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t != NULL; t = PyThreadState_Next(t)) {
        if (count_install(t)) installed++;
        else skipped++;
        if (PyErr_Occurred()) PyErr_Clear();
    }
    return Py_BuildValue("(ll)", installed, skipped);
}

/* count_thread(frame, event, arg): handed to threading.setprofile; the first event of a new thread
 * puts the C profile function in its place. */
static PyObject *count_thread(PyObject *self, PyObject *args) {
    if (counting.active) {
        PyThreadState *tstate = PyThreadState_Get();
        if (tstate->c_profilefunc == NULL || tstate->c_profilefunc != count_profile) {
            if (_PyEval_SetProfile(tstate, count_profile, NULL) < 0) PyErr_Clear();
        }
    } else {
        PyEval_SetProfile(NULL, NULL);  /* counting ended: the trampoline removes itself */
    }
    Py_RETURN_NONE;
}
#endif

static PyMethodDef methods[] = {
    {"addresses", addresses, METH_O, "addresses(objects) -> bytes: sorted addresses, for has()"},
    {"exactly", exactly, METH_VARARGS, "exactly(objects, type) -> list: the objects whose type is type itself"},
    {"has", has, METH_VARARGS, "has(table, obj) -> bool: obj's address is in addresses()'s table"},
    {"seen_new", seen_new, METH_NOARGS, "seen_new() -> an empty growing address set, for seen_add()"},
    {"seen_add", (PyCFunction)(void (*)(void))seen_add, METH_FASTCALL,
     "seen_add(seen, obj) -> bool: True if obj's address was not in seen (it is now)"},
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    {"managed_traceback", managed_traceback, METH_O, "managed_traceback(obj) -> frames or None (3.11)"},
#endif
#if PY_VERSION_HEX < 0x030C0000
    {"count_start", count_start, METH_VARARGS, "count_start(codes, on_call, on_return) -> (threads hooked, threads left)"},
    {"count_stop", count_stop, METH_NOARGS, "count_stop(): remove the counting profile function"},
    {"count_thread", count_thread, METH_VARARGS, "count_thread(frame, event, arg): for threading.setprofile"},
#endif
    {"sizes", sizes, METH_VARARGS, "sizes(objects, deque_type) -> bytes: (address, length) of every container"},
    {"grown", grown, METH_VARARGS, "grown(objects, table, deque_type) -> [(container, parent, old_length)]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_containerscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__containerscan(void) {
    return PyModule_Create(&module);
}
