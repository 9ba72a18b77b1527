"""The `Cell` value, the cells built from each cell module's pure functions, and the registry.

A cell is a value with pure functions (DESIGN.md contract):
  init(key, input_dim, hidden_dim, **options) -> params
  initial_carry(params, batch_shape) -> carry
  step(params, carry, x_BxD) -> (carry, y_BxH)
Cells that can hoist their input projection out of the time loop also give
  project(params, xs_BxTxD) -> xs_proj       (one matmul for every step)
  step_projected(params, carry, x_proj) -> (carry, y_BxH)
so that `step(p, c, x) == step_projected(p, c, project(p, x))`. Cells whose recurrence
has a parallel or chunkwise form (linear in the carry) also give
  chunk_step(params, carry, x_BxCxD, mask_BxC) -> (carry, y_BxCxH)
C applications of `step` at once (same numbers; mask_BxC True at real steps or None;
padded steps leave the carry unchanged and output zeros, as `recurrence.run`'s masked
scan of `step`). Inside a chunk it may use `jax.lax.associative_scan` or matrix forms,
never a scan or Python loop over steps. `recurrence.run(..., chunk_size=C)` calls it.
`options` holds the defaults of `init`'s keyword options (e.g. heads=4): they become
keys of the model's config group and the models pass them to `init`. Only
`ltmjax.recurrence` runs a cell over time.

The cell modules (lstm.py, gru.py, ltmt.py) hold only pure functions and never import
this module, so the imports run one way: cell modules -> base -> the package.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Dict, Mapping, Optional

from ltmjax import registry
from ltmjax.cells import gru, lstm, ltmt, mamba, mlstm, slstm

Params = Any
Carry = Any


@dataclasses.dataclass(frozen=True)
class Fused:
  """A cell's pieces for `ltmjax.recurrence`'s fused sequence path (a custom JVP whose
  backward loop holds one matmul per step; the W_h gradient is one GEMM over all steps).

  applies(params) -> bool: the path covers these parameters (else the generic scan runs).
  step_residuals(params, carry, x_proj) -> (carry, y, res): the step and its coefficients.
  tangent_inputs(params, dparams, dx_proj_T, res_T) -> tangent_in_T: the parameters'
    tangent for all T steps at once (outside the time loop).
  tangent_params(params) -> tparams: what step_tangent reads of the parameters, computed
    once outside the time loop (a transposed W_h: the backward matmul reads it untransposed).
  step_tangent(tparams, res, dcarry, tangent_in) -> (dcarry, dy): the step's linearisation.
  """
  applies: Callable[[Params], bool]
  step_residuals: Callable[..., tuple]
  tangent_inputs: Callable[..., Any]
  tangent_params: Callable[[Params], Any]
  step_tangent: Callable[..., tuple]


@dataclasses.dataclass(frozen=True)
class Cell:
  """A recurrent cell: a bundle of pure functions (see module docstring)."""
  name: str
  init: Callable[..., Params]
  initial_carry: Callable[[Params, tuple], Carry]
  step: Callable[[Params, Carry, Any], tuple]
  project: Optional[Callable[[Params, Any], Any]] = None
  step_projected: Optional[Callable[[Params, Carry, Any], tuple]] = None
  hidden_size: Optional[Callable[[Params], int]] = None
  fused: Optional[Fused] = None
  chunk_step: Optional[Callable[..., tuple]] = None
  # Not hashed: a dict; a Cell stays hashable (a static argument of jitted functions).
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
  # The model a registered cell gets under its own name (ltmjax.models): 'recurrent'
  # (models/recurrent.py's stack, any input and hidden size), 'residual' (a mixer cell,
  # input == hidden == dim, in models/residual.py's pre-LN residual stack) or '' (none:
  # a model of its own is registered by hand, as LTM-T's). `label`: its row name in tables.
  family: str = ''
  label: str = ''
  # The residual model's default `model.chunk_size` when `chunk_step` is given (0: the step
  # scan, for a cell whose chunkwise form measured slower on the CPU).
  chunk_size: int = 64


LSTM = Cell('lstm', lstm.init, lstm.initial_carry, lstm.step, lstm.project,
            lstm.step_projected, lstm.hidden_size,
            Fused(lstm.fusable, lstm.step_residuals, lstm.tangent_inputs, lstm.tangent_params,
                 lstm.step_tangent), family='recurrent', label='LSTM')
GRU = Cell('gru', gru.init, gru.initial_carry, gru.step, gru.project, gru.step_projected,
           gru.hidden_size,
           Fused(gru.fusable, gru.step_residuals, gru.tangent_inputs, lstm.tangent_params,
                 gru.step_tangent), family='recurrent', label='GRU')


def make_ltmt(*, causal: bool = False, memory_mode: str = 'gated', segment=None,
              attention_impl: str = 'auto', block_size: int = 512) -> Cell:
  """An LTM-T Cell with its static options bound (and validated, here only).

  Args:
    causal: causal attention inside each segment (language modelling, per-token tasks).
    memory_mode: 'gated' or 'xl'.
    segment: S; needed by 'xl' (its carry holds S states per layer).
    attention_impl: 'auto' | 'dense' | 'blockwise', passed to `ltmjax.attention.attention`.
    block_size: key/value block of the blockwise attention.
  Returns:
    Cell('ltmt', init, initial_carry, step); init takes key, input_dim, hidden_dim and the
    shape options (memory_slots, heads, layers, mlp_dim).
  """
  ltmt.check_options(memory_mode=memory_mode, segment=segment)
  return Cell('ltmt', functools.partial(ltmt.init, write=memory_mode == 'gated'),
              functools.partial(ltmt.initial_carry, memory_mode=memory_mode, segment=segment),
              functools.partial(ltmt.step, causal=causal, memory_mode=memory_mode,
                                attention_impl=attention_impl, block_size=block_size),
              hidden_size=ltmt.hidden_size)


LTMT = make_ltmt()

# Adding a cell: its module of pure functions and one line here (with family= and label=,
# it is also a model of that name: configs, suites and tables take it; README "Extending").
CELLS: Dict[str, Cell] = {'lstm': LSTM, 'gru': GRU, 'ltmt': LTMT}
CELLS['mlstm'] = Cell('mlstm', mlstm.init, mlstm.initial_carry, mlstm.step, mlstm.project,
                      mlstm.step_projected, mlstm.hidden_size, chunk_step=mlstm.chunk_step,
                      options={'heads': 4, 'proj_factor': 2.0, 'conv': 4, 'qkv_block': 4,
                               'forget_gate': 'sigmoid'}, family='residual', label='mLSTM')
CELLS['slstm'] = Cell('slstm', slstm.init, slstm.initial_carry, slstm.step, slstm.project,
                      slstm.step_projected, slstm.hidden_size, options={'heads': 4},
                      family='residual', label='sLSTM')
CELLS['mamba'] = Cell('mamba', mamba.init, mamba.initial_carry, mamba.step, mamba.project,
                      mamba.step_projected, mamba.hidden_size, chunk_step=mamba.chunk_step,
                      options={'d_state': 16, 'd_conv': 4, 'expand': 2}, family='residual',
                      label='Mamba', chunk_size=0)   # the step scan: 2.7-5x faster on CPU


def get(name: str) -> Cell:
  """A cell by name; unknown names raise a ValueError listing the known ones."""
  return registry.lookup(CELLS, name, 'cell')
