"""Sound events from Debian ``gcompris-qt-data``: audio inside Qt ``.rcc`` resource files.

The package ships ~136 audio entries across its rcc files (read with :mod:`.rcc`). Kept: the 26
named instruments, the 9 farm animals, the memory-game field recordings (bark, rain, applause, car
engine, door, gong, heartbeat, train ...) and everyday sound effects with a clear source (helicopter,
knock, coins, footsteps, xylophone notes). Left out: speech (Tux saying "you cannot"), music
pieces (world music, intro jingle), abstract game sounds ("weird", "bonus", "darken").

Licences come per file from the package's DEP-5 ``copyright`` file (last matching stanza wins;
unlisted files take the package's ``Files: *`` licence, GPL-3+).
"""

from __future__ import annotations

from pathlib import Path

from avsuite.data.corpora.common import ClipSpec
from avsuite.data.corpora.dep5 import Dep5
from avsuite.data.corpora.rcc import RccError, RccFile

PACKAGE = "gcompris-qt-data"
RCC_DIR = Path("/usr/share/gcompris-qt/rcc")
COPYRIGHT = Path("/usr/share/doc/gcompris-qt-data/copyright")
DEFAULT_LICENSE = "GPL-3.0-or-later"

A, I, D, E, V, H, S = "animal", "instrument", "domestic", "environment", "vehicle", "human", "sfx"

_INSTR = {
    "accordion": "accordion", "banjo": "banjo", "bongo": "bongo drums", "castanets": "castanets",
    "cello": "cello", "clarinet": "clarinet", "cymbal": "cymbal", "drum_kit": "drum kit",
    "electric_guitar": "electric guitar", "flute_traversiere": "flute", "guitar": "acoustic guitar",
    "harmonica": "harmonica", "harp": "harp", "horn": "french horn", "maracas": "maracas", "organ": "organ",
    "piano": "piano", "saxophone": "saxophone", "snare_drum": "snare drum", "tambourine": "tambourine",
    "timpani": "timpani", "triangle": "triangle", "trombone": "trombone", "trumpet": "trumpet", "tuba": "tuba",
    "violin": "violin",
}
_FARM = {"cat": ("cat", "a cat meowing"), "chickens": ("chicken", "chickens clucking"),
         "cow": ("cow", "a cow mooing"), "dog": ("dog", "a dog barking"), "duck": ("duck", "a duck quacking"),
         "horse": ("horse", "a horse neighing"), "owl": ("owl", "an owl hooting"),
         "pig": ("pig", "a pig grunting"), "sheep": ("sheep", "a sheep bleating")}

