"""bAbI-style question answering in long filler text (BABILong, Kuratov et al. 2024), generated here.

A small world of people, places and objects (the vocabulary of bAbI, Weston et al. 2015)
is simulated for `task.facts` actions; the story's sentences are hidden in order in filler
text (`ltmjax.tasks.haystack`), and a question follows. The answer is one word of the
kind's answer vocabulary, predicted as a class after the last byte. Five kinds mirror
bAbI QA1-QA5:

  qa1  single supporting fact    people move: "Mary went to the kitchen." -> "Where is Mary?"
  qa2  two supporting facts      + pick up / drop: "Where is the football?" (the place of
                                 whoever holds it, or where it was dropped)
  qa3  three supporting facts    "Where was the apple before the kitchen?" (the place the
                                 apple was in just before it last came to the kitchen)
  qa4  two-argument relations    places on a 2x3 grid: "The office is north of the bedroom."
                                 -> "What is north of the bedroom?" / "What is the office north of?"
  qa5  three-argument relations  + giving: "Fred gave the cake to Jeff." -> "Who gave the cake
                                 to Jeff?" / "What did Fred give to Jeff?" / "Who did Fred give
                                 the cake to?" / "Who received the cake?" (the most recent give)

Answers: the six places (qa1-qa4), or the four people and four objects (qa5). Every choice
of the generator is uniform over names, so the answers are balanced across the vocabulary;
qa5 asks for an object with probability 4/8, so its eight answers are too. A story that
cannot ask its kind's question (e.g. no object was picked up) is drawn again.

Bytes: each fact is " <sentence>." and the question "\\nQ: <question>?", tokens are bytes + 1
(vocabulary 257). `task.length` is the whole example (filler + facts + question).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import numpy as np

from ltmjax.tasks import haystack
from ltmjax.tasks.base import TaskSpec, classification_metrics

PLACES = ('bathroom', 'bedroom', 'garden', 'hallway', 'kitchen', 'office')
OBJECTS = ('apple', 'cake', 'football', 'milk')
CAST = {'qa1': ('Mary', 'John', 'Daniel', 'Sandra'), 'qa2': ('Mary', 'John', 'Daniel', 'Sandra'),
        'qa3': ('Mary', 'John', 'Daniel', 'Sandra'), 'qa4': (),
        'qa5': ('Bill', 'Fred', 'Jeff', 'Mary')}
KINDS = tuple(CAST)
DIRECTIONS = ('north', 'south', 'east', 'west')
OPPOSITE = {'north': 'south', 'south': 'north', 'east': 'west', 'west': 'east'}
MOVE = ('moved to', 'went to', 'journeyed to', 'travelled to', 'went back to')
GET = ('picked up', 'got', 'grabbed', 'took')
DROP = ('dropped', 'put down', 'discarded', 'left')
GIVE = ('gave', 'handed', 'passed')
# Relative weights of the actions each kind's world takes (only possible actions are drawn).
ACTIONS = {'qa1': {'move': 1.0}, 'qa2': {'move': 0.5, 'get': 0.3, 'drop': 0.2},
           'qa3': {'move': 0.5, 'get': 0.3, 'drop': 0.2},
           'qa5': {'move': 0.3, 'get': 0.3, 'drop': 0.1, 'give': 0.3}}
MIN_FACTS = {'qa1': 1, 'qa2': 2, 'qa3': 3, 'qa4': 1, 'qa5': 3}
WORLD_WORDS = tuple(sorted(set(sum(CAST.values(), ())) | set(PLACES) | set(OBJECTS)
                           | set(DIRECTIONS)))
MAX_TRIES = 10_000


def answers(kind: str) -> Tuple[str, ...]:
  """The answer vocabulary of a kind: class c is the word answers(kind)[c]."""
  return CAST[kind] + OBJECTS if kind == 'qa5' else PLACES


@dataclasses.dataclass(frozen=True)
class Story:
  facts: Tuple[str, ...]   # sentences, e.g. 'Mary went to the kitchen.'
  question: str            # e.g. 'Where is Mary?'
  answer: str              # a word of answers(kind)


def _pick(rng: np.random.Generator, options):
  return options[int(rng.integers(len(options)))]


class _World:
  """People's places, who holds what, and each object's places over time."""

  def __init__(self, cast):
    self.cast = cast
    self.place: Dict[str, str] = {}
    self.holder: Dict[str, str] = {}
    self.history: Dict[str, List[str]] = {o: [] for o in OBJECTS}
    self.gives: List[Tuple[str, str, str]] = []   # (giver, object, receiver) in story order

  def _put(self, obj, place):
    if place is not None and (not self.history[obj] or self.history[obj][-1] != place):
      self.history[obj].append(place)

  def options(self, action):
    if action == 'move':
      return [(p, x) for p in self.cast for x in PLACES if self.place.get(p) != x]
    if action == 'get':
      return [(p, o) for p in self.cast if p in self.place for o in OBJECTS
              if o not in self.holder]
    if action == 'drop':
      return sorted((p, o) for o, p in self.holder.items())
    return sorted((p, o, r) for o, p in self.holder.items() for r in self.cast if r != p)

  def act(self, rng, action, args) -> str:
    if action == 'move':
      person, place = args
      self.place[person] = place
      for obj, holder in self.holder.items():
        if holder == person:
          self._put(obj, place)
      return f'{person} {_pick(rng, MOVE)} the {place}.'
    if action == 'get':
      person, obj = args
      self.holder[obj] = person
      self._put(obj, self.place[person])
      return f'{person} {_pick(rng, GET)} the {obj}.'
    if action == 'drop':
      person, obj = args
      del self.holder[obj]
      return f'{person} {_pick(rng, DROP)} the {obj}.'
    giver, obj, receiver = args
    self.holder[obj] = receiver
    self._put(obj, self.place.get(receiver))
    self.gives.append((giver, obj, receiver))
    return f'{giver} {_pick(rng, GIVE)} the {obj} to {receiver}.'


def _question(rng, kind, world: _World):
  """(question, answer) about the world, or None when this kind has nothing to ask."""
  if kind == 'qa1':
    people = [p for p in world.cast if p in world.place]
    person = _pick(rng, people)
    return f'Where is {person}?', world.place[person]
  if kind == 'qa2':
    objs = [o for o in OBJECTS if world.history[o]]
    if not objs:
      return None
    obj = _pick(rng, objs)
    return f'Where is the {obj}?', world.history[obj][-1]
  if kind == 'qa3':
    pairs = []
    for obj in OBJECTS:
      seen = world.history[obj]
      last = {x: i for i, x in enumerate(seen)}
      pairs += [(obj, x, seen[i - 1]) for x, i in sorted(last.items()) if i >= 1]
    if not pairs:
      return None
    obj, place, before = _pick(rng, pairs)
    return f'Where was the {obj} before the {place}?', before
  if not world.gives:   # qa5
    return None
  giver, obj, receiver = _pick(rng, world.gives)
  latest = lambda match: [e for e in world.gives if match(e)][-1]
  if rng.random() < len(OBJECTS) / len(answers(kind)):
    return f'What did {giver} give to {receiver}?', latest(
        lambda e: (e[0], e[2]) == (giver, receiver))[1]
  form = int(rng.integers(3))
  if form == 0:
    return f'Who gave the {obj} to {receiver}?', latest(lambda e: e[1:] == (obj, receiver))[0]
  if form == 1:
    return f'Who did {giver} give the {obj} to?', latest(lambda e: e[:2] == (giver, obj))[2]
  return f'Who received the {obj}?', latest(lambda e: e[1] == obj)[2]


def _relations_story(rng, facts: int) -> Story:
  """qa4: the six places on a 2x3 or 3x2 grid; facts are adjacencies, each edge stated
  either way ("A is north of B" / "B is south of A"); repeated when facts > 14."""
  rows, cols = (2, 3) if rng.random() < 0.5 else (3, 2)
  grid = np.asarray(PLACES)[rng.permutation(len(PLACES))].reshape(rows, cols)
  stated = []
  for r in range(rows):
    for c in range(cols):
      if r + 1 < rows:
        stated += [(grid[r, c], 'north', grid[r + 1, c]), (grid[r + 1, c], 'south', grid[r, c])]
      if c + 1 < cols:
        stated += [(grid[r, c], 'west', grid[r, c + 1]), (grid[r, c + 1], 'east', grid[r, c])]
  order = np.concatenate([rng.permutation(len(stated)) for _ in range(-(-facts // len(stated)))])
  chosen = [stated[i] for i in order[:facts]]
  a, direction, b = _pick(rng, chosen)
  if rng.random() < 0.5:
    question, answer = f'What is {direction} of the {b}?', a
  else:
    question, answer = f'What is the {a} {direction} of?', b
  return Story(tuple(f'The {x} is {d} of the {y}.' for x, d, y in chosen), question, str(answer))


def story(rng: np.random.Generator, kind: str, facts: int) -> Story:
  """A story of `facts` sentences of bAbI kind `kind` with its question and answer."""
  if kind == 'qa4':
    return _relations_story(rng, facts)
  weights = ACTIONS[kind]
  for _ in range(MAX_TRIES):
    world, sentences = _World(CAST[kind]), []
    for _ in range(facts):
      possible = [a for a in weights if world.options(a)]
      p = np.asarray([weights[a] for a in possible])
      action = possible[int(rng.choice(len(possible), p=p / p.sum()))]
      sentences.append(world.act(rng, action, _pick(rng, world.options(action))))
    asked = _question(rng, kind, world)
    if asked is not None:
      return Story(tuple(sentences), *asked)
  raise ValueError(f'{kind}: no askable story in {MAX_TRIES} draws of {facts} facts; '
                   'raise task.facts')


def fact_bytes(sentence: str) -> bytes:
  return b' ' + sentence.encode()


def question_bytes(question: str) -> bytes:
  return b'\nQ: ' + question.encode()


def _longest(words) -> str:
  return max(words, key=len)


def max_story_bytes(kind: str, facts: int) -> int:
  """An upper bound on the bytes of a story's facts and question."""
  person, place, obj = _longest(sum(CAST.values(), ())), _longest(PLACES), _longest(OBJECTS)
  fact = max(len(fact_bytes(f'{person} {_longest(MOVE)} the {place}.')),
             len(fact_bytes(f'{person} {_longest(GIVE)} the {obj} to {person}.')),
             len(fact_bytes(f'The {place} is {_longest(DIRECTIONS)} of the {place}.')))
  question = len(question_bytes(f'Where was the {max(place, obj, key=len)} before the {place}?'))
  return facts * fact + max(question, len(question_bytes(f'Who did {person} give the {obj} to?')))


