"""The bisect engine: instrument the targets, run the workload, read checkpoints, search what
holds the survivors, and hand a plain :class:`~leakkit.engine.record.BisectRecord` to the judge.
"""
