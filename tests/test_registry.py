"""ltmjax.registry and the registries that use it (cells, models, tasks, suites)."""
import pytest

from ltmjax import cells, experiments, models, registry, tasks


def test_lookup_and_rank():
  table = {'b': 1, 'a': 2}
  assert registry.lookup(table, 'a', 'thing') == 2
  assert registry.rank(table, 'b', 'thing') == 0 and registry.rank(table, 'a', 'thing') == 1
  with pytest.raises(ValueError, match=r"^unknown thing 'c'; known things: a, b$"):
    registry.lookup(table, 'c', 'thing')
  with pytest.raises(ValueError, match=r"^unknown thing 'c'"):
    registry.rank(table, 'c', 'thing')


@pytest.mark.parametrize('get, kind, known', [
    (cells.get, 'cell', ', '.join(sorted(cells.CELLS))),
    (models.get, 'model', ', '.join(sorted(models.MODELS))),
    (tasks.get, 'task', 'adding, babilong'),
    (experiments.get_suite, 'suite', None)])
def test_unknown_names_list_the_known_ones(get, kind, known):
  with pytest.raises(ValueError, match=f"^unknown {kind} 'nope'; known {kind}s: ") as e:
    get('nope')
  if known:
    assert known in str(e.value)


def test_registries_return_their_entries():
  assert cells.get('lstm') is cells.LSTM
  assert models.get('gru') is models.MODELS['gru']
  assert tasks.get('copy') is tasks.TASKS['copy']
  assert models.order('lstm') == 0 and tasks.order('copy') == 0
