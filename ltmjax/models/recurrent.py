"""LSTM and GRU encoders (stacked, optionally bidirectional) built on the pure cells.

Two implementations of the same model (`model.implementation`), with the same parameters:
'scan' runs the cells through `ltmjax.recurrence` (any cell, option, dtype and device);
'cudnn' runs each plain-LSTM layer as one cuDNN kernel (`jax.experimental.rnn.lstm`,
float32, CUDA GPU only), packing our (w_x, w_h, b) into cuDNN's flat weight vector on
every call, so a run can switch implementation and keep its checkpoint.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from ltmjax import cells, recurrence
from ltmjax.errors import ConfigError
from ltmjax.models import heads
from ltmjax.models.heads import InputEncoder, OutputHead
from ltmjax.tasks.base import TaskSpec

IMPLEMENTATIONS = ('scan', 'cudnn')


# ----------------------------------------------------------------------------- cuDNN layout

def pack_cudnn_weights(layer_params, bidirectional: bool):
  """Our LSTM parameters of one layer -> the flat weight vector of `jax.experimental.rnn.lstm`.

  cuDNN's layout (jax.experimental.rnn's docstring) for one layer is
  (W_ih^fw, W_hh^fw[, W_ih^bw, W_hh^bw], b_ih^fw, b_hh^fw[, b_ih^bw, b_hh^bw]), each
  flattened row-major, W_ih [4H, D] and W_hh [4H, H] with gates i, f, g, o along the
  leading axis (torch.nn.LSTM's layout). Ours are w_x [D, 4H], w_h [H, 4H] in the same
  gate order, so W_ih = w_x.T, W_hh = w_h.T; our single bias b goes to b_ih and b_hh = 0
  (cuDNN adds the two).

  Args:
    layer_params: {'w_x', 'w_h', 'b'}, or {'fw': ..., 'bw': ...} when bidirectional.
  Returns:
    w_flat: [4H(D + H + 2)] (twice that when bidirectional), float32.
  """
  directions = [layer_params['fw'], layer_params['bw']] if bidirectional else [layer_params]
  matrices, biases = [], []
  for p in directions:
    matrices += [p['w_x'].T.reshape(-1), p['w_h'].T.reshape(-1)]
    biases += [p['b'], jnp.zeros_like(p['b'])]
  return jnp.concatenate(matrices + biases).astype(jnp.float32)


def unpack_cudnn_weights(w_flat, input_dim: int, hidden: int, bidirectional: bool):
  """The inverse of `pack_cudnn_weights`, read with jax.experimental.rnn's own unpacker
  (b = b_ih + b_hh)."""
  from jax.experimental import rnn
  w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(w_flat, input_dim, hidden, 1, bidirectional)
  directions = [{'w_x': w_ih[d].T, 'w_h': w_hh[d].T, 'b': b_ih[d] + b_hh[d]}
                for d in range(2 if bidirectional else 1)]
  return {'fw': directions[0], 'bw': directions[1]} if bidirectional else directions[0]


def cudnn_lstm_layer(layer_params, xs_BxTxD, mask_BxT=None, *, bidirectional: bool = False,
                     lstm: Optional[Callable] = None):
  """One (bidirectional) LSTM layer as one cuDNN call; equals `recurrence.run(cells.LSTM, ...)`
  (`run_bidirectional` when bidirectional) for right-padded masks.

  Args:
    layer_params: as in `pack_cudnn_weights`.
    xs_BxTxD: float32 inputs.
    mask_BxT: True at real steps, which must come first in each row (right padding):
      cuDNN takes per-row lengths. Padded steps output zeros (all of a row without real steps).
    lstm: the kernel, `jax.experimental.rnn.lstm` by default (tests on CPU pass a
      function with its signature built on its pure-JAX reference, `rnn.lstm_ref`).
  Returns:
    ys_BxTxH ([B, T, 2H] when bidirectional: forward then backward features).
  """
  if lstm is None:
    from jax.experimental import rnn
    lstm = rnn.lstm
  fw = layer_params['fw'] if bidirectional else layer_params
  batch, length, input_dim = xs_BxTxD.shape
  hidden = fw['w_h'].shape[0]
  directions = 2 if bidirectional else 1
  if mask_BxT is None:
    lengths_B = jnp.full((batch,), length, jnp.int32)
  else:
    # A row with no real step (a padding row of an eval batch) runs one step, masked below:
    # cuDNN takes no zero lengths.
    lengths_B = jnp.maximum(mask_BxT.sum(-1).astype(jnp.int32), 1)
  zeros_ZxBxH = jnp.zeros((directions, batch, hidden), jnp.float32)
  ys_BxTxH, _, _ = lstm(xs_BxTxD, zeros_ZxBxH, zeros_ZxBxH,
                        pack_cudnn_weights(layer_params, bidirectional), lengths_B,
                        input_size=input_dim, hidden_size=hidden, num_layers=1, dropout=0.0,
                        bidirectional=bidirectional)
  if mask_BxT is not None:
    ys_BxTxH = jnp.where(mask_BxT[..., None], ys_BxTxH, 0)
  return ys_BxTxH


def check_implementation(implementation: str, cell: str, *, peephole: bool = False,
                         unroll: int = 1, remat: bool = False) -> None:
  """Raises a one-line ConfigError when `implementation` cannot run these options here."""
  if implementation not in IMPLEMENTATIONS:
    raise ConfigError(f'unknown model.implementation {implementation!r}; known: '
                      f'{", ".join(IMPLEMENTATIONS)}')
  if implementation == 'scan':
    return
  unsupported = [name for name, bad in (
      (f'cell={cell!r}', cell != 'lstm'), ('peephole=True', peephole),
      (f'unroll={unroll}', unroll != 1), ('remat=True', remat)) if bad]
  if unsupported:
    raise ConfigError(f'model.implementation=cudnn runs the plain LSTM only, not '
                      f'{", ".join(unsupported)}; set model.implementation=scan')
  backend = jax.default_backend()
  if backend != 'gpu':
    raise ConfigError(f'model.implementation=cudnn needs a CUDA GPU, but JAX runs on {backend}; '
                      'set model.implementation=scan (or install the gpu extra: '
                      'LTMJAX_EXTRAS=gpu ./launch.sh ...)')


# ----------------------------------------------------------------------------- model

class RecurrentModel(nn.Module):
  """Encoder -> L recurrent layers -> head.

  The cell parameters are the plain dicts of `ltmjax.cells` (PyTorch gate layout),
  stored under 'layer_{l}' (with 'fw'/'bw' when bidirectional), whatever the implementation.

  Streaming (unidirectional, 'scan'): `apply(v, x_chunk, mask_chunk, carry=c, return_carry=True)`
  -> (outputs, carry), with `c = apply(v, B, method='initial_carry')`; the carry is
  {'cells': [per-layer cell carry], 'pool': the head's pool state ('sequence' tasks)}, so
  chunks fed in turn give the outputs of the whole sequence. `stream_block` = 1: any chunk
  length works.
  """
  spec: TaskSpec
  cell: str = 'lstm'
  hidden: int = 128
  layers: int = 1
  embed_dim: int = 64
  bidirectional: bool = False
  peephole: bool = False
  dropout: float = 0.0
  pool: str = 'last'
  unroll: int = 1
  remat: bool = False
  implementation: str = 'scan'

  stream_block = 1   # chunks of any length stream exactly

  def initial_carry(self, batch_size: int):
    """The carry before the first chunk (call with method='initial_carry' on bound params)."""
    self._check_streaming()
    params, cell = self.variables['params'], cells.get(self.cell)
    carry = {'cells': [cell.initial_carry(params[f'layer_{l}'], (batch_size,))
                       for l in range(self.layers)]}
    if self.spec.output_kind == 'sequence':
      carry['pool'] = heads.pool_init(self.pool, batch_size, self.hidden)
    return carry

  def _check_streaming(self):
    if self.bidirectional or self.implementation != 'scan':
      raise ConfigError('streaming (a carry between chunks) needs a unidirectional model with '
                        'model.implementation=scan; set model.bidirectional=False')

  @nn.compact
  def __call__(self, inputs, mask=None, *, train: bool = False, carry=None,
               return_carry: bool = False):
    """Args: inputs [B, T] tokens or [B, T, D_in]; mask [B, T] bool or None; carry from
    `initial_carry` or a previous chunk (None: the whole sequence is in `inputs`).

    Returns [B, C] ('sequence') or [B, T, C] ('token'), and with return_carry the carry.
    """
    streaming = carry is not None or return_carry
    if streaming:
      self._check_streaming()
    if self.bidirectional and self.spec.causal:
      raise ValueError('a bidirectional encoder sees the future; set model.bidirectional=False '
                       'for causal (per-token/language-model) tasks')
    cell = cells.get(self.cell)
    opts = {'peephole': True} if self.peephole else {}
    if self.peephole and self.cell != 'lstm':
      raise ValueError(f'model.peephole applies to the lstm cell only, not {self.cell!r}')
    check_implementation(self.implementation, self.cell, peephole=self.peephole,
                         unroll=self.unroll, remat=self.remat)
    x_BxTxE = InputEncoder(self.spec, self.embed_dim)(inputs)
    layer_params = []
    for layer in range(self.layers):
      in_dim = self.embed_dim if layer == 0 else self.hidden * (2 if self.bidirectional else 1)

      def init(key, in_dim=in_dim):
        if not self.bidirectional:
          return cell.init(key, in_dim, self.hidden, **opts)
        k_fw, k_bw = jax.random.split(key)
        return {'fw': cell.init(k_fw, in_dim, self.hidden, **opts),
                'bw': cell.init(k_bw, in_dim, self.hidden, **opts)}
      layer_params.append(self.param(f'layer_{layer}', init))
    drop = nn.Dropout(self.dropout, deterministic=not train)
    if self.implementation == 'cudnn':
      ys_BxTxH = self._cudnn_stack(layer_params, drop(x_BxTxE), mask, drop)
    else:
      finals, ys_BxTxH = recurrence.run_stack(
          cell, layer_params, drop(x_BxTxE), mask_BxT=mask, bidirectional=self.bidirectional,
          between=lambda _, ys: drop(ys), unroll=self.unroll, remat=self.remat,
          carries=None if carry is None else carry['cells'])
    head = OutputHead(self.spec, self.pool, self.bidirectional)
    if not streaming:
      return head(drop(ys_BxTxH), mask)
    if carry is None:
      carry = self.initial_carry(x_BxTxE.shape[0])
    new_carry = {'cells': finals}
    features = None
    if 'pool' in carry:
      new_carry['pool'] = heads.pool_update(carry['pool'], drop(ys_BxTxH), mask, self.pool)
      features = heads.pool_read(new_carry['pool'], self.pool)
    return head(drop(ys_BxTxH), mask, features_BxH=features), new_carry

  def _cudnn_stack(self, layer_params: List[Any], x_BxTxE, mask, drop):
    """The layers of `recurrence.run_stack`, each one cuDNN call (dropout between layers)."""
    if x_BxTxE.dtype != jnp.float32:
      raise ConfigError(f'model.implementation=cudnn computes in float32 only, not '
                        f'{x_BxTxE.dtype}; set train.dtype=float32 or model.implementation=scan')
    ys = x_BxTxE
    for i, p in enumerate(layer_params):
      if i:
        ys = drop(ys)
      ys = cudnn_lstm_layer(p, ys, mask, bidirectional=self.bidirectional)
    return ys


def default_config() -> Dict[str, Any]:
  """The `model` config group of 'lstm' and 'gru' (the cell is the model's name).

  implementation: 'scan' (lax.scan over the pure cells; everywhere) or 'cudnn' (plain
  LSTM, float32, CUDA GPU; one cuDNN kernel per layer).
  """
  return dict(hidden=128, layers=1, embed_dim=64, bidirectional=False,
              peephole=False, dropout=0.0, pool='last', unroll=1, remat=False,
              implementation='scan')


def label(name: str, cfg) -> str:
  """Table row name of a recurrent model: `name` ('LSTM') with its variants spelled out."""
  text = ('Peephole ' if cfg.get('peephole') else '') + name
  return 'Bi' + text if cfg.get('bidirectional') else text


def build(cfg, spec: TaskSpec) -> nn.Module:
  check_implementation(cfg.implementation, cfg.name, peephole=cfg.peephole,
                       unroll=cfg.unroll, remat=cfg.remat)
  return RecurrentModel(spec=spec, cell=cfg.name, **{k: cfg[k] for k in default_config()})
