"""Sound events from Debian ``tuxpaint-stamps-default``.

Each stamp ``<dir>/<name>.png`` may come with ``<name>.ogg`` (its sound) and ``<name>.txt`` (first
line: an English caption such as "A red kangaroo."). ``<name>_desc*.ogg`` and ``<name>_<lang>.ogg``
are spoken descriptions and are never used. Of the ~136 plain sounds, the ones below are real
sound events; the rest were checked by listening (spectrograms) and left out: spoken digits,
letters, faces ("Happy!"), road signs, dreidel letters, "yum", a ghost's "boo", radio speech
(Apollo lander) and clips whose picture does not name the source of the sound (a checkered flag,
a Christmas hat, a moth). Silent placeholders (giraffe, iguana, rhea, wombat) are dropped by the
generic silence check and counted.

The table maps the stamp path (without ``.ogg``) to ``(label, category[, caption])``; a clip not in
the table is skipped as "not curated", so a newer package cannot slip spoken clips in.
"""

from __future__ import annotations

from pathlib import Path

from avsuite.data.corpora.common import ClipSpec

PACKAGE = "tuxpaint-stamps-default"
LICENSE = "GPL-2.0-or-later"
ROOT = Path("/usr/share/tuxpaint/stamps")

A, I, D, E, V = "animal", "instrument", "domestic", "environment", "vehicle"

TABLE: dict[str, tuple] = {
    # birds
    "animals/birds/blackbird": ("blackbird", A), "animals/birds/crow": ("crow", A),
    "animals/birds/cuckoo": ("cuckoo", A), "animals/birds/drake": ("duck", A),
    "animals/birds/duck": ("duck", A), "animals/birds/gander": ("goose", A),
    "animals/birds/hen": ("chicken", A), "animals/birds/heron_greatblue_flying": ("heron", A),
    "animals/birds/lark": ("lark", A), "animals/birds/nandou": ("rhea", A),
    "animals/birds/owl": ("owl", A), "animals/birds/penguin": ("penguin", A),
    "animals/birds/quetzal": ("quetzal", A), "animals/birds/rooster": ("rooster", A),
    "animals/birds/seagull": ("seagull", A), "animals/birds/tucan": ("toucan", A),
    "animals/birds/turkey": ("turkey", A), "animals/birds/vulture": ("vulture", A),
    # insects, reptiles, amphibians
    "animals/insects/bee": ("bee", A), "animals/insects/hornet": ("hornet", A),
    "animals/insects/mosquito": ("mosquito", A), "animals/insects/grasshopper": ("grasshopper", A),
    "animals/lizards/iguana": ("iguana", A), "animals/amphibians/frog": ("frog", A),
    # mammals
    "animals/marsupials/koala": ("koala", A), "animals/marsupials/wombat": ("wombat", A),
    "animals/mammals/rodents/rabbit": ("rabbit", A), "animals/mammals/rodents/squirrel": ("squirrel", A),
    "animals/mammals/rodents/mouse": ("mouse", A), "animals/mammals/rodents/beaver": ("beaver", A),
    "animals/mammals/camel/dromedary": ("camel", A), "animals/mammals/camel/camel": ("camel", A),
    "animals/mammals/bears/bear": ("bear", A), "animals/mammals/aquatic/sea_lion": ("sea lion", A),
    "animals/mammals/aquatic/whale": ("whale", A), "animals/mammals/aquatic/orca": ("orca", A),
    "animals/mammals/aquatic/dolphin": ("dolphin", A), "animals/mammals/pig": ("pig", A),
    "animals/mammals/pig_golden": ("pig", A), "animals/mammals/pig_golden2": ("pig", A),
    "animals/mammals/ferret": ("ferret", A), "animals/mammals/equines/zebra": ("zebra", A),
    "animals/mammals/equines/donkey": ("donkey", A), "animals/mammals/equines/horse": ("horse", A),
    "animals/mammals/elephant": ("elephant", A), "animals/mammals/apes/chimp": ("chimpanzee", A),
    "animals/mammals/apes/gorilla": ("gorilla", A), "animals/mammals/giraffe": ("giraffe", A),
    "animals/mammals/badger": ("badger", A), "animals/mammals/cats/lion": ("lion", A),
    "animals/mammals/cats/tiger": ("tiger", A), "animals/mammals/bovines/sheep": ("sheep", A),
    "animals/mammals/bovines/sheep_lamb": ("sheep", A), "animals/mammals/bovines/ram": ("sheep", A),
    "animals/mammals/bovines/mountaingoat": ("goat", A), "animals/mammals/bovines/goat": ("goat", A),
    "animals/mammals/bovines/cow": ("cow", A), "animals/mammals/bovines/cow_white": ("cow", A),
    "animals/mammals/bovines/bull": ("bull", A), "animals/mammals/bovines/bison": ("bison", A),
    "animals/mammals/dogs/fox": ("fox", A), "animals/mammals/dogs/dog": ("dog", A),
    "animals/mammals/deer/caribou": ("caribou", A), "animals/mammals/deer/doe": ("deer", A),
    "animals/mammals/deer/deer": ("deer", A), "animals/mammals/hippopotamus": ("hippopotamus", A),
    "seasonal/halloween/bat_left": ("bat", A, "a bat squeaking"),
    "seasonal/halloween/blackcat": ("cat", A, "a cat meowing and hissing"),
    # instruments
    "hobbies/music/string/cello": ("cello", I), "hobbies/music/string/violin": ("violin", I),
    "hobbies/music/wind/bassoon": ("bassoon", I),
    "hobbies/music/percussion/cymbal_crash": ("cymbal", I, "a crash cymbal"),
    "hobbies/music/percussion/drum_tomtom_floor": ("tom-tom drum", I, "a floor tom drum being hit"),
    "hobbies/music/percussion/drumkit": ("drum kit", I),
    # household and tools
    "household/rubberduck": ("squeaky toy", D, "a rubber duck squeaking"),
    "household/vacuum_cleaner": ("vacuum cleaner", D), "household/toilet": ("toilet flush", D, "a toilet flushing"),
    "household/arttools/scissors_small_open": ("scissors", D, "scissors cutting"),
    "household/arttools/scissors_small_closed": ("scissors", D, "scissors snipping"),
    "household/kettle": ("kettle", D, "an electric kettle"),
    "household/tools/hammer": ("hammer", D, "a hammer hitting"),
    "household/tools/mallet_metal": ("hammer", D, "a metal mallet hitting"),
    "household/tools/saw": ("saw", D, "a saw cutting wood"),
    "household/Washing-machine": ("washing machine", D),
    "household/dishes/bottle": ("bottle", D, "a bottle being opened"),
    "household/dishes/glass": ("pouring water", D, "water poured into a glass"),
    "food/fruit/apple_red": ("crunching", D, "someone biting into a crunchy apple"),
    "hobbies/camera_35mm": ("camera shutter", D, "a camera shutter clicking"),
    "seasonal/christmas/gift": ("paper rustling", D, "wrapping paper being torn off a gift"),
    # outdoors, vehicles
    "seasonal/newyears/fireworks": ("fireworks", E, "fireworks exploding"),
    "naturalforces/lightningbolt": ("thunder", E, "thunder after a lightning bolt"),
    "vehicles/emergency/firetruck": ("siren", V, "a fire truck siren"),
}


