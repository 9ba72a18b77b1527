"""A trained run at other lengths (length generalisation): `python -m ltmjax.evaluate`.

    python -m ltmjax.evaluate --workdir runs/babilong_qa1 --lengths 1k,4k,16k,64k,1m --examples 64

Restores the parameters of the latest checkpoint in DIR, rebuilds the task from DIR's
config.json (or result.json's config) with only `task.length` changed, evaluates each
length and merges the rows into DIR/length_sweep.json (one row per length: a length
evaluated again is replaced, the others are kept) and prints the table.

Modes (`--mode`; 'auto' picks 'stream' where it can):
  stream  recurrent models (LSTM, GRU, LTM-T; `model.initial_carry`): each batch of examples
          is generated chunk by chunk (`task.example_chunks`) and fed to ONE compiled chunk
          call that takes and returns the carry; the last, shorter chunk is padded with a
          mask. Memory does not grow with length.
  full    the whole sequence in one call (the Transformer; any model). A length is
          'skipped' instead, with its reason, when it is over the model's positions (learned
          position table), when XLA's memory estimate of the compiled call is over
          --memory_cap_mb ('OOM'), or when the process is killed for memory: never truncated.

Peak memory: each length runs in a fresh process (`--in_process` runs them here), which
reports its resident-set high-water mark (VmHWM of /proc/self/status, reset through
/proc/self/clear_refs before the length where the kernel allows it; else ru_maxrss) as
`peak_rss_mb`, and `rss_before_mb`, the resident set once the model is built and restored.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from ltmjax import sweeps

SWEEP_FILE = sweeps.SWEEP_FILE
MODES = ('auto', 'stream', 'full')
_UNITS = {'': 1, 'k': 1024, 'm': 1024 ** 2}


class EvalError(Exception):
  """The evaluation cannot start; the one-line message says why and how to fix it."""
  exit_code = 2


def parse_lengths(text: str) -> List[int]:
  """'1k,4k,16K,1m,500' -> [1024, 4096, 16384, 1048576, 500] (k = 1024, m = 1024^2)."""
  out = []
  for word in str(text).split(','):
    m = re.fullmatch(r'\s*(\d+)\s*([kKmM]?)\s*', word)
    if not m or int(m.group(1)) < 1:
      raise EvalError(f'bad length {word!r} in --lengths: use positive numbers with an optional '
                      'k (x1024) or m (x1024^2), e.g. --lengths 1k,4k,16k,1m')
    out.append(int(m.group(1)) * _UNITS[m.group(2).lower()])
  return out


def read_config(workdir: str):
  """The run's config (a ConfigDict) from DIR/config.json, else DIR/result.json."""
  import ml_collections
  for name, pick in (('config.json', lambda d: d), ('result.json', lambda d: d.get('config'))):
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      try:
        with open(path) as f:
          config = pick(json.load(f))
      except (OSError, ValueError) as e:
        raise EvalError(f'{path} is unreadable ({e}); re-run the training there') from None
      if isinstance(config, dict) and all(isinstance(config.get(g), dict)
                                          for g in ('model', 'task', 'train')):
        return ml_collections.ConfigDict(config)
      raise EvalError(f'{path} holds no run config (model, task and train groups); point '
                      '--workdir at a run of python -m ltmjax.main')
  raise EvalError(f'no config.json or result.json in {workdir}: point --workdir at a run '
                  '(python -m ltmjax.main --config ... --workdir DIR)')


