"""The daily run (``propensity run``): pull -> validate -> build -> score -> publish -> retain
-> reload, each step a plain function of a :class:`serving.daily.steps.RunContext`, skipped
when its output for the date exists and is current (``serving.daily.manifest``), one run at a
time per data directory (``serving.daily.lock``). Orchestrators call the same functions
(docs/daily-run.md)."""
