"""What readers do with the lists: recommendation ids, impressions and clicks, their counts, A/B comparisons."""
from .counts import ArmFigures, PlacementFigures, click_figures
from .events import Click, EventStore, Impression
from .rids import RID_PATTERN, Rids

__all__ = ["ArmFigures", "Click", "EventStore", "Impression", "PlacementFigures", "RID_PATTERN", "Rids",
           "click_figures"]
