"""distributed.PreemptionGuard with several processes: a failing preemption service is reported."""
import logging

import jax
from jax.experimental import multihost_utils

from ltmjax import distributed


def test_a_preemption_service_error_is_one_warning_and_then_no_more_sync_calls(
    monkeypatch, caplog):
  calls = []

  def reached(step):
    calls.append(step)
    raise RuntimeError("Preemption sync manager has not been initialized.\n Make sure the"
                       " 'jax_enable_preemption_service' config is enabled.")
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  monkeypatch.setattr(multihost_utils, 'reached_preemption_sync_point', reached)
  with caplog.at_level(logging.WARNING, logger='ltmjax'):
    with distributed.PreemptionGuard() as guard:
      assert [guard.requested(step) for step in (1, 2, 3)] == [False] * 3
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and '\n' not in warnings[0]
  assert warnings[0].startswith('preemption handling is off for this run')
  assert "'jax_enable_preemption_service' config is enabled" in warnings[0]
  assert calls == [1]   # reported once, not retried every step


def test_a_working_preemption_service_decides(monkeypatch, caplog):
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  monkeypatch.setattr(multihost_utils, 'reached_preemption_sync_point', lambda step: step == 5)
  with caplog.at_level(logging.WARNING, logger='ltmjax'):
    with distributed.PreemptionGuard() as guard:
      assert [guard.requested(step) for step in (4, 5)] == [False, True]
  assert not caplog.records
