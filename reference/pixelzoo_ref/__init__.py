"""Independent PyTorch reference of the PixelRNN family (van den Oord et al. 2016).

Written from the paper (arXiv:1601.06759, sections 3-4), not from the Rust code. It trains the
zoo's weights and produces the reference logits the Rust tests compare against. Parameter names
equal the safetensors keys the zoo loads.

The package:

- nets/: the networks, `nets.build(config)`, and their weights files (`nets.load`, `nets.save`);
- config.py: the config of a network and the train.py arguments that set it; presets.py: named
  configs (the paper's sizes, the shipped models');
- training.py: the training step, the weights' moving average, the learning-rate schedules;
- data.py: the data sets; curves.py: the training curves' CSV files; repo.py: the repository's
  paths and weights-manifest.toml;
- the commands, each run as `python -m pixelzoo_ref.NAME` in reference/ (or with it on
  PYTHONPATH): train, train_gpu, export_run, update_manifest, presets, fixtures, publish,
  plot_curves, trend, bench_train, bench_forward, bench_compare.
"""
