"""The demo page of ``textgan demo`` (and of an exported Hugging Face Space): press a button,
see what a generator writes.

Built with Gradio, the optional extra ``demo``: it is imported only when the page is built, so
this module opens and checks sources without it. The page samples through
``textgan.generation.sampling`` exactly as ``textgan sample`` does, so the same source, N, seed and
decoding give the same lines. What needs the training corpus (known words, JS with floors, the
5-gram baseline, a run's figures) is ``textgan.sharing.evidence``, imported only where that corpus
is prepared: a Space carries this module and the inference modules, never the metrics.
"""

from __future__ import annotations

import html
import shlex
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from textgan.devices import pick_device
from textgan.errors import UserError
from textgan.files.checkpoint import load_checkpoint
from textgan.files.rundir import CONFIG, MANIFEST
from textgan.generation import sampling
from textgan.sharing import hub
from textgan.vocab import Vocab

if TYPE_CHECKING:
    import gradio as gr

    from textgan.nn.networks import Generator

HOST = "127.0.0.1"
MAX_N = 1000  # the page's bound: a browser list, not a file; textgan sample writes any number
DEFAULT_N = 10
GRADIO_MISSING = (
    'the demo page needs Gradio, the optional extra "demo": pip install "textgan[demo]" '
    '(pip install -e ".[demo]" in a checkout)'
)
WEIGHT_NAMES = {"ema": "weight average (EMA)", "raw": "raw generator"}
DECODINGS = ("argmax", "temperature")
_HOW = "give a run, a checkpoint, an exported model folder or a hub id hf:USER/NAME"
_LIST_STYLE = "font-family: monospace; line-height: 1.5"
_LINE_STYLE = "white-space: pre"  # samples keep their spaces: they are part of what it wrote


@dataclass
class DemoSource:
    """What the page samples: the generators of one model (by weights kind, the default
    first), and where they came from."""

    label: str  # the source as the user named it
    option: str  # the ``textgan sample`` option that names it: --run, --checkpoint, --model
    generators: dict[str, Generator]
    vocab: Vocab
    iteration: int | None
    corpus: dict[str, Any] | None  # the corpus section of the source's config
    run_dir: Path | None  # where the source is a run (its figures)


def import_gradio() -> Any:
    """The gradio module; UserError saying how to install it when it is missing."""
    try:
        import gradio
    except ImportError:
        raise UserError(GRADIO_MISSING) from None
    return gradio


def open_source(text: str, device: str = "auto") -> DemoSource:
    """The generators of a run, a checkpoint or an exported model (folder or hub id);
    UserError naming the problem for anything else."""
    path = Path(text)
    if not path.exists():
        parts = text.split("/")
        if text.startswith(hub.HF_PREFIX) or (len(parts) == 2 and all(parts) and text[0] != "."):
            return _model_source(text, device)  # USER/NAME on the hub
        raise UserError(f"SOURCE {text} does not exist; {_HOW}")
    if (path / hub.WEIGHTS).is_file():
        return _model_source(text, device)
    if path.is_dir() and not any((path / f).is_file() for f in (CONFIG, MANIFEST)):
        raise UserError(f"{path} is not a run, a checkpoint or an exported model folder; {_HOW}")
    return _checkpoint_source(path, device)


def _model_source(text: str, device: str) -> DemoSource:
    model = hub.open_model(text)
    generator = hub.load_model(model.path, device)
    kind = str(model.config.get("weights", "ema"))
    iteration = model.config.get("iteration")
    return DemoSource(
        text, "--model", {kind: generator}, model.vocab, iteration, model.config.get("corpus"), None
    )


def _checkpoint_source(path: Path, device: str) -> DemoSource:
    ckpt = load_checkpoint(path)  # with its training state: the weight average lives there
    where = pick_device(device)
    generators: dict[str, Generator] = {}
    for raw in (False, True):  # the default (the average where there is one) first
        weights, kind = sampling.chosen_weights(ckpt, raw)
        if kind not in generators:
            model = ckpt.config.get("model")
            generator = sampling.build_generator(model, weights, ckpt.vocab, f"checkpoint {path}")
            generators[kind] = generator.to(where).eval()
    is_run = path.is_dir() and ckpt.path.resolve() != path.resolve()
    corpus = ckpt.config.get("corpus")
    return DemoSource(
        str(path),
        "--run" if is_run else "--checkpoint",
        generators,
        ckpt.vocab,
        ckpt.iteration,
        corpus if isinstance(corpus, dict) else None,
        path if is_run else None,
    )


