"""rnnspec backends that wrap the frameworks' own RNN layers, differentiated by each framework's
autodiff (see README.md):

- ``torch_nn_rnn`` (``rnnspec_layers.torch_rnn``): ``torch.nn.RNN`` + ``nn.Linear``, torch.autograd;
- ``keras_jax``, ``keras_torch``, ``keras_tensorflow`` (``rnnspec_layers.keras_rnn``):
  ``keras.layers.SimpleRNN`` + ``Dense`` on each Keras 3 backend, that backend's autodiff;
- ``flax_linen`` (``rnnspec_layers.flax_rnn``): ``nn.RNN(nn.SimpleCell)`` + ``nn.Dense``, jax.grad;
- the witnesses of compiled paths (README.md, "Compiled paths"): ``torch_func``,
  ``torch_scan_closed_over``, ``torch_scan_carried``, ``torch_compile_loop``,
  ``torch_compile_nn_rnn`` (``rnnspec_layers.torch_compiled``), ``tf_xla_scan``
  (``rnnspec_layers.tensorflow_xla``), ``keras_tensorflow_xla`` (``rnnspec_layers.keras_rnn``),
  ``jax_scan_checkpoint``, ``jax_scan_unroll`` (``rnnspec_layers.jax_loops``), ``mlx_compile``
  (``rnnspec_layers.mlx_compiled``).

Each implements the ``rnnspec.spec.Backend`` protocol 2.0 directly and imports nothing of rnnspec
but ``rnnspec.spec``. Importing this package imports no framework: each module imports its own,
and the Keras factories import Keras, which picks its backend once per process.
"""
