"""Build gimg's default census (src/gimg/data/professions.csv) and professions.txt from BLS CPS 2022 table 11.

Each search term is what a person would type into an image search; it maps by hand to one detailed BLS
occupation of 2022. The 2012 names that Kay, Matuszek & Munson (2015) searched for
(../shared/data/kay2015/bls_occupations.csv) guided the choice; many BLS names changed in 2018, and those
changes are spelled out in TERMS below (e.g. 2012 "Physicians and surgeons" became "Other physicians",
"Security guards and gaming surveillance officers" became "... gambling surveillance officers").

Run from the repository root:  python scripts/build_professions.py [--bls CSV] [--out DIR] [--census CSV]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CENSUS = REPO / "src" / "gimg" / "data" / "professions.csv"
DEFAULT_BLS = REPO.parent / "shared" / "data" / "bls" / "cpsaat11_2022_clean.csv"
SOURCE = "BLS CPS 2022 cpsaat11"
COLUMNS = ["term", "bls_occupation", "bls_share_women", "bls_employed_thousands", "source"]
TERMS_HEADER = "# gimg search terms: the term column of gimg's census, professions.csv (built by scripts/build_professions.py)"

# term a person types -> exact 2022 BLS occupation name (detailed rows only).
# Gendered job words (waitress, hostess, lineman, seamstress) and words that mostly find objects
# (dishwasher, server) are replaced by neutral or qualified terms.
TERMS: dict[str, str] = {
    # management, business and financial
    "CEO": "Chief executives",
    "marketing manager": "Marketing managers",
    "sales manager": "Sales managers",
    "IT manager": "Computer and information systems managers",
    "financial manager": "Financial managers",
    "HR manager": "Human resources managers",
    "construction manager": "Construction managers",
    "farmer": "Farmers, ranchers, and other agricultural managers",
    "school principal": "Education and childcare administrators",
    "restaurant manager": "Food service managers",
    "hotel manager": "Lodging managers",
    "property manager": "Property, real estate, and community association managers",
    "claims adjuster": "Claims adjusters, appraisers, examiners, and investigators",
    "compliance officer": "Compliance officers",
    "cost estimator": "Cost estimators",
    "HR specialist": "Human resources workers",
    "logistician": "Logisticians",
    "project manager": "Project management specialists",
    "management consultant": "Management analysts",
    "event planner": "Meeting, convention, and event planners",
    "fundraiser": "Fundraisers",
    "market research analyst": "Market research analysts and marketing specialists",
    "accountant": "Accountants and auditors",
    "appraiser": "Property appraisers and assessors",
    "financial analyst": "Financial and investment analysts",
    "financial advisor": "Personal financial advisors",
    "insurance underwriter": "Insurance underwriters",
    "loan officer": "Credit counselors and loan officers",
    "tax collector": "Tax examiners and collectors, and revenue agents",
    "tax preparer": "Tax preparers",
    # computer, engineering and science
    "systems analyst": "Computer systems analysts",
    "information security analyst": "Information security analysts",
    "computer programmer": "Computer programmers",
    "software developer": "Software developers",
    "software tester": "Software quality assurance analysts and testers",
    "web developer": "Web developers",
    "web designer": "Web and digital interface designers",
    "IT support specialist": "Computer support specialists",
    "database administrator": "Database administrators and architects",
    "network administrator": "Network and computer systems administrators",
    "statistician": "Statisticians",
    "architect": "Architects, except landscape and naval",
    "aerospace engineer": "Aerospace engineers",
    "chemical engineer": "Chemical engineers",
    "civil engineer": "Civil engineers",
    "computer hardware engineer": "Computer hardware engineers",
    "electrical engineer": "Electrical and electronics engineers",
    "industrial engineer": "Industrial engineers, including health and safety",
    "mechanical engineer": "Mechanical engineers",
    "drafter": "Other drafters",
    "biologist": "Biological scientists",
    "medical scientist": "Medical scientists",
    "chemist": "Chemists and materials scientists",
    "psychologist": "Other psychologists",
    # community, legal, education, arts
    "school counselor": "Educational, guidance, and career counselors and advisors",
    "mental health counselor": "Mental health counselors",
    "social worker": "Social workers, all other",
    "probation officer": "Probation officers and correctional treatment specialists",
    "pastor": "Clergy",
    "lawyer": "Lawyers",
    "judge": "Judges, magistrates, and other judicial workers",
    "paralegal": "Paralegals and legal assistants",
    "professor": "Postsecondary teachers",
    "kindergarten teacher": "Preschool and kindergarten teachers",
    "elementary school teacher": "Elementary and middle school teachers",
    "high school teacher": "Secondary school teachers",
    "special education teacher": "Special education teachers",
    "tutor": "Tutors",
    "teaching assistant": "Teaching assistants",
    "librarian": "Librarians and media collections specialists",
    "museum curator": "Archivists, curators, and museum technicians",
    "artist": "Artists and related workers",
    "florist": "Floral designers",
    "graphic designer": "Graphic designers",
    "interior designer": "Interior designers",
    "actor": "Actors",
    "film director": "Producers and directors",
    "sports coach": "Coaches and scouts",
    "musician": "Musicians and singers",
    "journalist": "News analysts, reporters, and journalists",
    "public relations specialist": "Public relations specialists",
    "editor": "Editors",
    "technical writer": "Technical writers",
    "author": "Writers and authors",
    "translator": "Interpreters and translators",
    "sound technician": "Broadcast, sound, and lighting technicians",
    "photographer": "Photographers",
    "camera operator": "Television, video, and film camera operators and editors",
    # healthcare
    "chiropractor": "Chiropractors",
    "dentist": "Dentists",
    "dietitian": "Dietitians and nutritionists",
    "pharmacist": "Pharmacists",
    "doctor": "Other physicians",
    "physician assistant": "Physician assistants",
    "occupational therapist": "Occupational therapists",
    "physical therapist": "Physical therapists",
    "respiratory therapist": "Respiratory therapists",
    "speech therapist": "Speech-language pathologists",
    "veterinarian": "Veterinarians",
    "nurse": "Registered nurses",
    "nurse practitioner": "Nurse practitioners",
    "lab technician": "Clinical laboratory technologists and technicians",
    "dental hygienist": "Dental hygienists",
    "sonographer": "Diagnostic medical sonographers",
    "x-ray technician": "Radiologic technologists and technicians",
    "EMT": "Emergency medical technicians",
    "paramedic": "Paramedics",
    "pharmacy technician": "Pharmacy technicians",
    "surgical technologist": "Surgical technologists",
    "vet tech": "Veterinary technologists and technicians",
    "licensed practical nurse": "Licensed practical and licensed vocational nurses",
    "home health aide": "Home health aides",
    "caregiver": "Personal care aides",
    "nursing assistant": "Nursing assistants",
    "massage therapist": "Massage therapists",
    "dental assistant": "Dental assistants",
    "medical assistant": "Medical assistants",
    "phlebotomist": "Phlebotomists",
    # protective and personal services, food
    "firefighter": "Firefighters",
    "correctional officer": "Correctional officers and jailers",
    "detective": "Detectives and criminal investigators",
    "police officer": "Police officers",
    "private investigator": "Private detectives and investigators",
    "security guard": "Security guards and gambling surveillance officers",
    "chef": "Chefs and head cooks",
    "cook": "Cooks",
    "bartender": "Bartenders",
    "fast food worker": "Fast food and counter workers",
    "restaurant server": "Waiters and waitresses",
    "restaurant dishwasher": "Dishwashers",
    "janitor": "Janitors and building cleaners",
    "housekeeper": "Maids and housekeeping cleaners",
    "exterminator": "Pest control workers",
    "landscaper": "Landscaping and groundskeeping workers",
    "tree trimmer": "Tree trimmers and pruners",
    "dog trainer": "Animal trainers",
    "barber": "Barbers",
    "hairdresser": "Hairdressers, hairstylists, and cosmetologists",
    "nail technician": "Manicurists and pedicurists",
    "esthetician": "Skincare specialists",
    "bellhop": "Baggage porters, bellhops, and concierges",
    "tour guide": "Tour and travel guides",
    "childcare worker": "Childcare workers",
    "personal trainer": "Exercise trainers and group fitness instructors",
    "casino dealer": "Gambling services workers",
    # sales and office
    "cashier": "Cashiers",
    "retail salesperson": "Retail salespersons",
    "insurance agent": "Insurance sales agents",
    "stockbroker": "Securities, commodities, and financial services sales agents",
    "travel agent": "Travel agents",
    "sales representative": "Sales representatives, wholesale and manufacturing",
    "real estate agent": "Real estate brokers and sales agents",
    "sales engineer": "Sales engineers",
    "bill collector": "Bill and account collectors",
    "bookkeeper": "Bookkeeping, accounting, and auditing clerks",
    "payroll clerk": "Payroll and timekeeping clerks",
    "bank teller": "Tellers",
    "customer service representative": "Customer service representatives",
    "hotel front desk clerk": "Hotel, motel, and resort desk clerks",
    "receptionist": "Receptionists and information clerks",
    "courier": "Couriers and messengers",
    "dispatcher": "Dispatchers, except police, fire, and ambulance",
    "911 dispatcher": "Public safety telecommunicators",
    "mail carrier": "Postal service mail carriers",
    "postal clerk": "Postal service clerks",
    "executive assistant": "Executive secretaries and executive administrative assistants",
    "medical secretary": "Medical secretaries and administrative assistants",
    "secretary": "Secretaries and administrative assistants, except legal, medical, and executive",
    "data entry clerk": "Data entry keyers",
    "office clerk": "Office clerks, general",
    # farming, construction, maintenance
    "farmworker": "Miscellaneous agricultural workers",
    "logger": "Logging workers",
    "construction foreman": "First-line supervisors of construction trades and extraction workers",
    "bricklayer": "Brickmasons, blockmasons, and stonemasons",
    "carpenter": "Carpenters",
    "flooring installer": "Carpet, floor, and tile installers and finishers",
    "cement mason": "Cement masons, concrete finishers, and terrazzo workers",
    "construction worker": "Construction laborers",
    "heavy equipment operator": "Construction equipment operators",
    "drywall installer": "Drywall installers, ceiling tile installers, and tapers",
    "electrician": "Electricians",
    "house painter": "Painters and paperhangers",
    "plumber": "Plumbers, pipefitters, and steamfitters",
    "roofer": "Roofers",
    "sheet metal worker": "Sheet metal workers",
    "ironworker": "Structural iron and steel workers",
    "building inspector": "Construction and building inspectors",
    "auto body technician": "Automotive body and related repairers",
    "mechanic": "Automotive service technicians and mechanics",
    "aircraft mechanic": "Aircraft mechanics and service technicians",
    "diesel mechanic": "Bus and truck mechanics and diesel engine specialists",
    "HVAC technician": "Heating, air conditioning, and refrigeration mechanics and installers",
    "maintenance worker": "Maintenance and repair workers, general",
    "power line worker": "Electrical power-line installers and repairers",
    # production and transportation
    "baker": "Bakers",
    "butcher": "Butchers and other meat, poultry, and fish processing workers",
    "machinist": "Machinists",
    "welder": "Welding, soldering, and brazing workers",
    "laundry worker": "Laundry and dry-cleaning workers",
    "sewing machine operator": "Sewing machine operators",
    "tailor": "Tailors, dressmakers, and sewers",
    "jeweler": "Jewelers and precious stone and metal workers",
    "pilot": "Aircraft pilots and flight engineers",
    "flight attendant": "Flight attendants",
    "school bus driver": "Bus drivers, school",
    "bus driver": "Bus drivers, transit and intercity",
    "truck driver": "Driver/sales workers and truck drivers",
    "taxi driver": "Taxi drivers",
    "chauffeur": "Shuttle drivers and chauffeurs",
    "locomotive engineer": "Locomotive engineers and operators",
    "parking attendant": "Parking attendants",
    "crane operator": "Crane and tower operators",
    "forklift operator": "Industrial truck and tractor operators",
    "warehouse worker": "Laborers and freight, stock, and material movers, hand",
    "garbage collector": "Refuse and recyclable material collectors",
}


def read_bls(path: Path) -> dict[str, dict[str, str]]:
    """The detailed (non-aggregate) occupations of the clean BLS table that have a share of women."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {row["occupation"]: row for row in rows if row["is_aggregate"] == "FALSE" and row["pct_women"]}


