"""The shifted-set experiment: correct with the study's own labelled rates, or with the shipped UTKFace rates?

Usage: python bench/shifted.py --out /tmp/shifted [--per-term 150] [--n 300] [--seed 0] [--workers 2]

Faces of people aged 40 or more from ../shared/data/faces/utkface are degraded (grey, blurred, darker), so the
default classifier errs more than on the UTKFace faces its shipped rates were measured on. Five terms are built
from them with 5, 20, 50, 80 and 95% women and run through the real stages against the local engine on
127.0.0.1 (download, crop, classify). A sample of the counted faces is drawn with gimg's design and labelled from
the truth (perfect raters), the study's rates are estimated from it, and every term is corrected twice: with the
shipped rates (as `gimg analyze` does today) and with the study's rates (gimg.studyrates). Prints one table and
writes OUT/shifted.csv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHARES = {"share 05": 0.05, "share 20": 0.2, "share 50": 0.5, "share 80": 0.8, "share 95": 0.95}
MIN_AGE = 40


def degrade(source: Path, target: Path) -> None:
    """Grey, blurred and darker: a face unlike the tight, clear UTKFace crops the shipped rates come from."""
    with Image.open(source) as image:
        grey = ImageOps.grayscale(image).convert("RGB")
    blurred = grey.filter(ImageFilter.GaussianBlur(2.0))
    ImageEnhance.Brightness(blurred).enhance(0.55).save(target, quality=85)


def build_faces(out: Path) -> pd.DataFrame:
    """The degraded older faces under out/faces, and their labels."""
    labels = pd.read_csv(SHARED_DATA / "faces" / "utkface" / "labels.csv")
    labels = labels[labels["age"] >= MIN_AGE].reset_index(drop=True)
    folder = out / "faces"
    folder.mkdir(parents=True, exist_ok=True)
    for name in labels["file"]:
        if not (folder / name).exists():
            degrade(SHARED_DATA / "faces" / "utkface" / "images" / name, folder / name)
    return labels


def run_study(out: Path, labels: pd.DataFrame, per_term: int, seed: int, workers: int) -> pd.DataFrame:
    """The study through the real stages; returns the site's truth table."""
    from gimg.classify import run_crop_classify
    from gimg.download import run_download
    from gimg.localengine import build_site, serve_site

    site = out / "site"
    truth = build_site(labels, out / "faces", site, SHARES, per_term=per_term, seed=seed)
    with serve_site(site) as base_url:
        run_download(list(SHARES), out / "study", engine="bing", engine_url=base_url, limit=per_term, workers=workers)
    run_crop_classify(out / "study", workers=workers)
    return truth


def face_truth(study: Path, truth: pd.DataFrame) -> dict[str, str]:
    """The true gender behind each downloaded image, by its path relative to the study (Downloaded_images/...)."""
    from gimg.layout import DOWNLOADED, Layout, folder_name

    layout, genders = Layout(study), {}
    served = truth.set_index("image")["gender"]
    for term in SHARES:
        manifest = pd.read_csv(layout.manifest(term), keep_default_na=False)
        for row in manifest[manifest["status"] == "downloaded"].itertuples():
            genders[f"{DOWNLOADED}/{folder_name(term)}/{row.file}"] = served[unquote(row.url.rsplit("/", 1)[-1])]
    return genders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a folder for the faces, the site and the study")
    parser.add_argument("--per-term", type=int, default=150, help="images per term (default 150)")
    parser.add_argument("--n", type=int, default=300, help="faces in the labelled sample (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the site, the sample and the bootstrap")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap replicates (default 2000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for crop and classify")
    args = parser.parse_args()
    if not SHARED_DATA.is_dir():
        print(f"needs ../shared/data next to the repository ({SHARED_DATA} is absent)", file=sys.stderr)
        return 2

    from gimg.analyze import Policy, per_image, term_faces
    from gimg.correction import default_evaluation_path, draw_error_rates, estimate_term, load_evaluation
    from gimg.labelreport import build_cells, majority_labels
    from gimg.layout import Layout
    from gimg.studyrates import draw_study_rates, estimate_term_with_study, study_rates
    from gimg.validation import counted_faces, draw_sample, read_strata

    study = args.out / "study"
    truth = run_study(args.out, build_faces(args.out), args.per_term, args.seed, args.workers)
    genders = face_truth(study, truth)
    sample = draw_sample(study, n=args.n, seed=args.seed)
    labels = pd.DataFrame({"item": sample["item"], "rater": "truth", "label": sample["image"].map(genders)})
    cells = build_cells(read_strata(study), sample, majority_labels(labels))
    point = study_rates(cells)

    rng = np.random.default_rng(args.seed)
    shipped = load_evaluation(default_evaluation_path("onnx"))
    shipped_draws = draw_error_rates(shipped, args.resamples, rng)
    study_draws = draw_study_rates(cells, args.resamples, rng)
    layout, rows = Layout(study), []
    for term, share in SHARES.items():
        manifest = pd.read_csv(layout.manifest(term), dtype=str, keep_default_na=False)
        used = term_faces(manifest, pd.read_csv(layout.dataset(term), dtype={"image": str, "file": str}),
                          Policy()).used
        women, faces = per_image(used, 0.5)
        with_shipped, _ = estimate_term(women, faces, *shipped_draws, (shipped.sensitivity, shipped.specificity), rng)
        with_study, _ = estimate_term_with_study(women, faces, study_draws, point, rng)
        rows.append({"term": term, "truth": share, "faces": int(faces.sum()), "raw": with_shipped.share,
                     "shipped": with_shipped.corrected, "shipped_low": with_shipped.corrected_low,
                     "shipped_high": with_shipped.corrected_high, "study": with_study.corrected,
                     "study_low": with_study.corrected_low, "study_high": with_study.corrected_high})
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "shifted.csv", index=False)

    counted = counted_faces(study)
    is_woman, called_female = counted["image"].map(genders) == "female", counted["predicted"] == "female"
    print(f"study: {sum(cell.faces for cell in cells)} counted faces, {len(sample)} labelled from the truth "
          f"(seed {args.seed}, {args.per_term} images per term, faces aged {MIN_AGE}+, grey, blurred, darker)")
    print(f"shipped rates (UTKFace): sensitivity {shipped.sensitivity:.3f}, specificity {shipped.specificity:.3f}")
    print(f"study rates (labelled sample): sensitivity {point.sensitivity:.3f}, specificity {point.specificity:.3f}, "
          f"nonperson share {point.nonperson_share:.3f}")
    print(f"realized on all counted faces: sensitivity {called_female[is_woman].mean():.3f}, "
          f"specificity {(~called_female[~is_woman]).mean():.3f}")
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 140):
        print(table.to_string(index=False))
    within = (table["study"] - table["truth"]).abs().max()
    covered = ((table["study_low"] <= table["truth"]) & (table["truth"] <= table["study_high"])).sum()
    print(f"study-rate correction: largest error {within:.3f}, intervals cover the truth for {covered} of "
          f"{len(table)} terms; shipped-rate correction: largest error "
          f"{(table['shipped'] - table['truth']).abs().max():.3f}, covers "
          f"{((table['shipped_low'] <= table['truth']) & (table['truth'] <= table['shipped_high'])).sum()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
