"""General MIDI: the 128 programs and the percussion notes, with human labels for zero-shot prompts.

Programs that sound alike share a label (programs 0-1 are both "piano", the four saxophones are
"saxophone", the eight synth leads are "synth lead") so a label names a sound a listener could tell
apart. Each entry: ``(gm_name, label, category, centre_note, span)``; a render's "low"/"middle"/"high"
note is ``centre - span`` / ``centre`` / ``centre + span``; ``span == 0`` means unpitched (sound
effects: the pitch is not varied and not described).
"""

from __future__ import annotations

I, H, E, A, D, V, S = "instrument", "human", "environment", "animal", "domestic", "vehicle", "sfx"

PROGRAMS: list[tuple[str, str, str, int, int]] = [
    # piano
    ("Acoustic Grand Piano", "piano", I, 60, 12), ("Bright Acoustic Piano", "piano", I, 60, 12),
    ("Electric Grand Piano", "electric piano", I, 60, 12), ("Honky-tonk Piano", "honky-tonk piano", I, 60, 12),
    ("Electric Piano 1", "electric piano", I, 60, 12), ("Electric Piano 2", "electric piano", I, 60, 12),
    ("Harpsichord", "harpsichord", I, 60, 12), ("Clavinet", "clavinet", I, 60, 12),
    # chromatic percussion
    ("Celesta", "celesta", I, 72, 12), ("Glockenspiel", "glockenspiel", I, 84, 9),
    ("Music Box", "music box", I, 76, 9), ("Vibraphone", "vibraphone", I, 67, 9),
    ("Marimba", "marimba", I, 60, 12), ("Xylophone", "xylophone", I, 76, 9),
    ("Tubular Bells", "tubular bells", I, 67, 7), ("Dulcimer", "dulcimer", I, 62, 9),
    # organ
    ("Drawbar Organ", "electric organ", I, 60, 12), ("Percussive Organ", "electric organ", I, 60, 12),
    ("Rock Organ", "electric organ", I, 60, 12), ("Church Organ", "pipe organ", I, 55, 12),
    ("Reed Organ", "reed organ", I, 60, 12), ("Accordion", "accordion", I, 62, 9),
    ("Harmonica", "harmonica", I, 67, 7), ("Tango Accordion", "accordion", I, 62, 9),
    # guitar
    ("Acoustic Guitar (nylon)", "acoustic guitar", I, 55, 12), ("Acoustic Guitar (steel)", "acoustic guitar", I, 55, 12),
    ("Electric Guitar (jazz)", "electric guitar", I, 55, 12), ("Electric Guitar (clean)", "electric guitar", I, 55, 12),
    ("Electric Guitar (muted)", "muted electric guitar", I, 52, 9), ("Overdriven Guitar", "distorted guitar", I, 52, 12),
    ("Distortion Guitar", "distorted guitar", I, 52, 12), ("Guitar Harmonics", "guitar harmonics", I, 64, 7),
    # bass
    ("Acoustic Bass", "double bass", I, 36, 7), ("Electric Bass (finger)", "bass guitar", I, 36, 7),
    ("Electric Bass (pick)", "bass guitar", I, 36, 7), ("Fretless Bass", "fretless bass", I, 36, 7),
    ("Slap Bass 1", "slap bass", I, 36, 7), ("Slap Bass 2", "slap bass", I, 36, 7),
    ("Synth Bass 1", "synth bass", I, 36, 7), ("Synth Bass 2", "synth bass", I, 36, 7),
    # strings
    ("Violin", "violin", I, 69, 9), ("Viola", "viola", I, 60, 9), ("Cello", "cello", I, 48, 9),
    ("Contrabass", "double bass", I, 36, 7), ("Tremolo Strings", "tremolo strings", I, 60, 12),
    ("Pizzicato Strings", "pizzicato strings", I, 60, 12), ("Orchestral Harp", "harp", I, 60, 12),
    ("Timpani", "timpani", I, 45, 5),
    # ensemble
    ("String Ensemble 1", "string ensemble", I, 60, 12), ("String Ensemble 2", "string ensemble", I, 60, 12),
    ("Synth Strings 1", "synth strings", I, 60, 12), ("Synth Strings 2", "synth strings", I, 60, 12),
    ("Choir Aahs", "choir", H, 60, 7), ("Voice Oohs", "choir", H, 60, 7),
    ("Synth Voice", "synth voice", I, 60, 7), ("Orchestra Hit", "orchestra hit", I, 60, 7),
    # brass
    ("Trumpet", "trumpet", I, 67, 7), ("Trombone", "trombone", I, 53, 7), ("Tuba", "tuba", I, 41, 7),
    ("Muted Trumpet", "muted trumpet", I, 67, 7), ("French Horn", "french horn", I, 57, 7),
    ("Brass Section", "brass section", I, 60, 9), ("Synth Brass 1", "synth brass", I, 60, 9),
    ("Synth Brass 2", "synth brass", I, 60, 9),
    # reed
    ("Soprano Sax", "saxophone", I, 72, 7), ("Alto Sax", "saxophone", I, 65, 7),
    ("Tenor Sax", "saxophone", I, 58, 7), ("Baritone Sax", "saxophone", I, 50, 7),
    ("Oboe", "oboe", I, 70, 7), ("English Horn", "english horn", I, 62, 7),
    ("Bassoon", "bassoon", I, 48, 7), ("Clarinet", "clarinet", I, 62, 9),
    # pipe
    ("Piccolo", "piccolo", I, 86, 5), ("Flute", "flute", I, 76, 7), ("Recorder", "recorder", I, 76, 7),
    ("Pan Flute", "pan flute", I, 72, 7), ("Blown Bottle", "blown bottle", I, 67, 7),
    ("Shakuhachi", "shakuhachi", I, 67, 7), ("Whistle", "whistle", I, 84, 5), ("Ocarina", "ocarina", I, 76, 7),
    # synth lead
    *[(f"Lead {i} ({n})", "synth lead", I, 64, 9) for i, n in enumerate(
        ["square", "sawtooth", "calliope", "chiff", "charang", "voice", "fifths", "bass + lead"], 1)],
    # synth pad
    *[(f"Pad {i} ({n})", "synth pad", I, 60, 9) for i, n in enumerate(
        ["new age", "warm", "polysynth", "choir", "bowed", "metallic", "halo", "sweep"], 1)],
    # synth effects
    *[(f"FX {i} ({n})", "synth effect", I, 60, 9) for i, n in enumerate(
        ["rain", "soundtrack", "crystal", "atmosphere", "brightness", "goblins", "echoes", "sci-fi"], 1)],
    # ethnic
    ("Sitar", "sitar", I, 60, 7), ("Banjo", "banjo", I, 62, 9), ("Shamisen", "shamisen", I, 62, 9),
    ("Koto", "koto", I, 62, 9), ("Kalimba", "kalimba", I, 72, 7), ("Bagpipe", "bagpipes", I, 67, 5),
    ("Fiddle", "fiddle", I, 69, 9), ("Shanai", "shehnai", I, 70, 5),
    # percussive
    ("Tinkle Bell", "bell", I, 84, 5), ("Agogo", "agogo", I, 72, 5), ("Steel Drums", "steel drum", I, 64, 7),
    ("Woodblock", "wood block", I, 72, 5), ("Taiko Drum", "taiko drum", I, 45, 5),
    ("Melodic Tom", "tom-tom drum", I, 50, 5), ("Synth Drum", "synth drum", I, 50, 5),
    ("Reverse Cymbal", "reverse cymbal", I, 60, 0),
    # sound effects
    ("Guitar Fret Noise", "guitar fret noise", I, 60, 0), ("Breath Noise", "breathing", H, 60, 0),
    ("Seashore", "ocean waves", E, 60, 0), ("Bird Tweet", "bird", A, 72, 0),
    ("Telephone Ring", "telephone", D, 60, 0), ("Helicopter", "helicopter", V, 60, 0),
    ("Applause", "applause", H, 60, 0), ("Gunshot", "gunshot", S, 60, 0),
]
assert len(PROGRAMS) == 128

#: Captions for unpitched sound-effect programs (by label).
SFX_CAPTIONS = {
    "reverse cymbal": "a cymbal played backwards", "guitar fret noise": "fingers sliding on guitar strings",
    "breathing": "someone breathing", "ocean waves": "waves breaking on a seashore",
    "bird": "a bird tweeting", "telephone": "a telephone ringing", "helicopter": "a helicopter flying",
    "applause": "a crowd applauding", "gunshot": "a gunshot",
}

#: Percussion (channel 10) labels -> the GM drum-kit notes that play them.
DRUMS: dict[str, tuple[int, ...]] = {
    "bass drum": (35, 36), "snare drum": (38, 40), "hand clap": (39,), "hi-hat": (42, 44, 46),
    "tom-tom drum": (41, 45, 48), "crash cymbal": (49, 57), "ride cymbal": (51, 59), "tambourine": (54,),
    "cowbell": (56,), "bongo drums": (60, 61), "conga": (62, 63, 64), "timbales": (65, 66), "cabasa": (69,),
    "maracas": (70,), "claves": (75,), "wood block": (76, 77), "triangle": (80, 81), "guiro": (73, 74),
}
