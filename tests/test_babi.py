"""BABILong-style QA: an independent solver reads the emitted text and recomputes every answer;
filler never reads as a fact; exact lengths; chunked == whole; determinism; no one-feature shortcut."""
import os
import re
import shutil
import tempfile

import chex
import jax.numpy as jnp
import ml_collections
import numpy as np

from ltmjax import tasks
from ltmjax.tasks import babi, haystack
from ltmjax.tasks.base import TRAIN_STREAM

# The solver's own copy of the public vocabulary (what a reader of the bAbI text knows).
PEOPLE = ('Mary', 'John', 'Daniel', 'Sandra', 'Bill', 'Fred', 'Jeff')
PLACES = ('bathroom', 'bedroom', 'garden', 'hallway', 'kitchen', 'office')
OBJECTS = ('apple', 'cake', 'football', 'milk')
ANSWERS = {'qa1': PLACES, 'qa2': PLACES, 'qa3': PLACES, 'qa4': PLACES,
           'qa5': ('Bill', 'Fred', 'Jeff', 'Mary') + OBJECTS}
OPPOSITE = {'north': 'south', 'south': 'north', 'east': 'west', 'west': 'east'}

_P, _L, _O = '|'.join(PEOPLE), '|'.join(PLACES), '|'.join(OBJECTS)
FACTS = [
    ('move', re.compile(rf'({_P}) (?:moved|went|journeyed|travelled|went back) to the ({_L})')),
    ('get', re.compile(rf'({_P}) (?:picked up|got|grabbed|took) the ({_O})')),
    ('drop', re.compile(rf'({_P}) (?:dropped|put down|discarded|left) the ({_O})')),
    ('give', re.compile(rf'({_P}) (?:gave|handed|passed) the ({_O}) to ({_P})')),
    ('rel', re.compile(rf'The ({_L}) is (north|south|east|west) of the ({_L})')),
]
WORLD = re.compile(r'(?i)\b(?:' + '|'.join(PEOPLE + PLACES + OBJECTS + tuple(OPPOSITE)) + r')\b')
QUESTION = re.compile(r'\nQ: ([^\n]*\?)\Z')


def read_facts(text: str):
  """(kind, args) of every sentence that is a fact; asserts no other sentence names the world."""
  facts = []
  for sentence in re.split(r'[.!?\n]', text):
    sentence = sentence.strip()
    for kind, pattern in FACTS:
      m = pattern.fullmatch(sentence)
      if m:
        facts.append((kind, m.groups()))
        break
    else:
      assert not WORLD.search(sentence), f'a sentence names the world but is no fact: {sentence!r}'
  return facts


def solve(text: str):
  """(answer word, facts) of an example's text, from the text alone."""
  q = QUESTION.search(text)
  assert q, f'no question at the end of {text[-80:]!r}'
  question, facts = q.group(1), read_facts(text[:q.start()])
  place, holder, seen, gives, rel = {}, {}, {o: [] for o in OBJECTS}, [], set()

  def put(obj, where):
    if where and (not seen[obj] or seen[obj][-1] != where):
      seen[obj].append(where)

  for kind, args in facts:
    if kind == 'move':
      place[args[0]] = args[1]
      for o, h in holder.items():
        if h == args[0]:
          put(o, args[1])
    elif kind == 'get':
      holder[args[1]] = args[0]
      put(args[1], place.get(args[0]))
    elif kind == 'drop':
      holder.pop(args[1])
    elif kind == 'give':
      holder[args[1]] = args[2]
      put(args[1], place.get(args[2]))
      gives.append(args)
    else:
      a, d, b = args
      rel |= {(a, d, b), (b, OPPOSITE[d], a)}
  patterns = {
      r'Where is (\w+)\?': lambda p: place[p],
      r'Where is the (\w+)\?': lambda o: seen[o][-1],
      r'Where was the (\w+) before the (\w+)\?':
          lambda o, x: seen[o][len(seen[o]) - 1 - seen[o][::-1].index(x) - 1],
      r'What is (\w+) of the (\w+)\?': lambda d, b: _one({x for x, e, y in rel if (e, y) == (d, b)}),
      r'What is the (\w+) (\w+) of\?': lambda a, d: _one({y for x, e, y in rel if (x, e) == (a, d)}),
      r'What did (\w+) give to (\w+)\?': lambda g, r: [o for x, o, y in gives if (x, y) == (g, r)][-1],
      r'Who gave the (\w+) to (\w+)\?': lambda o, r: [x for x, p, y in gives if (p, y) == (o, r)][-1],
      r'Who did (\w+) give the (\w+) to\?': lambda g, o: [y for x, p, y in gives if (x, p) == (g, o)][-1],
      r'Who received the (\w+)\?': lambda o: [y for _, p, y in gives if p == o][-1],
  }
  for pattern, answer in patterns.items():
    m = re.fullmatch(pattern, question)
    if m:
      return answer(*m.groups()), facts
  raise AssertionError(f'unknown question {question!r}')


def _one(found):
  assert len(found) == 1, f'ambiguous relation answer {found}'
  return found.pop()


