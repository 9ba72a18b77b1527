"""Sequential MNIST, permuted MNIST and Fashion-MNIST: 784 pixels, one per step, 10 classes.

    ./launch.sh --config configs/seq_mnist.py:lstm
    ./launch.sh --config configs/seq_mnist.py:lstm,permuted_mnist
    ./launch.sh --config configs/seq_mnist.py:gru,fashion_mnist,cpu     # minutes on a laptop CPU
    ./launch.sh --config configs/seq_mnist.py:gru,fashion_mnist,order=row,cpu   # sequential_images_cpu
    ./launch.sh --config configs/seq_mnist.py:transformer,task=mnist,order=row

Arg: a model (a name in ltmjax.models.MODELS), the dataset (mnist | permuted_mnist |
fashion_mnist, bare or as task=...; default mnist), `order=pixel|row`, `input=real|tokens`,
`cpu`. MNIST needs tfds `mnist` prepared once online, or --config.task.source=idx with
--config.task.data_dir=<folder of the original IDX files> (neither Debian nor PyPI ships an
installable copy of them); Fashion-MNIST reads Debian's `dataset-fashion-mnist` package
(`apt-get install dataset-fashion-mnist`: /usr/share/datasets/fashion-mnist) by default.

Pixel-by-pixel (T = 784) with real-valued intensities and a single recurrent layer is the
setting of Le et al. 2015 (IRNN; 100 units) and Arjovsky et al. 2016 (uRNN; LSTM
baseline with 128 units), where an LSTM reaches about 98% (MNIST) and 88-92% (permuted).
We train 128 units with Adam (1e-3, cosine), gradient clipping at 1, batch 100, for
60000 steps = 100 epochs.
"""
from ltmjax import config_lib

DATASETS = ('mnist', 'permuted_mnist', 'fashion_mnist')


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',) + DATASETS,
                       {'task': str, 'order': str, 'input': str})
  model = config_lib.model_arg(arg)
  named = [d for d in DATASETS if config_lib.has(arg, d)]
  task = config_lib.arg_value(arg, 'task', named[0] if named else 'mnist')
  c = config_lib.base_config(model=model, task=task)
  c.task.order = config_lib.arg_value(arg, 'order', 'pixel')
  c.task.input = config_lib.arg_value(arg, 'input', 'real')
  pixel = c.task.order == 'pixel'

  # embed_dim: used by input='tokens' only; LTM-T: 14 segments of 784 pixels, 4 of 28 rows.
  config_lib.set_model(c, recurrent=dict(hidden=128, embed_dim=32, pool='last'),
                       residual=dict(dim=64, layers=3, dropout=0.1),
                       attention=dict(dim=64, heads=4, layers=3, mlp_dim=128, dropout=0.1,
                                      positions='learned', pool='mean'),
                       ltmt=dict(segment=56 if pixel else 7, memory_slots=16))

  c.opt.learning_rate = 1e-3
  c.opt.warmup_steps = 500
  c.opt.clip_norm = 1.0
  # eval batches of 200: the 10000 test images in 50 full batches.
  config_lib.assign(c.train, steps=60_000, batch_size=100, eval_batch_size=200, eval_every=3000,
                    log_every=100)
  c.ckpt.every = 3000

  if config_lib.has(arg, 'cpu'):
    c.train.eval_examples = 1000
    config_lib.set_model(c, recurrent=dict(hidden=64), residual=dict(layers=2),
                         attention=dict(layers=2))
    c.opt.warmup_steps = 50
    # Row by row: the sequential_images_cpu suite's setting, 500 steps of batch 32 (16,000
    # images, a quarter of an epoch), the first 1,000 test images evaluated every 125 steps
    # (LTM-T took 0.32 s a step on the shared 2-core machine, LSTM 0.008 s).
    config_lib.assign(c.train, steps=300 if pixel else 500, batch_size=32, eval_batch_size=200,
                      eval_every=150 if pixel else 125, log_every=25)
    c.ckpt.every = 150 if pixel else 250
  return config_lib.lock(c)
