"""Text from a trained language model: `python -m ltmjax.sample`.

    python -m ltmjax.sample --config configs/char_lm.py:cpu --workdir runs/char_lm_cpu \\
        --prompt "ROMEO:" --length 200 --temperature 0.8

Builds the task and model from the config exactly as the trainer does, restores the
parameters of the latest checkpoint in the workdir, and samples one token at a time.

Two ways (`--mode`; 'auto' takes 'carry' where the model has one and the text fits it):
  carry   (`generate_stateful`; LSTM, GRU, LTM-T, causal Transformer) the prompt is fed once,
          then each token costs one model call on a block of `model.stream_block` tokens from
          the carry (1 token for LSTM/GRU; LTM-T re-reads the current, unfinished segment of
          S tokens and commits its memory when the segment is full), so for the recurrent
          models the time per token does not grow with the prompt. Beyond the training
          length the model keeps its state. The Transformer's carry is its KV cache, sized
          for prompt + length: each token attends over it, so its cost grows with the text
          (linearly, where the window sampler's grows quadratically); past the training
          length its positions go on (sinusoidal, rotary) or run out (learned: an error,
          and 'auto' slides the window instead).
  window  (`generate`; any causal per-token model) each step re-runs the model on a
          window of the task's length (the last `seq_len` tokens, padded on the right while
          the text is shorter) and reads the logits at the last real position. Causality
          makes the padding invisible, and absolute positions stay as in training.
For texts no longer than the window both give the same tokens. All steps run inside one
compiled `lax.fori_loop` (compiled once per model and buffer size).
"""
from __future__ import annotations

import functools
import sys
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ltmjax import checkpoint, train


class SampleError(Exception):
  """Sampling cannot start; the one-line message says why."""
  exit_code = 2


def _checked(prompt_P, length: int, temperature: float) -> np.ndarray:
  """The prompt as [P] int32; SampleError for an empty prompt or a negative length/temperature."""
  prompt_P = np.asarray(prompt_P, np.int32).reshape(-1)
  if prompt_P.shape[0] < 1:
    raise SampleError('the prompt is empty: give at least one character (e.g. --prompt "\\n")')
  if length < 0 or temperature < 0:
    raise SampleError(f'need length >= 0 and temperature >= 0; got length={length}, '
                      f'temperature={temperature}')
  return prompt_P


def generate(apply_fn, params, prompt_P, *, length: int, window: int, temperature: float = 1.0,
             seed: int = 0) -> np.ndarray:
  """Samples `length` tokens after `prompt_P` from a causal per-token model.

  Args:
    apply_fn: `apply_fn(params, inputs_1xW) -> logits_1xWxC` (causal).
    params: the model parameters.
    prompt_P: [P] int tokens, P >= 1.
    length: number of tokens to generate.
    window: W, the sequence length the model runs on (the task's seq_len).
    temperature: softmax temperature; 0 picks the most likely token (greedy).
    seed: seeds the sampling.
  Returns:
    [length] int32 generated tokens (the prompt not included).
  """
  prompt_P = _checked(prompt_P, length, temperature)
  num_prompt = prompt_P.shape[0]
  if window < 1:
    raise SampleError(f'need window >= 1, got {window}')
  if length == 0:
    return np.zeros((0,), np.int32)
  total = num_prompt + length
  buf_N = np.zeros((max(total, window),), np.int32)
  buf_N[:num_prompt] = prompt_P
  out_N = _sample_loop(apply_fn, window, params, jnp.asarray(buf_N), num_prompt, length,
                       jax.random.PRNGKey(seed), jnp.float32(temperature))
  return np.asarray(out_N[num_prompt:total])


@functools.partial(jax.jit, static_argnums=(0, 1))
def _sample_loop(apply_fn, window: int, params, buf_N, num_prompt, length, key, temperature):
  """Step i writes token num_prompt + i of the buffer; compiled once per buffer size."""

  def next_token(buf_N, n, key):
    # The window holds tokens [start, start + W): the last W known ones, or the first W
    # (real tokens then zeros) while fewer than W are known.
    start = jnp.maximum(n - window, 0)
    inputs_1xW = jax.lax.dynamic_slice(buf_N, (start,), (window,))[None]
    return _pick(apply_fn(params, inputs_1xW)[0, n - 1 - start], key, temperature)

  def body(i, buf_N):
    n = num_prompt + i
    return buf_N.at[n].set(next_token(buf_N, n, jax.random.fold_in(key, i)))

  return jax.lax.fori_loop(0, length, body, buf_N)


def _pick(logits_C, key, temperature):
  """A token from logits: sampled at `temperature`, the most likely one at 0."""
  logits_C = logits_C.astype(jnp.float32)
  sampled = jax.random.categorical(key, logits_C / jnp.maximum(temperature, 1e-6))
  return jnp.where(temperature > 0, sampled, jnp.argmax(logits_C)).astype(jnp.int32)


