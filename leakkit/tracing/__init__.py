"""Running a user's function and recording what each call keeps: ``trace``, ``growth_sites``
(tracemalloc sites) and ``heap_vs_native``."""
