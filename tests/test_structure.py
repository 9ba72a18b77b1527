"""Layout rules read from the source with `ast`: no import cycle inside ltmjax (every Import and
ImportFrom node, module and function level), every Python file under 400 lines, and configs that
import only ltmjax.config_lib and never each other."""
import ast
import pathlib
import tempfile

from absl.testing import absltest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_LINES = 400                       # a file has fewer lines than this
CHECKED_FOLDERS = ('ltmjax', 'experiments', 'tests', 'configs')


def module_name(path, root=ROOT):
  """ltmjax/tasks/base.py -> 'ltmjax.tasks.base'; ltmjax/tasks/__init__.py -> 'ltmjax.tasks'."""
  parts = list(path.relative_to(root).with_suffix('').parts)
  if parts[-1] == '__init__':
    parts.pop()
  return '.'.join(parts)


def imported_names(tree, name, is_package):
  """Every dotted name an Import/ImportFrom anywhere in `tree` may load, relative ones resolved.

  `from a.b import c` yields both 'a.b.c' (if c is a module) and 'a.b' (if c is an attribute);
  `import_edges` keeps whichever is a known module.
  """
  package = name if is_package else name.rpartition('.')[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name, None
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base_parts = package.split('.')
        base_parts = base_parts[:len(base_parts) - (node.level - 1)]
        base = '.'.join(base_parts + ([node.module] if node.module else []))
      else:
        base = node.module
      for alias in node.names:
        yield base, alias.name


def import_edges(root=ROOT, package='ltmjax'):
  """{module: {modules of `package` it imports}} for every .py file of the package under `root`."""
  files = sorted((root / package).rglob('*.py'))
  names = {module_name(p, root): p for p in files}
  edges = {}
  for name, path in names.items():
    tree = ast.parse(path.read_text(), filename=str(path))
    targets = set()
    for base, attr in imported_names(tree, name, path.name == '__init__.py'):
      if attr is not None and f'{base}.{attr}' in names:
        targets.add(f'{base}.{attr}')      # from ltmjax.tasks import base -> ltmjax.tasks.base
        continue
      parts = base.split('.')               # the longest prefix that is a module of the package
      while parts and '.'.join(parts) not in names:
        parts.pop()
      if parts:
        targets.add('.'.join(parts))
    targets.discard(name)
    edges[name] = targets
  return edges


def find_cycle(edges):
  """One import cycle as a list [a, b, ..., a], or None. Depth-first, iterative."""
  state = {}                                  # 1: on the current path, 2: finished
  for start in sorted(edges):
    if state.get(start):
      continue
    path, stack = [start], [iter(sorted(edges[start]))]
    state[start] = 1
    while stack:
      nxt = next(stack[-1], None)
      if nxt is None:
        state[path.pop()] = 2
        stack.pop()
      elif state.get(nxt) == 1:
        return path[path.index(nxt):] + [nxt]
      elif not state.get(nxt):
        state[nxt] = 1
        path.append(nxt)
        stack.append(iter(sorted(edges.get(nxt, ()))))
  return None


def long_files(root=ROOT):
  """(relative path, line count) of every checked .py file with MAX_LINES lines or more."""
  out = []
  for folder in CHECKED_FOLDERS:
    for path in sorted((root / folder).rglob('*.py')):
      n = len(path.read_text().splitlines())
      if n >= MAX_LINES:
        out.append((str(path.relative_to(root)), n))
  return out


def config_import_problems(root=ROOT):
  """'configs/x.py:LINE imports NAME' for every import a config file must not have."""
  configs = {p.stem for p in (root / 'configs').glob('*.py')}
  problems = []
  for path in sorted((root / 'configs').glob('*.py')):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        found = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        if node.level:                        # from . import x / from .x import y
          found = ['.' * node.level + (node.module or '')]
        elif node.module == 'ltmjax':         # from ltmjax import config_lib
          found = [f'ltmjax.{a.name}' for a in node.names]
        else:
          found = [node.module]
      else:
        continue
      for name in found:
        top = name.split('.')[0]
        bad = (name.startswith('.') or top == 'configs' or top in configs
               or (top == 'ltmjax' and name != 'ltmjax.config_lib'
                   and not name.startswith('ltmjax.config_lib.')))
        if bad:
          problems.append(f'{path.relative_to(root)}:{node.lineno} imports {name}')
  return problems


class StructureTest(absltest.TestCase):

  def test_no_import_cycle_in_ltmjax(self):
    edges = import_edges()
    self.assertIn('ltmjax.train', edges)       # the walk found the package
    self.assertIn('ltmjax.models', edges['ltmjax.train'])
    cycle = find_cycle(edges)
    self.assertIsNone(cycle, 'import cycle: ' + ' -> '.join(cycle or []))

  def test_files_under_max_lines(self):
    self.assertEqual(long_files(), [], f'files with {MAX_LINES} lines or more')

  def test_configs_import_only_config_lib(self):
    self.assertEqual(config_import_problems(), [])


class CheckerTest(absltest.TestCase):
  """The checks above catch what they claim to, on a small tree written here."""

  def _tree(self, files):
    tmp = tempfile.TemporaryDirectory()
    self.addCleanup(tmp.cleanup)
    root = pathlib.Path(tmp.name)
    for rel, text in files.items():
      (root / rel).parent.mkdir(parents=True, exist_ok=True)
      (root / rel).write_text(text)
    return root

  def test_cycle_through_function_level_and_relative_imports(self):
    root = self._tree({
        'ltmjax/__init__.py': '',
        'ltmjax/a.py': 'from ltmjax import b\n',
        'ltmjax/b.py': 'def f():\n  from .pkg import c\n',
        'ltmjax/pkg/__init__.py': '',
        'ltmjax/pkg/c.py': 'import ltmjax.a as a\n',
        'ltmjax/d.py': 'from ltmjax.pkg import c\nfrom ltmjax.a import x\n',
    })
    edges = import_edges(root)
    self.assertEqual(edges['ltmjax.d'], {'ltmjax.pkg.c', 'ltmjax.a'})
    self.assertEqual(edges['ltmjax.b'], {'ltmjax.pkg.c'})
    self.assertEqual(find_cycle(edges), ['ltmjax.a', 'ltmjax.b', 'ltmjax.pkg.c', 'ltmjax.a'])
    (root / 'ltmjax/b.py').write_text('import os\n')
    (root / 'ltmjax/pkg/c.py').write_text('from .. import d\n')     # d -> c: still a cycle
    self.assertEqual(find_cycle(import_edges(root)), ['ltmjax.d', 'ltmjax.pkg.c', 'ltmjax.d'])
    (root / 'ltmjax/pkg/c.py').write_text('import os\n')
    self.assertIsNone(find_cycle(import_edges(root)))

  def test_long_file_and_config_imports_are_reported(self):
    root = self._tree({
        'ltmjax/x.py': 'a = 1\n' * MAX_LINES,
        'ltmjax/y.py': 'a = 1\n' * (MAX_LINES - 1),
        'experiments/e.py': '', 'tests/t.py': '',
        'configs/a.py': 'from ltmjax import config_lib\nimport ml_collections\n',
        'configs/b.py': ('def get_config():\n  from configs import a\n  import a\n'
                         '  from ltmjax import train\n  from . import a\n'
                         '  from ltmjax.config_lib import x\n'),
    })
    self.assertEqual(long_files(root), [('ltmjax/x.py', MAX_LINES)])
    self.assertEqual(config_import_problems(root), [
        'configs/b.py:2 imports configs', 'configs/b.py:3 imports a',
        'configs/b.py:4 imports ltmjax.train', 'configs/b.py:5 imports .'])


if __name__ == '__main__':
  absltest.main()