def _rss_mb(field: str = 'VmHWM') -> float:
  """This process's resident set (VmRSS) or its high-water mark (VmHWM), in MiB."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith(field + ':'):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
  """Resets VmHWM to the current resident set (Linux clear_refs '5'); False where refused."""
  try:
    with open('/proc/self/clear_refs', 'w') as f:
      f.write('5')
    return True
  except OSError:
    return False


class Run:
  """A trained run: its config, the model of its training length and the restored params."""

  def __init__(self, workdir: str):
    import jax
    from ltmjax import checkpoint, train
    self.workdir, self.config = workdir, read_config(workdir)
    if 'length' not in self.config.task:
      raise EvalError(f'task {self.config.task.name!r} has no task.length; length sweeps run on '
                      'tasks sized by task.length (babilong, passkey, ...)')
    self.trained_length = int(self.config.task.length)
    try:
      task, self.model = train.build(self.config)
    except ValueError as e:
      raise EvalError(str(e).splitlines()[0]) from None
    self.spec = task.spec
    abstract = jax.eval_shape(lambda k: train.init_params(self.model, self.spec, k),
                              jax.random.PRNGKey(0))
    try:
      self.params = checkpoint.restore_params(workdir, abstract)
    except (FileNotFoundError, ValueError) as e:
      raise EvalError(str(e).splitlines()[0]) from None

  def task_at(self, length: int, examples: int, batch: int):
    """The run's task with task.length = `length` (everything else as trained)."""
    from ltmjax import tasks
    cfg = self.config.task.copy_and_resolve_references()
    cfg.length = int(length)
    try:
      task = tasks.get(cfg.name)(cfg, seed=self.config.seed, batch_size=batch,
                                 eval_batch_size=batch, eval_examples=examples)
    except ValueError as e:
      raise EvalError(str(e).splitlines()[0]) from None
    if not hasattr(task, 'example'):
      raise EvalError(f'task {cfg.name!r} gives no eval example at a chosen length '
                      '(task.example); length sweeps run on haystack tasks (babilong, passkey)')
    if task.spec.num_outputs != self.spec.num_outputs or task.spec.output_kind != 'sequence':
      raise EvalError(f'task {cfg.name!r} at length {length} is not the trained task with another '
                      'length (its outputs differ); length sweeps need per-example answers')
    return task

  def stream_reason(self, task) -> Optional[str]:
    """Why this run cannot stream (None: it can)."""
    if not hasattr(self.model, 'initial_carry'):
      return f'{self.config.model.name} has no carry (it attends over the whole sequence)'
    if self.config.model.get('bidirectional') or self.config.model.get('implementation',
                                                                       'scan') != 'scan':
      return 'a bidirectional or cuDNN recurrent model takes no carry'
    if not hasattr(task, 'example_chunks'):
      return f'task {task.name!r} renders no example chunk by chunk'
    return None


# ----------------------------------------------------------------------------- the two modes

