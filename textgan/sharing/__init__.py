"""Sharing a model the Hugging Face way: ``export`` writes a model folder with its ``card``,
``hub`` loads one back (``textgan.from_pretrained``), ``space`` writes a Space, and the demo page
(``demo``) shows it with what a prepared corpus says of its samples (``evidence``)."""
