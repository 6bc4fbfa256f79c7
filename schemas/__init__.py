"""The contracts: pydantic v2 models for every topic message and for the duty-list file.

Hotline integrations import these; changing a field here is an API change.
"""

from schemas.dutylist import (
                              CityRegistry,
                              DutyItem,
                              DutyList,
                              Grid,
                              ItemOverride,
                              LocalList,
                              SensorRule,
                              Unit,
                              WhistlePolicy,
)
from schemas.events import (
                              Alert,
                              ClassifiedIncident,
                              DeadLetter,
                              Dispatch,
                              DutyListVersion,
                              Incident,
                              ManualReview,
                              ModelVersion,
                              OperatorDecision,
                              TaskEvent,
                              TaskState,
                              TaskUpdate,
                              WebhookAttempt,
)
from schemas.intake import (
                              GeoPoint,
                              GridReport,
                              HotlineTicket,
                              OrderHistory,
                              SensorReading,
                              Whistle,
                              describe_validation_error,
)

__all__ = [
    "Alert", "ClassifiedIncident", "CityRegistry", "DeadLetter", "Dispatch", "DutyItem", "DutyList", "Grid", "ItemOverride", "LocalList", "SensorRule", "WhistlePolicy", "GeoPoint", "GridReport", "HotlineTicket", "OrderHistory",
    "DutyListVersion", "Incident", "ManualReview", "ModelVersion", "OperatorDecision", "SensorReading", "TaskEvent", "TaskState", "TaskUpdate", "WebhookAttempt", "Unit", "Whistle", "describe_validation_error",
]
