"""Other real clients: `jupyter console` driven through a terminal (pexpect), and
nbclient executing every notebook in notebooks/."""
import glob
import os
import unittest

import nbformat
from nbclient import NotebookClient

from kiln_testing import KERNEL_NAME, console, pexpect

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))



class TestConsole(unittest.TestCase):
    @unittest.skipIf(pexpect is None, "pexpect is not installed")
    def test_console_runs_a_cell(self):
        child = console()
        try:
            child.expect(r"In \[1\]: ")
            child.sendline('printf("from console %d\\n", 6 * 7);')
            child.expect("from console 42")
            child.expect(r"In \[2\]: ")
            child.sendline("int q = 2;")
            child.expect(r"In \[3\]: ")
            child.sendline("q + 40")
            child.expect(r"Out\[3\]: 42")
            child.expect(r"In \[4\]: ")
            child.sendeof()
            child.expect(pexpect.EOF)
        finally:
            child.close(force=True)


class TestNotebooks(unittest.TestCase):
    def test_every_notebook_runs(self):
        paths = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
        self.assertTrue(paths, "no notebooks in notebooks/")
        for path in paths:
            with self.subTest(notebook=os.path.basename(path)):
                nb = nbformat.read(path, as_version=4)
                NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=300,
                               resources={"metadata": {"path": os.path.dirname(path)}}).execute()
                for i, cell in enumerate(nb.cells):
                    if cell.cell_type != "code":
                        continue
                    errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
                    # nbclient already failed on an error in an untagged cell
                    expected = 1 if "raises-exception" in cell.metadata.get("tags", []) else 0
                    self.assertEqual(len(errors), expected, f"cell {i}: {cell.source!r}")


if __name__ == "__main__":
    unittest.main()
