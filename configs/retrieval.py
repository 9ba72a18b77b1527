"""LRA Retrieval: byte-level AAN citation matching, two documents of 4000 bytes, 2 classes.

    ./launch.sh --config configs/retrieval.py:transformer
    ./launch.sh --config configs/retrieval.py:lstm,cpu     # a few minutes on a laptop CPU

Arg: a model (a name in ltmjax.models.MODELS), `cpu`, `T=<bytes per document>`.
Needs the user's copy of LRA's tsv_data/new_aan_pairs.{train,eval,test}.tsv in
task.manual_dir (default <tfds data_dir>/downloads/manual/lra_aan); the first run turns
them into an array_record tfds dataset. Each document is encoded by the same model and
the two features are combined by the dual-encoder head (a pair task). The Transformer
follows LRA's lra_benchmarks/matching/configs/base_match_config.py: emb_dim 128, 4 heads,
4 layers, mlp_dim 512, CLS pooling, batch 32, 5000 steps, weight decay 0.1, Adam
b2 = 0.98. LRA's warmup (8000 steps) is longer than its run, so its learning rate only
climbs to 0.05 * 5000/8000 / sqrt(8000) = 3.5e-4; we use AdamW with a 5e-4 peak after 500
warmup steps and cosine decay.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',), {'T': int})
  model = config_lib.model_arg(arg)
  c = config_lib.base_config(model=model, task='retrieval')
  c.task.seq_len = int(config_lib.arg_value(arg, 'T', 4000))

  # Recurrent models pool the last real byte (padding is masked); LTM-T: 20 segments of 200.
  config_lib.set_model(c, recurrent=dict(hidden=128, embed_dim=64, pool='last'),
                       residual=dict(dim=128, layers=6, dropout=0.1),
                       attention=dict(dim=128, heads=4, layers=4, mlp_dim=512, dropout=0.1,
                                      pool='mean'),
                       transformer=dict(pool='cls'), ltmt=dict(segment=200, memory_slots=32))
  config_lib.assign(c.opt, learning_rate=5e-4, warmup_steps=500, weight_decay=0.1, b2=0.98)
  config_lib.assign(c.train, steps=5000, batch_size=32, eval_batch_size=64, eval_every=500,
                    log_every=50)
  c.ckpt.every = 500

  if config_lib.has(arg, 'cpu'):
    c.task.seq_len = int(config_lib.arg_value(arg, 'T', 512))
    c.train.eval_examples = 256
    config_lib.set_model(c, recurrent=dict(hidden=64, embed_dim=32),
                         residual=config_lib.cpu_residual(dropout=0.0),
                         attention=config_lib.cpu_attention(),
                         ltmt=dict(segment=64, memory_slots=8))
    c.opt.warmup_steps = 50
    config_lib.assign(c.train, steps=300, batch_size=16, eval_batch_size=32, eval_every=150,
                      log_every=25)
    c.ckpt.every = 150
  return config_lib.lock(c)
