"""A real worker process for the claim tests: crop fixture faces per term under claims on a shared folder.

python claimworker.py OUT TERMS_FILE --busy wait|skip --batch N --stale-after S [--threads N] [--meet]
    [--hang TERM] [--no-check-pids]

For each term it claims, it crops three padded fixture faces with gimg.faces.crop_one, writes
OUT/results/<term folder>.csv atomically and appends "term pid" to OUT/log-<pid>.txt. Terms run in claim_rounds,
or with --threads N in claim_each on N threads (as downloads do). With --meet its first term waits
(at most 20 s) until another worker also holds a term, so two workers are sure to work at once. --hang TERM sleeps
forever once that term is claimed, for a test to kill it there. Prints one JSON object per outcome at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from gimg.faces import CropTask, crop_one
from gimg.layout import folder_name, write_csv
from gimg.options import CropOptions, ExecutionOptions
from gimg.outcome import TermOutcome
from gimg.stageclaims import StageClaims, claim_each, claim_rounds

FACES = sorted((Path(__file__).parent / "fixtures" / "faces" / "images").glob("*.jpg"))


def padded(source: Path, target: Path) -> None:
    """A tight 200 px fixture face on a 400 px canvas of its own edges, where the detector finds it."""
    face = np.asarray(Image.open(source).convert("RGB"))
    Image.fromarray(np.pad(face, ((100, 100), (100, 100), (0, 0)), mode="edge")).save(target, quality=95)


class Worker:
    """The work of one stage driver: crop a term's images, write its result, log that this pid did it."""

    def __init__(self, out: Path, hang: str | None, meet: bool) -> None:
        self.out, self.hang, self.meet = out, hang, meet

    def _meet_another(self) -> None:
        (self.out / f"working-{os.getpid()}").touch()
        deadline = time.monotonic() + 20
        while len(list(self.out.glob("working-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)

    def __call__(self, held: dict) -> dict[str, TermOutcome]:
        outcomes = {}
        for term in held:
            if term == self.hang:
                (self.out / f"hanging-{os.getpid()}").touch()
                time.sleep(600)
            if self.meet:
                self.meet = False
                self._meet_another()
            images = self.out / "images" / folder_name(term)
            crops = self.out / "crops" / folder_name(term) / str(os.getpid())
            images.mkdir(parents=True, exist_ok=True)
            crops.mkdir(parents=True, exist_ok=True)
            rows = []
            for index in range(3):
                source = FACES[(zlib.crc32(term.encode()) + index) % len(FACES)]
                padded(source, images / f"{index}.jpg")
                record = crop_one(CropTask(term, str(images / f"{index}.jpg"), str(crops), CropOptions()))
                rows += [{"image": index, "status": record.status, "faces": len(record.rows)}]
            write_csv(self.out / "results" / f"{folder_name(term)}.csv", rows, ["image", "status", "faces"])
            with (self.out / f"log-{os.getpid()}.txt").open("a", encoding="utf-8") as log:
                log.write(f"{term}\t{os.getpid()}\n")
            outcomes[term] = TermOutcome(term, "done", f"{sum(row['faces'] for row in rows)} faces")
        return outcomes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("terms", type=Path)
    parser.add_argument("--busy", default="wait")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--stale-after", type=float, default=60.0)
    parser.add_argument("--meet", action="store_true")
    parser.add_argument("--hang", default=None)
    parser.add_argument("--no-check-pids", action="store_true")
    options = parser.parse_args()
    terms = options.terms.read_text(encoding="utf-8").splitlines()
    check_pids = not options.no_check_pids
    execution = ExecutionOptions(busy=options.busy, stale_after=options.stale_after)
    claims = StageClaims(options.out, "crop", execution, check_pids=check_pids)
    results = options.out / "results"
    worker = Worker(options.out, options.hang, options.meet)
    def is_done(term: str) -> bool:
        return (results / f"{folder_name(term)}.csv").exists()

    def notify(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if options.threads is None:
        outcomes = claim_rounds(claims, terms, worker, batch=options.batch, poll=0.1, is_done=is_done, notify=notify)
    else:
        outcomes = claim_each(claims, terms, lambda term: worker({term: None})[term], workers=options.threads,
                              poll=0.1, is_done=is_done, notify=notify)
    for outcome in outcomes:
        print(json.dumps({"term": outcome.term, "status": outcome.status, "detail": outcome.detail}), flush=True)


if __name__ == "__main__":
    main()
