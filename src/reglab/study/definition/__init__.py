"""What a study is: the study file's model (:mod:`.spec`: arms, search, seeds, metrics, the checks
run when it is read) and the declaration of the user's own training function (:mod:`.objective`,
:mod:`.function_study`). Imports nothing else of :mod:`reglab.study`."""
