"""Bronze -> silver -> gold: pure DataFrame transforms, the streaming job and batch reprocessing."""