def _task(kind='qa1', facts=4, length=600, seed=0, batch_size=4, eval_examples=8, **kw):
  cfg = ml_collections.ConfigDict(dict(babi.BabiTask.default_config(), kind=kind, facts=facts,
                                       length=length, **kw))
  return babi.BabiTask(cfg, seed=seed, batch_size=batch_size, eval_batch_size=4,
                       eval_examples=eval_examples)


def _text(data) -> str:
  return bytes(np.asarray(data, np.uint8)).decode('utf-8')


class BabiTest(chex.TestCase):

  def test_registry_spec_and_vocabulary(self):
    self.assertIs(tasks.get('babilong'), babi.BabiTask)
    for kind in babi.KINDS:
      task = _task(kind, facts=3)
      self.assertEqual(task.answers, ANSWERS[kind])
      self.assertEqual(task.spec.input_dim, 257)
      self.assertEqual((task.spec.output_kind, task.spec.num_outputs, task.spec.seq_len),
                       ('sequence', len(ANSWERS[kind]), 600))
      batch = next(task.train_iterator())
      self.assertEqual(batch['inputs'].shape, (4, 600))
      self.assertEqual(batch['inputs'].dtype, np.int32)
      self.assertEqual(batch['targets'].shape, (4,))
      self.assertTrue(((batch['inputs'] >= 1) & (batch['inputs'] <= 256)).all())

  def test_solver_recomputes_every_answer(self):
    for kind in babi.KINDS:
      for facts in (babi.MIN_FACTS[kind], 6):
        task = _task(kind, facts=facts, length=900, seed=3)
        for i in range(150):
          data, label = task.example(i)
          answer, read = solve(_text(data))
          self.assertEqual(answer, ANSWERS[kind][label], f'{kind} example {i}')
          self.assertLen(read, facts)   # every fact is read, and nothing else is
          if kind == 'qa4':
            self.assertTrue(all(k == 'rel' for k, _ in read))
          if kind == 'qa1':
            self.assertTrue(all(k == 'move' for k, _ in read))

  def test_training_rows_solve_too(self):
    for kind in ('qa2', 'qa5'):
      task = _task(kind, facts=5, batch_size=16)
      batch = next(task.train_iterator())
      for row, label in zip(batch['inputs'], batch['targets']):
        self.assertEqual(solve(_text(row - 1))[0], ANSWERS[kind][label])

  def test_builtin_filler_is_sanitized(self):
    filler = _task().filler
    text = filler.data.tobytes().decode('utf-8')
    self.assertGreater(len(text), 20_000)           # most of the play survives
    self.assertIsNone(WORLD.search(text))
    self.assertEqual(read_facts(text), [])
    self.assertIn(filler.data[-1], np.frombuffer(haystack.BOUNDARY, np.uint8))
    # The play does name the north and a kitchen: those sentences are gone.
    self.assertIsNotNone(WORLD.search(_text(haystack.load_text())))

  def test_user_filler_with_facts_in_it(self):
    folder = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
    with open(os.path.join(folder, 'book.txt'), 'w') as f:
      f.write('It was a dark night. Mary went to the kitchen. The KITCHEN was warm!\n'
              'Nobody spoke of it again? The wind rose. mary picked up the milk.\nThe end.')
    with open(os.path.join(folder, 'notes.md'), 'w') as f:
      f.write('Sandra went to the garden.')     # not matched by filler_files
    task = _task('qa2', facts=3, length=700, filler_dir=folder)
    self.assertEqual(task.filler.data.tobytes(),
                     b'It was a dark night.\nNobody spoke of it again? The wind rose.\nThe end.')
    for i in range(30):
      data, label = task.example(i)
      answer, read = solve(_text(data))
      self.assertEqual(answer, ANSWERS['qa2'][label])
      self.assertLen(read, 3)
    with self.assertRaisesRegex(FileNotFoundError, 'filler_dir'):
      _task(filler_dir=os.path.join(folder, 'missing'))

  def test_exact_length_from_no_filler_to_a_million(self):
    task = _task('qa5', facts=5)
    short = task.max_story_bytes()
    for length in (short, short + 1, 777, 5000, 1_000_000):
      data, label = task.example(2, length)
      self.assertEqual(data.shape, (length,))
      self.assertEqual(data.dtype, np.uint8)
      self.assertEqual(solve(_text(data))[0], ANSWERS['qa5'][label])
    with self.assertRaisesRegex(ValueError, 'task.length=50 is too short'):
      _task(length=50)

  def test_same_story_at_every_length(self):
    task = _task('qa3', facts=6)
    for i in range(5):
      small, label = task.example(i, 400)
      large, label2 = task.example(i, 20_000)
      self.assertEqual(label, label2)
      self.assertEqual(solve(_text(small)), solve(_text(large)))

  def test_chunks_equal_whole_example(self):
    task = _task('qa2', facts=8, length=3000)
    whole, label = task.example(5)
    for chunk in (1, 7, 64, 1000, 2999, 3000, 10_000):
      parts, label2 = task.example_chunks(5, chunk=chunk)
      parts = list(parts)
      self.assertEqual(label2, label)
      self.assertTrue(all(len(p) == chunk for p in parts[:-1]))
      np.testing.assert_array_equal(np.concatenate(parts), whole)
    parts, _ = task.example_chunks(5, length=1_000_000, chunk=65536)
    big, _ = task.example(5, 1_000_000)
    np.testing.assert_array_equal(np.concatenate(list(parts)), big)

  def test_eval_set_is_example_i_and_determinism(self):
    task = _task('qa1', eval_examples=8)
    rows = np.concatenate([b['inputs'] for b in task.eval_batches()])
    targets = np.concatenate([b['targets'] for b in task.eval_batches()])
    for i in range(8):
      data, label = task.example(i)
      np.testing.assert_array_equal(rows[i], haystack.tokens(data))
      self.assertEqual(targets[i], label)
    a, b = _task().train_iterator(), _task().train_iterator()
    first = next(a)
    chex.assert_trees_all_equal(first, next(b))
    self.assertFalse(np.array_equal(first['inputs'], next(a)['inputs']))       # step 1 != step 0
    self.assertFalse(np.array_equal(first['inputs'], next(_task(seed=1).train_iterator())['inputs']))
    self.assertFalse(np.array_equal(first['inputs'], rows[:4]))                 # train != eval
    b.set_state({'step': 5})
    a.set_state({'step': 5})
    chex.assert_trees_all_equal(next(a), next(b))
    halves = [next(_task().train_iterator(p, 2)) for p in range(2)]           # per-example keys
    np.testing.assert_array_equal(np.concatenate([h['inputs'] for h in halves]), first['inputs'])

  def test_answers_balanced_and_no_one_feature_shortcut(self):
    for kind in babi.KINDS:
      task = _task(kind, facts=4, length=1000, seed=7)
      n = 600
      labels, first, last = [], [], []
      for i in range(n):
        data, label = task.example(i)
        text = _text(data)
        starts = [m.start() for _, p in FACTS for m in p.finditer(text)]
        labels.append(label)
        first.append(min(starts))
        last.append(max(starts))
      labels = np.asarray(labels)
      classes = len(ANSWERS[kind])
      counts = np.bincount(labels, minlength=classes)
      chi2 = ((counts - n / classes) ** 2 / (n / classes)).sum()
      self.assertLess(chi2, 30.0, f'{kind} answers unbalanced: {counts}')   # p ~ 1e-4 at 7 dof
      for feature in (first, last):
        bins = np.digitize(feature, np.quantile(feature[:n // 2], [0.25, 0.5, 0.75]))
        majority = [np.bincount(labels[:n // 2][bins[:n // 2] == b], minlength=classes).argmax()
                    for b in range(4)]
        acc = np.mean(np.asarray(majority)[bins[n // 2:]] == labels[n // 2:])
        self.assertLess(acc, 1.0 / classes + 0.1, f'{kind}: one feature predicts the answer')

  def test_loss_and_metrics(self):
    task = _task('qa5', facts=3)
    batch = {'targets': np.array([0, 7, 3])}
    logits = 10.0 * jnp.eye(8)[batch['targets']]
    loss, metrics = task.loss_and_metrics(logits, batch)
    self.assertAlmostEqual(float(metrics['accuracy']), 1.0)
    self.assertLess(float(loss), 1e-3)
    _, metrics = task.loss_and_metrics(jnp.roll(logits, 1, axis=-1), batch)
    self.assertAlmostEqual(float(metrics['accuracy']), 0.0)
    self.assertEqual(task.reference_metrics(), {'chance_accuracy': 1 / 8})

  def test_bad_config(self):
    with self.assertRaisesRegex(ValueError, 'unknown task.kind'):
      _task('qa9')
    with self.assertRaisesRegex(ValueError, 'needs task.facts >= 3'):
      _task('qa3', facts=2)

  def test_haystack_layout(self):
    filler = haystack.Filler(np.frombuffer(b'Aa. Bb. Cc.\nDd! ', np.uint8), ['cc'])
    self.assertEqual(filler.data.tobytes(), b'Aa. Bb.\nDd! \n')
    np.testing.assert_array_equal(filler.starts, [0, 3, 7, 8, 11, 13])
    # Targets snap to the nearest sentence start of the window (cyclic, from offset 3), never
    # past its end (20: the start at 21 is past it).
    np.testing.assert_array_equal(filler.snap(3, [0, 1, 3, 6, 12, 20], 20), [0, 0, 4, 5, 13, 18])
    np.testing.assert_array_equal(filler.read(11, 5), np.frombuffer(b' \nAa.', np.uint8))
    hay = haystack.Haystack(filler, 3, 6, (0, 4, 6), (b'<x>', b'<y>', b'?'))
    self.assertEqual(hay.render().tobytes(), b'<x> Bb.<y>\nD?')
    self.assertEqual([hay.render()[s:s + 3].tobytes() for s in hay.piece_starts()],
                     [b'<x>', b'<y>', b'?'])
    self.assertEqual(hay.length, 13)
