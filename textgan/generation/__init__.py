"""Text from a generator: loading one from a run, a checkpoint or an exported model and decoding
it by argmax or temperature (``sampling``); the 5-gram language-model baseline it is compared
with (``baseline``)."""
