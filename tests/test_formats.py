"""The written spec must be enough to read an archive without supsup's code."""

import re
import subprocess
import sys

from tests.conftest import REPO, append_random_tasks


def test_the_spec_reader_reads_a_real_archive(lenet_archive):
    append_random_tasks(lenet_archive, 2)
    spec = (REPO / "formats" / "supsup-v1.md").read_text()
    section = spec[spec.index("## 6. Reading an archive by hand"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('path = "model.supsup"', f'path = {str(lenet_archive)!r}')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["0", "task-0"], ["1", "task-1"]]