_MS = "activities/memory-sound/resource/"
TABLE: dict[str, tuple[str, str, str]] = {
    **{f"activities/instruments/resource/{k}.ogg": (v, I, f"{'an' if v[0] in 'aeiou' else 'a'} {v} being played")
       for k, v in _INSTR.items()},
    **{f"activities/explore_farm_animals/resource/animals/{k}.ogg": (lab, A, cap)
       for k, (lab, cap) in _FARM.items()},
    _MS + "LRApplauses_1_LA_cut.ogg": ("applause", H, "an audience applauding"),
    _MS + "LRBark_1_LA_cut.ogg": ("dog", A, "a dog barking"),
    _MS + "LRBark_3_LA_cut.ogg": ("dog", A, "a dog barking several times"),
    _MS + "LRBuddhist_gong_05_LA.ogg": ("gong", I, "a buddhist gong struck once"),
    _MS + "LRDoor_Open_2_LA.ogg": ("door", D, "a door opening"),
    **{_MS + f"LRFactory_noise_0{i}_LA.ogg": ("machinery", E, "machine noise in a factory") for i in range(1, 7)},
    _MS + "LRFrogsInPondDuringStormLACut.ogg": ("frog", A, "frogs croaking in a pond during a storm"),
    _MS + "LRHeart_beat_01_LA.ogg": ("heartbeat", H, "a heart beating"),
    _MS + "LRObject_falling_01_LA.ogg": ("falling object", D, "an object falling on the floor"),
    _MS + "LRObject_falling_02_LA.ogg": ("falling object", D, "objects falling and bouncing on the floor"),
    _MS + "LRRain_in_garden_01_LA_cut.ogg": ("rain", E, "rain falling in a garden"),
    _MS + "LRStartAndStopCarEngine1LACut.ogg": ("car engine", V, "a car engine starting and stopping"),
    _MS + "LRTrain_slowing_down_01_LA_cut.ogg": ("train", V, "a train slowing down"),
    **{_MS + f"guitar_son{i}.ogg": ("acoustic guitar", I, "a single note on a guitar") for i in range(1, 5)},
    _MS + "guitar_melody.ogg": ("acoustic guitar", I, "a short melody on a guitar"),
    **{f"activities/melody/resource/xylofon_son{i}.wav": ("xylophone", I, "a xylophone note") for i in range(1, 5)},
    "activities/melody/resource/knock.wav": ("knock", D, "someone knocking on a door"),
    "activities/canal_lock/resource/water_fill.wav": ("water flowing", E, "water filling a canal lock"),
    "activities/canal_lock/resource/door_open.wav": ("creaking gate", E, "a heavy canal lock gate opening"),
    "activities/canal_lock/resource/door_close.wav": ("creaking gate", E, "a heavy canal lock gate closing"),
    "core/resource/sounds/water.wav": ("water flowing", E, "running water"),
    "activities/watercycle/resource/harbor1.wav": ("harbor", E, "ambience in a harbor"),
    "activities/watercycle/resource/harbor2.wav": ("harbor", E, "seagulls and water in a harbor"),
    "activities/watercycle/resource/bubble.wav": ("bubbles", E, "bubbles in water"),
    "activities/clickgame/resource/drip.wav": ("water drip", E, "a drop of water dripping"),
    "activities/guessnumber/resource/helicopter.wav": ("helicopter", V, "a helicopter flying"),
    "activities/railroad/resource/sounds/train.wav": ("train", V, "a train passing"),
    "activities/traffic/resource/car.wav": ("car engine", V, "a car driving off"),
    "activities/money/resource/money1.wav": ("coins", D, "coins clinking"),
    "activities/money/resource/money2.wav": ("coins", D, "coins jingling"),
    "activities/mining/resource/pickaxe.wav": ("pickaxe", D, "a pickaxe striking rock"),
    "activities/scalesboard/resource/metal_hit.wav": ("metal clang", D, "a metal object being hit"),
    "activities/target/resource/arrow.wav": ("arrow", S, "an arrow hitting a target"),
    "activities/reversecount/resource/icy_walk.wav": ("footsteps", H, "footsteps on ice"),
    "activities/memory/resource/card_flip.wav": ("card flip", D, "a playing card being flipped"),
    "activities/erase/resource/eraser1.wav": ("eraser", D, "an eraser rubbing on paper"),
    "activities/erase/resource/eraser2.wav": ("eraser", D, "an eraser rubbing on paper"),
    "activities/redraw/resource/eraser.wav": ("eraser", D, "an eraser rubbing on paper"),
    "activities/redraw/resource/brush.wav": ("brush", D, "a brush stroke on paper"),
    "activities/tic_tac_toe/resource/click.wav": ("click", S, "a click"),
    "activities/play_rhythm/resource/click.wav": ("click", S, "a click"),
    "core/resource/sounds/audioclick.wav": ("click", S, "a click"),
    "core/resource/sounds/bleep.wav": ("beep", S, "a short electronic beep"),
    "activities/morse_code/resource/dot.wav": ("beep", S, "a short beep"),
    "activities/morse_code/resource/dash.wav": ("beep", S, "a long beep"),
}


def available(rcc_dir: Path = RCC_DIR) -> bool:
    return rcc_dir.is_dir() and any(rcc_dir.glob("*.rcc"))


def collect(work: Path, rcc_dir: Path = RCC_DIR, copyright: Path = COPYRIGHT, summary=None) -> list[ClipSpec]:
    """Extract the curated audio entries of every rcc under ``rcc_dir`` into ``work``."""
    licenses = Dep5(copyright) if copyright.is_file() else None
    specs = []
    for rcc_path in sorted(rcc_dir.glob("*.rcc")):
        try:
            rcc = RccFile(rcc_path)
        except RccError as exc:
            if summary is not None:
                summary.skip("gcompris: unreadable rcc file", f"{rcc_path.name}: {exc}")
            continue
        with rcc:
            for entry in rcc.entries():
                rel = entry.path.removeprefix("gcompris/src/")
                if Path(rel).suffix.lower() not in (".ogg", ".wav", ".mp3", ".flac", ".opus"):
                    continue
                if rel not in TABLE:
                    if summary is not None:
                        summary.skip("gcompris: not a curated sound event", rel)
                    continue
                label, category, caption = TABLE[rel]
                clip_id = "gcompris/" + rel.removeprefix("activities/").replace("/resource/", "/").rsplit(".", 1)[0]
                dst = work / (clip_id.replace("/", "__") + Path(rel).suffix.lower())
                try:
                    dst.write_bytes(rcc.read(entry))
                except RccError as exc:
                    if summary is not None:
                        summary.skip("decode_error", f"{clip_id}: {exc}")
                    continue
                lic = licenses.license_for("src/" + rel, DEFAULT_LICENSE) if licenses else DEFAULT_LICENSE
                specs.append(ClipSpec(id=clip_id, src=str(dst), label=label, category=category, captions=[caption],
                                      source=PACKAGE, license=lic, origin=f"{rcc_path}:{entry.path}"))
    return specs
