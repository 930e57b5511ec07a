"""Write the fixed names-and-numbers test set ``data/names-numbers/es-en.tsv``.

Spanish sentences with names, places, numbers, times and codes that a translation must
carry through unchanged, each with its English reference (written here, not taken from any
corpus), in the corpus's Anki layout: English<TAB>Spanish. The names and places are drawn
from lists that never occur in the Tatoeba Spanish-English corpus; with
``SEQ2SEQ_DATA_DIR`` set, the script checks that against ``translation/spa-eng.tsv.gz``
and refuses to write if one does.

The set is fixed (seed 2026): regenerate it only to fix a template, never to tune a model
on it. Score a run on it with::

    python -m seq2seq.evaluate --model RUN --pairs data/names-numbers/es-en.tsv

which reports BLEU and the share of names and numbers carried (``carry_rate``).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import sys
from pathlib import Path

NAMES = (
    "Xóchitl Itzel Nayeli Yaretzi Cuauhtémoc Ixchel Amaru Citlali Anacaona Wenceslao "
    "Eulalio Hermenegildo Radomir Svetozar Bogdana Oluwaseun Chidinma Ngozi Tadeusz "
    "Wojciech Zbigniew Siobhan Eilidh Leocadia Gumersindo Filomena Baltasar Ifeoma Kwabena "
    "Brunilda Casimiro Dorotea Gervasio Honoria Ildefonso Ludmila Mirela Obdulia Quirino "
    "Tiburcio Valeriana Wilfredo Ximena Zacarías"
).split()
PLACES = (
    "Tlaxcala Ayacucho Cochabamba Chiclayo Rancagua Mazatlán Querétaro Huancayo Riobamba "
    "Sopron Tarnów Jyväskylä Kragujevac Plovdiv Albacete Teruel Arequipa Tampere Gdańsk "
    "Poznań Wrocław Košice Debrecen Ljubljana"
).split()

# (Spanish, English): {name}, {other} (a second name), {place}, {n} (2-99), {big}
# (100-9999), {year}, {time} (HH:MM), {code} (two letters and four digits).
TEMPLATES = [
    ("{name} vive en {place} desde {year}.", "{name} has lived in {place} since {year}."),
    ("{name} tiene {n} años.", "{name} is {n} years old."),
    ("El vuelo {code} sale a las {time}.", "Flight {code} leaves at {time}."),
    ("Compramos {n} entradas para {place}.", "We bought {n} tickets for {place}."),
    ("{name} y {other} llegaron a {place}.", "{name} and {other} arrived in {place}."),
    ("El tren a {place} sale a las {time}.", "The train to {place} leaves at {time}."),
    ("{name} nació en {year}.", "{name} was born in {year}."),
    ("Mi hermana {name} trabaja en {place}.", "My sister {name} works in {place}."),
    ("{name} me llamó a las {time}.", "{name} called me at {time}."),
    ("La habitación {big} está libre.", "Room {big} is free."),
    ("{name} ganó {big} euros.", "{name} won {big} euros."),
    ("Hay {n} estudiantes en la clase de {name}.", "There are {n} students in {name}'s class."),
    ("{name} visitó {place} en {year}.", "{name} visited {place} in {year}."),
    ("El paquete {code} llegó ayer.", "Package {code} arrived yesterday."),
    ("¿Conoces a {name}?", "Do you know {name}?"),
    ("{name} es amigo de {other}.", "{name} is a friend of {other}."),
    ("Esperé a {name} durante {n} minutos.", "I waited for {name} for {n} minutes."),
    ("{place} está a {big} kilómetros de aquí.", "{place} is {big} kilometers from here."),
    ("{name} leyó {n} libros este año.", "{name} read {n} books this year."),
    ("La reunión con {name} es a las {time}.", "The meeting with {name} is at {time}."),
    ("{name} se mudó a {place}.", "{name} moved to {place}."),
    ("Le di {n} manzanas a {name}.", "I gave {name} {n} apples."),
    ("{name} y yo nos conocimos en {year}.", "{name} and I met in {year}."),
    ("El autobús {n} va a {place}.", "Bus {n} goes to {place}."),
    ("{name} escribió a {other} desde {place}.", "{name} wrote to {other} from {place}."),
]
PER_TEMPLATE = 8
SEED = 2026
OUTPUT = Path(__file__).resolve().parent.parent / "data" / "names-numbers" / "es-en.tsv"


def fill(rng: random.Random, spanish: str, english: str) -> tuple[str, str]:
    name, other = rng.sample(NAMES, 2)
    values = {
        "name": name,
        "other": other,
        "place": rng.choice(PLACES),
        "n": str(rng.randint(2, 99)),
        "big": str(rng.randint(100, 9999)),
        "year": str(rng.randint(1950, 2030)),
        "time": f"{rng.randint(6, 23)}:{rng.choice(range(0, 60, 5)):02d}",
        "code": "".join(rng.choices("ABCDEFGHJKLMNPRSTUVWXYZ", k=2)) + str(rng.randint(1000, 9999)),
    }
    return spanish.format(**values), english.format(**values)


def check_absent(corpus: Path) -> None:
    """Refuse names or places that occur in the corpus: the set is about unseen ones."""
    with gzip.open(corpus, "rt", encoding="utf-8") as lines:
        words = set(re.findall(r"\w+", lines.read().lower()))
    found = [term for term in NAMES + PLACES if term.lower() in words]
    if found:
        sys.exit(f"error: {corpus} contains {', '.join(found)}: pick other names")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    data_dir = os.environ.get("SEQ2SEQ_DATA_DIR")
    if data_dir:
        check_absent(Path(data_dir) / "translation" / "spa-eng.tsv.gz")
    rng = random.Random(SEED)
    rows = [fill(rng, *template) for template in TEMPLATES for _ in range(PER_TEMPLATE)]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(f"{en}\t{es}\n" for es, en in rows), encoding="utf-8")
    print(f"{len(rows)} pairs -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
