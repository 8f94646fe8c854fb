"""`textgan demo` without a browser: sources, the request handler's lines against `textgan
sample`, bad values, unknown words against `word_known`, scores against `textgan score`, the
5-gram baseline, one-line errors before any server, and the exported Space folder."""

import html
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from demo_helpers import ONLY_THE_SPACE, SPACE_NAME, cli, sample, tiny_run, tiny_space
from huggingface_hub import RepoCard

from textgan.corpus import load_prepared
from textgan.metrics.report import encode_samples
from textgan.metrics.word_known import space_id, word_hashes
from textgan.sharing import demo, hub, space
from textgan.sharing.evidence import Evidence, find_corpus

gradio = pytest.importorskip("gradio", reason="the demo page needs the demo extra (in .[dev])")

TRAINING_MODULES = (
    "training/loop",
    "training/trainer",
    "nn/lipschitz",
    "nn/fast",
    "training/distributed",
    "api",
    "sharing/export",
)
# Loads the Space's app.py (the page is built, no server started), answers one request as the
# page's button does, and says which textgan modules were loaded and from where.
SPACE_IMPORTS = (
    ONLY_THE_SPACE
    + """
import json

app = runpy.run_path(f"{folder}/app.py", run_name="space_app")
from textgan.sharing.demo import Page, open_source

_, samples, _, _ = Page(open_source(folder, "cpu"), None, "").respond(
    5, "3", "argmax", 1.0, "", "ema", False
)
loaded = {name: m.__file__ for name, m in sys.modules.items() if name.split(".")[0] == "textgan"}
print(json.dumps({"app": type(app["demo"]).__name__, "samples": samples, "loaded": loaded}))
"""
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def data_dir(run):
    return str(run.parent / "data")


@pytest.fixture(scope="module")
def space_dir(tmp_path_factory):
    return tiny_space(tmp_path_factory)


@pytest.fixture(scope="module")
def page(run):
    source = demo.open_source(str(run), "cpu")
    prepared, missing = find_corpus(source.corpus, "unused", source.vocab)
    assert missing == ""
    return demo.Page(source, Evidence(prepared), missing)


def ask(
    page,
    n=10,
    seed="3",
    decoding="argmax",
    temperature=1.0,
    truncation="",
    weights="ema",
    baseline=False,
):
    """The page's answer to these values, as the browser sends them."""
    return page.respond(n, seed, decoding, temperature, truncation, weights, baseline)


def shown(fragment: str) -> list[str]:
    """The lines of a samples list as the browser shows them."""
    items = re.findall(r'<li class="sample"[^>]*>(.*?)</li>', fragment)
    return [html.unescape(re.sub(r"</?mark[^>]*>", "", item)) for item in items]


def test_sources_offer_what_they_hold(run, space_dir):
    from_run = demo.open_source(str(run), "cpu")
    assert from_run.option == "--run" and list(from_run.generators) == ["ema", "raw"]
    assert from_run.run_dir == run and from_run.iteration == 20
    checkpoint = run / "checkpoints" / "iter_0000010"
    from_ckpt = demo.open_source(str(checkpoint), "cpu")
    assert from_ckpt.option == "--checkpoint" and from_ckpt.iteration == 10
    assert from_ckpt.run_dir is None and list(from_ckpt.generators) == ["ema", "raw"]
    model = demo.open_source(str(space_dir), "cpu")
    assert model.option == "--model" and list(model.generators) == ["ema"]
    assert model.corpus["corpus"] == "pydocs" and model.run_dir is None


@pytest.mark.parametrize(
    ("values", "flags"),
    [
        ({}, []),
        ({"weights": "raw"}, ["--raw"]),
        ({"decoding": "temperature", "temperature": 0.7}, ["--temperature", "0.7"]),
        ({"truncation": "0.5", "n": 37, "seed": "11"}, ["--truncation", "0.5"]),
    ],
)
def test_page_lines_are_textgan_samples(page, run, values, flags):
    message, gan, _, _ = ask(page, **values)
    n, seed = values.get("n", 10), values.get("seed", "3")
    expected = sample("--run", run, "-n", n, "--seed", seed, *flags)
    assert shown(gan) == expected and len(expected) == n
    command = " ".join(["textgan sample --run", str(run), f"-n {n} --seed {seed}", *flags])
    assert 'class="ok"' in message and html.escape(command) in message


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"n": 0}, "N must be at least 1, got 0"),
        ({"n": 2.5}, "N must be a whole number, got 2.5"),
        ({"n": None}, "N is empty"),
        ({"seed": "-1"}, "the seed must be an integer from 0 to"),
        ({"seed": "x"}, "the seed must be a whole number, got 'x'"),
        ({"decoding": "temperature", "temperature": -1}, "temperature must be a finite number"),
        ({"truncation": "-2"}, "truncation must be a finite number > 0"),
        ({"truncation": "wide"}, "the truncation must be a number, got 'wide'"),
    ],
)
def test_bad_values_get_a_message_and_no_samples(page, values, said):
    message, gan, kn5, scores = ask(page, **values)
    assert 'class="error"' in message and said in html.unescape(message)
    assert (gan, kn5, scores) == ("", "", "")