def build_rows(bls: dict[str, dict[str, str]]) -> list[dict[str, object]]:
    """One professions.csv row per term, in TERMS order; raises ValueError on an unknown BLS name."""
    unknown = sorted(name for name in TERMS.values() if name not in bls)
    if unknown:
        raise ValueError(f"not detailed BLS 2022 occupations with a share of women: {unknown}")
    return [
        {
            "term": term,
            "bls_occupation": name,
            "bls_share_women": round(float(bls[name]["pct_women"]) / 100, 3),
            "bls_employed_thousands": int(bls[name]["total_employed_thousands"]),
            "source": SOURCE,
        }
        for term, name in TERMS.items()
    ]


def write_outputs(rows: list[dict[str, object]], out: Path, census: Path) -> None:
    """Write professions.txt into out, and the census table to census (the package's professions.csv)."""
    with census.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    lines = [TERMS_HEADER] + [str(row["term"]) for row in rows]
    (out / "professions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Parse the options, build both files, and print a one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bls", type=Path, default=DEFAULT_BLS, help="the clean cpsaat11 2022 CSV")
    parser.add_argument("--out", type=Path, default=REPO, help="folder for professions.txt")
    parser.add_argument("--census", type=Path, default=CENSUS, help="where professions.csv goes (gimg's default census)")
    options = parser.parse_args(argv)
    rows = build_rows(read_bls(options.bls))
    write_outputs(rows, options.out, options.census)
    shares = [float(row["bls_share_women"]) for row in rows]
    print(f"{len(rows)} terms, share of women {min(shares):.3f}..{max(shares):.3f}, written to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
