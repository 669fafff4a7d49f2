"""The points mall: output types (`types`) and the inputs and payloads of both endpoints (`inputs`)."""
from api.schema.base import Money, money  # noqa: F401  (used to live here)
from api.schema.mall.inputs import *  # noqa: F401,F403
from api.schema.mall.types import *  # noqa: F401,F403