@dataclass(frozen=True)
class Request:
    """One press of the button, checked."""

    n: int
    seed: int
    temperature: float | None  # None: argmax
    truncation: float | None  # None: the untruncated noise
    weights: str
    baseline: bool
    note: str = ""  # what the page changed in the request, said beside the samples


class Evidence(Protocol):
    """What the page asks of ``textgan.sharing.evidence.Evidence`` (which imports this module)."""

    def render(self, lines: list[str], request: Request) -> tuple[str, str, str]: ...


def _integer(value: Any, what: str) -> int:
    """``value`` (a number from the page, or text) as an int; UserError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UserError(f"{what} is empty; enter a whole number")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise UserError(f"{what} must be a whole number, got {value.strip()!r}") from None
    if isinstance(value, float) and not value.is_integer():
        raise UserError(f"{what} must be a whole number, got {value}")
    return int(value)


def _number(value: Any, what: str) -> float | None:
    """An optional number from the page (None when left empty)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{what} must be a number, got {value!r}") from None


def parse_request(
    n: Any,
    seed: Any,
    decoding: str,
    temperature: Any,
    truncation: Any,
    weights: str,
    baseline: bool,
) -> Request:
    """The page's values as a Request; UserError with the message the page shows. Ranges of
    the temperature and the truncation are sampling's to check, as for ``textgan sample``."""
    count, note = _integer(n, "N"), ""
    if count < 1:
        raise UserError(f"N must be at least 1, got {count:,}")
    if count > MAX_N:
        note = f"N = {count:,} is more than this page shows: here are N = {MAX_N:,}"
        count = MAX_N
    number = _integer(seed, "the seed")
    sampling.check_seed(number)
    if decoding not in DECODINGS:
        raise UserError(f"unknown decoding {decoding!r}; choose {' or '.join(DECODINGS)}")
    temp = _number(temperature, "the temperature") if decoding == "temperature" else None
    if decoding == "temperature" and temp is None:
        raise UserError("the temperature is empty; enter a number > 0, or choose argmax")
    tau = _number(truncation, "the truncation")
    return Request(count, number, temp, tau, weights, bool(baseline), note)


def sample_lines(source: DemoSource, request: Request) -> list[str]:
    """The lines ``textgan sample`` writes for this source and request."""
    if request.weights not in source.generators:
        raise UserError(f"this source holds no {request.weights} weights")
    batches = sampling.sample_text(
        source.generators[request.weights],
        source.vocab,
        request.n,
        temperature=request.temperature,
        truncation=request.truncation,
        seed=request.seed,
    )
    return [line for batch in batches for line in batch]


def sample_command(source: DemoSource, request: Request) -> str:
    """The ``textgan sample`` command that writes the same lines."""
    parts = ["textgan sample", source.option, shlex.quote(source.label), f"-n {request.n}"]
    parts.append(f"--seed {request.seed}")
    if request.temperature is not None:
        parts.append(f"--temperature {request.temperature!r}")
    if request.truncation is not None:
        parts.append(f"--truncation {request.truncation!r}")
    if request.weights == "raw" and len(source.generators) > 1:
        parts.append("--raw")
    return " ".join(parts)


def lines_html(lines: list[str], unknown: list[list[tuple[int, int]]] | None = None) -> str:
    """An ordered list of the lines, the ``(start, end)`` character spans of ``unknown`` words
    of each line marked."""
    items = []
    for i, line in enumerate(lines):
        marked, at = [], 0
        for start, end in unknown[i] if unknown else ():
            marked.append(html.escape(line[at:start]))
            marked.append(f'<mark class="unknown">{html.escape(line[start:end])}</mark>')
            at = end
        marked.append(html.escape(line[at:]))
        items.append(f'<li class="sample" style="{_LINE_STYLE}">{"".join(marked)}</li>')
    return f'<ol class="samples" style="{_LIST_STYLE}">{"".join(items)}</ol>'


def message_html(text: str, error: bool = False) -> str:
    """The line above the samples: what was drawn, or what was wrong with the request."""
    kind, color = ("error", "#b00020") if error else ("ok", "inherit")
    return f'<p class="{kind}" style="color: {color}">{html.escape(text)}</p>'


