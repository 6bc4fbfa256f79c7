"""`python -m cityops.cli`: how the demo, the bench and a restarting worker start cityops processes."""

from cityops.cli import main

main()
