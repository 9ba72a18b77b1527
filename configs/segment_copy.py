"""RMT's copy across segments (Bulatov et al., Recurrent Memory Transformer, NeurIPS 2022).

    ./launch.sh --config configs/segment_copy.py:ltmt            # LTM-T as RMT: 6 segments of 12
    ./launch.sh --config configs/segment_copy.py:ltmt --config.model.memory_mode=xl

Argument: a model (a name in ltmjax.models.MODELS; default lstm), `steps=<train steps>`,
`cpu` (the models of the other `cpu` configs: width 64, 2 layers; the task unchanged).
The published from-scratch setting (github.com/booydar/LM-RMT, `pytorch/run_copy.sh` and
`experiment_results/short_synthetic+MT.csv`): 10 symbols (ntokens 12 with the start and
padding tokens), copy of 24 tokens, the 72-token
sequence read as 6 segments of 12, 6 memory tokens; 4 layers, d_model 128, 4 heads,
d_inner 256. There RMT reaches accuracy 1.0 (4 seeds), Transformer-XL with a memory of 6
states 0.54 on average (memory 12: 0.97), a Transformer reading one segment at a time
0.10 and one reading all 72 tokens 1.0 (3 seeds); those runs
train with Adam at 1e-4, dropout 0.1 and batch 32 for 400k-900k steps on GPUs.
Here (without `cpu`) LTM-T (segment 12, 6 memory slots) and the Transformer have those sizes; the
Transformer reads all 72 tokens at once (an upper bound, not the published one-segment
baseline), memory_mode='xl' keeps the previous segment's 12 states (Transformer-XL with a
memory of 12, not 6). The recipe is CPU-sized: no dropout, learning rate 1e-3
(recurrent and residual families 3e-3), cosine schedule; the suite sets the steps.
"""
from ltmjax import config_lib


def get_config(arg=None):
  config_lib.check_arg(arg, config_lib.model_words() + ('cpu',), {'steps': int})
  model = config_lib.model_arg(arg)
  c = config_lib.base_config(model=model, task='segment_copy')
  c.task.length = 24
  c.task.vocab = 12   # 10 symbols, start and padding: the CSV's ntokens = 12
  if config_lib.has(arg, 'cpu'):   # half the published width and depth
    config_lib.set_model(c, recurrent=dict(hidden=64, embed_dim=16),
                         residual=config_lib.cpu_residual(),
                         attention=config_lib.cpu_attention(dropout=0.0))
  else:
    config_lib.set_model(c, recurrent=dict(hidden=128, embed_dim=32),
                         residual=dict(dim=128, layers=2),
                         attention=dict(dim=128, heads=4, layers=4, mlp_dim=256, dropout=0.0))
  config_lib.set_model(c, ltmt=dict(segment=12, memory_slots=6, remat=False))
  config_lib.set_model(c, transformer=dict(positions='learned'))
  config_lib.assign(c.opt, learning_rate=config_lib.by_family(
      model, recurrent=3e-3, residual=3e-3, attention=1e-3), warmup_steps=100)
  config_lib.assign(c.train, steps=2000, batch_size=32, eval_batch_size=256, eval_examples=1024,
                    eval_every=500, log_every=50)
  c.ckpt.every = 500
  c.train.steps = int(config_lib.arg_value(arg, 'steps', c.train.steps))
  return config_lib.lock(c)
