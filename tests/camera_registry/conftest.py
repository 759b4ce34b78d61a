"""The ACL tests' small district (users, departments, policy) is reused for vehicle tests."""

from tests.acl.conftest import world

__all__ = ["world"]