def carry_reason(model, total: int = 0) -> Optional[str]:
  """Why `model` cannot sample a text of `total` tokens from its carry (None: it can)."""
  if not hasattr(model, 'initial_carry'):
    if not model.spec.causal:
      return (f'a bidirectional {type(model).__name__} has no carry (each token attends to '
              'later ones): it keeps the window sampler (--mode window)')
    return f'{type(model).__name__} has no carry; use --mode window'
  limit = getattr(model, 'max_positions', None) if getattr(model, 'kv_cache', False) else None
  if limit and total > limit:
    return (f'prompt + length = {total} tokens, over the {limit} learned positions of this '
            'Transformer (task.seq_len): shorten them, train with model.positions=sinusoidal '
            'or rotary, or use --mode window (slides a window)')
  return None


def generate_stateful(model, params, prompt_P, *, length: int, temperature: float = 1.0,
                      seed: int = 0) -> np.ndarray:
  """Samples `length` tokens after `prompt_P` from a model's carry (see module doc).

  Args:
    model: a causal per-token model with the carry API (`initial_carry`, `stream_block`,
      `apply(..., carry=, return_carry=True)`).
    params: its parameters.
    prompt_P: [P] int tokens, P >= 1.
    length, temperature, seed: as in `generate`.
  Returns:
    [length] int32 generated tokens.
  """
  prompt_P = _checked(prompt_P, length, temperature)
  reason = carry_reason(model, prompt_P.shape[0] + length)
  if reason:
    raise SampleError(reason)
  if length == 0:
    return np.zeros((0,), np.int32)
  return decode(model, params, prefill(model, params, prompt_P, length=length), length=length,
                temperature=temperature, seed=seed)


