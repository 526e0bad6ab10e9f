"""``python -m edge_bus`` runs the CLI."""

from edge_bus.cli import main

main()
