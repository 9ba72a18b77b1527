"""Text from a trained language model: `python -m ltmjax.sample`.

    python -m ltmjax.sample --config configs/char_lm.py:cpu --workdir runs/char_lm_cpu \\
        --prompt "ROMEO:" --length 200 --temperature 0.8

Builds the task and model from the config exactly as the trainer does, restores the
parameters of the latest checkpoint in the workdir, and samples one token at a time.
Any causal per-token model works: each step re-runs the model on a window of the
task's length (the last `seq_len` tokens, padded on the right while the text is
shorter) and reads the logits at the last real position. Causality makes the padding
invisible, and absolute positions stay as in training. All steps run inside one
compiled `lax.fori_loop` (compiled once per apply function and buffer size).
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
  prompt_P = np.asarray(prompt_P, np.int32).reshape(-1)
  num_prompt = prompt_P.shape[0]
  if num_prompt < 1:
    raise SampleError('the prompt is empty: give at least one character (e.g. --prompt "\\n")')
  if length < 0 or temperature < 0 or window < 1:
    raise SampleError(f'need length >= 0, temperature >= 0 and window >= 1; got length={length}, '
                      f'temperature={temperature}, window={window}')
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
    logits_C = apply_fn(params, inputs_1xW)[0, n - 1 - start].astype(jnp.float32)
    sampled = jax.random.categorical(key, logits_C / jnp.maximum(temperature, 1e-6))
    return jnp.where(temperature > 0, sampled, jnp.argmax(logits_C)).astype(jnp.int32)

  def body(i, buf_N):
    n = num_prompt + i
    return buf_N.at[n].set(next_token(buf_N, n, jax.random.fold_in(key, i)))

  return jax.lax.fori_loop(0, length, body, buf_N)


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


def sample(config, workdir: str, *, prompt: str, length: int, temperature: float = 1.0,
           seed: int = 0) -> str:
  """`length` tokens sampled after `prompt` from the checkpoint in `workdir`, as text.

  Args:
    config: the config the model was trained with.
    workdir: the run directory holding checkpoints/.
    prompt: the text to continue (not repeated in the result).
    length: number of tokens (bytes for char_lm) to generate.
    temperature: softmax temperature; 0 is greedy decoding.
    seed: seeds the sampling.
  Returns:
    The generated continuation.
  """
  task, model, params = load(config, workdir)
  apply_fn = lambda p, x: model.apply({'params': p}, x, None, train=False)  # noqa: E731
  tokens = generate(apply_fn, params, task.encode(prompt), length=length,
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
  try:
    rest = fv(argv)
    if len(rest) > 1:
      raise SampleError(f'unexpected arguments: {" ".join(rest[1:])}')
    if config_flag.value is None or not workdir.value:
      raise SampleError('--config and --workdir are required, e.g. --config configs/char_lm.py:cpu '
                        '--workdir runs/char_lm_cpu')
    text = sample(config_flag.value, workdir.value, prompt=prompt.value, length=length.value,
                  temperature=temperature.value, seed=seed.value)
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
