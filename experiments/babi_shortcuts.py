"""What one-feature guesses get on the bAbI-style stories (ltmjax/tasks/babi.py), per kind and size.

    python experiments/babi_shortcuts.py                      # qa1-qa3 at 2, 4 and 8 facts
    python experiments/babi_shortcuts.py --kinds qa2 --facts 2,8 --stories 5000

For the place-answer kinds it prints, over generated stories (the question's answer vocabulary
has 6 places, chance 16.7 %): how often the answer is the last place the story mentions, the
expected accuracy of a uniform guess among the places it mentions, and how many stories mention
one place only (then that place is the answer). A model's accuracy on a column is read against
these: a score below them has not even learned the guess.
"""
from __future__ import annotations

import argparse

import numpy as np

from ltmjax.tasks import babi


def shortcut_rates(kind: str, facts: int, stories: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  last = mentioned = one = 0.0
  for _ in range(stories):
    st = babi.story(rng, kind, facts)
    places = [w.strip('.') for s in st.facts for w in s.split() if w.strip('.') in babi.PLACES]
    distinct = set(places)
    last += bool(places) and places[-1] == st.answer
    mentioned += (st.answer in distinct) / max(1, len(distinct))
    one += len(distinct) == 1
  return {'last place': last / stories, 'guess among mentioned': mentioned / stories,
          'one place only': one / stories}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--kinds', default='qa1,qa2,qa3')
  parser.add_argument('--facts', default='2,4,8')
  parser.add_argument('--stories', type=int, default=2000)
  args = parser.parse_args(argv)
  print('| kind | facts | answer = last place | uniform guess among mentioned | one place only |')
  print('|---|---:|---:|---:|---:|')
  for kind in args.kinds.split(','):
    for facts in map(int, args.facts.split(',')):
      if facts < babi.MIN_FACTS[kind]:
        continue
      r = shortcut_rates(kind, facts, args.stories)
      print(f"| {kind} | {facts} | {100 * r['last place']:.1f} % | "
            f"{100 * r['guess among mentioned']:.1f} % | {100 * r['one place only']:.1f} % |")


if __name__ == '__main__':
  main()
