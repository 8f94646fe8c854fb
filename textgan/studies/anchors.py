"""Published curves of this task to draw beside a study's own: JS-4 against wall-clock hours.

They were read off another project's figure on another machine, so they are marks to aim at,
not measurements of this code: the figure labels them with where they come from.
"""

from __future__ import annotations

from dataclasses import dataclass

from textgan.errors import UserError


@dataclass(frozen=True)
class Anchor:
    """Curves of one published figure: label → ((hours, JS-4), …), and where they come from."""

    source: str
    curves: dict[str, tuple[tuple[float, float], ...]]


ANCHORS: dict[str, Anchor] = {
    # The TTUR repository's Results/figures/lang_jsd4.pdf (Heusel et al. 2017): the paper-size
    # model on a 2017 GPU, JS-4 of its smoothed curves read off the plot (±0.01).
    "ttur-2017": Anchor(
        source="read off TTUR's lang_jsd4 plot, paper model on their 2017 GPU",
        curves={
            "WGAN-GP (original recipe)": ((3, 0.488), (5, 0.461), (10, 0.427), (20, 0.400)),
            "WGAN-GP (TTUR recipe)": ((3, 0.471), (5, 0.437), (10, 0.403), (20, 0.384)),
        },
    ),
}


def check_anchors(names: list[str]) -> None:
    """One line naming the known figures when a name is not one of them."""
    unknown = [name for name in names if name not in ANCHORS]
    if unknown:
        raise UserError(
            f"no published curves called {', '.join(unknown)}; known: {', '.join(ANCHORS)}"
        )