class BabiTask(haystack.HaystackTask):
  """BABILong-style QA: a bAbI story hidden in `length` bytes of filler (see module doc)."""
  name = 'babilong'
  world_words = WORLD_WORDS

  @staticmethod
  def default_config():
    return dict(kind='qa1', facts=4, **haystack.HaystackTask.filler_config())

  def __init__(self, cfg, **kw):
    if cfg.kind not in KINDS:
      raise ValueError(f'unknown task.kind {cfg.kind!r}; known: {", ".join(KINDS)}')
    if cfg.facts < MIN_FACTS[cfg.kind]:
      raise ValueError(f'task.kind={cfg.kind} needs task.facts >= {MIN_FACTS[cfg.kind]}, '
                       f'got {cfg.facts}')
    self.kind, self.facts = cfg.kind, cfg.facts
    self.answers = answers(cfg.kind)
    super().__init__(cfg, **kw)
    self.spec = TaskSpec('tokens', haystack.VOCAB, 'sequence', len(self.answers), self.length)

  def label(self):
    return f'BABILong {self.kind.upper()} ({self.facts} facts, T={self.length})'

  def max_story_bytes(self):
    return max_story_bytes(self.kind, self.facts)

  def draw(self, rng, length):
    s = story(rng, self.kind, self.facts)
    depths = np.sort(rng.random(len(s.facts)))
    hay = haystack.build(self.filler, rng, length, [fact_bytes(f) for f in s.facts], depths,
                         question_bytes(s.question))
    return hay, self.answers.index(s.answer)

  def loss_and_metrics(self, logits_BxC, batch):
    return classification_metrics(logits_BxC, batch['targets'])

  def reference_metrics(self):
    return {'chance_accuracy': 1.0 / len(self.answers)}
