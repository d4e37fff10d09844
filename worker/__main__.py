"""`python -m worker` runs the `retention-worker` command."""

from worker.cli import main

if __name__ == "__main__":
    main()
