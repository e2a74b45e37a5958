"""Task pipelines: what a recipe runs, as importable steps.

One module per task family, each a config dataclass and a handful of small steps
(`load_data`, `build_model`, `compile_model`, `evaluate`, `model_card`, `export`)
that `run(config, workdir)` composes, and that a notebook can call one by one:

    image_classification.py   the CNN recipes (lenet ... resnet50)
    text_classification.py    rnn_intent, transformer_intent
    translation.py            seq2seq_attention, transformer_translate

What every task shares:

    fit.py             `model.fit` that resumes from checkpoints and never retrains a
                       finished run (the run is complete when its export is published)
    run_directory.py   the workdir: locked, its config on record, its phase
    steps.py           opening a run, disk-space check, optimizer, data checks
    config_fields.py   the shared config fields with their ranges and resume rules
    validation.py      every flag checked before any work starts
    command_line.py    a recipe's flags and exit statuses (`run_recipe`)

A new task family is a module here with the same steps; a new recipe is a config in
`kerasdl/recipes/` and an entry in its registry.
"""
