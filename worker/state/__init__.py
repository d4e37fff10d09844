"""The worker's own database: runs and the audit trail (models, store, Alembic migrations)."""

from worker.state.models import ZERO_HASH
from worker.state.records import AuditEntry, AuditHead, AuditRecord, RunRecord
from worker.state.store import StateStore

__all__ = ["ZERO_HASH", "AuditEntry", "AuditHead", "AuditRecord", "RunRecord", "StateStore"]
