"""What an LTM-T run's memory holds: `python -m ltmjax.diagnose --workdir RUN`.

    python -m ltmjax.diagnose --workdir runs/memory_cpu/passkey_ltmt/seed0 --length 16k
                              [--examples 64] [--batch 8] [--probe_examples 4] [--out FILE]

For a trained LTM-T run on a haystack task (passkey, babilong), at one evaluation length:
  accuracy by needle distance   the examples binned by how many segments before the end
                                the needle (the first inserted piece: the passkey, or the
                                story's first fact) starts: bins 0-3, 4-15, 16-63, ... segments;
  memory per segment            the RMS of the written memory (slots; and A in 'associative'
                                mode) and the write gates (forget/input gate means, the share
                                of forget gates above 0.95; the associative write gate), per
                                layer and segment, averaged over the probe examples;
  gradient depth                ||dL/d memory|| for the memory carried out of the segment d
                                before the end (d = 0, 1, 2, 4, 8, ...), over the probe
                                examples: how far back BPTT's signal reaches;
  key sensitivity               the probe examples again with the key changed (the needle's
                                first digit, else the first letter of its last word) and,
                                as a control, one filler byte next to the needle changed: the
                                relative difference of each layer's memory (slots in 'gated'
                                mode, A in 'associative') from the unchanged run's,
                                ||M' - M|| / ||M||, by segments since the one holding the
                                changed key byte.
A memory that keeps the key shows a key difference that stays well above the filler one; a
memory that drifts out of its trained range shows an RMS that grows with the segment index
(issue 20 found both: the key kept 31 segments on, the RMS 0.6 -> 4.5 over 64 segments).
Writes RUN/diagnose.json (or --out) and the figure next to it (.png and .pdf).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

import numpy as np

from ltmjax import evaluate

FILE = 'diagnose.json'


def distance_bins(segments: int) -> List[tuple]:
  """[(lo, hi)] segment-distance bins 0-3, 4-15, 16-63, ... covering 0 .. segments-1."""
  bins, lo, hi = [], 0, 3
  while lo < segments:
    bins.append((lo, min(hi, segments - 1)))
    lo, hi = hi + 1, 4 * (hi + 1) - 1
  return bins


def _changed(byte: int) -> int:
  """Another byte of the same kind: digit -> next digit, letter -> next letter, else 'x'."""
  for first, count in ((48, 10), (97, 26), (65, 26)):
    if first <= byte < first + count:
      return first + (byte - first + 1) % count
  return ord('x')


def variants(hay, data_T: np.ndarray):
  """(key-changed bytes, filler-changed bytes, the key byte's position) of one example."""
  starts = hay.piece_starts()
  start, piece = int(starts[0]), hay.pieces[0]
  digits = [i for i, b in enumerate(piece) if 48 <= b < 58]
  if digits:
    at = start + digits[0]
  else:
    word = piece.rstrip(b'. ').rfind(b' ') + 1
    at = start + word
  key = data_T.copy()
  key[at] = _changed(int(key[at]))
  # A filler byte just before the needle (just after it when the needle opens the example).
  spot = start - 2 if start >= 2 else start + len(piece) + 1
  filler = data_T.copy()
  filler[spot] = _changed(int(filler[spot]))
  return key, filler, at


class Probe:
  """The run's model whole-sequence (logits and the cell's segment inputs) and its cell
  segment by segment (carries and statistics), each compiled once."""

  def __init__(self, run: evaluate.Run):
    import jax
    self.run, self.model = run, run.model
    if run.config.model.name != 'ltmt' or run.config.model.memory_mode == 'xl':
      raise evaluate.EvalError(f'ltmjax.diagnose reads the written memory of LTM-T (gated or '
                               f'associative); this run is {run.config.model.name} '
                               f"(memory_mode={run.config.model.get('memory_mode')})")
    self.assoc = run.config.model.memory_mode == 'associative'
    cell = self.model.cell()

    def forward(params, tokens_BxT):
      out, state = self.model.apply({'params': params}, tokens_BxT, mutable=['intermediates'])
      return out, state['intermediates']['segment_inputs'][0]

    def segment(params, carry, x_BxSxD, mask_BxS):
      return cell.step(params['ltmt'], carry, {'x': x_BxSxD, 'mask': mask_BxS}, with_stats=True)

    self.forward, self.segment = jax.jit(forward), jax.jit(segment)
    self.carry_grad = None
    self.initial = lambda batch: cell.initial_carry(run.params['ltmt'], (batch,))

  def memories(self, tokens_BxT, keep_carries: bool = False):
    """(memory per segment [G, B, L, ...] (slots, or A), stats name -> [G, B, L]), and with
    `keep_carries` the cell's carry after each segment (a list of G)."""
    _, (x_BxGxSxD, mask_BxGxS) = self.forward(self.run.params, tokens_BxT)
    carry = self.initial(tokens_BxT.shape[0])
    held, stats, carries = [], {}, []
    for g in range(x_BxGxSxD.shape[1]):
      carry, _, st = self.segment(self.run.params, carry, x_BxGxSxD[:, g], mask_BxGxS[:, g])
      held.append(np.asarray(carry['assoc' if self.assoc else 'memory']))
      if keep_carries:
        carries.append(carry)
      for name, v in st.items():
        stats.setdefault(name, []).append(np.asarray(v))
    out = np.stack(held), {k: np.stack(v) for k, v in stats.items()}
    return out + (carries,) if keep_carries else out

  def gradient_depth(self, task, tokens_BxT, labels_B, carries, segments_before_end):
    """||dL/d carry|| per layer [len(segments_before_end), B, L]: the gradient of the final
    loss with respect to the memory carried out of segment G-1-d (d segments before the end;
    every carried tensor: the slots, and A in 'associative' mode), i.e. how far back BPTT
    reaches."""
    import jax
    if self.carry_grad is None:
      def loss_after(params, cell_carry, tokens_BxT, keep_BxT, labels_B):
        # The final loss as a function of the memory carried into the unmasked tokens: the
        # masked prefix leaves the carry as it is (padded steps never write), so one compiled
        # function serves every segment.
        logits, _ = self.model.apply({'params': params}, tokens_BxT, keep_BxT,
                                     carry={'cell': cell_carry}, return_carry=True)
        return task.loss_and_metrics(logits, {'targets': labels_B})[0]
      self.carry_grad = jax.jit(jax.grad(loss_after, argnums=1))
    seg, (batch, length) = int(self.model.segment), tokens_BxT.shape
    out = []
    for d in segments_before_end:
      g = len(carries) - 1 - d
      keep_BxT = np.broadcast_to(np.arange(length) >= (g + 1) * seg, (batch, length))
      grads = self.carry_grad(self.run.params, carries[g], tokens_BxT, keep_BxT, labels_B)
      squares = [np.square(np.asarray(v, np.float64)).reshape(batch, v.shape[1], -1).sum(-1)
                 for v in grads.values()]
      out.append(np.sqrt(sum(squares)))
    return np.stack(out)


def depths(segments: int) -> List[int]:
  """Segments before the end probed for the gradient: 0, 1, 2, 4, 8, ... < segments."""
  return [0] + [2 ** k for k in range(segments.bit_length()) if 2 ** k < segments]


def _to_nearest(grad_DxL):
  """Each layer's gradient norms over its first non-zero one (the nearest segment whose
  memory the loss depends on: pool='memory' reads only the last layer at d = 0)."""
  out = np.full(grad_DxL.shape, np.nan)
  for layer in range(grad_DxL.shape[1]):
    nonzero = np.flatnonzero(grad_DxL[:, layer] > 0)
    if nonzero.size:
      first = nonzero[0]
      out[first:, layer] = grad_DxL[first:, layer] / grad_DxL[first, layer]
  return out


def _relative(a_GxBxLx, b_GxBxLx):
  """||a - b|| / ||b|| per segment, row and layer: [G, B, L]."""
  axes = tuple(range(3, a_GxBxLx.ndim))
  return (np.sqrt(((a_GxBxLx - b_GxBxLx) ** 2).sum(axes))
          / np.maximum(np.sqrt((b_GxBxLx ** 2).sum(axes)), 1e-12))


def diagnose(run: evaluate.Run, length: int, *, examples: int = 64, batch: int = 8,
             probe_examples: int = 4) -> Dict[str, Any]:
  """The diagnostics of `run` at `length` (module docstring) as a JSON-ready dict."""
  import jax
  import jax.numpy as jnp
  from ltmjax.tasks import haystack
  probe = Probe(run)
  seg = int(run.model.segment)
  segments = -(-length // seg)
  task = run.task_at(length, examples, batch)
  loss_fn = jax.jit(task.loss_and_metrics)
  distance, correct = [], []
  rms, since, key_diff, filler_diff = None, [], [], []
  grad = before_end = None
  for indices in evaluate._batches(task, examples, batch):  # pylint: disable=protected-access
    drawn = [task._eval_draw(i, length) for i in indices]    # pylint: disable=protected-access
    data = np.stack([hay.render() for hay, _ in drawn])
    labels = np.asarray([label for _, label in drawn], np.int32)
    logits, _ = probe.forward(run.params, haystack.tokens(data))
    for r, (hay, _) in enumerate(drawn):
      distance.append(segments - 1 - int(hay.piece_starts()[0]) // seg)
      metrics = loss_fn(logits[r:r + 1], {'targets': jnp.asarray(labels[r:r + 1])})[1]
      correct.append(float(metrics['accuracy']))
    if rms is None:   # the probe: the first `probe_examples` examples of the first batch
      rows = drawn[:probe_examples]
      base = data[:len(rows)]
      pairs = [variants(hay, base[r]) for r, (hay, _) in enumerate(rows)]
      held, stats, carries = probe.memories(haystack.tokens(base), keep_carries=True)
      before_end = depths(segments)
      grad = probe.gradient_depth(task, haystack.tokens(base), jnp.asarray(labels[:len(rows)]),
                                  carries, before_end).mean(1)   # [depths, L]
      del carries
      held_key, _ = probe.memories(haystack.tokens(np.stack([p[0] for p in pairs])))
      held_filler, _ = probe.memories(haystack.tokens(np.stack([p[1] for p in pairs])))
      rel_key, rel_filler = _relative(held_key, held), _relative(held_filler, held)
      rms = {k: v.mean(1).tolist() for k, v in stats.items()}   # [G, L] each
      for r in range(len(rows)):
        first = pairs[r][2] // seg   # the segment of the changed key byte
        since.append(segments - first)
        key_diff.append(rel_key[first:, r])
        filler_diff.append(rel_filler[first:, r])
  span = max(since)
  mean_since = lambda diffs: [np.mean([d[k] for d in diffs if k < len(d)], axis=0).tolist()
                              for k in range(span)]
  distance, correct = np.asarray(distance), np.asarray(correct)
  bins = []
  for lo, hi in distance_bins(segments):
    hit = (distance >= lo) & (distance <= hi)
    bins.append({'segments_from_end': [lo, hi], 'examples': int(hit.sum()),
                 'accuracy': float(correct[hit].mean()) if hit.any() else None})
  cfg = run.config.model
  return {'workdir': os.path.basename(os.path.abspath(run.workdir or '.')),
          'task': run.config.task.name, 'trained_length': run.trained_length,
          'length': int(length), 'segment': seg, 'segments': segments,
          'memory_mode': cfg.memory_mode, 'memory_norm': cfg.get('memory_norm', 'none'),
          'examples': int(len(correct)), 'accuracy': float(correct.mean()),
          'accuracy_by_distance': bins,
          'per_segment': {'examples': len(since), 'layout': '[segment][layer]', **rms},
          'key_sensitivity': {
              'examples': len(since), 'measure': '||M_changed - M|| / ||M|| per layer',
              'memory': 'A (associative matrix)' if probe.assoc else 'slots',
              'segments_since_needle': list(range(span)),
              'key_changed': mean_since(key_diff), 'filler_byte_changed': mean_since(filler_diff)},
          'gradient_depth': {
              'examples': len(since),
              'measure': '||dL/d carry|| per layer, the carry out of the segment d before the end',
              'segments_before_end': before_end, 'grad_norm': grad.tolist(),
              'ratio_to_nearest': [[None if np.isnan(v) else float(v) for v in row]
                                   for row in _to_nearest(grad)]}}


def figure(result: Dict[str, Any], stem: str) -> List[str]:
  """One figure of four panels (accuracy by distance, memory per segment, key sensitivity,
  gradient depth) written as STEM.png and STEM.pdf; returns the paths."""
  from matplotlib.figure import Figure
  from ltmjax import figures
  fig = Figure(figsize=(21, 4.4), layout='constrained')
  ax_acc, ax_rms, ax_key, ax_grad = fig.subplots(1, 4)
  bins = [b for b in result['accuracy_by_distance'] if b['accuracy'] is not None]
  ax_acc.bar(range(len(bins)), [100 * b['accuracy'] for b in bins])
  ax_acc.set_xticks(range(len(bins)),
                    [f"{b['segments_from_end'][0]}-{b['segments_from_end'][1]}" for b in bins])
  ax_acc.set_xlabel('needle distance from the end (segments)')
  ax_acc.set_ylabel('accuracy (%)')
  ax_acc.set_title(f"accuracy at {result['length']} bytes (n={result['examples']})")
  per = result['per_segment']
  rms = np.asarray(per['memory_rms'])
  for layer in range(rms.shape[1]):
    ax_rms.plot(rms[:, layer], label=f'memory RMS, layer {layer}')
  gate = 'forget_mean' if 'forget_mean' in per else 'write_gate_mean'
  for layer in range(rms.shape[1]):
    ax_rms.plot(np.asarray(per[gate])[:, layer], linestyle='--',
                label=f"{gate.replace('_', ' ')}, layer {layer}")
  ax_rms.set_xlabel('segment index')
  ax_rms.set_ylabel('RMS of the memory / mean gate value')
  ax_rms.set_title('memory and write gates per segment')
  ax_rms.legend(fontsize=7)
  ks = result['key_sensitivity']
  for name, style in (('key_changed', '-'), ('filler_byte_changed', ':')):
    values = np.asarray(ks[name])
    for layer in range(values.shape[1]):
      ax_key.plot(ks['segments_since_needle'], 100 * values[:, layer], linestyle=style,
                  label=f"{name.replace('_', ' ')}, layer {layer}")
  ax_key.set_xlabel('segments since the needle')
  ax_key.set_ylabel('relative memory difference (%)')
  ax_key.set_title(f"key sensitivity ({ks['memory']}, n={ks['examples']})")
  ax_key.legend(fontsize=7)
  gd = result['gradient_depth']
  ratio = np.asarray(gd['ratio_to_nearest'], float)
  for layer in range(ratio.shape[1]):
    ax_grad.plot(gd['segments_before_end'], ratio[:, layer], marker='o',
                 label=f'layer {layer}')
  ax_grad.set_xscale('symlog', linthresh=1)
  ax_grad.set_yscale('log')
  ax_grad.set_xlabel('segments before the end')
  ax_grad.set_ylabel('gradient norm w.r.t. the memory\n(relative to the nearest segment)')
  ax_grad.set_title(f"how far back the gradient reaches (n={gd['examples']})")
  ax_grad.legend(fontsize=7)
  return figures.save(fig, stem)


def main(argv: Optional[list] = None) -> int:
  class Parser(argparse.ArgumentParser):
    def error(self, message):
      print(f'error: {message}', file=sys.stderr)
      sys.exit(2)

  p = Parser(prog='python -m ltmjax.diagnose', description=__doc__.split('\n\n')[0])
  p.add_argument('--workdir', required=True, help='a trained LTM-T run (gated or associative)')
  p.add_argument('--length', default='16k', help='the evaluation length, e.g. 4k, 16k (k = 1024)')
  p.add_argument('--examples', type=int, default=64, help='examples for accuracy by distance')
  p.add_argument('--batch', type=int, default=8, help='examples per call')
  p.add_argument('--probe_examples', type=int, default=4,
                 help='examples run segment by segment (memory statistics, key sensitivity)')
  p.add_argument('--out', default='', help=f'the JSON file (default RUN/{FILE}); the figure '
                 'goes next to it (.png, .pdf)')
  args = p.parse_args(argv)
  try:
    lengths = evaluate.parse_lengths(args.length)
    if len(lengths) != 1:
      raise evaluate.EvalError(f'--length takes one length, got {args.length!r}')
    if min(args.examples, args.batch, args.probe_examples) < 1:
      raise evaluate.EvalError('--examples, --batch and --probe_examples must be >= 1')
    if not os.path.isdir(args.workdir):
      raise evaluate.EvalError(f'--workdir {args.workdir} is not a folder: point it at a '
                               'trained LTM-T run')
    run = evaluate.Run(args.workdir)
    result = diagnose(run, lengths[0], examples=args.examples, batch=min(args.batch,
                                                                         args.examples),
                      probe_examples=min(args.probe_examples, args.batch, args.examples))
  except evaluate.EvalError as e:
    print(f'error: {e}', file=sys.stderr)
    return e.exit_code
  out = args.out or os.path.join(args.workdir, FILE)
  with open(out, 'w') as f:
    json.dump(result, f, indent=1)
  paths = figure(result, os.path.splitext(out)[0])
  acc = ', '.join(f"{b['segments_from_end'][0]}-{b['segments_from_end'][1]}: "
                  + ('—' if b['accuracy'] is None else f"{100 * b['accuracy']:.1f} %")
                  for b in result['accuracy_by_distance'])
  print(f"accuracy at {result['length']}: {100 * result['accuracy']:.1f} % "
        f"(by needle distance in segments: {acc})")
  gd = result['gradient_depth']
  print('gradient w.r.t. the memory (per layer, relative to its value nearest the end), by '
        'segments before the end: ' + ', '.join(
            f'{d}: ' + '/'.join('—' if r is None or r != r else f'{r:.2g}' for r in ratio)
            for d, ratio in zip(gd['segments_before_end'], gd['ratio_to_nearest'])))
  print(f'wrote {out} and {", ".join(paths)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
