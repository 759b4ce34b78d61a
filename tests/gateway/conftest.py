"""Gateway tests reuse the ACL tests' small district."""

from tests.acl.conftest import world

__all__ = ["world"]
