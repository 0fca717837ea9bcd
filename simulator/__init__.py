"""The synthetic world: a simulated B2B SaaS book of accounts, and the oracle of its true odds.

Not part of the product. It fakes the raw export that a real CRM would deliver (through the same
contract ``features`` validates) so the demo, the benchmarks and the tests have data, and it
writes beside it the truth a model could at best know. It imports only what it writes for
(``features.contract``, ``features.catalogue``, ``features.terms``); no module of ``features``,
``training`` or ``serving`` imports it (tests/test_layers.py). The ``propensity`` composition root
wires it in: ``propensity data generate`` and the demo, and the oracle as training's optional
reference-probability provider.
"""