def _batches(task, examples: int, batch: int):
  """Example indices in whole batches of `batch` (examples rounded down, at least one batch)."""
  count = max(examples // batch, 1) * batch
  return [list(range(s, s + batch)) for s in range(0, count, batch)]


def _metrics_total(totals: Dict[str, float], metrics, rows: int) -> None:
  for k, v in metrics.items():
    totals[k] = totals.get(k, 0.0) + float(v) * rows


def evaluate_stream(run: Run, task, length: int, examples: int, batch: int, chunk: int):
  """Metrics of `examples` examples at `length`, streamed in chunks of `chunk` tokens."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from ltmjax.tasks import haystack
  block = int(run.model.stream_block)
  chunk = -(-chunk // block) * block
  variables = {'params': run.params}

  @jax.jit
  def chunk_step(params, carry, inputs_BxC, mask_BxC):
    return run.model.apply({'params': params}, inputs_BxC, mask_BxC, carry=carry,
                           return_carry=True)

  carry0 = run.model.apply(variables, batch, method='initial_carry')
  shapes = (jax.ShapeDtypeStruct((batch, chunk), jnp.int32),
            jax.ShapeDtypeStruct((batch, chunk), jnp.bool_))
  t0 = time.time()
  compiled = chunk_step.lower(run.params, carry0, *shapes).compile()
  compile_s = time.time() - t0
  loss_fn = jax.jit(task.loss_and_metrics)
  totals, rows, start = {}, 0, time.time()
  for indices in _batches(task, examples, batch):
    drawn = [task.example_chunks(i, length, chunk) for i in indices]
    streams, labels = [d[0] for d in drawn], np.stack([np.asarray(d[1]) for d in drawn])
    carry, out = carry0, None
    for n, parts in enumerate(zip(*streams)):
      got = len(parts[0])
      inputs = np.zeros((batch, chunk), np.int32)
      inputs[:, :got] = haystack.tokens(np.stack(parts))
      mask = np.zeros((batch, chunk), bool)
      mask[:, :got] = True
      out, carry = compiled(run.params, carry, inputs, mask)
      if n % 8 == 7:   # keep the host from queueing many chunks ahead of the device
        jax.block_until_ready(carry)
    _metrics_total(totals, loss_fn(out, {'targets': jnp.asarray(labels)})[1], len(indices))
    rows += len(indices)
  return {k: v / rows for k, v in totals.items()}, rows, time.time() - start, compile_s, chunk


def full_skip_reason(run: Run, task, length: int, batch: int, memory_cap_mb: float):
  """(reason or None, compiled eval step, compile seconds) of the full-sequence evaluation."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from ltmjax import train
  cfg = run.config.model
  if cfg.name == 'transformer' and cfg.get('positions') == 'learned' and length > run.spec.seq_len:
    return f'over its positions (a learned table of {run.spec.seq_len})', None, 0.0
  step = jax.jit(train.make_eval_step(run.model, run.spec, task.loss_and_metrics,
                                      run.config.train.dtype))
  label_shape = np.shape(task.example(0, length)[1])
  batch_shapes = {'inputs': jax.ShapeDtypeStruct((batch, length), jnp.int32),
                  'mask': jax.ShapeDtypeStruct((batch, length), jnp.bool_),
                  'targets': jax.ShapeDtypeStruct((batch,) + label_shape, jnp.int32)}
  t0 = time.time()
  try:
    compiled = step.lower(run.params, batch_shapes).compile()
  except Exception as e:  # pylint: disable=broad-except  (XLA's out-of-memory at compile time)
    return f'OOM (compiling: {str(e).splitlines()[0][:120]})', None, time.time() - t0
  compile_s = time.time() - t0
  mem = compiled.memory_analysis()
  need_mb = 0.0 if mem is None else (mem.temp_size_in_bytes + mem.argument_size_in_bytes
                                     + mem.output_size_in_bytes) / 2 ** 20
  if memory_cap_mb and need_mb > memory_cap_mb:
    return (f'OOM: needs ~{need_mb:.0f} MiB (XLA estimate) > --memory_cap_mb={memory_cap_mb:.0f}',
            None, compile_s)
  return None, compiled, compile_s


def evaluate_full(run: Run, task, compiled, length: int, examples: int, batch: int):
  """Metrics of `examples` examples at `length`, each whole sequence in one call."""
  import numpy as np
  from ltmjax.tasks import haystack
  totals, rows, start = {}, 0, time.time()
  for indices in _batches(task, examples, batch):
    drawn = [task.example(i, length) for i in indices]
    inputs = haystack.tokens(np.stack([d[0] for d in drawn]))
    batch_ = {'inputs': inputs, 'mask': np.ones(inputs.shape, bool),
              'targets': np.stack([np.asarray(d[1], np.int32) for d in drawn])}
    _metrics_total(totals, compiled(run.params, batch_), len(indices))
    rows += len(indices)
  return {k: v / rows for k, v in totals.items()}, rows, time.time() - start


def evaluate_length(run: Run, length: int, *, mode: str = 'auto', examples: int = 64,
                    batch: int = 8, chunk: int = 2048, memory_cap_mb: float = 4096.0,
                    max_tokens: int = 0) -> Dict[str, Any]:
  """One row of the sweep: {length, mode, reason?, metrics, accuracy, loss, examples,
  wall_s, compile_s, tokens_per_s, rss_before_mb, peak_rss_mb}. `max_tokens` > 0 caps the
  examples at this length to max_tokens // length (never fewer than one batch)."""
  if max_tokens > 0:
    examples = min(examples, max(max_tokens // length, min(batch, examples)))
  batch = max(min(batch, examples), 1)
  task = run.task_at(length, examples, batch)
  reason = run.stream_reason(task)
  if mode == 'stream' and reason:
    raise EvalError(f'--mode stream: {reason}; use --mode full or auto')
  use = 'stream' if mode == 'stream' or (mode == 'auto' and reason is None) else 'full'
  row = {'length': int(length), 'mode': use}
  reset = _reset_peak()
  row['rss_before_mb'] = round(_rss_mb('VmRSS'), 1)
  if use == 'stream':
    metrics, rows, wall, compile_s, row['chunk'] = evaluate_stream(run, task, length, examples,
                                                                   batch, chunk)
  else:
    skip, compiled, compile_s = full_skip_reason(run, task, length, batch, memory_cap_mb)
    if skip:
      row.update(mode='skipped', reason=skip, compile_s=round(compile_s, 2),
                 peak_rss_mb=round(_rss_mb(), 1))
      return row
    metrics, rows, wall = evaluate_full(run, task, compiled, length, examples, batch)
  row.update(metrics=metrics, accuracy=metrics.get('accuracy'), loss=metrics.get('loss'),
             examples=rows, wall_s=round(wall, 3), compile_s=round(compile_s, 2),
             tokens_per_s=round(rows * length / max(wall, 1e-9), 1),
             peak_rss_mb=round(_rss_mb(), 1),
             peak_rss_scope='this length' if reset else 'process so far (ru_maxrss)')
  return row


# ----------------------------------------------------------------------------- the sweep

def _child_row(workdir: str, length: int, options: Dict[str, Any]) -> Dict[str, Any]:
  """`evaluate_length` in a fresh process (its peak memory is this length's alone)."""
  cmd = [sys.executable, '-m', 'ltmjax.evaluate', '--workdir', workdir, '--lengths', str(length),
         '--one_length'] + [f'--{k}={v}' for k, v in options.items()]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  lines = proc.stdout.strip().splitlines()
  if proc.returncode == 0 and lines:
    return json.loads(lines[-1])
  err = (proc.stderr.strip().splitlines() or ['no output'])[-1]
  if proc.returncode in (-9, 137):   # SIGKILL: the kernel's out-of-memory killer
    return {'length': int(length), 'mode': 'skipped', 'reason': 'OOM (the process was killed)'}
  raise EvalError(f'length {length}: {err}')


def sweep(workdir: str, lengths: List[int], *, in_process: bool = False, **options):
  """Evaluates every length, merges the rows into DIR/length_sweep.json (a length evaluated
  before is replaced, the others are kept) and returns the file's content."""
  run = Run(workdir)   # checks the run before any subprocess starts
  if not in_process:
    run = None   # the parent holds no model while a child measures its memory
  rows = [evaluate_length(run, length, **options) if in_process
          else _child_row(workdir, length, options) for length in lengths]
  config = read_config(workdir)
  result = {'workdir': os.path.basename(os.path.abspath(workdir)), 'model': config.model.name,
            'task': config.task.name, 'trained_length': int(config.task.length),
            'options': options, 'fresh_process_per_length': not in_process,
            'peak_memory': 'peak_rss_mb: resident-set high-water mark (VmHWM) of the process '
                           'evaluating the length; rss_before_mb: its resident set once the '
                           'model is restored',
            'lengths': rows}
  return sweeps.write_sweep(workdir, result)   # merged with the lengths evaluated before


def main(argv: Optional[list] = None) -> int:
  """Command line; returns the exit code (2 with one line on stderr for bad input)."""
  import argparse

  class Parser(argparse.ArgumentParser):
    def error(self, message):
      raise EvalError(f'{message} (--help lists the flags)')

  p = Parser(prog='python -m ltmjax.evaluate', description=__doc__.splitlines()[0])
  p.add_argument('--workdir', required=True, help='the trained run (checkpoints/, config.json)')
  p.add_argument('--lengths', required=True, help='e.g. 1k,4k,16k,1m (k = 1024)')
  p.add_argument('--examples', type=int, default=64, help='eval examples per length')
  p.add_argument('--batch', type=int, default=8, help='examples per call')
  p.add_argument('--chunk', type=int, default=2048, help='tokens per streamed call')
  p.add_argument('--max_tokens', default='0',
                 help='token budget per length, e.g. 8m: at long lengths fewer examples '
                      '(max_tokens // length, at least one batch); 0 = no cap')
  p.add_argument('--mode', default='auto', choices=MODES)
  p.add_argument('--memory_cap_mb', type=float, default=4096.0,
                 help="full mode: skip a length ('OOM') when XLA's estimate of the compiled "
                      'call (arguments + outputs + temporaries) is above this')
  p.add_argument('--in_process', action='store_true',
                 help='evaluate all lengths in this process (faster; peak memory is then reset '
                      'per length through clear_refs where the kernel allows it)')
  p.add_argument('--one_length', action='store_true', help=argparse.SUPPRESS)
  try:
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    lengths = parse_lengths(args.lengths)
    try:
      max_tokens = 0 if str(args.max_tokens) == '0' else parse_lengths(args.max_tokens)[0]
    except EvalError:
      raise EvalError(f'bad --max_tokens {args.max_tokens!r}: use 0 or a number with an '
                      'optional k or m, e.g. --max_tokens 8m') from None
    if args.examples < 1 or args.batch < 1 or args.chunk < 1:
      raise EvalError('--examples, --batch and --chunk must be >= 1')
    if args.examples % args.batch:   # whole batches only: the rest would silently go unused
      raise EvalError(f'--examples {args.examples} is not a multiple of --batch {args.batch}: '
                      f'use --examples {args.examples // args.batch * args.batch or args.batch} '
                      f'or {(args.examples // args.batch + 1) * args.batch}')
    if not os.path.isdir(args.workdir):
      raise EvalError(f'--workdir {args.workdir} is not a folder: point it at a trained run')
    options = dict(mode=args.mode, examples=args.examples, batch=args.batch, chunk=args.chunk,
                   memory_cap_mb=args.memory_cap_mb, max_tokens=max_tokens)
    if args.one_length:
      print(json.dumps(evaluate_length(Run(args.workdir), lengths[0], **options)))
      return 0
    result = sweep(args.workdir, lengths, in_process=args.in_process, **options)
  except EvalError as e:
    print(f'error: {str(e).splitlines()[0]}', file=sys.stderr)
    return e.exit_code
  print(sweeps.format_sweep(result))
  print(f'wrote {os.path.join(args.workdir, SWEEP_FILE)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
