"""Many ordinary runs compared at equal wall-clock: ``study compare`` and the Lipschitz study
(``compare``), their recipes, child runs and reports (``recipes``, ``runs``, ``report``,
``rebuild``), the Optuna search of ``textgan tune`` (``tune``, ``tune_space``, ``tune_study``)
and the quality–diversity sweep (``sweep``)."""
