"""Shared persistence: the SQLAlchemy base, engines, migrations and the secret box.

Every package that keeps state declares its tables on :class:`storage.db.Base`; one alembic
history (``storage/migrations``) migrates them all.
"""

from storage.db import Base, Database, storage_failure, utcnow
from storage.secretbox import SecretBox

__all__ = ["Base", "Database", "SecretBox", "storage_failure", "utcnow"]
