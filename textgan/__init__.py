"""textgan: character-level text GANs (WGAN-GP, Gulrajani et al. 2017) as a toolkit."""

__version__ = "0.1.0"
