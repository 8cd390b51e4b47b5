/* Call a function with the Python frames beneath the call out of sight (leakkit/probes/stack.py).
 *
 * call_cut(fn, *args) -> fn(*args)
 *   The thread's current frame is set to none for the call and put back after it, whatever it
 *   returns or raises: the frames fn runs in end at fn's own (its f_back is None), so the
 *   frames of whoever called (a test runner's, a notebook kernel's) are neither seen nor walked.
 *   Under tracemalloc every allocation computes the line of each of its frames by scanning that
 *   frame's line table from the start: beneath a host's dozens of large frames this is most of
 *   the cost of an allocation. No reference is taken or dropped here; the frames beneath are
 *   not touched and run on unchanged once fn returns.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX >= 0x030D0000
#define FRAME_SLOT(ts) ((ts)->current_frame)
typedef struct _PyInterpreterFrame *frame_ptr;
#elif PY_VERSION_HEX >= 0x030B0000
#define FRAME_SLOT(ts) ((ts)->cframe->current_frame)
typedef struct _PyInterpreterFrame *frame_ptr;
#else
#define FRAME_SLOT(ts) ((ts)->frame)
typedef PyFrameObject *frame_ptr;
#endif

static PyObject *call_cut(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call_cut(fn, *args): expected a function");
        return NULL;
    }
    PyThreadState *ts = PyThreadState_Get();
    frame_ptr saved = FRAME_SLOT(ts);
    FRAME_SLOT(ts) = NULL;
    PyObject *result = PyObject_Vectorcall(args[0], args + 1, (size_t)(nargs - 1), NULL);
    FRAME_SLOT(ts) = saved;
    return result;
}

static PyMethodDef methods[] = {
    {"call_cut", (PyCFunction)(void (*)(void))call_cut, METH_FASTCALL,
     "call_cut(fn, *args) -> fn(*args), with the frames beneath this call out of sight"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_stackcut", NULL, -1, methods};

PyMODINIT_FUNC PyInit__stackcut(void) {
    return PyModule_Create(&module);
}
