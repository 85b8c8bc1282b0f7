"""The protocol that drives a study: equal-budget tuning then confirmation over seeds
(:mod:`.protocol`), coordination of drivers and workers sharing a storage, the storage lease, and
regularization paths (:mod:`.path`)."""
