"""``python -m edge_bus`` runs the CLI."""

from edge_bus.console import main

main()