class Page:
    """The page's content and its one request handler."""

    def __init__(
        self,
        source: DemoSource,
        evidence: Evidence | None,
        missing: str,
        seed: int = 0,
    ) -> None:
        self.source, self.evidence, self.missing, self.seed = source, evidence, missing, seed

    def heading(self) -> str:
        at = f", iteration {self.source.iteration:,}" if self.source.iteration is not None else ""
        lines = [f"# textgan: {self.source.label}", "", f"A character-level WGAN-GP generator{at}."]
        if self.evidence is None:
            lines += ["", f"Known words, JS with floors and the 5-gram baseline: {self.missing}"]
        else:
            lines += ["", "Words that never occur in the training text are <mark>marked</mark>."]
        return "\n".join(lines)

    def respond(self, *values: Any) -> tuple[str, str, str, str]:
        """(message, samples, baseline samples, scores) as HTML for the page's ``values``, in
        ``parse_request``'s order: a bad request gets its message and empty results, never
        an exception (the server keeps serving)."""
        try:
            request = parse_request(*values)
            if request.baseline and self.evidence is None:
                raise UserError(f"no 5-gram baseline here: {self.missing}")
            lines = sample_lines(self.source, request)
        except UserError as err:
            return message_html(str(err), error=True), "", "", ""
        said = f"{request.n:,} samples of {WEIGHT_NAMES.get(request.weights, request.weights)}"
        said += f", as {sample_command(self.source, request)}"
        if request.note:
            said = f"{request.note}. {said}"
        if self.evidence is None:
            return message_html(said), lines_html(lines), "", ""
        return (message_html(said), *self.evidence.render(lines, request))


def build_blocks(page: Page, figures: list[Any] | None = None) -> gr.Blocks:
    """The Gradio page of ``page``; ``figures`` (matplotlib) are drawn below the samples."""
    gr = import_gradio()
    source = page.source
    with gr.Blocks(title=f"textgan: {source.label}", analytics_enabled=False) as blocks:
        gr.Markdown(page.heading())
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                inputs = _controls(gr, page)
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=3):
                status = gr.HTML(elem_id="status")
                with gr.Row():
                    gan = gr.HTML(elem_id="gan-samples")
                    kn5 = gr.HTML(elem_id="kn5-samples")
                scores = gr.HTML(elem_id="scores")
        for figure in figures or ():
            gr.Plot(figure, show_label=False)
        button.click(page.respond, inputs, [status, gan, kn5, scores])
    return blocks


def _controls(gr: Any, page: Page) -> list[Any]:
    """The request's inputs, in the order of ``parse_request``'s arguments."""
    kinds = list(page.source.generators)
    choices = [(WEIGHT_NAMES.get(k, k), k) for k in kinds]
    why = "" if page.evidence is not None else page.missing
    return [
        gr.Number(DEFAULT_N, label=f"N (samples, up to {MAX_N:,})", elem_id="n"),
        gr.Textbox(str(page.seed), label="seed", elem_id="seed"),
        gr.Radio(list(DECODINGS), value="argmax", label="decoding", elem_id="decoding"),
        gr.Number(1.0, label="temperature T (decoding: temperature)", elem_id="temperature"),
        # Text, not a number field: an empty number field submits 0, and empty means none.
        gr.Textbox("", label="noise truncation τ (empty: none)", elem_id="truncation"),
        gr.Radio(
            choices, value=kinds[0], label="weights", visible=len(kinds) > 1, elem_id="weights"
        ),
        gr.Checkbox(
            False,
            label="the Kneser-Ney 5-gram baseline beside it (same N and seed)",
            info=why or None,
            interactive=page.evidence is not None,
            elem_id="baseline",
        ),
    ]


def check_port(port: int) -> None:
    """UserError when ``port`` cannot be served on here, before anything is loaded."""
    with socket.socket() as sock:
        # As the server binds: a port left in TIME_WAIT by a closed server is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as err:
            raise UserError(
                f"cannot serve on {HOST}:{port} ({err.strerror or err}); choose another --port, "
                "or leave it out for a free one"
            ) from None


def free_port() -> int:
    """A port that is free on ``HOST`` now (the system picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def serve(blocks: gr.Blocks, port: int, share: bool, announce: Callable[[str], None]) -> None:
    """Serve the page on ``HOST:port`` (and a public Gradio link with ``share``) until
    interrupted; ``announce`` gets the address once the server answers."""
    _, local_url, share_url = blocks.launch(
        server_name=HOST, server_port=port, share=share, prevent_thread_lock=True, quiet=True
    )
    announce(f"serving the demo page at {local_url}" + (f" and {share_url}" if share_url else ""))
    blocks.block_thread()  # returns on Ctrl-C, after closing the server


def space_blocks(folder: str | Path, name: str) -> gr.Blocks:
    """The page of the model exported into ``folder``, as its Hugging Face Space serves it."""
    source = open_source(str(folder), "auto")
    source.label = name  # the page names the model as its users do, not the Space's folder
    missing = "a Space carries the model, not its training corpus, so it shows samples only"
    return build_blocks(Page(source, None, missing))
