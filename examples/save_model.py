"""Save small_cnn as a .keras file, the form a trained model is usually kept in:
`python -m examples.save_model small_cnn.keras [size] [classes]`, then
`--set backbone=small_cnn.keras` (with input_size set to the same size)."""

import sys

from examples.models import small_cnn


def main(argv: list[str]) -> None:
    path, size, classes = argv[0], int(argv[1]) if len(argv) > 1 else 32, int(argv[2]) if len(argv) > 2 else 2
    small_cnn((size, size, 3), classes).save(path)
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
