"""Independent PyTorch reference of the PixelRNN family (van den Oord et al. 2016).

Written from the paper (arXiv:1601.06759, sections 3-4), not from the Rust code. It trains the
zoo's weights and produces the reference logits the Rust tests compare against. Parameter names
equal the safetensors keys the zoo loads.
"""
