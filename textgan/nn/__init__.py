"""The networks and what constrains them: the paper's generator and critic (``networks``), the
critic's Lipschitz constraints (``lipschitz``), the fast exact critic step for the paper's critic
(``fast``) and the memory a pair of networks needs (``memory``). Knows nothing of data or runs."""
