"""Stage 1, plan: what to run.
In: a preset TOML and the command line's --set overrides. Out: a checked grid of RunSpecs
(every knob known, every value allowed, every needed package present), before any work starts."""
