"""``python -m fairmetric`` runs the command-line interface (also what ``torchrun -m`` launches)."""

from fairmetric.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
