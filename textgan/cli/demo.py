"""``textgan demo``: the demo page of a run, a checkpoint or an exported model, in the browser
(``textgan.sharing.demo``; Gradio is the optional extra ``demo``)."""

from __future__ import annotations

import click

from textgan.cli.base import main
from textgan.cli.options import seed_option


@main.command()
@click.argument("source")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Serve on this port of 127.0.0.1 [a free one]."
)
@click.option("--share", is_flag=True, help="Also a public link, through Gradio's share servers.")
@seed_option("The seed the page starts with.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N] | mps.")
@click.option(
    "--data-dir",
    default="data",
    show_default=True,
    help="Folder of corpus caches, for an exported model's corpus (a run names its own).",
)
def demo(source: str, port: int | None, share: bool, seed: int, device: str, data_dir: str) -> None:
    """Serve a page where anyone can generate samples of SOURCE (a run, a checkpoint, an
    exported model folder or a hub id) by argmax or a temperature, from the weight average or
    the raw generator, with unknown words marked, JS and known words beside their floors, the
    5-gram baseline beside them and a run's figures where its corpus is prepared here."""
    from textgan.sharing import demo as page

    page.import_gradio()  # the install hint before any loading
    if port is not None:
        page.check_port(port)
    opened = page.open_source(source, device)
    from textgan.sharing.evidence import Evidence, find_corpus, run_figures

    prepared, missing = find_corpus(opened.corpus, data_dir, opened.vocab)
    evidence = Evidence(prepared) if prepared is not None else None
    figures = run_figures(opened.run_dir) if opened.run_dir is not None else []
    blocks = page.build_blocks(page.Page(opened, evidence, missing, seed), figures)
    page.serve(blocks, port or page.free_port(), share, lambda line: click.echo(line))
