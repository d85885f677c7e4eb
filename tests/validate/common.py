"""Shared by the validators: YAML loading and error reporting. Each validator takes
file paths, prints `ok <path>` per valid file, or the problems and exits 1."""
import sys

import yaml


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


class Report:
    def __init__(self):
        self.problems = []

    def add(self, path, msg):
        self.problems.append("%s: %s" % (path, msg))

    def finish(self):
        if self.problems:
            sys.stdout.write("\n".join(self.problems) + "\n")
            sys.exit(1)
