"""Buffers come from a pool that grows to 8 and is reused after that: not a leak."""
EXPECT = {"verdict": ["plateau", "clean"], "culprit": [None], "root": []}


class BufferPool:
    _free = []
    _made = [0]

    @classmethod
    def acquire(cls):
        if cls._free:
            return cls._free.pop()
        cls._made[0] += 1
        return bytearray(1024)

    @classmethod
    def release(cls, buf):
        if len(cls._free) < 8:
            cls._free.append(buf)


_held = []


def workload():
    _held.append(BufferPool.acquire())
    if len(_held) > 8:
        BufferPool.release(_held.pop(0))
