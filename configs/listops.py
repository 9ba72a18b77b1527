"""LRA ListOps: the value (0-9) of a nested MIN/MAX/MED/SM expression, 500-2000 tokens.

    ./launch.sh --config configs/listops.py:transformer
    ./launch.sh --config configs/listops.py:lstm,cpu        # listops_cpu's setting: 20-100 tokens
    ./launch.sh --config configs/listops.py:ltmt

Arg: a model (a name in ltmjax.models.MODELS), `cpu`. The dataset (96k/2k/2k) is
generated locally into ~/tensorflow_datasets (or $TFDS_DATA_DIR) on first use
(`ltmjax.tasks.listops`; a few minutes on 2 cores); `cpu` generates a small, short version
(20-100 tokens, 10k expressions: the listops_cpu suite; not LRA's setting, and labelled so).
The Transformer follows LRA's lra_benchmarks/listops/configs/base_listops_config.py:
emb_dim 512, 8 heads, 6 layers, mlp_dim 2048, CLS pooling, batch 32, 5000 steps,
weight decay 0.1, 1000 warmup steps; LRA's schedule 0.05 * warmup * rsqrt_decay peaks
at 0.05 / sqrt(1000) = 1.6e-3, so we use AdamW (b2 = 0.98) with that peak and cosine decay.
Brackets: `task.brackets=keep` (default) feeds `]`, as the S4/S5 pipelines do;
`--config.task.brackets=drop` feeds LRA's released convention: its input pipeline splits
the text on \\W+ and loses every bracket (LRA issues #14, #20), which is probably what the
published LRA ListOps numbers (e.g. Transformer 36.37) were trained on.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',))
  model = config_lib.model_arg(arg)
  c = config_lib.base_config(model=model, task='listops')

  # Recurrent models pool the last real token (padding is masked); LTM-T: 20 segments of 100.
  config_lib.set_model(c, recurrent=dict(hidden=256, embed_dim=64, pool='last'),
                       residual=dict(dim=256, layers=6, dropout=0.1),
                       attention=dict(dim=512, heads=8, layers=6, mlp_dim=2048, dropout=0.1,
                                      pool='mean'),
                       transformer=dict(pool='cls'), ltmt=dict(segment=100, memory_slots=32))
  config_lib.assign(c.opt, learning_rate=1.6e-3, warmup_steps=1000, weight_decay=0.1, b2=0.98)
  config_lib.assign(c.train, steps=5000, batch_size=32, eval_batch_size=64, eval_every=500,
                    log_every=50)
  c.ckpt.every = 500

  if config_lib.has(arg, 'cpu'):
    # The listops_cpu suite's setting (not LRA's: a table labels it 'ListOps (20-100 tokens,
    # not LRA)'): LRA's generator rules (depth <= 10, 2-10 operands) at 20-100 tokens,
    # 10k/256/500 expressions (generated in about a minute, once), 200 steps of batch 32
    # (6,400 expressions), the 500 test expressions evaluated every 50 steps. Sized by
    # measurement: at 200 tokens mLSTM took 2.6 s a step on the shared 2-core machine.
    c.task.train_examples, c.task.val_examples, c.task.test_examples = 10_000, 256, 500
    c.task.min_length, c.task.max_length, c.task.seq_len = 20, 100, 100
    config_lib.set_model(c, recurrent=dict(hidden=64, embed_dim=32),
                         residual=config_lib.cpu_residual(dropout=0.0),
                         attention=config_lib.cpu_attention(),
                         ltmt=dict(segment=25, memory_slots=8))
    config_lib.assign(c.opt, learning_rate=1e-3, warmup_steps=20)
    config_lib.assign(c.train, steps=200, batch_size=32, eval_batch_size=100, eval_examples=0,
                      eval_every=50, log_every=25)
    c.ckpt.every = 100
  return config_lib.lock(c)
