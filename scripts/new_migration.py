"""Create the next alembic revision from the models: python scripts/new_migration.py ID "message".

Upgrades a scratch SQLite database to head, then autogenerates the difference to the models.
"""

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

from storage.db import MIGRATIONS_DIR


def main() -> None:
    rev_id, message = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", f"sqlite:///{Path(tmp) / 'scratch.db'}")
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)


if __name__ == "__main__":
    main()
