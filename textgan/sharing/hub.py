"""Exported models: a folder in the Hugging Face layout, local or on the hub, loaded back.

``textgan export`` (``textgan.sharing.export``) writes::

    config.json        {"textgan": 1, "model": {...}, "vocab": {...}, "corpus": {...}, ...}
    model.safetensors  the generator's weights (the EMA average unless exported --raw)
    vocab.json         the vocabulary (``textgan.vocab``)
    README.md          the model card

A source is a local folder, ``hf:USER/NAME`` or a bare ``USER/NAME`` that is not a local path;
hub models come through ``huggingface_hub.snapshot_download``, so they are cached by the hub
library and load offline after one download. Nothing is unpickled: safetensors and JSON only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textgan.config import build
from textgan.corpus import CorpusConfig, PreparedCorpus, prepare
from textgan.corpus.hub import offline_mode
from textgan.errors import UserError, first_line
from textgan.files import read_json
from textgan.files.checkpoint import load_weights
from textgan.vocab import Vocab

if TYPE_CHECKING:
    from textgan.nn.networks import Generator

MODEL_FORMAT = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
VOCAB = "vocab.json"
CARD = "README.md"
# In config.json: the corpus is a file of the trainer's machine, named but not published.
CORPUS_LOCAL = "corpus_local"
FILES = (CONFIG, WEIGHTS, VOCAB, CARD)
HF_PREFIX = "hf:"
# USER/NAME as the hub spells repository ids; anything else is only ever a local path.
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HOW = "give a folder written by 'textgan export' or a hub id hf:USER/NAME"


@dataclass(frozen=True)
class ModelFolder:
    """An exported model's folder with its checked config and vocabulary (weights unread)."""

    path: Path
    config: dict[str, Any]
    vocab: Vocab


def resolve(source: str | Path) -> Path:
    """The local folder of ``source``: the folder itself, or the hub snapshot in the cache."""
    text = str(source)
    if text.startswith(HF_PREFIX):
        return _download(text[len(HF_PREFIX) :], local=None)
    path = Path(text)
    if path.is_dir():
        return path
    if path.exists():
        raise UserError(f"model {path} is a file; {_HOW}")
    if not _REPO_ID.match(text):
        raise UserError(f"model folder {path} does not exist; {_HOW}")
    return _download(text, local=path)


def _download(repo: str, local: Path | None) -> Path:
    """The cached snapshot of hub model ``repo``, fetched unless offline; ``local`` is the
    folder the same words might have meant, named in the error when neither exists."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

    from textgan import __version__

    neither = f"no model folder {local} here, and " if local is not None else ""
    try:
        folder = snapshot_download(
            repo,
            allow_patterns=list(FILES),
            local_files_only=offline_mode(),
            library_name="textgan",
            library_version=__version__,
        )
    except LocalEntryNotFoundError:
        raise UserError(
            f"{neither}hub model {repo} is not in the Hugging Face cache and the hub is offline "
            "(HF_HUB_OFFLINE): download it once online"
        ) from None
    except RepositoryNotFoundError:
        raise UserError(
            f"{neither}no model {repo} on the Hugging Face hub (a private one needs "
            "'hf auth login')"
        ) from None
    except Exception as err:  # network and validation failures come in many types
        raise UserError(f"{neither}cannot fetch hub model {repo}: {first_line(err)}") from None
    return Path(folder)


def open_model(source: str | Path) -> ModelFolder:
    """The folder of ``source`` with its config and vocabulary, checked; UserError otherwise."""
    path = resolve(source)
    for name in (CONFIG, WEIGHTS, VOCAB):
        if not (path / name).is_file():
            raise UserError(f"{path} is not a textgan model folder (no {name}); {_HOW}")
    config = read_json(path / CONFIG, "model config", dict)
    version = config.get("textgan")
    if type(version) is not int or version != MODEL_FORMAT:
        raise UserError(
            f"model config {path / CONFIG} is not a textgan model of format {MODEL_FORMAT} "
            f"('textgan': {version!r}); export it again with this version of textgan"
        )
    try:
        vocab = Vocab.from_json(read_json(path / VOCAB, "model vocabulary"))
    except ValueError as err:
        raise UserError(f"model vocabulary {path / VOCAB} is invalid ({err})") from None
    return ModelFolder(path, config, vocab)


def load_model(source: str | Path, device: str = "cpu", *, raw: bool = False) -> Generator:
    """The exported generator of ``source`` on ``device``, in eval mode, its vocabulary
    attached as ``generator.vocab``. ``raw`` asks for the trained weights: a folder holds one
    set, so one exported with its weight average (EMA) is refused rather than given instead."""
    from textgan.devices import pick_device
    from textgan.generation.sampling import build_generator

    model = open_model(source)
    if raw and model.config.get("weights") != "raw":
        raise UserError(
            f"model {model.path} holds the weight average (EMA), not the trained weights: drop "
            "--raw, or sample a model exported with 'textgan export --raw'"
        )
    weights = load_weights(model.path / WEIGHTS)  # safetensors: arrays only, never code
    generator = build_generator(
        model.config.get("model"), weights, model.vocab, f"model {model.path}"
    )
    generator.vocab = model.vocab
    return generator.to(pick_device(device)).eval()


# The Hugging Face name of the same thing: ``textgan.from_pretrained("USER/NAME")``.
from_pretrained = load_model


def model_corpus(source: str | Path, data_dir: str, progress: bool = False) -> PreparedCorpus:
    """The corpus named in an exported model's config, prepared under ``data_dir`` as
    ``textgan prepare`` would, and checked to have the model's vocabulary."""
    model = open_model(source)
    where = f"model config {model.path / CONFIG}"
    values = model.config.get("corpus")
    if not isinstance(values, dict):
        raise UserError(f"{where} names no corpus; score with --corpus or --reference instead")
    if model.config.get(CORPUS_LOCAL) is True:
        raise UserError(
            f"model {model.path} was trained on a local corpus ({values.get('corpus')}) that is "
            "not published with it; score with --corpus PATH (your copy) or --reference instead"
        )
    config = build(CorpusConfig, {**values, "data_dir": data_dir}, where)
    prepared = prepare(config, progress=progress)
    if prepared.vocab != model.vocab:
        raise UserError(
            f"corpus {values.get('corpus')!r} prepared now has another vocabulary than the "
            f"model in {model.path}; score with --corpus or --reference instead"
        )
    return prepared
