"""Append-only CSV logs that survive resume: on restart, rows logged after the
checkpoint being resumed are dropped, so the file has each step once."""

import csv
import os
from typing import Dict, List


class CsvLog:
    def __init__(self, path: str, fields: List[str], resume_step: int) -> None:
        self.path = path
        self.fields = fields
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        rows = []
        if resume_step > 0 and os.path.exists(path):
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in fields})
        os.replace(tmp, path)
        self._f = open(path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=fields)

    def write(self, row: Dict) -> None:
        self._w.writerow(row)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read(path: str) -> List[Dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
