"""Efficiency benchmark in the style of Long Range Arena's Table 2: training speed and memory.

    python experiments/efficiency.py                       # every model, 1K..16K tokens
    python experiments/efficiency.py --models lstm,transformer --lengths 1024,4096 --batch 16
    python experiments/efficiency.py --render-only         # tables + figure from saved records

For each registered model (built from its registry default config, `--set key=value` to
change a key every model that has it) and each sequence length, on a synthetic
token-classification task (vocabulary 256, 10 classes): one jit-compiled training step
(forward, backward, Adam update), timed over `--steps` steps after `--warmup` steps with
`block_until_ready`, and its peak memory from the compiled step's `memory_analysis()`.
A length a model cannot run (out of memory) is recorded as such. Each measurement is a
record results/efficiency/<model>_<len>.json; existing records of the same batch size and
device are kept unless --force. Tables (steps/s relative to the Transformer at each
length, peak memory) go to table.md / table.csv and the figure to efficiency.png/.pdf.
"""
from __future__ import annotations

import argparse
import csv
import functools
import io
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ltmjax import figures, models, report, train
from ltmjax.tasks.base import TaskSpec, classification_metrics

VOCAB, CLASSES = 256, 10
REFERENCE = 'transformer'   # speeds and memory are shown relative to this model


def model_config(name: str, settings: Dict[str, str]) -> ml_collections.ConfigDict:
  """The registry default `model` group of `name`, with the `settings` keys it has."""
  cfg = dict(name=name, **models.get(name).default_config())
  for key, text in settings.items():
    if key in cfg:
      cfg[key] = type(cfg[key])(text) if not isinstance(cfg[key], bool) else text.lower() == 'true'
  return ml_collections.ConfigDict(cfg)


def _peak_bytes(stats) -> int:
  # XLA's buffer-assignment peak where the backend reports one (GPU); the CPU backend's
  # figure leaves out temporaries, so never report less than arguments + outputs + temps.
  total = (stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
           - stats.alias_size_in_bytes)
  return int(max(getattr(stats, 'peak_memory_in_bytes', 0) or 0, total))


def train_step(cfg: ml_collections.ConfigDict, seq_len: int, *, batch: int, seed: int = 0):
  """(step, state, data): the trainer's training step (`train.make_train_step`, Adam) of
  `cfg` on the synthetic task, its initial state and one fixed [batch, seq_len] batch."""
  spec = TaskSpec('tokens', VOCAB, 'sequence', CLASSES, seq_len)
  module = models.build(cfg, spec)
  k_init, k_x, k_y = jax.random.split(jax.random.PRNGKey(seed), 3)
  data = {'inputs': jax.random.randint(k_x, (batch, seq_len), 0, VOCAB, jnp.int32),
          'targets': jax.random.randint(k_y, (batch,), 0, CLASSES, jnp.int32)}
  tx = optax.adam(1e-3)
  state = jax.jit(functools.partial(train.init_state, module, spec, tx))(k_init)
  step = train.make_train_step(module, spec, lambda logits_BxC, b: classification_metrics(
      logits_BxC, b['targets']), tx)
  return step, state, data


def measure(cfg: ml_collections.ConfigDict, seq_len: int, *, batch: int, steps: int,
            warmup: int, seed: int = 0) -> Dict:
  """Steps/second and peak memory of training `cfg` on [batch, seq_len] token inputs.

  The step is the trainer's (`train.make_train_step`, Adam, fp32), jitted with the train
  state donated, on one fixed batch; step s draws its dropout from (seed, s).

  Returns:
    A record: steps_per_second, step_time_ms, peak_memory_bytes, memory_analysis,
    num_params, final_loss.
  """
  step, state, data = train_step(cfg, seq_len, batch=batch, seed=seed)
  compiled = jax.jit(step, donate_argnums=0).lower(state, data).compile()
  stats = compiled.memory_analysis()
  num_params = sum(int(p.size) for p in jax.tree.leaves(state['params']))
  for _ in range(warmup):
    state, metrics = compiled(state, data)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, data)
  jax.block_until_ready(state)
  seconds = time.perf_counter() - start
  fields = ('argument_size_in_bytes', 'output_size_in_bytes', 'temp_size_in_bytes',
            'alias_size_in_bytes', 'generated_code_size_in_bytes', 'peak_memory_in_bytes')
  return {'steps_per_second': steps / seconds, 'step_time_ms': 1000 * seconds / steps,
          'peak_memory_bytes': _peak_bytes(stats),
          'memory_analysis': {f: int(getattr(stats, f, 0) or 0) for f in fields},
          'num_params': num_params, 'final_loss': float(metrics['loss'])}


def benchmark(name: str, seq_len: int, *, batch: int, steps: int, warmup: int,
              settings: Optional[Dict[str, str]] = None) -> Dict:
  """A result.json-style record of one (model, length); failures are recorded, not raised."""
  cfg = model_config(name, settings or {})
  record = {'model': name, 'model_label': models.label(cfg), 'seq_len': seq_len,
            'batch_size': batch, 'steps': steps, 'warmup': warmup, 'config': cfg.to_dict(),
            'device': jax.devices()[0].platform, 'device_kind': jax.devices()[0].device_kind,
            'num_devices': 1, 'jax_version': jax.__version__, 'git_revision': train.git_revision()}
  try:
    record.update(measure(cfg, seq_len, batch=batch, steps=steps, warmup=warmup))
    record['status'] = 'complete'
  except Exception as e:  # noqa: BLE001  (a model that cannot run a length is a result)
    text = f'{type(e).__name__}: {e}'
    oom = any(s in text for s in ('RESOURCE_EXHAUSTED', 'Out of memory', 'out of memory', 'OOM'))
    record.update(status='oom' if oom else 'error', error=text.strip().splitlines()[0][:500])
  return record


