"""Every mapped model, imported once so ``Base.metadata`` is complete for Alembic and tests."""

from digital_id.accounts.models import CitizenAccount
from digital_id.clients.models import Client
from digital_id.db.base import Base
from digital_id.registry.models import Citizen

metadata = Base.metadata

__all__ = ["Citizen", "CitizenAccount", "Client", "metadata"]
