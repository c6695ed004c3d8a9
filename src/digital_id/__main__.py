"""`python -m digital_id`: the same command line as `digital-id`."""

from digital_id.cli import main

main()
