"""What every part of the project agrees on about the model: its class order (output order) and input size."""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

#: The side of the square grayscale face crops the emotion model takes.
INPUT_SIZE = 48