def length_name(n: int) -> str:
  return f'{n // 1024}K' if n % 1024 == 0 else str(n)


def load_records(out_dir: str) -> List[Dict]:
  records = []
  if os.path.isdir(out_dir):
    for name in sorted(os.listdir(out_dir)):
      if name.endswith('.json'):
        with open(os.path.join(out_dir, name)) as f:
          records.append(json.load(f))
  for r in records:   # rows in model-registry order (figures.models_in_order reads this)
    r.setdefault('model_order', list(models.MODELS).index(r['model']))
  return records


def _cells(records: List[Dict]):
  """model labels in table order, lengths, and (label, length) -> record."""
  labels = figures.models_in_order(records)
  lengths = sorted({r['seq_len'] for r in records})
  return labels, lengths, {(r['model_label'], r['seq_len']): r for r in records}


def _reference(records, length, field):
  ref = [r for r in records if r['model'] == REFERENCE and r['seq_len'] == length
         and r.get('status') == 'complete']
  return ref[0][field] if ref else None


def render_md(records: List[Dict]) -> str:
  """Two tables: training steps/second and peak memory, each relative to the Transformer."""
  labels, lengths, by_key = _cells(records)
  device = sorted({f'{r.get("device_kind", r["device"])}' for r in records})
  batch = sorted({r['batch_size'] for r in records})
  out = []
  for title, field, fmt in (('Training steps per second', 'steps_per_second', '{:.2f}'),
                            ('Peak memory (MiB)', 'peak_memory_bytes', '{:.1f}')):
    out += [f'{title} (relative to the Transformer), batch {", ".join(map(str, batch))} '
            f'on {", ".join(device)}:', '',
            '| Model | ' + ' | '.join(length_name(n) for n in lengths) + ' |',
            '|---|' + '---:|' * len(lengths)]
    for label in labels:
      cells = []
      for n in lengths:
        r = by_key.get((label, n))
        if r is None:
          cells.append(report.MISSING)
        elif r.get('status') != 'complete':
          cells.append('OOM' if r.get('status') == 'oom' else 'error')
        else:
          value = r[field] / (2 ** 20 if field == 'peak_memory_bytes' else 1)
          ref = _reference(records, n, field)
          rel = f' ({r[field] / ref:.2f}×)' if ref else ''
          cells.append(fmt.format(value) + rel)
      out.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    out.append('')
  return '\n'.join(out)


def render_csv(records: List[Dict]) -> str:
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(['model', 'seq_len', 'batch_size', 'status', 'steps_per_second',
                   'relative_speed', 'peak_memory_bytes', 'relative_memory', 'device'])
  labels, lengths, by_key = _cells(records)
  for label in labels:
    for n in lengths:
      r = by_key.get((label, n))
      if r is None:
        continue
      row = [label, n, r['batch_size'], r['status']]
      for field in ('steps_per_second', 'peak_memory_bytes'):
        ref = _reference(records, n, field)
        value = r.get(field) if r['status'] == 'complete' else None
        row += ['' if value is None else f'{value:.6g}',
                '' if value is None or not ref else f'{value / ref:.4g}']
      writer.writerow(row + [r.get('device_kind', r['device'])])
  return out.getvalue()


def render(out_dir: str) -> str:
  """Writes table.md, table.csv and efficiency.{png,pdf} from the records in `out_dir`."""
  records = load_records(out_dir)
  if not records:
    return f'no efficiency records in {out_dir}\n'
  text = render_md(records)
  with open(os.path.join(out_dir, 'table.md'), 'w') as f:
    f.write(text)
  with open(os.path.join(out_dir, 'table.csv'), 'w') as f:
    f.write(render_csv(records))
  figures.efficiency_figure(records, os.path.join(out_dir, 'efficiency'))
  return text


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default=','.join(models.MODELS),
                      help='comma-separated model names')
  parser.add_argument('--lengths', default='1024,2048,4096,8192,16384')
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--steps', type=int, default=10, help='timed steps')
  parser.add_argument('--warmup', type=int, default=2, help='untimed steps after compiling')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='model config key for every model that has it, e.g. --set dim=256')
  parser.add_argument('--out', default=os.path.join('results', 'efficiency'))
  parser.add_argument('--force', action='store_true', help='measure again over existing records')
  parser.add_argument('--render-only', action='store_true')
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  if not args.render_only:
    names = [m for m in args.models.split(',') if m]
    for name in names:
      models.get(name)   # unknown names fail before anything runs
    settings = dict(s.split('=', 1) for s in args.set)
    device = jax.devices()[0].platform
    for name in names:
      for n in [int(v) for v in args.lengths.split(',')]:
        path = os.path.join(args.out, f'{name}_{n}.json')
        if not args.force and os.path.exists(path):
          with open(path) as f:
            old = json.load(f)
          if old.get('batch_size') == args.batch and old.get('device') == device:
            print(f'{name:<12} {length_name(n):>5}  kept {path}')
            continue
        record = benchmark(name, n, batch=args.batch, steps=args.steps, warmup=args.warmup,
                           settings=settings)
        with open(path, 'w') as f:
          json.dump(record, f, indent=2, sort_keys=True)
        if record['status'] == 'complete':
          print(f'{name:<12} {length_name(n):>5}  {record["steps_per_second"]:8.2f} steps/s  '
                f'{record["peak_memory_bytes"] / 2 ** 20:9.1f} MiB', flush=True)
        else:
          print(f'{name:<12} {length_name(n):>5}  {record["status"]}: {record["error"][:100]}',
                flush=True)
  print(render(args.out))
  return 0


if __name__ == '__main__':
  sys.exit(main())
