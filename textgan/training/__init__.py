"""Training a run: one iteration (``trainer``), the run around it (``loop``: start, resume,
the loop, stop signals), its evaluations (``evaluation``), what it writes (``output``), critic
diagnostics, loggers and several processes under torchrun (``distributed``)."""