def test_a_large_n_is_bounded_with_a_note(page, run):
    message, gan, _, _ = ask(page, n=10**9, seed="5")
    assert "N = 1,000,000,000 is more than this page shows: here are N = 1,000" in message
    assert shown(gan) == sample("--run", run, "-n", demo.MAX_N, "--seed", 5)


def test_marked_words_are_the_unknown_words_word_known_counts(page):
    evidence = page.evidence
    lines = ["the qzxvk module", "is a  zzyzx", "x" * 5 + " " + "y" * 26]
    marks = evidence.unknown_words(lines)
    assert marks == [[(4, 9)], [(6, 11)], [(0, 5)]]  # the cut last word of a full line: no mark
    _, gan, _, scores = ask(page, n=200, seed="1", decoding="temperature", temperature=1.5)
    lines = shown(gan)
    ids = encode_samples(lines, evidence.vocab, evidence.seq_len).ids
    words = len(word_hashes(ids, space_id(evidence.vocab)))
    marked = sum(len(m) for m in evidence.unknown_words(lines))
    assert 0 < marked < words
    share = float(re.search(r'data-key="word_known"><td>[^<]*</td><td>([0-9.]+)', scores)[1])
    assert share == pytest.approx(1 - marked / words, abs=5e-5)
    assert gan.count('<mark class="unknown">') == marked


def test_scores_are_textgan_scores(page, run, tmp_path):
    _, gan, _, table = ask(page, n=50, seed="2")
    samples = tmp_path / "samples.txt"
    samples.write_text("".join(line + "\n" for line in shown(gan)))
    result = cli("score", samples, "--run", run, "-n", 50, "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in ("js1", "js2", "js3", "js4", "word_known"):
        row = re.search(f'data-key="{key}"><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>', table)
        assert row[1] == f"{report[key]:.4f}" and row[2] == f"{report[f'floor_{key}']:.4f}"
    assert "50 lines scored against corpus pydocs-" in table


def test_baseline_is_textgan_sample_baseline(page, data_dir):
    _, _, kn5, table = ask(page, n=12, seed="4", baseline=True)
    expected = sample(
        "--baseline", "kn5", "--corpus", "pydocs", "--data-dir", data_dir, "-n", 12, "--seed", 4
    )
    assert shown(kn5) == expected and "<th>5-gram baseline</th>" in table


def test_a_model_without_its_corpus_here_says_why(space_dir, tmp_path):
    source = demo.open_source(str(space_dir), "cpu")
    prepared, missing = find_corpus(source.corpus, str(tmp_path / "none"), source.vocab)
    assert prepared is None and "training corpus 'pydocs' is not prepared in" in missing
    page = demo.Page(source, None, missing)
    assert missing in page.heading()
    message, gan, _, _ = ask(page, n=3, baseline=True)
    assert "no 5-gram baseline here" in message and gan == ""
    message, gan, kn5, scores = ask(page, n=3)
    assert shown(gan) == sample("--model", space_dir, "-n", 3, "--seed", 3)
    assert (kn5, scores) == ("", "")


@pytest.fixture
def served(monkeypatch):
    """Records every page the CLI would serve, instead of serving it."""
    calls = []
    monkeypatch.setattr(demo, "serve", lambda *args: calls.append(args))
    return calls


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("{tmp}/nothing", "SOURCE {tmp}/nothing does not exist; give a run, a checkpoint"),
        ("{tmp}", "{tmp} is not a run, a checkpoint or an exported model folder"),
        ("hf:someone/nothing", "hub model someone/nothing is not in the Hugging Face cache"),
    ],
)
def test_bad_sources_fail_in_one_line_before_any_server(served, tmp_path, source, said):
    result = cli("demo", source.format(tmp=tmp_path))
    assert result.exit_code == 2 and said.format(tmp=tmp_path) in result.output
    assert len(result.output.strip().splitlines()) == 1 and served == []


def test_a_busy_port_fails_in_one_line(served, run):
    import socket

    with socket.socket() as busy:
        busy.bind((demo.HOST, 0))
        busy.listen()
        result = cli("demo", run, "--port", busy.getsockname()[1])
    assert result.exit_code == 2 and "choose another --port" in result.output
    assert len(result.output.strip().splitlines()) == 1 and served == []


def test_the_cli_serves_the_run_page(served, run):
    result = cli("demo", run, "--device", "cpu", "--seed", 9)
    assert result.exit_code == 0, result.output
    [(blocks, port, share, _)] = served
    assert isinstance(blocks, gradio.Blocks) and 0 < port < 65536 and share is False
    assert blocks.title == f"textgan: {run}"


