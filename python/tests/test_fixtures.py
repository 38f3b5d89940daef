"""The fixtures in fixtures/ are exactly what the Python generators produce.

Each generator (python/gen_vectors.py: canonical JSON and the tutorial's seed chain;
python/gen_v2_vectors.py: v2 golden vectors) is copied into a temporary tree and run
there, so it writes a fresh fixtures/ directory next to it; every file it writes must
be byte-identical to the committed one. A difference means either the fixtures were
edited by hand or a generator changed without regenerating them; both would let the
Rust tests check against something Python no longer says.
"""
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GENERATORS = ["gen_vectors.py", "gen_v2_vectors.py"]


def first_difference(name, want, got):
    """A short unified diff of the first lines that differ."""
    diff = difflib.unified_diff(
        want.decode(errors="replace").splitlines(),
        got.decode(errors="replace").splitlines(),
        f"fixtures/{name} (committed)",
        f"fixtures/{name} (regenerated)",
        lineterm="",
        n=1,
    )
    lines = []
    for line in diff:
        lines.append(line if len(line) < 300 else line[:300] + "…")
        if len(lines) >= 12:
            break
    return "\n".join(lines)


class RegeneratedFixturesAreCommitted(unittest.TestCase):
    def regenerate(self, script):
        tmp = tempfile.mkdtemp(prefix="kafkachain-fixtures-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.makedirs(os.path.join(tmp, "python"))
        shutil.copy(os.path.join(ROOT, "python", script), os.path.join(tmp, "python", script))
        run = subprocess.run([sys.executable, os.path.join(tmp, "python", script)], cwd=tmp,
                             capture_output=True, text=True, timeout=600)
        self.assertEqual(run.returncode, 0, f"{script} failed:\n{run.stdout}\n{run.stderr}")
        out = os.path.join(tmp, "fixtures")
        names = sorted(os.listdir(out))
        self.assertTrue(names, f"{script} wrote no fixtures")
        return out, names

    def check(self, script):
        out, names = self.regenerate(script)
        for name in names:
            with self.subTest(fixture=name):
                committed = os.path.join(ROOT, "fixtures", name)
                self.assertTrue(os.path.exists(committed),
                                f"{script} writes fixtures/{name}, which is not committed")
                with open(committed, "rb") as f:
                    want = f.read()
                with open(os.path.join(out, name), "rb") as f:
                    got = f.read()
                if want != got:
                    self.fail(f"fixtures/{name} differs from what {script} generates now "
                              f"(rerun `python3 python/{script}` and review):\n"
                              + first_difference(name, want, got))

    def test_gen_vectors(self):
        self.check("gen_vectors.py")

    def test_gen_v2_vectors(self):
        self.check("gen_v2_vectors.py")


if __name__ == "__main__":
    unittest.main()
