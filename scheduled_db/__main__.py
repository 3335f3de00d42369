"""``python -m scheduled_db``: the same command line as the ``scheduled-db`` script."""

import sys

from scheduled_db.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
