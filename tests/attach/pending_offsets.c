/* The offsets leakkit's injector writes at (leakkit/frontends/agent/pending.py: LAYOUTS), from
   CPython's own internal headers. tests/test_attach_units.py compiles this against every
   interpreter the machine has headers for and compares what it prints with the table:
       gcc -I $PREFIX/include/python3.X -I $PREFIX/include/python3.X/internal pending_offsets.c */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_runtime.h"
#include "internal/pycore_interp.h"

#define CEVAL offsetof(PyInterpreterState, ceval)
#define PENDING (CEVAL + offsetof(struct _ceval_state, pending))

int main(void) {
    printf("runtime_main %zu\n", offsetof(_PyRuntimeState, interpreters.main));
    printf("interp_runtime %zu\n", offsetof(PyInterpreterState, runtime));
    printf("interp_id %zu\n", offsetof(PyInterpreterState, id));
    printf("pending %zu\n", PENDING);
#if PY_VERSION_HEX >= 0x030D0000
    printf("eval_breaker None\n");
    printf("todo %zu\n", offsetof(struct _pending_calls, npending));
    printf("last %zu\n", offsetof(struct _pending_calls, next));
    printf("slots %d\n", PENDINGCALLSARRAYSIZE);
    printf("busy %zu\n", offsetof(struct _pending_calls, handling_thread));
    printf("mutex %zu\n", offsetof(struct _pending_calls, mutex));
    printf("capacity %zu\n", offsetof(struct _pending_calls, max));
#else
    printf("eval_breaker %zu\n", CEVAL + offsetof(struct _ceval_state, eval_breaker));
    printf("todo %zu\n", offsetof(struct _pending_calls, calls_to_do));
    printf("last %zu\n", offsetof(struct _pending_calls, last));
    printf("slots %d\n", NPENDINGCALLS);
#if PY_VERSION_HEX >= 0x030C0000
    printf("busy %zu\n", offsetof(struct _pending_calls, busy));
#else
    printf("busy None\n");
#endif
    printf("mutex None\n");
    printf("capacity None\n");
#endif
    printf("calls %zu\n", offsetof(struct _pending_calls, calls));
    printf("call_size %zu\n", sizeof(((struct _pending_calls *)0)->calls[0]));
    printf("first %zu\n", offsetof(struct _pending_calls, first));
    return 0;
}