def prefill(model, params, prompt_P, *, length: int = 0):
  """The state after the prompt: (committed carry, block buffer [G], tokens in it, logits of
  the next token [C]). Whole blocks of the prompt go through one call into the carry; the
  rest waits in the buffer, re-read (not committed) for its logits. A KV cache
  (`model.kv_cache`) gets room for the prompt and `length` tokens to come."""
  prompt_P = np.asarray(prompt_P, np.int32).reshape(-1)
  block = int(model.stream_block)
  done = (prompt_P.shape[0] // block) * block   # prompt tokens committed to the carry at once
  sizes = (prompt_P.shape[0] + length,) if getattr(model, 'kv_cache', False) else ()
  carry = model.apply({'params': params}, 1, *sizes, method='initial_carry')
  logits_C = None
  if done:
    logits, carry = _feed(model, params, carry, jnp.asarray(prompt_P[None, :done]))
    logits_C = logits[0, -1]
  buf_G = np.zeros((block,), np.int32)
  rest = prompt_P[done:]
  buf_G[:len(rest)] = rest
  if len(rest):
    logits, _ = _feed(model, params, carry, jnp.asarray(buf_G[None]),
                      jnp.asarray(np.arange(block)[None] < len(rest)))
    logits_C = logits[0, len(rest) - 1]
  return carry, jnp.asarray(buf_G), jnp.asarray(len(rest), jnp.int32), logits_C


def decode(model, params, state, *, length: int, temperature: float = 1.0,
           seed: int = 0) -> np.ndarray:
  """`length` tokens from a `prefill` state, one model call per token ([length] int32)."""
  return np.asarray(_carry_loop(model, params, *state, length, jax.random.PRNGKey(seed),
                                jnp.float32(temperature)))


@functools.partial(jax.jit, static_argnums=0)
def _feed(model, params, carry, inputs_1xT, mask_1xT=None):
  return model.apply({'params': params}, inputs_1xT, mask_1xT, carry=carry, return_carry=True)


@functools.partial(jax.jit, static_argnums=(0, 6))
def _carry_loop(model, params, carry, buf_G, count, logits_C, length: int, key, temperature):
  """Token i is drawn from the current logits, appended to the block buffer, and the block
  re-read from the committed carry; a full block commits its carry and starts anew."""
  block = buf_G.shape[0]

  def body(i, state):
    carry, buf_G, count, logits_C, out_N = state
    token = _pick(logits_C, jax.random.fold_in(key, i), temperature)
    buf_G = buf_G.at[count].set(token)
    count = count + 1
    mask_1xG = (jnp.arange(block) < count)[None]
    logits, new_carry = model.apply({'params': params}, buf_G[None], mask_1xG, carry=carry,
                                    return_carry=True)
    full = count == block
    if block == 1:   # every token commits (and a KV cache is too large to select over)
      carry = new_carry
    else:
      carry = jax.tree.map(lambda n, o: jnp.where(full, n, o), new_carry, carry)
    return (carry, jnp.where(full, 0, buf_G), jnp.where(full, 0, count), logits[0, count - 1],
            out_N.at[i].set(token))

  state = (carry, buf_G, count, logits_C, jnp.zeros((length,), jnp.int32))
  return jax.lax.fori_loop(0, length, body, state)[-1]


def load(config, workdir: str):
  """(task, model, params) of `config` with the latest checkpoint's params in `workdir`."""
  task, model = train.build(config)
  spec = task.spec
  if not (spec.input_kind == 'tokens' and spec.output_kind == 'token' and spec.causal):
    raise SampleError(f'task {config.task.name!r} is not a causal language model (it has '
                      f'{spec.input_kind} inputs, {spec.output_kind} outputs, '
                      f'causal={spec.causal}); sampling needs e.g. char_lm')
  if not (hasattr(task, 'encode') and hasattr(task, 'decode')):
    raise SampleError(f'task {config.task.name!r} has no text vocabulary (encode/decode); '
                      'sampling needs e.g. char_lm')
  # the trainer's initialization, so the parameter tree matches the checkpoint's
  abstract_params = jax.eval_shape(functools.partial(train.init_params, model, spec),
                                   jax.random.PRNGKey(0))
  try:
    params = checkpoint.restore_params(workdir, abstract_params)
  except FileNotFoundError as e:
    raise SampleError(str(e).splitlines()[0]) from e
  return task, model, params


MODES = ('auto', 'carry', 'window')


def sample(config, workdir: str, *, prompt: str, length: int, temperature: float = 1.0,
           seed: int = 0, mode: str = 'auto') -> str:
  """`length` tokens sampled after `prompt` from the checkpoint in `workdir`, as text.

  Args:
    config: the config the model was trained with.
    workdir: the run directory holding checkpoints/.
    prompt: the text to continue (not repeated in the result).
    length: number of tokens (bytes for char_lm) to generate.
    temperature: softmax temperature; 0 is greedy decoding.
    seed: seeds the sampling.
    mode: 'carry' (from the model's carry), 'window' (re-run a window per token) or
      'auto' (carry where the model has one and the text fits its positions).
  Returns:
    The generated continuation.
  """
  if mode not in MODES:
    raise SampleError(f'unknown --mode {mode!r}; known: {", ".join(MODES)}')
  task, model, params = load(config, workdir)
  prompt_P = task.encode(prompt)
  reason = carry_reason(model, len(prompt_P) + length)
  if mode == 'carry' and reason:
    raise SampleError(reason)
  if mode != 'window' and not reason:
    tokens = generate_stateful(model, params, prompt_P, length=length,
                               temperature=temperature, seed=seed)
  else:
    apply_fn = lambda p, x: model.apply({'params': p}, x, None, train=False)  # noqa: E731
    tokens = generate(apply_fn, params, prompt_P, length=length,
                      window=task.spec.seq_len, temperature=temperature, seed=seed)
  return task.decode(tokens)


def main(argv: Optional[list] = None) -> int:
  """Command line; returns the exit code (2 with one line on stderr for bad input)."""
  from absl import flags
  from ml_collections import config_flags
  # A private FlagValues: importing this module defines no global flags, so it can sit
  # beside ltmjax.main in one process (tests) without duplicate-flag errors.
  argv = list(sys.argv if argv is None else argv)
  fv = flags.FlagValues()
  config_flag = config_flags.DEFINE_config_file(   # sys_argv: which --config.x overrides exist
      'config', None, 'The config the model was trained with (configs/*.py[:arg]).',
      flag_values=fv, lock_config=True, sys_argv=argv)
  workdir = flags.DEFINE_string('workdir', None, 'Run directory with checkpoints/.', flag_values=fv)
  prompt = flags.DEFINE_string('prompt', '\n', 'Text to continue.', flag_values=fv)
  length = flags.DEFINE_integer('length', 200, 'Tokens (bytes) to generate.', flag_values=fv)
  temperature = flags.DEFINE_float('temperature', 1.0, 'Softmax temperature; 0 is greedy.',
                                   flag_values=fv)
  seed = flags.DEFINE_integer('seed', 0, 'Sampling seed.', flag_values=fv)
  mode = flags.DEFINE_enum('mode', 'auto', MODES, 'carry: from the model state (LSTM, GRU, '
                           'LTM-T; the causal Transformer\'s KV cache); window: re-run a '
                           'window per token; auto: carry if any (and the text fits it).',
                           flag_values=fv)
  if any(a in ('-h', '--help', '--helpshort') for a in argv[1:]):
    print(__doc__.strip() + '\n\nusage: python -m ltmjax.sample --config configs/x.py[:arg] '
          '--workdir DIR [flags]\n\n' + fv.main_module_help())
    return 0
  try:
    rest = fv(argv)
    if len(rest) > 1:
      raise SampleError(f'unexpected arguments: {" ".join(rest[1:])}')
    if config_flag.value is None or not workdir.value:
      raise SampleError('--config and --workdir are required, e.g. --config configs/char_lm.py:cpu '
                        '--workdir runs/char_lm_cpu')
    text = sample(config_flag.value, workdir.value, prompt=prompt.value, length=length.value,
                  temperature=temperature.value, seed=seed.value, mode=mode.value)
  except (SampleError, flags.Error, ValueError) as e:
    lines = str(e).strip().splitlines() or [type(e).__name__]
    # absl puts the cause of a flag error on its last line; our errors are one line
    print(f'error: {lines[-1] if isinstance(e, flags.Error) else lines[0]}', file=sys.stderr)
    return 2
  except AttributeError as e:   # ml_collections' answer to --config.<unknown key>=...
    print(f'error: the config has no key {e} (check the --config.* overrides)', file=sys.stderr)
    return 2
  sys.stdout.write(prompt.value + text + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
