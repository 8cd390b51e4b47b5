"""What a bisect run measured, as plain data: the engine fills it, the judge reads it.

The judge (:mod:`leakkit.engine.judge`) knows nothing of how the run was made: it gets series per
checkpoint, the holders that grew (already named), what the survivors are, and what the run had
to cut short. Every series is a list of floats, one value per checkpoint, aligned with ``x``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..retention.paths import Bound


@dataclass
class HolderRecord:
    """A container that grew during the run, named from a root, and what its new entries keep.

    ``made`` maps a function (or ``<outside targets>``) to the bytes of the objects its code
    allocated under the new entries; ``side`` says why the holder is a side structure (weak
    references) and not where the leak is; ``bound`` is a bound something enforces (its type,
    code that removes entries, or the run that saw it replace them), ``declared`` one only an
    attribute's name claims (never a bound: past it, the holder is plainly growing).
    """

    path: str  # root ... holder, with the newest entry: mod.CACHE['req-59']
    holder: str  # root ... holder: mod.CACHE
    root: str
    kind: str  # the container's type name
    old_len: int
    new_len: int
    made: dict[str, int]
    objects: dict[str, int]
    side: str | None
    bound: Bound | None
    deep_bytes: int | None  # the whole holder, everything it reaches
    deep_complete: bool
    # 'grown' (a container that grew), 'forward' (reached from the targets), 'referrer' (the old
    # object referring to most of the kept objects), 'atexit', 'C'
    how: str
    entry_makers: dict[str, int] = field(default_factory=dict)  # function -> new entries whose value it made
    declared: Bound | None = None
    young: int = -1  # its entries made in the run (-1: not counted); beyond new_len - old_len they replaced older ones

    @property
    def kept_bytes(self) -> int:
        return sum(self.made.values())

    @property
    def maker(self) -> str | None:
        """The function whose code made the entries the holder gained (the value each adds; what
        those values hold inside may come from other functions), else the one that made most bytes."""
        if self.entry_makers:
            return max(self.entry_makers, key=self.entry_makers.__getitem__)
        return max(self.made, key=self.made.__getitem__) if self.made else None


@dataclass
class Orphan:
    """Objects a function made that are alive at the end, yet no Python object refers to them."""

    function: str
    objects: int  # sampled survivors with no Python referrer
    sampled: int
    c_references: int  # references to them not held by any Python object
    site: str  # where the function called into the code that keeps them
    types: list[str]


@dataclass
class BisectRecord:
    """A bisect run's measurements. Byte series are kept after a garbage collection."""

    planned_calls: int
    calls: int  # measured calls made (more than planned when the run went on, fewer when cut short)
    warmup: int
    seconds: float
    x: list[float]  # call number of each checkpoint (0: after the warm-up)
    total_bytes: list[float]  # traced bytes kept by all user code since the warm-up
    total_blocks: list[float]
    rss: list[float]
    native_rss: list[float]  # RSS minus traced memory and tracemalloc's own
    native_malloc: list[float]  # malloc's bytes in use minus Python's large blocks and tracemalloc's own
    self_bytes: dict[str, list[float]]  # per function: bytes its own code allocated, still alive
    self_blocks: dict[str, list[float]]
    incl_bytes: dict[str, list[float]]  # per function: allocated while it was on the stack
    path_bytes: dict[tuple[str, ...], list[float]]  # per call path of target functions
    rss_self: dict[str, list[float]]  # per wrapped function: cumulative RSS growth of its own calls
    malloc_self: dict[str, list[float]]  # ... of malloc's bytes in use
    call_counts: dict[str, int]  # per wrapped function
    functions: list[str]  # every candidate function
    sites: dict[str, str]  # per function: the file:line whose kept bytes grew most
    holders: list[HolderRecord] = field(default_factory=list)
    orphans: dict[str, Orphan] = field(default_factory=dict)
    survivors: list[tuple[str, str, str, int, int]] = field(default_factory=list)  # type, function, site, count, bytes
    atexit_added: int = 0
    errors: int = 0
    error_types: dict[str, int] = field(default_factory=dict)
    cut_short: str | None = None  # why the run made fewer calls than planned
    ran_on: str | None = None  # why the run made more calls than planned
    notes: list[str] = field(default_factory=list)  # what the run and the search could not finish
    unsettled: str | None = None  # why the growth was still not settled when the run ended
    heavy: bool = False  # too heavy to trace every call: the verdict comes from the cheap series
    cheap_x: list[float] = field(default_factory=list)  # untraced calls: call number of each reading
    cheap_blocks: list[float] = field(default_factory=list)  # allocated blocks after a collection
    cheap_rss: list[float] = field(default_factory=list)
    cheap_malloc: list[float] = field(default_factory=list)
