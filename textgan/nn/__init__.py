"""The networks and what constrains them: the registries of networks (``registry``: the paper's
generator and critic in ``networks``, the variants in ``windows``, ``attention`` and
``any_length``) and of losses (``losses``), the critic's Lipschitz constraints (``lipschitz``),
the fast exact critic step for the paper's critic (``fast``) and the memory a pair of networks
needs (``memory``). Knows nothing of data or runs."""
