"""Video stages of the shared data layer: frame I/O, face detection + alignment, mouth masks, muxing."""