def available(root: Path = ROOT) -> bool:
    return root.is_dir()


def collect(root: Path = ROOT, summary=None) -> list[ClipSpec]:
    """One :class:`ClipSpec` per curated stamp sound found under ``root``."""
    specs = []
    for ogg in sorted(root.rglob("*.ogg")):
        rel = ogg.relative_to(root).with_suffix("").as_posix()
        entry = TABLE.get(rel)
        if entry is None and ("_desc" in ogg.stem or _is_localized(ogg.stem)):
            continue  # spoken descriptions / localized spoken names
        if entry is None:
            if summary is not None:
                summary.skip("tuxpaint: not a curated sound event", rel)
            continue
        label, category = entry[0], entry[1]
        caps = []
        txt = ogg.with_suffix(".txt")
        if txt.is_file():
            first = txt.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            if first and first[0].strip():
                caps.append(first[0].strip())
        if len(entry) > 2:
            caps.append(entry[2])
        specs.append(ClipSpec(id=f"tuxpaint/{rel}", src=str(ogg), label=label, category=category,
                              captions=caps, source=PACKAGE, license=LICENSE, origin=str(ogg)))
    return specs


def _is_localized(stem: str) -> bool:
    parts = stem.rsplit("_", 2)
    if len(parts) >= 2 and len(parts[-1]) == 2 and parts[-1].isalpha():
        # name_fr, name_en_GB, name_zh: a 2-letter lower-case language or upper-case region tag
        tail = parts[-1]
        if tail.islower():
            return True
        if tail.isupper() and len(parts) == 3 and len(parts[-2]) == 2 and parts[-2].islower():
            return True
    return False
