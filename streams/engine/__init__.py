"""The pure relationship engine: no Faust, no Kafka, no I/O; replay and agents share it."""

from streams.engine.engine import RelationshipEngine
from streams.engine.events import (
    INTERACTION_TYPES,
    Interaction,
    InvalidEvent,
    decode_event,
    row_updates,
)
from streams.engine.row import Row
from streams.engine.watermark import WatermarkTracker

__all__ = [
    "INTERACTION_TYPES",
    "Interaction",
    "InvalidEvent",
    "RelationshipEngine",
    "Row",
    "WatermarkTracker",
    "decode_event",
    "row_updates",
]
