"""How runs are executed: the task a worker trains (:mod:`.task`), the worker's side of a run
(:mod:`.worker`, :mod:`.function_runs`), the executors that run tasks (local processes,
in-process, populations, Ray) and the start-time check of the user's own model."""
