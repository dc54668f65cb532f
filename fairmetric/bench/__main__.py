"""``python -m fairmetric.bench`` runs the suite (the same options as ``fairmetric bench``)."""

from fairmetric.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
