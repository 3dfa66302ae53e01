"""Profile commands (plan/apply/export/persist), registered on the main app."""

from __future__ import annotations