def test_without_gradio_the_command_says_how_to_install_it(served, run, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now fails
    result = cli("demo", run)
    assert result.exit_code == 2 and 'pip install "textgan[demo]"' in result.output
    assert len(result.output.strip().splitlines()) == 1 and served == []


def test_the_core_install_does_not_pull_gradio():
    requires = importlib.metadata.requires("textgan")
    gradio_pins = [r for r in requires if r.startswith("gradio")]
    assert gradio_pins and all('extra == "demo"' in r for r in gradio_pins)


def test_space_carries_the_page_modules_and_no_training_code(space_dir):
    package = space_dir / "textgan"
    copied = sorted(p.relative_to(space_dir).as_posix() for p in package.rglob("*.py"))
    expected = sorted({"textgan/__init__.py", *space.package_files()})
    assert copied == expected and "textgan/sharing/demo.py" in copied
    assert not [m for m in TRAINING_MODULES if (package / f"{m}.py").exists()]
    assert not (package / "metrics").exists() and not (package / "plots").exists()
    assert not (package / "training").exists() and not (package / "studies").exists()
    installed = space.module_file("textgan.generation.sampling").read_bytes()
    assert (package / "generation/sampling.py").read_bytes() == installed  # copied, not rewritten
    assert "__version__ = '0.1.0'" in (package / "__init__.py").read_text()


def test_space_files_declare_what_a_space_needs(space_dir, run):
    requirements = (space_dir / space.REQUIREMENTS).read_text().splitlines()
    pins = ["torch>=2.4", "numpy>=1.24", "safetensors>=0.4", f"gradio=={gradio.__version__}"]
    assert requirements == pins
    card = RepoCard.load(space_dir / hub.CARD)
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.sdk_version == gradio.__version__ and card.data.library_name == "textgan"
    assert "## Space" in card.text and f"textgan sample --model {SPACE_NAME} -n 10" in card.text
    assert f"space_blocks(Path(__file__).resolve().parent, {SPACE_NAME!r})" in (
        (space_dir / space.APP).read_text()
    )
    # Still a model folder: it samples as the run does.
    assert sample("--model", space_dir, "-n", 5) == sample("--run", run, "-n", 5)


def test_space_export_refuses_a_full_out_in_one_line(run, space_dir):
    result = cli("export", run, "--out", space_dir, "--space")
    assert result.exit_code == 2 and "already exists and is not empty" in result.output
    assert not list(space_dir.parent.glob(".tmp-*"))


def test_page_modules_import_only_what_the_space_installs():
    third_party = set()
    for module in space.page_modules():
        source = space.module_file(module).read_text()
        third_party |= set(re.findall(r"^(?:from|import) (\w+)", source, re.M))
    allowed = {"textgan", "__future__", "numpy", "torch"} | set(sys.stdlib_module_names)
    assert third_party - allowed == set()
    assert {"torch", "numpy"} <= third_party


@pytest.mark.parametrize("left_out", [None, "textgan/files/rundir.py", "textgan/corpus/rows.py"])
def test_the_space_folder_alone_imports_and_serves_its_page(space_dir, tmp_path, left_out):
    """A fresh, isolated Python (no PYTHONPATH, no current folder) with textgan only from a copy
    of the Space folder: its app.py loads and the page answers; a module left out fails it."""
    folder = tmp_path / "space"
    shutil.copytree(space_dir, folder)
    if left_out:
        (folder / left_out).unlink()
    script = tmp_path / "space_imports.py"
    script.write_text(SPACE_IMPORTS)
    done = subprocess.run(
        [sys.executable, "-I", str(script), str(folder)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},  # -I: PYTHONPATH ignored
    )
    if left_out:
        module = left_out.removesuffix(".py").replace("/", ".")
        assert done.returncode != 0
        assert f"ModuleNotFoundError: {module} is not in the Space folder" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["app"] == "Blocks"
    assert shown(result["samples"]) == sample("--model", space_dir, "-n", 5, "--seed", 3)
    copied = {
        p.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for p in space.package_files()
    }
    assert set(result["loaded"]) == copied  # every copied module is needed, and no other
    assert all(path.startswith(f"{folder}/textgan/") for path in result["loaded"].values())


def test_the_demo_docs_count_the_modules_a_space_carries():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "demo.md").read_text()
    said = re.search(r"What that copies today: (\d+) modules plus the generated", docs)
    assert int(said[1]) == len(space.package_files()) - 1  # less the generated __init__.py


def test_the_page_caches_what_it_derives_from_the_corpus_once(page, tmp_path):
    """ngrams.npz when the page opens, kn5-baseline.npz at the first baseline request (the
    files textgan score and textgan sample --baseline write); the corpus itself untouched."""
    prepared = page.evidence.prepared
    folder = tmp_path / prepared.path.name
    folder.mkdir()
    for name in ("train.npy", "heldout.npy", "vocab.json", "meta.json"):
        shutil.copy(prepared.path / name, folder / name)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    evidence = Evidence(load_prepared(folder))
    assert sorted(p.name for p in folder.iterdir()) == sorted([*before, "ngrams.npz"])
    fresh = demo.Page(page.source, evidence, "")
    ask(fresh, n=4)
    assert not (folder / "kn5-baseline.npz").exists()
    ask(fresh, n=4, baseline=True)
    fitted = (folder / "kn5-baseline.npz").stat().st_mtime_ns
    ask(fresh, n=5, seed="6", baseline=True)
    assert (folder / "kn5-baseline.npz").stat().st_mtime_ns == fitted
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name in before} == before
